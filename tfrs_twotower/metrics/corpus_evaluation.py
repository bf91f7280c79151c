"""Full-corpus retrieval evaluation by rank counting: recall@k, NDCG@10, MRR, AUC, precision@1.

For each query, the rank of its positive among all `N` candidates is `1 + (number of candidates that
outscore it)`. No top-k over the corpus is ever taken: the count is taken by the fused C kernel of
`fast_ranks` (scores in registers, on all cores) when it is built, else block by block (queries x
candidates) with a TF matmul and a compare, so memory stays at one score block.

Conventions (the same as `tf.math.in_top_k`, TFRS `FactorizedTopK` and `metrics.in_batch`):

- a candidate *outscores* the positive when its score `q . c` is strictly greater; ties do not outscore.
  So a degenerate model that gives every candidate the same score gets rank 1 everywhere: check that the
  scores are not constant before trusting a perfect figure.
- the positive's own column is never counted. Every score that decides a rank (positive, candidates
  near it, excluded pairs) is the same fma chain on both paths (the C kernel, and the TF path's exact
  rescoring of near-ties, see `fma_scores`), so exact duplicates of the positive never outscore it and
  both paths give identical ranks on every machine.
- `exclude` removes candidates (e.g. items the user has already seen) from the comparison; the positive
  itself is never excluded. `seen` (each query's training positives) reports every metric a second
  time, under `<name>_seen_excluded`, with them removed too. Removal is exact: an excluded candidate is
  subtracted when, and only when, the count included it (it is rescored with the same fma chain), so
  both paths give identical ranks with exclusions too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.metrics import fast_ranks, fma_scores
from tfrs_twotower.metrics.factorized_top_k import _validate_ks

DEFAULT_QUERY_BLOCK = 1024
DEFAULT_CANDIDATE_BLOCK = 2048
SEEN_SUFFIX = "_seen_excluded"


def _check_block(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"The `{name}` parameter must be an int in [1, inf). Got {value!r} instead.")
    return int(value)


def _as_matrix(name: str, value) -> np.ndarray:
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"`{name}` must be a numeric [rows, dim] matrix. Got shape {array.shape}, dtype {array.dtype}."
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_rows(exclude, name: str = "exclude") -> list:
    """`exclude` (lists, a tf.RaggedTensor or a -1-padded int matrix) as one index list per query."""
    if isinstance(exclude, tf.RaggedTensor):
        exclude = exclude.to_list()
    if isinstance(exclude, np.ndarray) and exclude.ndim == 2:
        exclude = [row[row >= 0] for row in exclude]  # a padded matrix: negative entries are padding
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, (Sequence, np.ndarray)):
        raise TypeError(
            f"`{name}` must be a sequence with one list of candidate indices per query, a "
            f"tf.RaggedTensor, or a -1-padded [Q, L] int array. Got {type(exclude).__name__}."
        )
    return list(exclude)


def _exclusion_pairs(exclude, num_queries: int, num_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattens `exclude` into unique (query, candidate) pairs."""
    exclude = _as_rows(exclude)
    if len(exclude) != num_queries:
        raise ValueError(f"`exclude` must have one entry per query ({num_queries}). Got {len(exclude)}.")
    rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in exclude]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    columns = np.concatenate(rows) if rows else np.zeros([0], np.int64)
    if columns.size and (columns.min() < 0 or columns.max() >= num_candidates):
        raise ValueError(
            f"`exclude` holds candidate indices outside [0, {num_candidates}): "
            f"min {columns.min()}, max {columns.max()}."
        )
    queries = np.repeat(np.arange(num_queries, dtype=np.int64), lengths)
    pairs = np.unique(queries * num_candidates + columns)
    return pairs // num_candidates, pairs % num_candidates


