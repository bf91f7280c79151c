import collections
import json

import numpy as np
import pytest

from tests.data.conftest import SCHEMA, candidate, pair
from tfrs_twotower.data import (
    TooManyBadRecordsError,
    eval_mask,
    scan,
    scan_candidates,
    write_jsonl,
    write_tfrecord,
)
from tfrs_twotower.schema import load_schema


def _write_with_bad(path, records, bad_lines):
    lines = [json.dumps(r) for r in records]
    for index, text in sorted(bad_lines.items()):
        lines.insert(index, text)
    path.write_text("\n".join(lines) + "\n")


def test_counts_and_split(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    result = scan(str(tmp_path / "a.jsonl"), schema, eval_split=0.3)
    expected_eval = int(eval_mask("a.jsonl", np.arange(60), 0.3).sum())
    assert (result.records_read, result.eval_count, result.train_count) == (
        60,
        expected_eval,
        60 - expected_eval,
    )
    assert result.rejected_count == 0 and result.used_count == 60 and result.kind == "pairs"


def test_max_bad_records_skips_and_counts(tmp_path, schema, records):
    path = tmp_path / "a.jsonl"
    _write_with_bad(path, records[:10], {2: "not json", 5: '{"query": {}}'})
    result = scan(str(path), schema, max_bad_records=2, eval_split=0.0)
    assert (result.records_read, result.train_count, result.rejected_count) == (12, 10, 2)
    assert [e.location.line for e in result.rejected] == [3, 6]
    assert result.skip == {(str(path), 2), (str(path), 5)}
    assert "rejected" in result.summary()


def test_too_many_bad_records(tmp_path, schema, records):
    path = tmp_path / "a.jsonl"
    _write_with_bad(path, records[:10], {2: "not json", 5: '{"query": {}}'})
    with pytest.raises(TooManyBadRecordsError) as info:
        scan(str(path), schema, max_bad_records=1)
    message = str(info.value)
    assert message.startswith("2 bad records, more than max_bad_records=1.")
    assert "a.jsonl line 3: not valid JSON" in message and "a.jsonl line 6: missing `candidate`" in message
    assert "raise --max_bad_records" in message and info.value.count == 2


def test_stops_early_when_far_over_the_limit(tmp_path, schema):
    path = tmp_path / "bad.jsonl"
    path.write_text("x\n" * 1000)
    with pytest.raises(TooManyBadRecordsError, match=r"^at least 10 bad records \(stopped reading early\)"):
        scan(str(path), schema)


def test_numeric_stats_match_numpy(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    result = scan(str(tmp_path / "a.jsonl"), schema, eval_split=0.25)
    train = ~eval_mask("a.jsonl", np.arange(60), 0.25)
    ages = [
        np.mean(r["query"]["age"]) for r, t in zip(records, train, strict=True) if t and r["query"]["age"]
    ]
    stats = result.numeric_stats["query"]["age"]
    assert stats.count == len(ages)
    np.testing.assert_allclose([stats.mean, stats.variance], [np.mean(ages), np.var(ages)], rtol=1e-12)
    assert set(result.numeric_stats["candidate"]) == {"year"}


def test_stats_merge_over_chunks(tmp_path):
    schema = load_schema({"query": {"x": {"feature_type": "Numeric"}}, "candidate": SCHEMA["candidate"]})
    values = np.random.default_rng(0).normal(1e6, 3.0, size=9000)
    write_jsonl(
        [{"query": {"x": [v, v + 2]}, "candidate": candidate(0)} for v in values], str(tmp_path / "s.jsonl")
    )
    stats = scan(str(tmp_path / "s.jsonl"), schema, eval_split=0.0).numeric_stats["query"]["x"]
    np.testing.assert_allclose([stats.mean, stats.variance], [np.mean(values + 1), np.var(values)], rtol=1e-9)


def test_corpus_unique_by_id_in_first_seen_order(tmp_path, schema, records):
    records = records[:20] + [pair(100, negatives=[candidate(9, movie_id="neg-1")])]
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    result = scan(str(tmp_path / "a.jsonl"), schema, eval_split=0.5)
    assert result.corpus.keys == [f"m{i}" for i in range(7)] + ["neg-1"]
    assert result.corpus.candidates[0] == {
        "movie_id": "m0",
        "genres": [],
        "title": ["Title 0"],
        "year": [1990.0],
        "emb": [0.0, 0.5, -1.0],
    }
    assert result.corpus.conflicts > 0  # m0 appears with different genres lists
    assert result.has_negatives and result.max_negatives == 1 and result.negatives_count == 1


def test_corpus_fingerprints_without_id_same_for_both_formats(tmp_path):
    schema = load_schema(
        {"query": SCHEMA["query"], "candidate": {"emb": {"feature_type": "Vector", "config": {"length": 2}}}}
    )
    records = [pair(i, candidate={"emb": [0.1 * (i % 3), 0.3]}) for i in range(9)]
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    write_tfrecord(records, str(tmp_path / "a.tfrecord"), schema)
    from_jsonl = scan(str(tmp_path / "a.jsonl"), schema).corpus
    from_tfrecord = scan(str(tmp_path / "a.tfrecord"), schema, file_format="tfrecord").corpus
    assert len(from_jsonl) == 3 and from_jsonl.keys == from_tfrecord.keys
    assert all(len(k) == 16 for k in from_jsonl.keys)


def test_candidate_key_feature_must_be_a_candidate_id(tmp_path, schema, records):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    with pytest.raises(
        ValueError, match=r"`candidate_key_feature` .* Id feature of the candidate side \(movie_id\)"
    ):
        scan(str(tmp_path / "a.jsonl"), schema, candidate_key_feature="title")


def test_scan_candidates(tmp_path, schema):
    docs = [candidate(i) for i in range(10)]
    write_jsonl(docs + [{"movie_id": "x"}], str(tmp_path / "c.jsonl"))
    result = scan_candidates(str(tmp_path / "c.jsonl"), schema, max_bad_records=1)
    assert len(result.corpus) == 7 and result.records_read == 11 and result.rejected_count == 1
    assert "c.jsonl line 11: candidate.genres: missing" in str(result.rejected[0])
    write_tfrecord(docs, str(tmp_path / "c.tfrecord"), schema, kind="candidates")
    assert scan_candidates(str(tmp_path / "c.tfrecord"), schema, "tfrecord").corpus.keys == result.corpus.keys


def test_multiple_files_and_ram_paths(schema, records):
    write_jsonl(records[:30], "ram://scan_test/part-0.jsonl")
    write_jsonl(records[30:], "ram://scan_test/part-1.jsonl")
    result = scan("ram://scan_test", schema, eval_split=0.2)
    assert result.files == ["ram://scan_test/part-0.jsonl", "ram://scan_test/part-1.jsonl"]
    assert result.records_read == 60


@pytest.mark.parametrize("bad", [{"max_bad_records": -1}, {"eval_split": 2}, {"file_format": "csv"}])
def test_parameter_validation(tmp_path, schema, records, bad):
    write_jsonl(records, str(tmp_path / "a.jsonl"))
    with pytest.raises(ValueError, match=r"The `\w+` parameter must be"):
        scan(str(tmp_path / "a.jsonl"), schema, **bad)


def test_seen_items_are_the_train_positives_per_query_id(tmp_path, schema):
    records = [pair(i, query={**pair(i)["query"], "user_id": f"u{i % 4}"}) for i in range(40)]
    path = str(tmp_path / "a.jsonl")
    write_jsonl(records, path)
    result = scan(path, schema, eval_split=0.25)
    is_eval = eval_mask("a.jsonl", np.arange(40), 0.25)
    assert result.seen.feature == "user_id" and len(result.seen) == 4
    expected = {f"u{u}": set() for u in range(4)}
    for i, record in enumerate(records):
        if not is_eval[i]:
            expected[record["query"]["user_id"]].add(result.corpus.index_of(record["candidate"]["movie_id"]))
    rows = result.seen.rows_for([b"u0", "u1", "u2", "u3", "nobody"])
    assert [set(r.tolist()) for r in rows[:4]] == [expected[f"u{u}"] for u in range(4)]
    assert rows[4].size == 0 and result.seen.pairs == int((~is_eval).sum())
    assert all(np.all(np.diff(r) > 0) for r in rows)  # distinct, sorted


def test_no_seen_items_without_a_query_id(tmp_path):
    schema = {
        "query": {"age": {"feature_type": "Numeric"}},
        "candidate": {"movie": {"feature_type": "Id", "config": {"num_buckets": 9}}},
    }
    path = str(tmp_path / "a.jsonl")
    write_jsonl([{"query": {"age": 1}, "candidate": {"movie": "m"}}], path)
    assert scan(path, schema, eval_split=0.0).seen is None


def test_id_counts_on_the_train_part(tmp_path, schema, records):
    path = str(tmp_path / "a.jsonl")
    write_jsonl(records, path)
    result = scan(path, schema, eval_split=0.3)
    is_eval = eval_mask("a.jsonl", np.arange(60), 0.3)
    expected = collections.Counter(
        r["candidate"]["movie_id"] for r, e in zip(records, is_eval, strict=True) if not e
    )
    assert result.id_counts["candidate"]["movie_id"].counts == expected
    assert sum(result.id_counts["query"]["user_id"].counts.values()) == int((~is_eval).sum())
    assert set(result.id_counts) == {"query", "candidate"}
