"""Fused in-batch softmax cross-entropy on CPUs: the optional `_softmax_kernel` extension, as a TF op.

`Retrieval`'s loss at batch B scores every query against every candidate: a `[B, B]` logits matrix that
TensorFlow's matmul, softmax cross-entropy and the two gradient matmuls each pass through memory (268 MB
per pass at B = 8192). The kernel computes the loss and all its gradients in one call, block by block in
the CPU's caches, about 6x faster than those ops on an AVX-512 CPU at B = 8192 (`bench/fused_loss.py`).

It covers the plain in-batch softmax and what folds into a per-column bias or mask: temperature, logQ
correction, accidental-hit removal, extra negatives shared by all rows (mixed negatives, candidate rows
past the batch), sample weights. `Retrieval` uses it when it is built, the CPU has AVX-512 or AVX2 +
FMA, no GPU is visible and the call needs nothing else (see `Retrieval`'s `fused` argument); the
environment variable `TFRS_TWOTOWER_DISABLE_FUSED_LOSS=1` turns it off everywhere. Results equal
TensorFlow's to float32 rounding (`tests/tasks/test_fused_softmax.py`), and depend only on the inputs
and the thread count.

Example:
>>> import numpy as np
>>> eye = np.eye(3, dtype="float32")
>>> loss = weighted_loss(eye, eye, np.ones(3, "float32"), scale=2.0) if available() else 0.7186
>>> round(float(loss), 4)  # 3 * log(1 + 2 * exp(-2)), as Retrieval(temperature=0.5) gives
0.7186
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfrs_twotower.metrics.fast_ranks import default_threads

try:
    from tfrs_twotower.tasks import _softmax_kernel
except ImportError:  # built without a C compiler: Retrieval uses TensorFlow ops
    _softmax_kernel = None

DISABLE_ENV = "TFRS_TWOTOWER_DISABLE_FUSED_LOSS"


def built() -> bool:
    """Whether the extension is built and not disabled by the environment variable."""
    return _softmax_kernel is not None and os.environ.get(DISABLE_ENV, "0") in ("", "0")


def available() -> bool:
    """Whether a fast code path can run here: built, not disabled, and the CPU has AVX-512 or AVX2 + FMA
    (the portable C path is slower than TensorFlow's ops)."""
    return built() and bool({"avx512", "avx2"} & set(_softmax_kernel.supported_isas()))


def supported_isas() -> list[str]:
    """The kernel's code paths this CPU runs ("portable", "avx2", "avx512"), for tests and benchmarks."""
    return _softmax_kernel.supported_isas() if _softmax_kernel is not None else []


def use_by_default() -> bool:
    """`available()` and no GPU visible to TensorFlow (on a GPU the TF ops stay on the device).

    Reads the visible devices without initialising TensorFlow's runtime, so a `Retrieval` built before
    `tf.config.set_logical_device_configuration` (or GPU memory settings) does not block them.
    """
    return available() and not tf.config.get_visible_devices("GPU")


class FusedResult(NamedTuple):
    """What one kernel call computes; `outscoring` and `negatives` feed the in-batch metrics."""

    losses: np.ndarray  # [B] per-row softmax cross-entropy
    d_queries: np.ndarray  # [B, D] gradient of sum(weights * losses)
    d_candidates: np.ndarray  # [N, D]
    d_bias: np.ndarray  # [N]
    outscoring: np.ndarray  # [B] negatives with a logit strictly above the positive's (float32)
    negatives: np.ndarray  # [B] columns in the row's softmax other than the positive (float32)


def softmax_cross_entropy(
    queries,
    candidates,
    weights,
    bias=None,
    row_keys=None,
    col_keys=None,
    scale: float = 1.0,
    threads: int | None = None,
    isa: str | None = None,
) -> FusedResult:
    """Per-row losses, the gradients of `sum(weights * losses)` and per-row ranks, as NumPy arrays.

    Logits are `scale * queries @ candidates.T + bias`; row `i`'s label is column `i`; columns whose
    `col_keys` equal the row's `row_keys` (other than column `i`) are left out of the row's softmax.

    Args:
        queries: `[B, D]` float32. candidates: `[N, D]` float32, `N >= B`.
        weights: `[B]` float32. bias: `[N]` float32 or None. row_keys `[B]`, col_keys `[N]`: int64 or None.
        scale: multiplies the dot products (1 / temperature).
        threads: CPU threads (default: the CPUs this process may use).
        isa: "avx512", "avx2", "portable", or None for the fastest this CPU runs.

    Returns:
        A `FusedResult`.
    """
    if _softmax_kernel is None:
        raise ImportError(
            "The `tfrs_twotower.tasks._softmax_kernel` extension is not built. Reinstall with a C compiler "
            "available (`pip install -e .`), or use `Retrieval(fused=False)`."
        )
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.float32)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"`queries` and `candidates` must be [rows, dim] matrices of the same dim. Got shapes "
            f"{queries.shape} and {candidates.shape}."
        )
    (num_queries, dim), num_candidates = queries.shape, candidates.shape[0]
    if (row_keys is None) != (col_keys is None):
        raise ValueError("`row_keys` and `col_keys` must be given together.")
    keys = (
        [None, None]
        if row_keys is None
        else [np.ascontiguousarray(k, dtype=np.int64).reshape(-1) for k in (row_keys, col_keys)]
    )
    losses = np.empty(num_queries, np.float32)
    d_queries = np.empty((num_queries, dim), np.float32)
    d_candidates = np.empty((num_candidates, dim), np.float32)
    d_bias = np.empty(num_candidates, np.float32)
    outscoring, negatives = np.empty(num_queries, np.float32), np.empty(num_queries, np.float32)
    _softmax_kernel.softmax_xent(
        queries,
        candidates,
        dim,
        np.ascontiguousarray(weights, dtype=np.float32).reshape(-1),
        None if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1),
        keys[0],
        keys[1],
        float(scale),
        losses,
        d_queries,
        d_candidates,
        d_bias,
        outscoring,
        negatives,
        threads or default_threads(),
        isa,
    )
    return FusedResult(losses, d_queries, d_candidates, d_bias, outscoring, negatives)