def positive_ranks(
    query_embeddings,
    positive_indices,
    candidate_embeddings,
    exclude=None,
    query_block: int | None = None,
    candidate_block: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each query's positive among the candidates, by counting the candidates that outscore it.

    Args: as `evaluate_retrieval`.

    Returns:
        `(ranks, num_others)`: int64 `[Q]` arrays; `ranks` is 1-based, `num_others` is how many candidates
        each positive was compared against (`N - 1` minus that query's excluded candidates).
    """
    return _rank_sets(
        query_embeddings, positive_indices, candidate_embeddings, [exclude], query_block, candidate_block
    )[0]


def _rank_sets(
    query_embeddings, positive_indices, candidate_embeddings, exclusion_sets, query_block, candidate_block
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(ranks, num_others)` for each of several exclusion sets (each like `exclude`, or None), with one
    pass over the corpus: the candidates outscoring each positive are counted once, then each set's
    excluded candidates that were counted (scored exactly as counted, on both paths) are subtracted."""
    queries = _as_matrix("query_embeddings", query_embeddings)
    candidates = _as_matrix("candidate_embeddings", candidate_embeddings)
    positives = np.asarray(positive_indices)
    if positives.shape != (queries.shape[0],) or not np.issubdtype(positives.dtype, np.integer):
        raise ValueError(
            f"`positive_indices` must be an int vector of length {queries.shape[0]} (one row "
            f"of `candidate_embeddings` per query). Got shape {positives.shape}, dtype "
            f"{positives.dtype}."
        )
    if queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"`query_embeddings` and `candidate_embeddings` must have the same dim. Got "
            f"{queries.shape[1]} and {candidates.shape[1]}."
        )
    num_queries, num_candidates = queries.shape[0], candidates.shape[0]
    if positives.size and (positives.min() < 0 or positives.max() >= num_candidates):
        raise ValueError(
            f"`positive_indices` must be rows of `candidate_embeddings`, in [0, "
            f"{num_candidates}). Got min {positives.min()}, max {positives.max()}."
        )
    query_block = _check_block("query_block", query_block, DEFAULT_QUERY_BLOCK)
    candidate_block = min(
        _check_block("candidate_block", candidate_block, DEFAULT_CANDIDATE_BLOCK), max(num_candidates, 1)
    )
    positives = positives.astype(np.int32 if num_candidates < 2**31 else np.int64)

    # Every excluded (query, candidate) pair of every set once, with a bit per set it belongs to.
    codes = []
    for exclude in exclusion_sets:
        if exclude is None:
            codes.append(np.zeros([0], np.int64))
            continue
        rows, columns = _exclusion_pairs(exclude, num_queries, num_candidates)
        keep = columns != positives[rows]  # the positive itself is never excluded
        codes.append(rows[keep] * num_candidates + columns[keep])
    union = np.unique(np.concatenate(codes))
    bits = np.zeros(union.shape, np.int64)
    for j, code in enumerate(codes):
        bits[np.searchsorted(union, code)] |= 1 << j
    pair_rows, pair_columns = union // max(num_candidates, 1), union % max(num_candidates, 1)

    if fast_ranks.available():
        thresholds = fast_ranks.pair_scores(queries, candidates, np.arange(num_queries), positives)
        counts = fast_ranks.count_outscoring(queries, candidates, thresholds)

        def pair_scores(rows, columns):  # bit-identical to the kernel's scores
            return fast_ranks.pair_scores(queries, candidates, rows, columns)
    else:  # the same fma-chain scores near ties, so the same ranks (see `fma_scores`)

        def pair_scores(rows, columns):
            return fma_scores.fma_chain_scores(queries, candidates, rows, columns)

        thresholds = pair_scores(np.arange(num_queries), positives)
        counts = fma_scores.count_outscoring_tf(queries, candidates, thresholds, query_block, candidate_block)
    # An excluded candidate is removed when the count included it: scored as the count scored it.
    hits = pair_scores(pair_rows, pair_columns) > thresholds[pair_rows]
    results = []
    for j in range(len(exclusion_sets)):
        member = (bits >> j) & 1 == 1
        removed = np.bincount(pair_rows[member & hits], minlength=num_queries)
        num_others = (num_candidates - 1) - np.bincount(pair_rows[member], minlength=num_queries)
        results.append((counts - removed + 1, num_others.astype(np.int64)))
    return results


def _metrics(ranks: np.ndarray, num_others: np.ndarray, ks: Sequence[int], suffix: str = "") -> dict:
    ranks_f = ranks.astype(np.float64)
    result = {f"recall_at_{k}": float(np.mean(ranks <= k)) for k in ks}
    result["ndcg_at_10"] = float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks_f + 1.0), 0.0)))
    result["mrr"] = float(np.mean(1.0 / ranks_f))
    auc = 1.0 - (ranks_f - 1.0) / np.maximum(num_others, 1)
    result["auc"] = float(np.mean(auc))
    result["precision_at_1"] = float(np.mean(ranks == 1))
    for k in ks:
        result[f"factorized_top_k/top_{k}_categorical_accuracy"] = result[f"recall_at_{k}"]
    return {name + suffix: value for name, value in result.items()}


