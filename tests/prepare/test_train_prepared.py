"""`train --prepared_data_path`: the same inputs as a scan of the raw files (statistics, corpus, split),
the same model quality, clear refusals for a mismatched directory, and the CLI."""

import json
import sys

import numpy as np
import pytest

from tfrs_twotower import errors
from tfrs_twotower.cli import main
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.inputs import prepare_inputs

from .conftest import IN_PROCESS, run


@pytest.fixture(scope="module")
def prepared(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "out"
    run(sample.train_jsonl, sample.schema, out, "--records_per_shard", 150)
    return out


def _config(sample, tmp_path, **values):
    base = dict(
        input_schema_path=sample.schema,
        job_dir=str(tmp_path / "job"),
        train_batch_size=64,
        seed=5,
        num_epochs=2,
        verbose=0,
        output_dim=8,
        learning_rate=0.1,
    )
    return TrainingConfig(**{**base, **values})


def _pairs(dataset):
    return sorted(
        (u.decode(), i.decode())
        for batch in dataset
        for u, i in zip(batch["query"]["user_id"].numpy(), batch["candidate"]["item_id"].numpy(), strict=True)
    )


def test_prepared_inputs_equal_the_scanned_ones(sample, prepared, tmp_path):
    raw = prepare_inputs(_config(sample, tmp_path, training_data_path=sample.train_jsonl))
    ready = prepare_inputs(_config(sample, tmp_path, prepared_data_path=str(prepared)))
    assert ready.numeric_stats == raw.numeric_stats  # one input file: the same sums in the same order
    assert ready.corpus_keys == raw.corpus_keys and ready.id_feature == raw.id_feature == "item_id"
    for name, column in raw.corpus_features().items():
        np.testing.assert_array_equal(
            ready.corpus_features()[name], column.astype(ready.corpus_features()[name].dtype)
        )
    assert ready.positive_counts("train") == raw.positive_counts("train")
    assert ready.positive_counts("eval") == raw.positive_counts("eval")
    assert {
        k: ready.record_counts()[k] for k in ("used_for_training", "used_for_evaluation", "corpus_size")
    } == {k: raw.record_counts()[k] for k in ("used_for_training", "used_for_evaluation", "corpus_size")}
    for side, by_name in raw.train_scan.id_counts.items():
        for name, counter in by_name.items():
            assert ready.train_scan.id_counts[side][name].counts == counter.counts
    assert ready.has_seen and raw.has_seen
    queries = {"user_id": np.array(sorted(ready.train_scan.seen._index)[:30] + ["never-seen"])}
    for got, want in zip(ready.seen_rows({"query": queries}), raw.seen_rows({"query": queries}), strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(ready.train_args["paths"]) == 4  # 480-odd train records in shards of 150
    assert _pairs(ready.train_dataset) == _pairs(raw.train_dataset)
    assert _pairs(ready.eval_dataset) == _pairs(raw.eval_dataset)
    assert ready.train_dataset.cardinality() == raw.train_dataset.cardinality()


def _users(dataset) -> set[str]:
    return {u.decode() for batch in dataset for u in batch["query"]["user_id"].numpy()}


def test_seen_items_are_kept_for_the_evaluation_queries_only(sample, prepared, tmp_path):
    raw = prepare_inputs(_config(sample, tmp_path, training_data_path=sample.train_jsonl))
    ready = prepare_inputs(_config(sample, tmp_path, prepared_data_path=str(prepared)))
    trained, evaluated = _users(raw.train_dataset), _users(raw.eval_dataset)
    kept = sorted(trained & evaluated)
    dropped = sorted(trained - evaluated)
    assert kept and dropped  # the sample has both kinds of query ids
    seen = ready.train_scan.seen
    assert len(seen) == len(kept) and all(u in seen for u in kept) and not any(u in seen for u in dropped)
    queries = {"query": {"user_id": np.array(kept + ["never-seen"])}}
    for got, want in zip(ready.seen_rows(queries), raw.seen_rows(queries), strict=True):
        np.testing.assert_array_equal(got, want)  # the evaluation queries' rows, exactly
    assert sum(len(r) for r in ready.seen_rows(queries)) == seen.pairs > 0
    assert all(len(r) == 0 for r in ready.seen_rows({"query": {"user_id": np.array(dropped)}}))


@pytest.mark.slow
def test_model_from_prepared_data_matches_the_raw_run(sample, tmp_path):
    from tfrs_twotower.training.trainer import train

    prepared = tmp_path / "one_shard"  # one shard per split: the raw file's order, so the same batches
    run(sample.train_jsonl, sample.schema, prepared)
    # File order (no shuffle): JSONL's Python reader and TFRecord's tf.data reader shuffle differently.
    raw = train(_config(sample, tmp_path / "raw", training_data_path=sample.train_jsonl, shuffle_buffer=1))
    ready = train(_config(sample, tmp_path / "ready", prepared_data_path=str(prepared), shuffle_buffer=1))
    assert ready.record_counts["corpus_size"] == raw.record_counts["corpus_size"] == len(raw.candidate_ids)
    assert ready.candidate_ids == raw.candidate_ids
    assert ready.metrics.keys() == raw.metrics.keys()
    for name, value in raw.metrics.items():  # same data, order, seed: the same model up to float rounding
        assert ready.metrics[name] == pytest.approx(value, rel=1e-3, abs=1e-3), name
    index = json.loads((tmp_path / "ready" / "job" / "index" / "index.json").read_text())
    assert "distinct queries of" in json.dumps(index)  # ScaNN's recall measured on the prepared shards


def test_mismatched_directory_is_refused_with_the_fix(sample, prepared, tmp_path):
    schema = json.loads(open(sample.schema).read())
    schema["query"]["age"]["feature_type"] = "Text"
    other = tmp_path / "schema.json"
    other.write_text(json.dumps(schema))
    with pytest.raises(errors.ConfigError, match=r"another schema .*query\.age.*run prepare again"):
        prepare_inputs(
            _config(sample, tmp_path, prepared_data_path=str(prepared), input_schema_path=str(other))
        )
    with pytest.raises(errors.ConfigError, match="--eval_split 0.2"):
        prepare_inputs(_config(sample, tmp_path, prepared_data_path=str(prepared), eval_split=0.1))
    with pytest.raises(errors.ConfigError, match="no manifest.json"):
        prepare_inputs(_config(sample, tmp_path, prepared_data_path=str(tmp_path)))
    with pytest.raises(errors.ConfigError, match="replaces --training_data_path"):
        _config(sample, tmp_path, prepared_data_path=str(prepared), training_data_path="x.jsonl").validate()
    with pytest.raises(errors.ConfigError, match="`training_data_path` parameter is required"):
        _config(sample, tmp_path).validate()


def test_missing_apache_beam_says_how_to_install(sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam now raises ImportError
    code = main(
        [
            "prepare",
            "--training_data_path",
            sample.train_jsonl,
            "--input_schema_path",
            sample.schema,
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == errors.EXIT_USER_ERROR
    assert "pip install 'tfrs-twotower[beam]'" in capsys.readouterr().err


def test_cli_prepare_passes_beam_options_and_train_still_refuses_unknown_flags(sample, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "prepare",
            "--training_data_path",
            sample.train_jsonl,
            "--input_schema_path",
            sample.schema,
            "--output_dir",
            str(out),
            *IN_PROCESS,
        ]
    )
    assert code == 0 and (out / "manifest.json").exists()
    printed = capsys.readouterr().out
    assert f"Prepared {out} in " in printed and "0 rejected of 600 records" in printed
    with pytest.raises(SystemExit):
        main(["train", "--input_schema_path", "s.json", "--job-dir", "j", "--direct_num_workers=1"])
    assert "unrecognized arguments: --direct_num_workers=1" in capsys.readouterr().err


def test_beam_options_default_to_the_multiprocess_direct_runner():
    from tfrs_twotower.prepare.pipeline import beam_options

    options = beam_options([])
    assert options[:2] == ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]
    assert options[2].startswith("--direct_num_workers=")
    dataflow = ["--runner", "DataflowRunner", "--project", "p", "--temp_location", "gs://b/t"]
    assert beam_options(dataflow) == dataflow  # passed through unchanged
    assert beam_options(["--direct_num_workers=3"]) == [
        "--direct_num_workers=3",
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
    ]
