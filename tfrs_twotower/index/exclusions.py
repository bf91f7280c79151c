"""Top-k with per-query exclusions: the one implementation behind `TopK.query_with_exclusions`, the
exported retrieval SavedModels' `exclude` input, `Retriever(..., exclude=...)` and `query --exclude`.

A query with `E` identifiers to exclude fetches its `k + E` best candidates (all of them when the corpus
is smaller), drops the excluded ones and keeps the best `k` left: for an exact index the result is
exactly the top-k of the corpus without them (at most `E` of the fetched ones can be excluded). When
fewer than `k` candidates remain, the tail is padding: identifier `""` (`-1` for integer identifiers)
and score `-inf` (`+inf` for distances); an excluded identifier is never returned. Exclusions are a
`[B, E]` tensor of identifiers, `E` may vary from call to call; rows are padded with `""` (or `-1`),
which match no candidate. Plain TensorFlow ops: `BruteForce` with exclusions still serves in stock TF.

Example:
>>> import numpy as np
>>> from tfrs_twotower.index import BruteForce
>>> index = BruteForce(k=2).index(np.eye(3, dtype="float32"), np.array([b"a", b"b", b"c"]))
>>> scores, ids = index.query_with_exclusions(np.float32([[3, 2, 1]]), np.array([[b"a", b""]]))
>>> ids.numpy().tolist()
[[b'b', b'c']]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def padding_for(dtype: tf.DType):
    """The identifier that pads exclusion rows and result tails: "" for strings, -1 for integers."""
    return tf.constant("" if dtype == tf.string else -1, dtype)


def check_exclusions(exclusions, identifiers_dtype: tf.DType) -> tf.Tensor:
    """`exclusions` as a `[B, E]` tensor of the identifiers' dtype (ints are cast between int types)."""
    if isinstance(exclusions, tf.RaggedTensor):
        exclusions = exclusions.to_tensor(default_value=padding_for(exclusions.dtype))
    exclusions = tf.convert_to_tensor(exclusions)
    if exclusions.shape.rank != 2:
        raise ValueError(
            'The `exclusions` tensor must be 2D `[batch, num_excluded]` (rows padded with "" or -1). '
            f"Got shape {exclusions.shape} instead."
        )
    if exclusions.dtype != identifiers_dtype:
        if exclusions.dtype == tf.string or identifiers_dtype == tf.string:
            raise TypeError(
                f"The `exclusions` dtype must match the identifiers' ({identifiers_dtype.name}). "
                f"Got {exclusions.dtype.name} instead."
            )
        exclusions = tf.cast(exclusions, identifiers_dtype)
    return exclusions


def top_k_excluding(
    search, identifiers, queries, exclusions, k: int, num_candidates: int, higher_is_better=True
):
    """`(scores [B, k], identifiers [B, k])`: the best `k` results of `search` not in `exclusions`.

    Args:
        search: `search(queries, n) -> (scores [B, n], rows [B, n])`, best first (`n` may be a tensor).
        identifiers: `[N]` tensor (or variable) mapping rows to identifiers, or None (rows are the ids).
        queries: query embeddings `[B, dim]`.
        exclusions: `[B, E]` identifiers, already checked by `check_exclusions`.
        k: results per query, at most `num_candidates`.
        num_candidates: the index size.
        higher_is_better: False for distances (ScaNN's squared L2).
    """
    fetch = tf.minimum(k + tf.shape(exclusions)[1], num_candidates)
    scores, rows = search(queries, fetch)
    ids = rows if identifiers is None else tf.gather(identifiers, rows)
    excluded = tf.reduce_any(tf.equal(ids[:, :, None], exclusions[:, None, :]), axis=-1)
    sign = tf.constant(1.0 if higher_is_better else -1.0, scores.dtype)
    lowest = tf.constant(-np.inf, scores.dtype)
    adjusted = tf.where(excluded, lowest, sign * scores)
    best, order = tf.math.top_k(adjusted, k=k)
    kept = best > lowest
    ids = tf.where(kept, tf.gather(ids, order, batch_dims=1), padding_for(ids.dtype))
    return sign * best, ids
