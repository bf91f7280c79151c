"""Small clustered synthetic corpora for the index tests."""

import numpy as np
import pytest


def clustered(n: int, dim: int = 16, clusters: int = 50, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype("float32")
    points = centers[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim))
    return points.astype("float32")


@pytest.fixture
def corpus():
    """(candidates [1000, 16], string ids, int ids, queries [20, 16])."""
    x = clustered(1000)
    str_ids = np.array([f"item{i}" for i in range(len(x))])
    int_ids = np.arange(len(x), dtype=np.int64) * 7 + 3
    queries = clustered(20, seed=1)
    return x, str_ids, int_ids, queries


def _numpy_top_k(queries, candidates, k):
    scores = queries @ candidates.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, 1), rows


@pytest.fixture
def numpy_top_k():
    """The reference: `(scores, rows)` of the k best dot products by numpy argsort."""
    return _numpy_top_k


@pytest.fixture
def make_clustered():
    return clustered
