"""The TensorFlow path of full-corpus rank counting (when the C kernel of `fast_ranks` is not used).

Queries are taken `query_block` at a time and the candidates `candidate_block` at a time: one
`[query_block, candidate_block]` score block is in memory at once. For each query the candidates
scoring strictly above its threshold (the positive's score) are counted, and for each given
(query, candidate) pair — the excluded ones — whether that candidate was counted, read from the very
score block that was counted, so that removing it is exact (`corpus_evaluation._rank_sets` subtracts
them). `TFRS_TWOTOWER_DISABLE_RANK_KERNEL=1` makes `positive_ranks` take this path.

Example:
>>> import numpy as np
>>> candidates = np.eye(3, dtype="float32")
>>> queries = np.array([[0.2, 1.0, 0.5]], "float32")
>>> counts, hits = count_with_tf(queries, np.float32([0.2]), np.int32([0]), candidates, 8, 8,
...                              np.int64([0]), np.int64([2]))
>>> counts.tolist(), hits.tolist()
([2], [True])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


@tf.function(reduce_retracing=False)  # the tail's static size decides whether it is scored
def _count_outscoring(queries, thresholds, positives, blocks, tail, pair_queries, pair_columns, splits):
    """Counts, per query, the candidates scoring strictly above its threshold; and per pair whether its
    candidate did (pairs sorted by candidate block, `splits` [num_blocks + 2] bounding each block's)."""
    num_blocks = tf.shape(blocks)[0]
    block_size = tf.shape(blocks)[1]
    column = tf.expand_dims(thresholds, 1)
    counts = tf.zeros_like(thresholds, dtype=tf.int32)
    self_counted = tf.zeros_like(thresholds, dtype=tf.int32)
    pair_hits = tf.zeros_like(pair_queries, dtype=tf.int32)
    pair_thresholds = tf.gather(thresholds, pair_queries)

    def count_one(i, block, start, counts, self_counted, pair_hits):
        scores = tf.matmul(queries, block, transpose_b=True)
        counts += tf.reduce_sum(tf.cast(scores > column, tf.int32), axis=1)
        local = positives - start
        inside = (local >= 0) & (local < tf.shape(block)[0])
        own = tf.gather(scores, tf.clip_by_value(local, 0, tf.shape(block)[0] - 1), batch_dims=1)
        # The positive's block score may differ in the last bits from the dot product of its threshold.
        self_counted += tf.cast(inside & (own > thresholds), tf.int32)
        first, last = splits[i], splits[i + 1]
        where = tf.stack([pair_queries[first:last], pair_columns[first:last] - start], axis=1)
        hits = tf.gather_nd(scores, where) > pair_thresholds[first:last]
        pair_hits = tf.tensor_scatter_nd_update(
            pair_hits, tf.range(first, last)[:, None], tf.cast(hits, tf.int32)
        )
        return counts, self_counted, pair_hits

    for i in tf.range(num_blocks):
        counts, self_counted, pair_hits = count_one(
            i, blocks[i], i * block_size, counts, self_counted, pair_hits
        )
    if tail.shape[0] is None or tail.shape[0] > 0:
        counts, self_counted, pair_hits = count_one(
            num_blocks, tail, num_blocks * block_size, counts, self_counted, pair_hits
        )
    return counts - self_counted, pair_hits


def _padded_length(n: int) -> int:
    """Pairs are padded to a power of two so that the function is traced a few times, not per block."""
    return 1 << max(n - 1, 0).bit_length()


def count_with_tf(
    queries: np.ndarray,
    thresholds: np.ndarray,
    positives: np.ndarray,
    candidates: np.ndarray,
    query_block: int,
    candidate_block: int,
    pair_queries: np.ndarray,
    pair_columns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """int64 `[Q]` counts of candidates outscoring the thresholds, and bool `[P]`: whether each
    (query, candidate) pair's candidate was among them."""
    num_queries, num_candidates = queries.shape[0], candidates.shape[0]
    num_full = num_candidates // candidate_block
    all_candidates = tf.constant(candidates)
    blocks = tf.reshape(all_candidates[: num_full * candidate_block], [num_full, candidate_block, -1])
    tail = all_candidates[num_full * candidate_block :]
    counts = np.empty([num_queries], dtype=np.int64)
    hits = np.zeros([len(pair_queries)], dtype=bool)
    for start in range(0, num_queries, query_block):
        stop = min(start + query_block, num_queries)
        lo, hi = np.searchsorted(pair_queries, [start, stop])  # pairs are sorted by query
        chosen = np.arange(lo, hi)
        block_of = np.minimum(pair_columns[chosen] // candidate_block, num_full)
        chosen = chosen[np.argsort(block_of, kind="stable")]
        splits = np.searchsorted(np.sort(block_of), np.arange(num_full + 2)).astype(np.int32)
        size = _padded_length(len(chosen))
        local_queries = np.zeros([size], np.int32)  # padding: query 0, column 0, result ignored
        local_columns = np.zeros([size], np.int32)
        local_queries[: len(chosen)] = pair_queries[chosen] - start
        local_columns[: len(chosen)] = pair_columns[chosen]
        block_counts, block_hits = _count_outscoring(
            tf.constant(queries[start:stop]),
            tf.constant(thresholds[start:stop]),
            tf.constant(positives[start:stop]),
            blocks,
            tail,
            tf.constant(local_queries),
            tf.constant(local_columns),
            tf.constant(splits),
        )
        counts[start:stop] = block_counts.numpy()
        hits[chosen] = block_hits.numpy()[: len(chosen)].astype(bool)
    return counts, hits