def weighted_loss(queries, candidates, weights, bias=None, row_keys=None, col_keys=None, scale: float = 1.0):
    """`sum(weights * losses)` as a TF scalar whose gradient (queries, candidates, weights, bias) is the
    kernel's; arguments as `softmax_cross_entropy`'s, as tensors. Runs in eager mode and in `tf.function`
    (not under XLA: the kernel is a `tf.numpy_function`)."""
    return loss_and_ranks(queries, candidates, weights, bias, row_keys, col_keys, scale)[0]


def loss_and_ranks(queries, candidates, weights, bias=None, row_keys=None, col_keys=None, scale: float = 1.0):
    """`(weighted_loss(...), outscoring [B], negatives [B])`: the loss and, from the same kernel call, the
    per-row counts the in-batch metrics take (`metrics.in_batch`, `update_from_ranks`)."""
    queries = tf.convert_to_tensor(queries, tf.float32)
    candidates = tf.convert_to_tensor(candidates, tf.float32)
    weights = tf.reshape(tf.convert_to_tensor(weights, tf.float32), [-1])
    bias = tf.zeros(tf.shape(candidates)[:1]) if bias is None else tf.reshape(tf.cast(bias, tf.float32), [-1])
    keys = [] if row_keys is None else [tf.cast(row_keys, tf.int64), tf.cast(col_keys, tf.int64)]

    def kernel(q, c, w, b, *k):
        return tuple(softmax_cross_entropy(q, c, w, b, *(k or (None, None)), scale=scale))

    @tf.custom_gradient
    def loss(q, c, w, b):
        losses, d_q, d_c, d_b, outscoring, negatives = tf.numpy_function(
            kernel, [q, c, w, b, *keys], [tf.float32] * 6, stateful=False, name="fused_softmax_xent"
        )
        for tensor, like in [(losses, w), (d_q, q), (d_c, c), (d_b, b), (outscoring, w), (negatives, w)]:
            tensor.set_shape(like.shape)

        def grad(upstream, *_):  # the counts have no gradient
            return upstream * d_q, upstream * d_c, upstream * losses, upstream * d_b

        return (tf.reduce_sum(w * losses), outscoring, negatives), grad

    return loss(queries, candidates, weights, bias)
