"""Kill-and-resume: SIGKILL a single-process run mid-epoch, start it again with the same arguments.

The restarted run must restore the last step checkpoint (not start from scratch), end after the same
number of steps as an uninterrupted run, and reach the same metrics. It replays the same batches (the
input order is seeded) with the restored optimizer and running metrics, so the only differences are
float round-off: tolerance rel 1e-3 on the loss, 0.01 on the full-corpus recall.
"""

import json
import time

import pytest

from tfrs_twotower.sample_data import generate_sample

from .processes import child_env, start, stop, train_command, wait_all


def _flags(sample, job_dir):
    return dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=job_dir,
        num_epochs=2,
        train_batch_size=64,
        checkpoint_every_steps=2,
        num_hidden_layers=1,
        num_nodes_hidden_layer1=32,
        output_dim=16,
        seed=5,
        verbose=2,
        overwrite="true",
    )


def _checkpoint_steps(job_dir):
    index = job_dir / "checkpoints" / "checkpoint"
    if not index.exists():
        return []
    lines = index.read_text().splitlines()
    return [int(line.split("-")[-1].strip('"\n')) for line in lines if "ckpt-" in line]


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    sample = generate_sample(str(tmp_path / "sample"), num_pairs=2000)
    job, reference = tmp_path / "job", tmp_path / "reference"
    processes = []
    try:
        first = start(train_command(**_flags(sample, job)), child_env(), tmp_path / "first.log")
        processes.append(first)
        deadline = time.monotonic() + 240
        # One pass is 25 steps of 64: kill in the second epoch, between two step checkpoints.
        while not any(28 <= s < 46 for s in _checkpoint_steps(job)):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint in time"
            time.sleep(0.05)
        stop(first)  # SIGKILL
        killed_at = max(_checkpoint_steps(job))
        assert json.loads((job / "run_state.json").read_text())["status"] == "running"

        second = start(train_command(**_flags(sample, job)), child_env(), tmp_path / "second.log")
        processes.append(second)
        wait_all([second], timeout=240, logs=[tmp_path / "second.log"])
        uninterrupted = start(train_command(**_flags(sample, reference)), child_env(), tmp_path / "ref.log")
        processes.append(uninterrupted)
        wait_all([uninterrupted], timeout=240, logs=[tmp_path / "ref.log"])
    finally:
        for process in processes:
            stop(process)

    log = (tmp_path / "second.log").read_text()
    assert "Restored the checkpoint of step" in log, log[-3000:]
    restored = int(log.split("Restored the checkpoint of step ")[1].split(" ")[0])
    assert restored >= killed_at > 25  # resumed in the second epoch, not from scratch
    resumed, whole = (json.loads((d / "metrics.json").read_text()) for d in (job, reference))
    assert resumed["train_steps"] == whole["train_steps"] == 50
    assert [e["epoch"] for e in resumed["per_epoch"]] == [1, 2]
    assert not (job / "checkpoints").exists()
    assert resumed["final"]["loss"] == pytest.approx(whole["final"]["loss"], rel=1e-3)
    assert resumed["final"]["val_recall_at_50"] == pytest.approx(whole["final"]["val_recall_at_50"], abs=0.01)
