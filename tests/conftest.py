"""Test-wide settings: quiet TensorFlow logs, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


COMPUTE_PATH_ENVS = ("TFRS_TWOTOWER_DISABLE_RANK_KERNEL", "TFRS_TWOTOWER_DISABLE_FUSED_LOSS")


@pytest.fixture(params=["kernels", "tensorflow"])
def compute_path(request, monkeypatch):
    """Runs a test twice: with the C kernels (where built) and with them disabled (the TF paths), so the
    default test run checks that losses, ranks and metrics are the same on every machine."""
    for name in COMPUTE_PATH_ENVS:
        if request.param == "tensorflow":
            monkeypatch.setenv(name, "1")
        else:
            monkeypatch.delenv(name, raising=False)
    return request.param
