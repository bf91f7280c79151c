"""Slow `prepare` checks in child processes: the multi-process DirectRunner, a two-worker training run
reading the prepared shards by file, and the package without Apache Beam."""

import importlib.util
import json
import pathlib
import subprocess

import numpy as np
import pytest

from tfrs_twotower.training.sharded_inputs import shards_by_file

_spec = importlib.util.spec_from_file_location(
    "prepare_processes", pathlib.Path(__file__).parents[1] / "training" / "processes.py"
)
processes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(processes)  # tests/training's child-process helpers
PYTHON, ROOT, child_env, free_ports = (
    processes.PYTHON,
    processes.ROOT,
    processes.child_env,
    processes.free_ports,
)
start, stop, wait_all = processes.start, processes.stop, processes.wait_all
from .conftest import run  # noqa: E402

SCRIPT = str(ROOT / "tests" / "training" / "worker_script.py")


@pytest.mark.slow
def test_multi_process_runner_gives_the_in_process_result(sample, two_files, tmp_path):
    run(two_files, sample.schema, tmp_path / "a", "--max_bad_records", 3)
    run(
        two_files,
        sample.schema,
        tmp_path / "b",
        "--max_bad_records",
        3,
        beam=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )
    a, b = (json.loads((tmp_path / d / "stats.json").read_text()) for d in "ab")
    assert a == b
    for name in ("corpus_keys.json",):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


@pytest.mark.slow
def test_two_workers_train_on_prepared_shards_split_by_file(sample, tmp_path):
    prepared = tmp_path / "prepared"
    run(sample.train_jsonl, sample.schema, prepared, "--records_per_shard", 100)
    shards = sorted(str(p) for p in prepared.glob("train-*.tfrecord"))
    assert len(shards) == 5 and shards_by_file(shards, 2)
    config = dict(
        prepared_data_path=str(prepared),
        input_schema_path=sample.schema,
        job_dir=str(tmp_path / "job"),
        num_epochs=2,
        train_batch_size=64,
        eval_batch_size=64,
        training_steps_per_epoch=3,
        eval_steps_per_epoch=1,
        output_dim=8,
        verbose=0,
        seed=7,
    )
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes, logs = [], []
    try:
        for index in range(2):
            logs.append(tmp_path / f"worker{index}.log")
            env = child_env({"cluster": cluster, "task": {"type": "worker", "index": index}})
            command = [PYTHON, SCRIPT, json.dumps(config), str(tmp_path / f"w{index}.npz")]
            processes.append(start(command, env, logs[-1]))
        wait_all(processes, timeout=400, logs=logs)
    finally:
        for process in processes:
            stop(process)
    chief, worker = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    for name in chief.files:  # the workers stay in sync
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert metrics["train_steps"] == 6
    counts = json.loads((tmp_path / "job" / "record_counts.json").read_text())
    assert (
        counts["used_for_training"] == json.loads((prepared / "manifest.json").read_text())["counts"]["train"]
    )


@pytest.mark.slow
def test_package_and_cli_work_without_apache_beam(sample, tmp_path):
    code = (
        "import sys; sys.modules['apache_beam'] = None\n"  # `import apache_beam` raises ImportError
        "import tfrs_twotower, tfrs_twotower.training.prepared_inputs\n"
        "from tfrs_twotower.cli import main\n"
        f"sys.exit(main(['prepare', '--training_data_path', {sample.train_jsonl!r}, '--input_schema_path', "
        f"{sample.schema!r}, '--output_dir', {str(tmp_path / 'out')!r}]))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pip install 'tfrs-twotower[beam]'" in done.stderr
