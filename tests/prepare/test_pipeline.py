"""The prepare pipeline on the DirectRunner: split, statistics and corpus equal `scan`'s; shards hold the
split's records; dead letters; --max_bad_records; candidate files; TFRecord input."""

import json
import posixpath

import numpy as np
import pytest

from tfrs_twotower import data as data_lib
from tfrs_twotower.data.records import RecordParser
from tfrs_twotower.data.tfrecord import read_tfrecord
from tfrs_twotower.prepare.summary import TooManyPreparedBadRecordsError
from tfrs_twotower.schema import load_schema

from .conftest import run


def _stats(out):
    return json.loads((out / "stats.json").read_text())


def _shard_records(out, stats, split, schema):
    parser = RecordParser(schema)
    return [r for name, _ in stats["shards"][split] for _, r in read_tfrecord(str(out / name), parser)]


def _pairs(records):
    return sorted(
        (r["query"]["user_id"], r["candidate"]["item_id"], tuple(r["query"]["age"])) for r in records
    )


def test_statistics_split_and_corpus_equal_the_scan(sample, two_files, tmp_path):
    out = tmp_path / "prepared"
    manifest = run(two_files, sample.schema, out, "--max_bad_records", 3, "--records_per_shard", 100)
    scan = data_lib.scan(str(two_files), sample.schema, max_bad_records=3, eval_split=0.2)
    stats = _stats(out)
    assert manifest["counts"] == {
        "records_read": 600,
        "rejected": 3,
        "train": scan.train_count,
        "eval": scan.eval_count,
        "corpus": len(scan.corpus),
    }
    assert 400 < scan.train_count < 560 and scan.rejected_count == 3
    assert json.loads((out / "corpus_keys.json").read_text()) == scan.corpus.keys  # first-seen order too
    assert stats["train_positive_counts"] == dict(scan.train_positive_counts)
    assert stats["eval_positive_counts"] == dict(scan.eval_positive_counts)
    for side, by_name in scan.numeric_stats.items():
        for name, expected in by_name.items():
            got = stats["numeric_stats"][side][name]
            assert got["count"] == expected.count
            np.testing.assert_allclose(
                [got["mean"], got["variance"]], [expected.mean, expected.variance], rtol=1e-12
            )
    for side, by_name in scan.id_counts.items():
        for name, counter in by_name.items():
            assert stats["id_counts"][side][name]["counts"] == dict(counter.counts)
    # Shards: the records of each split, re-encoded, at most 100 per shard (so several train shards).
    schema = load_schema(sample.schema)
    assert len(stats["shards"]["train"]) >= 5 and all(n <= 100 for _, n in stats["shards"]["train"])
    for split in ("train", "eval"):
        raw = data_lib.read_records
        expected = [
            r
            for f in scan.files
            for loc, r in raw(f, RecordParser(schema), on_error=lambda e: None)
            if data_lib.SplitAssigner(f, 0.2).is_eval(loc.index) == (split == "eval")
        ]
        assert _pairs(_shard_records(out, stats, split, schema)) == _pairs(expected)
    # Seen items: the scan's, as corpus rows.
    seen = np.load(out / "seen.npz")
    for i, query_id in enumerate(seen["query_ids"][:20].tolist()):
        expected = scan.seen.rows_for([query_id])[0]
        np.testing.assert_array_equal(seen["rows"][seen["offsets"][i] : seen["offsets"][i + 1]], expected)


def test_single_file_numeric_stats_are_exactly_the_scans(sample, tmp_path):
    out = tmp_path / "prepared"
    run(sample.train_jsonl, sample.schema, out)
    scan = data_lib.scan(sample.train_jsonl, sample.schema)
    got = _stats(out)["numeric_stats"]["candidate"]["price"]
    expected = scan.numeric_stats["candidate"]["price"]
    assert (got["count"], got["mean"], got["variance"]) == (expected.count, expected.mean, expected.variance)


def test_dead_letters_name_file_record_and_reason(sample, two_files, tmp_path):
    out = tmp_path / "prepared"
    run(two_files, sample.schema, out, "--max_bad_records", 3)
    scan = data_lib.scan(str(two_files), sample.schema, max_bad_records=3)
    lines = [json.loads(line) for path in sorted(out.glob("rejected-*.jsonl")) for line in path.open()]
    assert [(d["file"], d["index"], d["line"], d["field"], d["reason"]) for d in lines] == [
        (e.location.file, e.location.index, e.location.line, e.field, e.reason) for e in scan.rejected
    ]
    assert [d["error"] for d in lines] == [str(e) for e in scan.rejected]
    assert [posixpath.basename(d["file"]) for d in lines] == ["part-0.jsonl", "part-0.jsonl", "part-1.jsonl"]


