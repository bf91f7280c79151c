"""Query-independent baselines for the full-corpus Recall@K: a random ranking and the most popular
candidates, on the same evaluation pairs as the model's metrics. They tell what a Recall@K is worth:
a model below the most-popular ranking has not learned anything about its queries yet."""

from __future__ import annotations

from typing import Mapping, Sequence


def recall_baselines(
    train_counts: Mapping[str, int],
    eval_counts: Mapping[str, int],
    corpus_size: int,
    ks: Sequence[int],
) -> dict[str, dict[int, float]]:
    """Recall@K of a random ranking and of the most-popular ranking, for each K in `ks`.

    Args:
      train_counts: how often each candidate key is a training positive (the popularity).
      eval_counts: how often each candidate key is an evaluation positive (the pairs scored).
      corpus_size: the number of candidates ranked (>= 1).
      ks: the cut-offs.

    Returns:
      `{"random": {K: K / corpus_size}, "most_popular": {K: recall}}`: the random ranking's expected
      Recall@K, and the share of evaluation pairs whose positive is among the K most frequent training
      positives (ties broken by key, so the figure is reproducible).

    Example:
    >>> recall_baselines({"a": 3, "b": 1}, {"a": 1, "c": 1}, corpus_size=4, ks=[1, 2])
    {'random': {1: 0.25, 2: 0.5}, 'most_popular': {1: 0.5, 2: 0.5}}
    """
    if corpus_size < 1:
        raise ValueError(f"The `corpus_size` parameter must be an int >= 1. Got {corpus_size!r} instead.")
    total = sum(eval_counts.values())
    ranked = sorted(train_counts, key=lambda key: (-train_counts[key], key))
    popular = {}
    for k in ks:
        hits = sum(eval_counts.get(key, 0) for key in ranked[:k])
        popular[k] = hits / total if total else 0.0
    return {"random": {k: min(k, corpus_size) / corpus_size for k in ks}, "most_popular": popular}
