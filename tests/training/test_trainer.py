"""End-to-end training runs on a small sample: both formats, both path kinds, bad records, job-dir reuse."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.cli import main
from tfrs_twotower.data import TooManyBadRecordsError
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.job_dir import JobDirError
from tfrs_twotower.training.trainer import train


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sample")
    return generate_sample(str(directory), num_pairs=1200, num_users=80, num_items=60, seed=3)


def config(sample, job_dir, **overrides):
    values = dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=str(job_dir),
        num_epochs=2,
        train_batch_size=128,
        verbose=0,
        learning_rate=0.1,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def finished(sample, tmp_path_factory):
    """One finished 2-epoch JSONL run, shared by the tests that only read it (never write into it)."""
    job = tmp_path_factory.mktemp("finished") / "job"
    return job, train(config(sample, job))


def test_jsonl_run_writes_every_output_and_counts_every_record(finished):
    job, result = finished
    for name in (
        "query_model/saved_model.pb",
        "candidate_model/saved_model.pb",
        "metrics.json",
        "record_counts.json",
        "config.json",
        "schema.json",
        "candidate_embeddings/embeddings.npy",
        "candidate_embeddings/ids.txt",
        "candidate_embeddings/embeddings.jsonl",
    ):
        assert (job / name).exists(), name
    assert any((job / "tensorboard" / "train").iterdir()) and any(
        (job / "tensorboard" / "validation").iterdir()
    )
    counts = read(job / "record_counts.json")
    assert counts["records_read"] == 1200
    assert counts["used_for_training"] + counts["used_for_evaluation"] + counts["rejected"] == 1200
    assert 0.15 < counts["used_for_evaluation"] / 1200 < 0.25
    metrics = read(job / "metrics.json")
    assert len(metrics["per_epoch"]) == 2 and "val_recall_at_10" in metrics["final"]
    assert metrics["final"] == pytest.approx(result.metrics)
    assert read(job / "run_state.json")["status"] == "complete"
    assert result.candidate_embeddings.shape == (counts["corpus_size"], 65)  # 64 + the candidate bias
    assert result.example is not None and len(result.example["top"]) == 5


def test_tfrecord_and_jsonl_give_the_same_counts_and_split(sample, finished, tmp_path):
    _, jsonl = finished
    tfrecord = train(
        config(
            sample,
            tmp_path / "b",
            num_epochs=1,
            input_file_format="tfrecord",
            training_data_path=sample.train_tfrecord,
        )
    )
    for key in ("records_read", "used_for_training", "used_for_evaluation", "corpus_size"):
        assert jsonl.record_counts[key] == tfrecord.record_counts[key]
    assert sorted(jsonl.candidate_ids) == sorted(tfrecord.candidate_ids)


def test_learns_well_above_chance(sample, tmp_path):
    result = train(config(sample, tmp_path / "job", num_epochs=6, sampling_bias_correction="counts"))
    chance = 10 / result.record_counts["corpus_size"]
    assert result.metrics["val_recall_at_10"] > 3 * chance


def test_non_local_paths_through_gfile(sample, tmp_path):
    ram = "ram://trainer_test"
    for name in ("train.jsonl", "schema.json"):
        tf.io.gfile.copy(os.path.join(sample.output_dir, name), f"{ram}/data/{name}", overwrite=True)
    result = train(
        config(
            sample,
            f"{ram}/job",
            num_epochs=1,
            training_data_path=f"{ram}/data/*.jsonl",
            input_schema_path=f"{ram}/data/schema.json",
        )
    )
    assert tf.io.gfile.exists(f"{ram}/job/metrics.json")
    assert tf.io.gfile.exists(f"{ram}/job/query_model/saved_model.pb")
    assert result.record_counts["records_read"] == 1200


def test_bad_records_fail_or_are_skipped_and_counted(sample, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = open(sample.train_jsonl).read().splitlines()
    lines[4] = "{not json"
    broken = json.loads(lines[9])
    broken["candidate"]["item_vector"] = [1.0]
    lines[9] = json.dumps(broken)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(TooManyBadRecordsError, match=r"bad.jsonl line 5") as info:
        train(config(sample, tmp_path / "fail", training_data_path=str(bad)))
    assert "candidate.item_vector" in str(info.value)
    result = train(
        config(sample, tmp_path / "skip", training_data_path=str(bad), max_bad_records=2, num_epochs=1)
    )
    counts = result.record_counts
    assert counts["rejected"] == 2 and counts["records_read"] == 1200
    assert counts["used_for_training"] + counts["used_for_evaluation"] == 1198
    assert any("line 10" in r for r in counts["training"]["rejected_records"])


def test_separate_eval_and_candidate_files(sample, tmp_path):
    lines = open(sample.train_jsonl).read().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:1000]) + "\n")
    (tmp_path / "eval.jsonl").write_text("\n".join(lines[1000:]) + "\n")
    result = train(
        config(
            sample,
            tmp_path / "job",
            num_epochs=1,
            training_data_path=str(tmp_path / "train.jsonl"),
            eval_data_path=str(tmp_path / "eval.jsonl"),
            candidate_data_path=sample.candidates_jsonl,
        )
    )
    counts = result.record_counts
    assert counts["used_for_training"] == 1000 and counts["used_for_evaluation"] == 200
    assert counts["corpus_size"] == sample.num_items


def test_used_job_dir_refuses_then_overwrites(sample, finished, tmp_path):
    shutil.copytree(finished[0], tmp_path / "job")  # a finished run, whatever its settings
    with pytest.raises(JobDirError, match="holds a finished run"):
        train(config(sample, tmp_path / "job", num_epochs=1))
    result = train(config(sample, tmp_path / "job", num_epochs=1, overwrite=True))
    assert len(result.history) == 1


def test_interrupted_run_resumes_from_its_checkpoint(sample, finished, tmp_path):
    job = tmp_path / "job"
    shutil.copytree(finished[0], job)
    # Pretend the 2-epoch run died here: its state says running, with its config (in this job-dir).
    state = read(job / "run_state.json")
    state["status"] = "running"
    state["config"]["job_dir"] = str(job)
    assert state["config"]["num_epochs"] == 2
    (job / "run_state.json").write_text(json.dumps(state))
    with pytest.raises(JobDirError, match=r"num_epochs differ"):
        train(config(sample, job, num_epochs=3))
    result = train(config(sample, job, num_epochs=2))
    assert read(job / "run_state.json")["status"] == "complete"
    assert len(result.history) >= 1


def test_cli_train_prints_metrics_and_example(sample, tmp_path, capsys):
    code = main(
        [
            "train",
            "--training_data_path",
            sample.train_jsonl,
            "--input_schema_path",
            sample.schema,
            "--job-dir",
            str(tmp_path / "job"),
            "--num_epochs",
            "1",
            "--verbose",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "val_recall_at_10" in out and "Example query:" in out and "query_model" in out
    assert "Reading the metrics:" in out and "most popular" in out and "per pair" in out


def test_encoders_reload_and_match_in_memory(sample, finished):
    job, result = finished
    reloaded = tf.saved_model.load(str(job / "candidate_model"))
    ids = np.loadtxt(job / "candidate_embeddings" / "ids.txt", dtype=str)
    assert list(ids) == result.candidate_ids
    docs = [json.loads(line) for line in open(sample.candidates_jsonl)][:5]
    from tfrs_twotower.data.batching import side_columns

    columns = side_columns(result.schema.candidate, docs)
    served = reloaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in columns.items()})[
        "encoding"
    ]
    in_memory = result.model.candidate_tower({k: tf.constant(v) for k, v in columns.items()})
    np.testing.assert_allclose(served.numpy(), in_memory.numpy(), rtol=1e-5, atol=1e-6)


def test_extra_features_are_refused_unless_allowed(sample, tmp_path):
    lines = open(sample.train_jsonl).read().splitlines()
    record = json.loads(lines[0])
    record["query"]["favourite_colour"] = "blue"
    lines[0] = json.dumps(record)
    path = tmp_path / "extra.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TooManyBadRecordsError, match="favourite_colour"):
        train(config(sample, tmp_path / "strict", training_data_path=str(path)))
    result = train(
        config(
            sample,
            tmp_path / "lenient",
            training_data_path=str(path),
            num_epochs=1,
            allow_extra_features=True,
        )
    )
    assert result.record_counts["rejected"] == 0
