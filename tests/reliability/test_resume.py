"""Preemption and resuming: SIGTERM checkpoints and marks the run interrupted, the re-run resumes with a
complete, correctly numbered history, damaged checkpoints are skipped, and every strategy trains on every
record of every epoch."""

import glob
import json
import os
import signal

import keras
import pytest

from tfrs_twotower.errors import Interrupted
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training import TrainingConfig, train

pytestmark = pytest.mark.slow  # each test trains two or three small runs (~5-20 s each)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(str(tmp_path_factory.mktemp("sample")), num_pairs=400, num_users=40, num_items=30)


def config(sample, job_dir, **overrides):
    values = dict(
        training_data_path=sample.train_jsonl,
        input_schema_path=sample.schema,
        job_dir=str(job_dir),
        num_epochs=3,
        train_batch_size=64,
        verbose=0,
        eval_split=0.2,
    )
    return TrainingConfig(**{**values, **overrides})


class SigtermAt(keras.callbacks.Callback):
    """Sends this process SIGTERM at the end of batch `batch` of epoch `epoch` (0-based)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def state(job_dir):
    with open(os.path.join(job_dir, "run_state.json")) as f:
        return json.load(f)["status"]


def metrics(job_dir):
    with open(os.path.join(job_dir, "metrics.json")) as f:
        return json.load(f)


def interrupt(cfg, epoch, batch):
    with pytest.raises(Interrupted, match=r"SIGTERM received .*re-run the same command to resume"):
        train(cfg, callbacks=[SigtermAt(epoch, batch)])
    assert state(cfg.job_dir) == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again


def test_sigterm_then_resume_keras_fit_keeps_every_epoch(sample, tmp_path):
    reference = metrics(train(config(sample, tmp_path / "ref")).config.job_dir)
    cfg = config(sample, tmp_path / "job")
    interrupt(cfg, epoch=2, batch=1)  # epochs 1 and 2 finished and checkpointed
    result = train(cfg)
    got = metrics(cfg.job_dir)
    assert [e["epoch"] for e in got["per_epoch"]] == [1, 2, 3]
    assert got["train_steps"] == reference["train_steps"]
    assert got["per_epoch"][0]["loss"] == pytest.approx(reference["per_epoch"][0]["loss"], rel=1e-5)
    assert [h["epoch"] for h in result.history] == [1, 2, 3] and state(cfg.job_dir) == "complete"


def test_corrupt_latest_keras_checkpoint_falls_back_to_the_previous(sample, tmp_path, capsys):
    cfg = config(sample, tmp_path / "job", verbose=1)
    interrupt(cfg, epoch=2, batch=0)
    weights = os.path.join(cfg.job_dir, "checkpoints", "latest.weights.h5")
    data = bytearray(open(weights, "rb").read())
    for i in range(64):
        data[len(data) // 2 + i] ^= 0xFF
    open(weights, "wb").write(bytes(data))
    capsys.readouterr()
    train(cfg)
    out = capsys.readouterr().out
    assert "Damaged checkpoint skipped" in out and "latest.weights.h5.bkp" in out
    got = metrics(cfg.job_dir)
    assert [e["epoch"] for e in got["per_epoch"]] == [1, 2, 3] and state(cfg.job_dir) == "complete"


@pytest.mark.parametrize("damage", ["flip", "empty_index"])
def test_sigterm_custom_loop_checkpoints_the_step_and_skips_a_damaged_one(sample, tmp_path, capsys, damage):
    reference = metrics(train(config(sample, tmp_path / "ref", checkpoint_every_steps=2)).config.job_dir)
    cfg = config(sample, tmp_path / "job", checkpoint_every_steps=2, verbose=1)
    interrupt(cfg, epoch=1, batch=2)
    newest = sorted(glob.glob(os.path.join(cfg.job_dir, "checkpoints", "ckpt-*.index")))[-1]
    if damage == "flip":
        data_file = glob.glob(newest.replace(".index", ".data-*"))[0]
        data = bytearray(open(data_file, "rb").read())
        for i in range(64):
            data[len(data) // 2 + i] ^= 0xFF
        open(data_file, "wb").write(bytes(data))
    else:
        open(newest, "wb").close()
    capsys.readouterr()
    train(cfg)
    out = capsys.readouterr().out
    assert "Damaged checkpoint(s) skipped: " + os.path.basename(newest).replace(".index", "") in out
    got = metrics(cfg.job_dir)
    assert [e["epoch"] for e in got["per_epoch"]] == [1, 2, 3]
    assert got["train_steps"] == reference["train_steps"]


def test_overwrite_starts_clean_even_with_damaged_checkpoints(sample, tmp_path):
    cfg = config(sample, tmp_path / "job", checkpoint_every_steps=2)
    interrupt(cfg, epoch=1, batch=0)
    for path in glob.glob(os.path.join(cfg.job_dir, "checkpoints", "ckpt-*.index")):
        open(path, "wb").close()  # every checkpoint damaged
    result = train(config(sample, tmp_path / "job", checkpoint_every_steps=2, num_epochs=2, overwrite=True))
    assert [h["epoch"] for h in result.history] == [1, 2] and state(cfg.job_dir) == "complete"


def test_every_strategy_trains_on_every_record_of_every_epoch(sample, tmp_path):
    runs = {
        kind: metrics(train(config(sample, tmp_path / kind, num_epochs=2, distribution=kind)).config.job_dir)
        for kind in ("default", "mirrored")
    }
    with open(os.path.join(tmp_path / "default", "record_counts.json")) as f:
        used = json.load(f)["used_for_training"]
    steps_per_epoch = -(-used // 64)
    assert runs["default"]["train_steps"] == runs["mirrored"]["train_steps"] == 2 * steps_per_epoch
    for kind in ("default", "mirrored"):
        with open(os.path.join(tmp_path / kind, "record_counts.json")) as f:
            assert json.load(f)["used_for_training"] == used


def test_sigterm_to_the_cli_exits_143_with_a_message_and_the_rerun_completes(sample, tmp_path):
    """The real thing: `tfrs-twotower train` in a subprocess, SIGTERM after its first epoch."""
    import subprocess
    import sys
    import time

    job_dir = tmp_path / "job"
    args = [
        sys.executable,
        "-m",
        "tfrs_twotower.cli",
        "train",
        "--training_data_path",
        sample.train_jsonl,
        "--input_schema_path",
        sample.schema,
        "--job-dir",
        str(job_dir),
        "--num_epochs",
        "8",
        "--train_batch_size",
        "64",
        "--verbose",
        "0",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    logs = job_dir / "checkpoints" / "epoch_logs.json"
    deadline = time.time() + 300
    while not logs.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-2000:]
    assert "tfrs-twotower train: interrupted: SIGTERM received" in err and "Traceback" not in err
    assert state(job_dir) == "interrupted"
    rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert [e["epoch"] for e in metrics(job_dir)["per_epoch"]] == list(range(1, 9))