def evaluate_retrieval(
    query_embeddings,
    positive_indices,
    candidate_embeddings,
    ks: Sequence[int] = (1, 5, 10, 50, 100),
    exclude=None,
    query_block: int | None = None,
    candidate_block: int | None = None,
    seen=None,
) -> dict[str, float]:
    """Evaluates retrieval of each query's positive among all candidates (exact, by rank counting).

    Args:
        query_embeddings: `[Q, D]` float query embeddings.
        positive_indices: `[Q]` ints: the row of `candidate_embeddings` holding each query's positive.
        candidate_embeddings: `[N, D]` float embeddings of the whole corpus (unique candidates).
        ks: the `k` of `recall_at_{k}` (and of the TFRS aliases).
        exclude: optional candidates to leave out per query: a sequence of `Q` lists of candidate indices,
            a `tf.RaggedTensor`, or a `[Q, L]` int array padded with -1. The positive is never excluded.
        query_block: queries per block (default 1024). TF path only (see `fast_ranks.available()`).
        candidate_block: candidates per block (default 2048). A score block is
            `query_block * candidate_block * 4` bytes. TF path only.
        seen: optional candidates each query has already seen (its training positives), in the forms
            of `exclude`: the result then also holds every metric computed with them (and `exclude`)
            removed from the ranking, named with the suffix `SEEN_SUFFIX` ("_seen_excluded"), the usual
            recommendation protocol. The positive itself is never removed.

    Returns:
        A dict of floats, averaged over queries: `recall_at_{k}` for each k, `ndcg_at_10`, `mrr`, `auc`
        (fraction of the other candidates that do not outscore the positive), `precision_at_1`, and
        `factorized_top_k/top_{k}_categorical_accuracy` (= `recall_at_{k}`, the TFRS name); with `seen`,
        each of them again as `<name>_seen_excluded`.

    Raises:
        ValueError: on mismatched shapes, out-of-range indices or bad `ks`/block sizes.

    Example:
    >>> import numpy as np
    >>> candidates = np.eye(4, dtype="float32")
    >>> queries = np.array([[1.0, 0.5, 0, 0], [0, 0, 0, 1.0]], dtype="float32")
    >>> result = evaluate_retrieval(queries, [1, 3], candidates, ks=(1, 2))
    >>> result["recall_at_1"], result["recall_at_2"], result["mrr"]
    (0.5, 1.0, 0.75)
    """
    ks = _validate_ks(ks)
    ranked = rank_positives(
        query_embeddings, positive_indices, candidate_embeddings, exclude, seen, query_block, candidate_block
    )
    return retrieval_metrics(ranked, ks)


def rank_positives(
    query_embeddings,
    positive_indices,
    candidate_embeddings,
    exclude=None,
    seen=None,
    query_block: int | None = None,
    candidate_block: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """What `evaluate_retrieval` computes its metrics from: `[(ranks, num_others)]` with `exclude`, and
    with `seen` a second pair with `exclude` and `seen` removed (arguments as `evaluate_retrieval`).

    Each query's ranks depend on that query only, so a large query set can be ranked in parts (one
    evaluation batch at a time, holding only that batch's embeddings and seen items), the parts' arrays
    concatenated, and `retrieval_metrics` then gives exactly `evaluate_retrieval`'s result.

    Example:
    >>> import numpy as np
    >>> candidates = np.eye(4, dtype="float32")
    >>> queries = np.array([[1.0, 0.5, 0, 0], [0, 0, 0, 1.0]], dtype="float32")
    >>> parts = [rank_positives(queries[i : i + 1], [[1, 3][i]], candidates) for i in range(2)]
    >>> ranked = [tuple(np.concatenate(a) for a in zip(*sets)) for sets in zip(*parts)]
    >>> retrieval_metrics(ranked, ks=(1, 2)) == evaluate_retrieval(queries, [1, 3], candidates, ks=(1, 2))
    True
    """
    sets = [exclude] if seen is None else [exclude, _union(exclude, seen)]
    return _rank_sets(
        query_embeddings, positive_indices, candidate_embeddings, sets, query_block, candidate_block
    )


def retrieval_metrics(ranked: Sequence[tuple[np.ndarray, np.ndarray]], ks: Sequence[int]) -> dict:
    """`evaluate_retrieval`'s result from `rank_positives`' `[(ranks, num_others)]` (one or two sets)."""
    ks = _validate_ks(ks)
    if ranked[0][0].size == 0:
        raise ValueError("`query_embeddings` is empty: there is nothing to evaluate.")
    result = _metrics(*ranked[0], ks)
    if len(ranked) > 1:
        result.update(_metrics(*ranked[1], ks, SEEN_SUFFIX))
    return result


def _union(exclude, seen):
    """Per query, the candidates of `exclude` and of `seen` (as lists; both in `exclude`'s forms)."""
    seen_rows = _as_rows(seen, "seen")
    if exclude is None:
        return seen_rows
    exclude_rows = _as_rows(exclude)
    if len(exclude_rows) != len(seen_rows):
        raise ValueError(
            f"`exclude` and `seen` must have one entry per query. Got {len(exclude_rows)} and "
            f"{len(seen_rows)}."
        )
    return [
        np.concatenate([np.asarray(a, np.int64).reshape(-1), np.asarray(b, np.int64).reshape(-1)])
        for a, b in zip(exclude_rows, seen_rows, strict=True)
    ]
