"""Every metrics test runs on both compute paths (C kernels and TF), see `compute_path`."""

import pytest


@pytest.fixture(autouse=True)
def _both_compute_paths(compute_path):
    return compute_path
