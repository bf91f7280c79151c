"""`measure_recall`: how many of the exact top-k an (approximate) index returns."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrs_twotower.index.brute_force import BruteForce
from tfrs_twotower.index.top_k import TopK, check_k


def measure_recall(
    index: TopK,
    exact,
    queries,
    k: int = 10,
    identifiers=None,
    num_queries: int | None = 1000,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Recall@k of `index` against exact search: mean over queries of |approx top-k ∩ exact top-k| / k.

    Args:
        index: the index to measure (usually a `ScaNN`), already indexed.
        exact: an indexed exact `TopK` (a `BruteForce`) over the same candidates, or the candidate
            embeddings `[n, dim]` themselves (a `BruteForce` is built over them with `identifiers`).
        queries: query embeddings `[num_queries, dim]` (what `index` takes when it has no query_model).
        k: the cut-off.
        identifiers: identifiers `[n]` for `exact` embeddings; None when `index` returns row positions.
        num_queries: measure on a random sample of this many queries (None: all of them).
        batch_size: queries per search call (bounds the exact search's `[batch, n]` score matrix).
        seed: seed of the query sample.

    Returns:
        The recall, a float in [0, 1].

    Example:
    >>> import numpy as np
    >>> from tfrs_twotower.index import BruteForce
    >>> x = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
    >>> measure_recall(BruteForce().index(x), x, x[:20], k=5)
    1.0
    """
    k = check_k(k)
    if not isinstance(index, TopK):
        raise TypeError(
            f"The `index` parameter must be a TopK layer (BruteForce, ScaNN). Got {type(index).__name__}."
        )
    if not isinstance(exact, TopK):
        exact = BruteForce(k=k).index(exact, identifiers)
    elif not exact.is_exact():
        raise ValueError("The `exact` parameter must be an exact index (is_exact() is True) or embeddings.")
    queries = np.asarray(queries, np.float32)
    if queries.ndim != 2 or len(queries) == 0:
        raise ValueError(
            f"The `queries` parameter must be a non-empty `[num_queries, dim]` array. Got {queries.shape}."
        )
    if num_queries is not None and num_queries < len(queries):
        rows = np.random.default_rng(seed).choice(len(queries), num_queries, replace=False)
        queries = queries[np.sort(rows)]
    hits = 0
    for start in range(0, len(queries), batch_size):
        batch = tf.constant(queries[start : start + batch_size])
        _, approx = index(batch, k=k)
        _, truth = exact(batch, k=k)
        approx, truth = approx.numpy(), truth.numpy()
        hits += sum(len(set(a.tolist()) & set(t.tolist())) for a, t in zip(approx, truth, strict=True))
    return hits / (len(queries) * k)
