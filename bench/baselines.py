"""Non-neural baselines for the MovieLens benchmarks: most-popular, implicit-feedback ALS, and history
co-occurrence.

Each baseline returns query and candidate embeddings so that it is scored by the same full-corpus
evaluation as the two-tower models (`tfrs_twotower.metrics.evaluate_retrieval`): a query's score for a
candidate is the dot product of the two.

- most-popular: every query is `[1]`, every candidate `[count in the training pairs + tie-break]`. The
  tie-break is a seeded uniform draw in [0, 0.5): equal counts are ordered at random instead of in the
  positive's favour (the evaluation counts ties for the positive).
- ALS: `implicit.als.AlternatingLeastSquares` on the binary user x movie matrix of the training pairs
  (Hu, Koren, Volinsky 2008), user factors as queries, item factors as candidates (plus a tie-break
  dimension: movies without training pairs have zero factors).
- history co-occurrence (a sequential item-to-item baseline that sees the same `history` feature as the
  model): `C[i, j]` counts the training pairs whose movie is j and whose history holds i; a query is the
  multi-hot of its history, so a candidate's score is how often it followed the query's history items
  in training, ties broken by popularity.

Example:
>>> queries, candidates = popularity(["a", "a", "b"], ["a", "b", "c"], num_queries=2)
>>> queries.shape, candidates.shape
((2, 1), (3, 1))
>>> queries, candidates = history_cooccurrence([["a"], []], ["b", "a"], [["a"]], ["a", "b"])
>>> (queries @ candidates.T).argmax(axis=1).tolist()  # after "a" came "b"
[1]
"""

from __future__ import annotations

import collections
import time
from typing import Sequence

import numpy as np


def popularity(
    train_candidate_ids: Sequence[str], corpus_ids: Sequence[str], num_queries: int, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Most-popular: `(queries [Q, 1], candidates [N, 1])`; a candidate's score is its training count."""
    counts = collections.Counter(train_candidate_ids)
    jitter = np.random.default_rng(seed).uniform(0.0, 0.5, len(corpus_ids))
    scores = np.array([counts.get(i, 0) for i in corpus_ids], np.float64) + jitter
    return np.ones([num_queries, 1], np.float32), scores.astype(np.float32).reshape(-1, 1)


def als(
    train_user_ids: Sequence[str],
    train_candidate_ids: Sequence[str],
    corpus_ids: Sequence[str],
    test_user_ids: Sequence[str],
    factors: int = 64,
    regularization: float = 0.05,
    iterations: int = 15,
    alpha: float = 1.0,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Implicit ALS: `(queries [Q, factors], candidates [N, factors], fit seconds)`.

    Test users absent from the training pairs get a zero vector (every candidate ties).

    Raises:
      ImportError: when the `implicit` package is missing.
    """
    try:
        import implicit
        import scipy.sparse
        import threadpoolctl
    except ImportError as e:
        raise ImportError("The ALS baseline needs `implicit`: pip install implicit") from e
    users = {u: i for i, u in enumerate(sorted(set(train_user_ids)))}
    items = {c: i for i, c in enumerate(corpus_ids)}
    rows = np.array([users[u] for u in train_user_ids])
    cols = np.array([items[c] for c in train_candidate_ids])
    matrix = scipy.sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items))
    )
    matrix.data[:] = 1.0  # duplicates summed by csr_matrix: keep the matrix binary
    model = implicit.als.AlternatingLeastSquares(
        factors=factors,
        regularization=regularization,
        iterations=iterations,
        alpha=alpha,
        random_state=seed,
        calculate_training_loss=False,
    )
    started = time.perf_counter()
    with threadpoolctl.threadpool_limits(1, "blas"):  # implicit's own threads; a BLAS pool slows it down
        model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - started
    user_factors = np.asarray(getattr(model.user_factors, "to_numpy", lambda: model.user_factors)())
    item_factors = np.asarray(getattr(model.item_factors, "to_numpy", lambda: model.item_factors)())
    # A last dimension breaks ties at random (a query's 1 times a tiny uniform draw per candidate): items
    # without training pairs have zero factors and would otherwise tie with an unseen positive, which the
    # evaluation counts in the positive's favour.
    queries = np.zeros([len(test_user_ids), user_factors.shape[1] + 1], np.float32)
    queries[:, -1] = 1.0
    known = np.array([u in users for u in test_user_ids])
    queries[known, :-1] = user_factors[[users[u] for u in np.asarray(test_user_ids)[known]]]
    jitter = np.random.default_rng(seed).uniform(0.0, 1e-6, [len(item_factors), 1])
    return queries, np.concatenate([item_factors, jitter], axis=1).astype(np.float32), seconds


def history_cooccurrence(
    train_histories: Sequence[Sequence[str]],
    train_candidate_ids: Sequence[str],
    test_histories: Sequence[Sequence[str]],
    corpus_ids: Sequence[str],
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """History co-occurrence: `(queries [Q, N + 1], candidates [N, N + 1])`, N the corpus size.

    A candidate's score is the number of training pairs with it as the movie and any of the query's
    history items in their history (counted once per item), plus popularity / 10^4 and a tiny random
    draw to break ties (both below 1, so counts always come first).
    """
    items = {c: i for i, c in enumerate(corpus_ids)}
    n = len(corpus_ids)
    counts = np.zeros([n, n], np.float32)  # [history item, candidate]
    popular = np.zeros(n, np.float64)
    for history, candidate in zip(train_histories, train_candidate_ids, strict=True):
        j = items[candidate]
        popular[j] += 1
        for i in {items[h] for h in history if h in items}:
            counts[i, j] += 1
    queries = np.zeros([len(test_histories), n + 1], np.float32)
    queries[:, n] = 1.0
    for q, history in enumerate(test_histories):
        queries[q, [items[h] for h in history if h in items]] = 1.0
    tie_break = popular * 1e-4 + np.random.default_rng(seed).uniform(0.0, 1e-5, n)
    return queries, np.concatenate([counts.T, tie_break[:, None].astype(np.float32)], axis=1)
