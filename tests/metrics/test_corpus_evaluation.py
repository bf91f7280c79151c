"""Full-corpus evaluation: numpy reference for ranks and every metric, exclusions, blocks, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import evaluate_retrieval, positive_ranks, rank_positives, retrieval_metrics


def reference(queries, positives, candidates, ks, exclude=None):
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    ranks, others = [], []
    for i, p in enumerate(positives):
        keep = np.ones(len(candidates), bool)
        if exclude is not None:
            keep[list(exclude[i])] = False
        keep[p] = False
        ranks.append(1 + int(np.sum(scores[i, keep] > scores[i, p])))
        others.append(int(keep.sum()))
    ranks, others = np.array(ranks), np.array(others)
    result = {f"recall_at_{k}": np.mean(ranks <= k) for k in ks}
    result["ndcg_at_10"] = np.mean([1 / np.log2(r + 1) if r <= 10 else 0 for r in ranks])
    result["mrr"] = np.mean(1 / ranks)
    result["auc"] = np.mean(1 - (ranks - 1) / others)
    result["precision_at_1"] = np.mean(ranks == 1)
    result.update({f"factorized_top_k/top_{k}_categorical_accuracy": np.mean(ranks <= k) for k in ks})
    return ranks, result


@pytest.fixture
def small():
    rng = np.random.default_rng(11)
    candidates = rng.integers(-2, 3, (257, 5)).astype("float32")  # exact scores with many ties
    positives = rng.integers(0, 257, 70)
    queries = (rng.integers(-2, 3, (70, 5)) + candidates[positives]).astype("float32")
    return queries, positives, candidates


@pytest.mark.parametrize(
    "query_block, candidate_block", [(None, None), (7, 16), (70, 257), (1, 1000), (64, 100)]
)
def test_matches_numpy_reference(small, query_block, candidate_block):
    queries, positives, candidates = small
    ks = (1, 3, 10, 50)
    expected_ranks, expected = reference(queries, positives, candidates, ks)
    ranks, others = positive_ranks(
        queries, positives, candidates, query_block=query_block, candidate_block=candidate_block
    )
    np.testing.assert_array_equal(ranks, expected_ranks)
    np.testing.assert_array_equal(others, 256)
    result = evaluate_retrieval(
        queries, positives, candidates, ks=ks, query_block=query_block, candidate_block=candidate_block
    )
    assert list(result) == list(expected)
    for name, value in expected.items():
        assert isinstance(result[name], float)
        np.testing.assert_allclose(result[name], value, rtol=1e-12, err_msg=name)


def test_float_embeddings_positive_never_counts_itself():
    rng = np.random.default_rng(2)
    candidates = rng.standard_normal((5000, 48)).astype("float32")
    positives = rng.integers(0, 5000, 300)
    queries = rng.standard_normal((300, 48)).astype("float32") * 3.0
    ranks, _ = positive_ranks(queries, positives, candidates, query_block=64, candidate_block=512)
    expected, _ = reference(queries, positives, candidates, (1,))
    assert np.all(ranks >= 1)
    np.testing.assert_allclose(ranks, expected, atol=1)  # only float near-ties may differ
    assert np.mean(ranks == expected) > 0.99


def test_identical_scores_do_not_outscore():
    candidates = np.ones((10, 3), "float32")
    result = evaluate_retrieval(np.ones((2, 3), "float32"), [0, 9], candidates, ks=(1,))
    assert result["recall_at_1"] == 1.0 and result["auc"] == 1.0


@pytest.mark.parametrize("kind", ["lists", "ragged", "padded"])
def test_exclusions(small, kind):
    queries, positives, candidates = small
    rng = np.random.default_rng(4)
    exclude = [list(rng.integers(0, 257, rng.integers(0, 20))) for _ in range(70)]
    exclude[0] = exclude[0] + [positives[0], positives[0]]  # the positive and a duplicate: ignored
    expected_ranks, expected = reference(queries, positives, candidates, (1, 5), exclude)
    if kind == "ragged":
        arg = tf.ragged.constant(exclude, dtype=tf.int64)
    elif kind == "padded":
        arg = np.full((70, 25), -1)
        for i, row in enumerate(exclude):
            arg[i, : len(row)] = row
    else:
        arg = exclude
    ranks, others = positive_ranks(queries, positives, candidates, exclude=arg, candidate_block=50)
    np.testing.assert_array_equal(ranks, expected_ranks)
    assert others[0] == 256 - len(set(exclude[0]) - {positives[0]})
    result = evaluate_retrieval(queries, positives, candidates, ks=(1, 5), exclude=arg)
    for name, value in expected.items():
        np.testing.assert_allclose(result[name], value, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda q, p, c: evaluate_retrieval(q, p, c, ks=(0,)), ValueError, r"The `ks` parameter must be"),
        (
            lambda q, p, c: evaluate_retrieval(q, p, c, query_block=0),
            ValueError,
            r"The `query_block` parameter must be an int in \[1, inf\). Got 0 instead.",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q, p, c, candidate_block=-5),
            ValueError,
            r"The `candidate_block` parameter must be an int in \[1, inf\). Got -5 instead.",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q, p[:3], c),
            ValueError,
            r"`positive_indices` must be an int vector of "
            r"length 70",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q, p + 1000, c),
            ValueError,
            r"must be rows of `candidate_embeddings`, "
            r"in \[0, 257\)",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q[:, :3], p, c),
            ValueError,
            r"must have the same dim. Got 3 and 5",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q[0], p, c),
            ValueError,
            r"`query_embeddings` must be a numeric "
            r"\[rows, dim\] matrix",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q, p, c, exclude=[[1]]),
            ValueError,
            r"`exclude` must have one entry "
            r"per query \(70\). Got 1",
        ),
        (
            lambda q, p, c: evaluate_retrieval(q, p, c, exclude=[[300]] * 70),
            ValueError,
            r"`exclude` holds candidate indices outside \[0, 257\)",
        ),
        (lambda q, p, c: evaluate_retrieval(q, p, c, exclude=5), TypeError, r"`exclude` must be a sequence"),
        (lambda q, p, c: evaluate_retrieval(q[:0], p[:0], c), ValueError, r"`query_embeddings` is empty"),
    ],
)
def test_errors(small, call, error, match):
    with pytest.raises(error, match=match):
        call(*small)


def _seen_reference(queries, positives, candidates, ks, seen):
    _, base = reference(queries, positives, candidates, ks)
    ranks, excluded = reference(queries, positives, candidates, ks, seen)
    return ranks, {**base, **{f"{name}_seen_excluded": value for name, value in excluded.items()}}


@pytest.mark.parametrize("blocks", [(None, None), (16, 50), (70, 1)])
def test_seen_excluded_metrics_match_numpy(small, blocks):
    queries, positives, candidates = small
    rng = np.random.default_rng(9)
    seen = [list(rng.integers(0, 257, rng.integers(0, 40))) for _ in range(70)]
    seen[3] = seen[3] + [positives[3]]  # a query's own positive among its seen items is kept
    ks = (1, 5, 10)
    expected_ranks, expected = _seen_reference(queries, positives, candidates, ks, seen)
    result = evaluate_retrieval(
        queries, positives, candidates, ks=ks, seen=seen, query_block=blocks[0], candidate_block=blocks[1]
    )
    assert list(result) == list(expected)
    assert result["recall_at_5_seen_excluded"] > result["recall_at_5"]  # the case tests something
    for name, value in expected.items():
        np.testing.assert_allclose(result[name], value, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("sizes", [(70,), (1, 69), (16, 30, 24), (7,) * 10])
def test_ranks_of_query_parts_give_exactly_the_whole_sets_metrics(small, sizes):
    queries, positives, candidates = small
    rng = np.random.default_rng(12)
    seen = [list(rng.integers(0, 257, rng.integers(0, 40))) for _ in range(70)]
    exclude = [list(rng.integers(0, 257, rng.integers(0, 5))) for _ in range(70)]
    ks = (1, 5, 10)
    whole = evaluate_retrieval(queries, positives, candidates, ks=ks, exclude=exclude, seen=seen)
    parts, start = [], 0
    for size in sizes:
        part = slice(start, start + size)
        parts.append(
            rank_positives(queries[part], positives[part], candidates, exclude[part], seen[part], 3, 40)
        )
        start += size
    assert [len(p) for p in parts] == [2] * len(sizes)  # (exclude) and (exclude + seen)
    ranked = [
        tuple(np.concatenate(arrays) for arrays in zip(*sets, strict=True))
        for sets in zip(*parts, strict=True)
    ]
    assert retrieval_metrics(ranked, ks) == whole  # bit for bit, seen-excluded metrics included
    assert whole["recall_at_5_seen_excluded"] != whole["recall_at_5"]  # the seen set changes ranks
    without_seen = rank_positives(queries, positives, candidates)
    assert len(without_seen) == 1
    assert retrieval_metrics(without_seen, ks) == evaluate_retrieval(queries, positives, candidates, ks=ks)


def test_both_rank_paths_give_identical_ranks_with_exclusions(monkeypatch, compute_path):
    if compute_path != "tensorflow":
        pytest.skip("compares the two paths itself; once is enough")
    from tfrs_twotower.metrics import corpus_evaluation, fast_ranks

    monkeypatch.delenv(fast_ranks.DISABLE_ENV, raising=False)
    if not fast_ranks.available():
        pytest.skip("the C rank kernel is not built or not fast on this CPU")
    rng = np.random.default_rng(5)
    candidates = rng.standard_normal((3000, 24)).astype("float32")  # float scores: near-ties matter
    positives = rng.integers(0, 3000, 70)
    queries = (candidates[positives] + rng.standard_normal((70, 24)).astype("float32")).astype("float32")
    candidates[::7] = candidates[positives[0]]  # exact duplicates of a positive
    seen = [list(rng.integers(0, 3000, rng.integers(0, 600))) for _ in range(70)]
    exclude = [list(rng.integers(0, 3000, 3)) for _ in range(70)]
    args = (queries, positives, candidates, [None, exclude, seen], None, 64)
    kernel = corpus_evaluation._rank_sets(*args)
    monkeypatch.setenv(fast_ranks.DISABLE_ENV, "1")
    fallback = corpus_evaluation._rank_sets(*args)
    for (k_ranks, k_others), (t_ranks, t_others) in zip(kernel, fallback, strict=True):
        np.testing.assert_array_equal(k_ranks, t_ranks)
        np.testing.assert_array_equal(k_others, t_others)
    assert not np.array_equal(kernel[0][0], kernel[2][0])


def test_seen_with_exclude_removes_both(small):
    queries, positives, candidates = small
    exclude = [[int((p + 1) % 257)] for p in positives]
    seen = [[int((p + 2) % 257), int((p + 3) % 257)] for p in positives]
    both = [a + b for a, b in zip(exclude, seen, strict=True)]
    _, expected = reference(queries, positives, candidates, (1,), both)
    result = evaluate_retrieval(queries, positives, candidates, ks=(1,), exclude=exclude, seen=seen)
    assert result["recall_at_1_seen_excluded"] == expected["recall_at_1"]
    assert result["auc_seen_excluded"] == pytest.approx(expected["auc"], rel=1e-12)
    with pytest.raises(ValueError, match="one entry per query. Got 70 and 2"):
        evaluate_retrieval(queries, positives, candidates, exclude=exclude, seen=seen[:2])
    with pytest.raises(TypeError, match="`seen` must be a sequence"):
        evaluate_retrieval(queries, positives, candidates, seen=3)
