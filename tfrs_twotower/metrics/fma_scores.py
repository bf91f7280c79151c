"""The TensorFlow path of `positive_ranks`, giving the C kernel's ranks bit for bit.

A rank depends on which candidates score strictly above the positive, so near-ties decide it. The C
kernel scores every pair with one chain of float32 fused multiply-adds (`acc = fma(q[d], c[d], acc)`);
a TF matmul sums in another order and may round the last bits differently. So this path:

1. scores blocks with a TF matmul and counts the candidates that are above the threshold by more than
   the matmul's worst-case error (`4 * gamma_D * |q| * |c|`, gamma_D = D u / (1 - D u), u the unit
   roundoff, 2**-24 in float32, 2**-10 when TF32 matmuls are on);
2. rescores the few pairs within that margin with `fma_chain_scores`, numpy's exact emulation of the
   kernel's fma chain (a float32 product is exact in float64; the one double-rounding case, a float64
   sum on a float32 midpoint, is resolved with the TwoSum error term), and counts them exactly.

The thresholds (the positives' scores) come from `fma_chain_scores` too, so the positive and any exact
duplicate of it never outscore it, and both paths give identical ranks on every machine.

Example:
>>> import numpy as np
>>> q = np.array([[1.0, 2.0, 3.0]], "float32")
>>> c = np.array([[3.0, 2.0, 1.0], [1.0, 1.0, 1.0]], "float32")
>>> [float(s) for s in fma_chain_scores(q, c, [0, 0], [0, 1])]
[10.0, 6.0]
>>> [int(n) for n in count_outscoring_tf(q, c, np.array([6.0], "float32"), 8, 8)]
[1]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_CHUNK = 1 << 20  # pairs rescored at a time (a few float64 arrays of this size)
_TINY = float(np.finfo(np.float32).tiny)


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 `fma(a, b, c)` of float32 arrays (elementwise)."""
    p = a.astype(np.float64) * b  # exact: 24 + 24 bits fit in float64's 53
    c = c.astype(np.float64)
    s = p + c
    v = s - p
    err = (p - (s - v)) + (c - v)  # TwoSum: s + err == p + c exactly
    f = s.astype(np.float32)
    diff = s - f.astype(np.float64)
    tie = diff != 0
    if not np.any(tie):
        return f
    # s can only sit on a float32 midpoint (then diff == +-half an ulp) if the true sum is at or beyond
    # it; when err points away from f, the correctly rounded result is the other neighbour.
    with np.errstate(over="ignore", invalid="ignore"):
        other = np.nextafter(f, np.where(diff > 0, np.inf, -np.inf).astype(np.float32))
        midpoint = tie & (other.astype(np.float64) - s == -diff)
    return np.where(midpoint & (err * diff > 0), other, f)


def fma_chain_scores(queries, candidates, query_rows, candidate_rows) -> np.ndarray:
    """float32 `[P]` scores of (query row, candidate row) pairs, equal bit for bit to the C kernel's."""
    queries = np.asarray(queries, np.float32)
    candidates = np.asarray(candidates, np.float32)
    query_rows = np.asarray(query_rows, np.int64)
    candidate_rows = np.asarray(candidate_rows, np.int64)
    out = np.zeros(query_rows.shape, np.float32)
    for start in range(0, out.size, _CHUNK):
        q = queries[query_rows[start : start + _CHUNK]]
        c = candidates[candidate_rows[start : start + _CHUNK]]
        acc = np.zeros([q.shape[0]], np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            for d in range(q.shape[1]):
                acc = _fma32(q[:, d], c[:, d], acc)
        out[start : start + _CHUNK] = acc
    return out


def _unit_roundoff() -> float:
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    return 2.0**-10 if tf32 and tf.config.list_physical_devices("GPU") else 2.0**-24


@tf.function(reduce_retracing=True)
def _count_block(queries, thresholds, query_norms, candidates, candidate_norms, margin_scale):
    """Counts of candidates surely above each threshold, and the `[P, 2]` (query, candidate) near-ties."""
    scores = tf.matmul(queries, candidates, transpose_b=True)
    diff = scores - tf.expand_dims(thresholds, 1)
    margin = margin_scale * tf.expand_dims(query_norms, 1) * tf.expand_dims(candidate_norms, 0) + _TINY
    counts = tf.reduce_sum(tf.cast(diff > margin, tf.int64), axis=1)
    return counts, tf.where(tf.abs(diff) <= margin)  # NaN scores are neither, as in the kernel


def count_outscoring_tf(queries, candidates, thresholds, query_block: int, candidate_block: int):
    """int64 `[Q]` counts of candidates whose fma-chain score is strictly above `thresholds`."""
    num_queries, num_candidates = queries.shape[0], candidates.shape[0]
    dim = queries.shape[1]
    u = _unit_roundoff()
    gamma = dim * u / max(1.0 - dim * u, 1e-3)
    margin_scale = tf.constant(4.0 * gamma, tf.float32)
    query_norms = np.linalg.norm(queries.astype(np.float64), axis=1).astype(np.float32)
    candidate_norms = np.linalg.norm(candidates.astype(np.float64), axis=1).astype(np.float32)
    counts = np.zeros([num_queries], np.int64)
    near_rows, near_columns = [], []
    blocks = [
        (
            start,
            tf.constant(candidates[start : start + candidate_block]),
            tf.constant(candidate_norms[start : start + candidate_block]),
        )
        for start in range(0, num_candidates, candidate_block)
    ]
    for q0 in range(0, num_queries, query_block):
        q = tf.constant(queries[q0 : q0 + query_block])
        t = tf.constant(thresholds[q0 : q0 + query_block])
        qn = tf.constant(query_norms[q0 : q0 + query_block])
        for c0, block, norms in blocks:
            above, near = _count_block(q, t, qn, block, norms, margin_scale)
            counts[q0 : q0 + query_block] += above.numpy()
            near = near.numpy()
            if near.size:
                near_rows.append(near[:, 0] + q0)
                near_columns.append(near[:, 1] + c0)
    if near_rows:
        rows, columns = np.concatenate(near_rows), np.concatenate(near_columns)
        exact = fma_chain_scores(queries, candidates, rows, columns)
        np.add.at(counts, rows, (exact > thresholds[rows]).astype(np.int64))
    return counts
