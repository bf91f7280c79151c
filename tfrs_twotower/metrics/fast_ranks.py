"""Fused rank counting in C (the optional `_rank_kernel` extension) for `positive_ranks`.

`count_outscoring` counts, per query, the candidates whose score `q . c` is strictly greater than the
positive's, computing scores in registers (AVX-512, AVX2 or portable C, chosen at run time) without ever
writing the `[Q, N]` score matrix, on several threads with the GIL released.

Every score is the same chain of fused multiply-adds (`acc = fma(q[d], c[d], acc)`, d = 0 .. D-1), in the
kernel and in `pair_scores`, on every code path: a positive's score from `pair_scores` equals the kernel's
score of that candidate bit for bit, so the positive (and any exact duplicate of it) never outscores
itself, and the three code paths give identical counts.

The extension is built by `pip install` when a C compiler is there; without it `available()` is False and
`positive_ranks` uses its TensorFlow path. So it is on an x86-64 CPU without AVX2/FMA, where the portable
path's `fmaf` is a library call (slower than TF; it still runs when asked for with `isa="portable"`).
Setting the environment variable `TFRS_TWOTOWER_DISABLE_RANK_KERNEL=1` forces the TF path too.

Example:
>>> import numpy as np
>>> candidates = np.eye(4, dtype="float32")
>>> queries = np.array([[1.0, 0.5, 0, 0], [0, 0, 0, 1.0]], dtype="float32")
>>> [int(c) for c in count_outscoring(queries, candidates, np.array([1, 3]))] if available() else [1, 0]
[1, 0]
"""

from __future__ import annotations

import os

import numpy as np

try:
    from tfrs_twotower.metrics import _rank_kernel
except ImportError:  # built without a C compiler: the TF path is used
    _rank_kernel = None

DISABLE_ENV = "TFRS_TWOTOWER_DISABLE_RANK_KERNEL"
ISAS = ("avx512", "avx2", "portable")


def available() -> bool:
    """Whether `positive_ranks` should use the C kernel: built, fast on this CPU, and not disabled."""
    if _rank_kernel is None or os.environ.get(DISABLE_ENV, "0") not in ("", "0"):
        return False
    return _rank_kernel.best_isa() != "portable" or bool(_rank_kernel.PORTABLE_IS_FAST)


def kernel_isa() -> str | None:
    """The code path `count_outscoring` runs by default ('avx512', 'avx2', 'portable'), or None."""
    return _rank_kernel.best_isa() if available() else None


def supported_isas() -> list[str]:
    """Every code path this CPU can run (for tests and benchmarks)."""
    return _rank_kernel.supported_isas() if _rank_kernel is not None else []


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _require_kernel() -> None:
    if _rank_kernel is None:
        raise ImportError(
            "The `tfrs_twotower.metrics._rank_kernel` extension is not built. Reinstall with a C compiler "
            "available (`pip install -e .`), or use `positive_ranks`, which falls back to TensorFlow."
        )


def _matrix(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be a [rows, dim] matrix. Got shape {array.shape}.")
    return np.ascontiguousarray(array, dtype=np.float32)


def _rows(name: str, value, limit: int, size: int | None = None) -> np.ndarray:
    rows = np.asarray(value)
    if rows.ndim != 1 or (size is not None and rows.shape[0] != size):
        expected = "a vector" if size is None else f"a vector of length {size}"
        raise ValueError(f"`{name}` must be {expected}. Got shape {rows.shape}.")
    if rows.size and (rows.min() < 0 or rows.max() >= limit):
        raise ValueError(f"`{name}` must be in [0, {limit}). Got min {rows.min()}, max {rows.max()}.")
    return np.ascontiguousarray(rows, dtype=np.int64)


def _same_dim_matrices(queries, candidates) -> tuple[np.ndarray, np.ndarray]:
    """`queries` and `candidates` as checked float32 matrices of the same width."""
    queries, candidates = _matrix("queries", queries), _matrix("candidates", candidates)
    if queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"`queries` and `candidates` must have the same dim. Got {queries.shape[1]} and "
            f"{candidates.shape[1]}."
        )
    return queries, candidates


def pair_scores(queries, candidates, query_rows, candidate_rows) -> np.ndarray:
    """float32 `[P]` scores of (query row, candidate row) pairs, bit-identical to the kernel's."""
    _require_kernel()
    queries, candidates = _same_dim_matrices(queries, candidates)
    query_rows = _rows("query_rows", query_rows, queries.shape[0])
    candidate_rows = _rows("candidate_rows", candidate_rows, candidates.shape[0], query_rows.shape[0])
    out = np.empty(query_rows.shape, np.float32)
    if queries.shape[1] == 0:
        out[:] = 0.0
    elif out.size:
        _rank_kernel.pair_scores(queries, candidates, queries.shape[1], query_rows, candidate_rows, out)
    return out


def count_outscoring(
    queries, candidates, positive_scores_or_indices, threads: int | None = None, isa: str | None = None
) -> np.ndarray:
    """Number of candidates scoring strictly above each query's positive.

    Args:
        queries: `[Q, D]` float query embeddings.
        candidates: `[N, D]` float candidate embeddings.
        positive_scores_or_indices: `[Q]` ints, the row of `candidates` holding each query's positive (its
            score is then computed like every other, so it never counts itself), or `[Q]` floats, the
            thresholds themselves (take them from `pair_scores` to keep that guarantee).
        threads: worker threads (default: the CPUs this process may use).
        isa: force a code path ('avx512', 'avx2', 'portable'); default: the fastest this CPU runs.

    Returns:
        int64 `[Q]` counts.

    Raises:
        ImportError: when the extension is not built.
        ValueError: on mismatched shapes, out-of-range indices, a bad `threads` or an unsupported `isa`.
    """
    _require_kernel()
    queries, candidates = _same_dim_matrices(queries, candidates)
    threads = default_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= 256:
        raise ValueError(f"The `threads` parameter must be an int in [1, 256]. Got {threads!r} instead.")
    positive = np.asarray(positive_scores_or_indices)
    num_queries = queries.shape[0]
    if np.issubdtype(positive.dtype, np.integer):
        rows = _rows("positive_scores_or_indices", positive, candidates.shape[0], num_queries)
        thresholds = pair_scores(queries, candidates, np.arange(num_queries), rows)
    elif np.issubdtype(positive.dtype, np.floating) and positive.shape == (num_queries,):
        thresholds = np.ascontiguousarray(positive, dtype=np.float32)
    else:
        raise ValueError(
            f"`positive_scores_or_indices` must be a vector of {num_queries} ints (rows of `candidates`) "
            f"or floats (scores). Got shape {positive.shape}, dtype {positive.dtype}."
        )
    counts = np.zeros([num_queries], np.int64)
    if queries.shape[1] == 0:  # every score is 0
        counts[:] = np.where(0.0 > thresholds, candidates.shape[0], 0)
    elif num_queries and candidates.shape[0]:
        _rank_kernel.count_outscoring(
            queries, candidates, queries.shape[1], thresholds, counts, int(threads), isa
        )
    return counts