def test_too_many_bad_records_fails_after_the_pipeline_naming_the_dead_letters(sample, two_files, tmp_path):
    out = tmp_path / "prepared"
    with pytest.raises(TooManyPreparedBadRecordsError) as caught:
        run(two_files, sample.schema, out, "--max_bad_records", 2)
    message = str(caught.value)
    assert message.startswith("3 bad records, more than max_bad_records=2.")
    assert "part-0.jsonl line 6" in message and str(out / "rejected-00000.jsonl") in message
    assert str(out / "rejected-00001.jsonl") in message and "--max_bad_records" in message
    assert not (out / "manifest.json").exists()  # train refuses the directory


def test_candidate_file_gives_the_scan_candidates_corpus(sample, tmp_path):
    out = tmp_path / "prepared"
    manifest = run(sample.train_jsonl, sample.schema, out, "--candidate_data_path", sample.candidates_jsonl)
    expected = data_lib.scan_candidates(sample.candidates_jsonl, sample.schema)
    assert manifest["has_candidate_file"] and manifest["counts"]["corpus"] == len(expected.corpus) == 400
    assert json.loads((out / "corpus_keys.json").read_text()) == expected.corpus.keys
    schema = load_schema(sample.schema)
    names = [n for n, _ in _stats(out)["shards"]["candidates"]]
    docs = [d for n in names for _, d in read_tfrecord(str(out / n), RecordParser(schema), "candidates")]
    got, want = (
        data_lib.side_columns(schema.candidate, docs),
        data_lib.side_columns(schema.candidate, expected.corpus.candidates),
    )
    for name in want:  # as model inputs (TFRecord floats are float32, as the model's)
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_tfrecord_input_prepares_like_jsonl(sample, tmp_path):
    run(sample.train_tfrecord, sample.schema, tmp_path / "a", "--input_file_format", "tfrecord")
    run(sample.train_jsonl, sample.schema, tmp_path / "b")
    a, b = _stats(tmp_path / "a"), _stats(tmp_path / "b")  # `train.tfrecord` and `train.jsonl` split alike
    assert (
        a["training"]["train"] == b["training"]["train"]
        and a["train_positive_counts"] == b["train_positive_counts"]
    )
    scan = data_lib.scan(sample.train_tfrecord, sample.schema, file_format="tfrecord")
    assert a["numeric_stats"]["query"]["age"]["mean"] == scan.numeric_stats["query"]["age"].mean


def test_output_dir_must_be_empty(sample, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        run(sample.train_jsonl, sample.schema, tmp_path / "out")


def test_weights_negatives_and_fingerprint_keys_survive_preparation(tmp_path):
    from tfrs_twotower.training.config import TrainingConfig
    from tfrs_twotower.training.inputs import prepare_inputs

    schema = {"query": {"q": {"feature_type": "Text"}}, "candidate": {"price": {"feature_type": "Numeric"}}}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    lines = [
        {
            "query": {"q": f"w{i % 7}"},
            "candidate": {"price": [i % 11 + 0.1]},
            "weight": 1.0 + i % 3,
            **({"negatives": [{"price": [99.5 + i % 2]}]} if i % 4 == 0 else {}),
        }
        for i in range(60)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "prepared"
    run(tmp_path / "pairs.jsonl", tmp_path / "schema.json", out, "--eval_split", 0.25)
    base = dict(
        input_schema_path=str(tmp_path / "schema.json"),
        job_dir=str(tmp_path / "job"),
        eval_split=0.25,
        train_batch_size=8,
        seed=1,
    )
    raw = prepare_inputs(TrainingConfig(training_data_path=str(tmp_path / "pairs.jsonl"), **base))
    ready = prepare_inputs(TrainingConfig(prepared_data_path=str(out), **base))
    assert ready.id_feature is None and ready.corpus_keys == raw.corpus_keys  # fingerprints, negatives' too
    assert len(raw.corpus_keys) == 12 and ready.train_scan.has_negatives
    assert ready.train_scan.weighted_count == 60 and ready.train_scan.max_negatives == 1
    batches = list(ready.train_dataset)
    assert sum(int(b["negative_mask"].numpy().sum()) for b in batches) == sum(
        1 for i in range(60) if i % 4 == 0 and not data_lib.SplitAssigner("pairs.jsonl", 0.25).is_eval(i)
    )
    assert sorted(w for b in batches for w in b["weight"].numpy().tolist()) == sorted(
        w for b in raw.train_dataset for w in b["weight"].numpy().tolist()
    )
    assert "candidate_key" in next(iter(ready.eval_dataset))  # evaluation keys by fingerprint
