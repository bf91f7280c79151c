"""Helpers for tests that run training in child processes: free loopback ports, bounded waits, cleanup."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def train_command(**flags) -> list[str]:
    args = [PYTHON, "-m", "tfrs_twotower.cli", "train"]
    for name, value in flags.items():
        args += [f"--{name}", str(value)]
    return args


def child_env(tf_config: dict | None = None) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "w")
    # Own process group, so a kill takes its children (tf.data threads are threads, but be safe).
    return subprocess.Popen(
        command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    """Kills `process` (and its group) if it still runs; always reaps it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def wait_all(processes: list[subprocess.Popen], timeout: float, logs: list[Path]) -> None:
    for process, log in zip(processes, logs, strict=True):
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            tail = log.read_text()[-3000:]
            raise AssertionError(f"{log.name} did not finish in {timeout}s:\n{tail}") from e
        assert code == 0, f"{log.name} exited with {code}:\n{log.read_text()[-3000:]}"


def encode(model_dir: Path, features: dict) -> np.ndarray:
    import tensorflow as tf

    encoder = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    return encoder(**features)["encoding"].numpy()
