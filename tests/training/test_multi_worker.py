"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, custom loop) vs one process.

Both workers must end with identical weights, only the chief's job-dir gets outputs, and the exported
encoders must equal those of a single-process run with the same global batch and seed: the global batch's
candidates are every replica's negatives and the replicas' gradients sum to the single-process ones.
Tolerance: float32 sums in another order, compounded over 10 Adagrad steps (atol 2e-4, rtol 2e-3).
"""

import json

import numpy as np
import pytest

from tfrs_twotower.data import make_dataset
from tfrs_twotower.sample_data import generate_sample

from .processes import PYTHON, child_env, encode, free_ports, start, stop, wait_all

SCRIPT = str(__import__("pathlib").Path(__file__).with_name("worker_script.py"))


def _config(sample, job_dir, **extra):
    return dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=str(job_dir),
        num_epochs=2,
        train_batch_size=128,
        eval_batch_size=128,
        training_steps_per_epoch=5,
        eval_steps_per_epoch=2,
        num_hidden_layers=1,
        num_nodes_hidden_layer1=32,
        output_dim=16,
        verbose=0,
        seed=7,
        **extra,
    )


@pytest.mark.slow
def test_two_workers_match_one_process(tmp_path):
    sample = generate_sample(str(tmp_path / "sample"), num_pairs=2000)
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes, logs = [], []
    try:
        for index in range(2):
            logs.append(tmp_path / f"worker{index}.log")
            env = child_env({"cluster": cluster, "task": {"type": "worker", "index": index}})
            config = json.dumps(_config(sample, tmp_path / "job"))
            command = [PYTHON, SCRIPT, config, str(tmp_path / f"w{index}.npz")]
            processes.append(start(command, env, logs[-1]))
        wait_all(processes, timeout=400, logs=logs)
        logs.append(tmp_path / "single.log")
        single = start(
            [
                PYTHON,
                SCRIPT,
                json.dumps(_config(sample, tmp_path / "single", distribution="default")),
                str(tmp_path / "single.npz"),
            ],
            child_env(),
            logs[-1],
        )
        processes.append(single)
        wait_all([single], timeout=300, logs=logs[-1:])
    finally:
        for process in processes:
            stop(process)

    chief, worker = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert sorted(chief.files) == sorted(worker.files)
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)

    job, single_job = tmp_path / "job", tmp_path / "single"
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["train_steps"] == 10 and len(metrics["per_epoch"]) == 2
    assert (job / "tensorboard").exists() and not (job / "checkpoints").exists()

    batch = next(iter(make_dataset(sample.train_jsonl, sample.schema, subset="all", batch_size=64)))
    for side in ("query", "candidate"):
        features = {name: value for name, value in batch[side].items()}
        distributed = encode(job / f"{side}_model", features)
        reference = encode(single_job / f"{side}_model", features)
        assert np.abs(reference).max() > 0.1  # trained, not trivially equal
        np.testing.assert_allclose(distributed, reference, atol=2e-4, rtol=2e-3, err_msg=side)
    single_metrics = json.loads((single_job / "metrics.json").read_text())
    assert metrics["final"]["loss"] == pytest.approx(single_metrics["final"]["loss"], rel=1e-3)
