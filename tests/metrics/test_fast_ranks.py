"""The C rank-counting kernel: exact against numpy references on every code path, tails, threads, the
TF fallback of `positive_ranks`, errors."""

import numpy as np
import pytest

from tfrs_twotower.metrics import fast_ranks, positive_ranks

ISAS = fast_ranks.supported_isas()
needs_kernel = pytest.mark.skipif(not ISAS, reason="the _rank_kernel extension is not built")

# (queries, candidates, dim): tails of every block size (R = 4/6/12 queries, W = 8/16/32 candidates),
# several L2 chunks and query groups (the last two), D = 1 and D = 300.
SHAPES = [(1, 1, 1), (13, 33, 1), (25, 100, 3), (70, 257, 5), (37, 1000, 64), (11, 129, 300), (49, 517, 17)]
LARGE = [(600, 5000, 64), (130, 3001, 300)]


def fma32(a, b, c):
    """float32 fma(a, b, c) in numpy, correctly rounded: a*b is exact in float64 and the float64 sum is
    corrected where it lands on a float32 midpoint (the only place double rounding can go wrong)."""
    a, b, c = (np.asarray(x, np.float64) for x in (a, b, c))
    p = a * b
    s = p + c
    v = s - p
    err = (p - (s - v)) + (c - v)  # TwoSum: s + err == p + c exactly
    f = s.astype(np.float32)
    diff = s - f.astype(np.float64)
    other = np.nextafter(f, np.where(diff > 0, np.inf, -np.inf).astype(np.float32))
    midpoint = (diff != 0) & (other.astype(np.float64) - s == -diff)
    return np.where(midpoint & (err * diff > 0), other, f)


def fma_chain_scores(queries, candidates):
    """[Q, N] scores computed like the kernel: acc = fma(q[d], c[d], acc), d = 0 .. D-1."""
    acc = np.zeros((len(queries), len(candidates)), np.float32)
    for d in range(queries.shape[1]):
        acc = fma32(queries[:, d : d + 1], candidates[None, :, d], acc)
    return acc


def reference_counts(scores, positives):
    thresholds = scores[np.arange(len(positives)), positives]
    return np.sum(scores > thresholds[:, None], axis=1)


def integer_data(num_queries, num_candidates, dim, seed=0):
    """Small integer embeddings: every partial sum is exact in float32, and there are many ties."""
    rng = np.random.default_rng(seed)
    candidates = rng.integers(-3, 4, (num_candidates, dim)).astype("float32")
    positives = rng.integers(0, num_candidates, num_queries)
    queries = (rng.integers(-2, 3, (num_queries, dim)) + candidates[positives]).astype("float32")
    return queries, positives, candidates


def float_data(num_queries, num_candidates, dim, seed=0):
    rng = np.random.default_rng(seed)
    candidates = rng.standard_normal((num_candidates, dim)).astype("float32")
    positives = rng.integers(0, num_candidates, num_queries)
    noise = rng.standard_normal((num_queries, dim)).astype("float32")
    return (candidates[positives] * 0.5 + noise).astype("float32"), positives, candidates


@needs_kernel
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_integer_data_matches_exact_reference(isa, shape):
    queries, positives, candidates = integer_data(*shape)
    exact = queries.astype(np.float64) @ candidates.astype(np.float64).T
    counts = fast_ranks.count_outscoring(queries, candidates, positives, isa=isa)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, reference_counts(exact, positives))


@needs_kernel
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_float_data_matches_fma_chain_reference_exactly(isa, shape):
    queries, positives, candidates = float_data(*shape, seed=1)
    expected = reference_counts(fma_chain_scores(queries, candidates), positives)
    np.testing.assert_array_equal(
        fast_ranks.count_outscoring(queries, candidates, positives, isa=isa), expected
    )


@needs_kernel
@pytest.mark.parametrize("shape", LARGE)
def test_many_chunks_and_groups(shape):
    queries, positives, candidates = integer_data(*shape, seed=2)
    exact = queries.astype(np.float64) @ candidates.astype(np.float64).T
    expected = reference_counts(exact, positives)
    for threads in (1, 2, 3):
        counts = fast_ranks.count_outscoring(queries, candidates, positives, threads=threads)
        np.testing.assert_array_equal(counts, expected, err_msg=f"threads={threads}")


@needs_kernel
def test_code_paths_and_threads_agree_bit_for_bit_on_floats():
    queries, positives, candidates = float_data(301, 4099, 64, seed=3)
    expected = fast_ranks.count_outscoring(queries, candidates, positives, threads=1, isa=ISAS[0])
    for isa in ISAS:
        for threads in (1, 2):
            counts = fast_ranks.count_outscoring(queries, candidates, positives, threads=threads, isa=isa)
            np.testing.assert_array_equal(counts, expected, err_msg=f"{isa}, threads={threads}")


@needs_kernel
def test_float_data_within_rounding_of_float64_and_tf():
    """Against exact (float64) scores, only candidates within float32 rounding of the positive may differ."""
    queries, positives, candidates = float_data(200, 3000, 48, seed=4)
    counts = fast_ranks.count_outscoring(queries, candidates, positives)
    exact = queries.astype(np.float64) @ candidates.astype(np.float64).T
    bound = 48 * 2.0**-23 * (np.abs(queries).astype(np.float64) @ np.abs(candidates).astype(np.float64).T)
    rows = np.arange(len(positives))
    margin = bound + bound[rows, positives][:, None]
    above = exact - exact[rows, positives][:, None]
    above[rows, positives] = -np.inf  # the positive itself
    np.testing.assert_array_less(np.sum(above > margin, axis=1) - 1, counts)
    np.testing.assert_array_less(counts, np.sum(above > -margin, axis=1) + 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_ranks, "available", lambda: False)
        tf_ranks, _ = positive_ranks(queries, positives, candidates)
    np.testing.assert_array_equal(tf_ranks, counts + 1)  # near-ties rescored with the kernel's fma chain


@needs_kernel
def test_thresholds_as_scores_equal_indices():
    queries, positives, candidates = float_data(50, 700, 20, seed=5)
    scores = fast_ranks.pair_scores(queries, candidates, np.arange(50), positives)
    np.testing.assert_array_equal(scores, fma_chain_scores(queries, candidates)[np.arange(50), positives])
    np.testing.assert_array_equal(
        fast_ranks.count_outscoring(queries, candidates, scores),
        fast_ranks.count_outscoring(queries, candidates, positives),
    )


@needs_kernel
def test_duplicates_of_the_positive_never_outscore_it():
    queries, positives, candidates = float_data(40, 300, 33, seed=6)
    candidates = np.concatenate([candidates, candidates[positives]])  # an exact copy of every positive
    counts = fast_ranks.count_outscoring(queries, candidates, positives)
    np.testing.assert_array_equal(counts, reference_counts(fma_chain_scores(queries, candidates), positives))
    ranks, _ = positive_ranks(queries, positives, candidates)
    np.testing.assert_array_equal(ranks, counts + 1)


@needs_kernel
def test_excluding_every_outscoring_candidate_gives_rank_one():
    """Excluded pairs are scored exactly like the kernel, so the subtraction matches the count."""
    queries, positives, candidates = float_data(60, 900, 24, seed=7)
    scores = fma_chain_scores(queries, candidates)
    thresholds = scores[np.arange(60), positives]
    exclude = [np.flatnonzero(row > t) for row, t in zip(scores, thresholds, strict=True)]
    ranks, others = positive_ranks(queries, positives, candidates, exclude=exclude)
    np.testing.assert_array_equal(ranks, 1)
    np.testing.assert_array_equal(others, 899 - np.array([len(e) for e in exclude]))


@pytest.mark.parametrize("how", ["monkeypatch", "environment"])
def test_tf_fallback_gives_the_same_ranks(how, monkeypatch):
    queries, positives, candidates = integer_data(70, 1025, 9, seed=8)
    rng = np.random.default_rng(9)
    exclude = [rng.integers(0, 1025, rng.integers(0, 30)) for _ in range(70)]
    fast = positive_ranks(queries, positives, candidates, exclude=exclude)
    if how == "monkeypatch":
        monkeypatch.setattr(fast_ranks, "available", lambda: False)
    else:
        monkeypatch.setenv(fast_ranks.DISABLE_ENV, "1")
    assert not fast_ranks.available()
    fallback = positive_ranks(queries, positives, candidates, exclude=exclude, candidate_block=100)
    exact = queries.astype(np.float64) @ candidates.astype(np.float64).T
    np.testing.assert_array_equal(fallback[0], fast[0])
    np.testing.assert_array_equal(fallback[1], fast[1])
    if ISAS:  # and the ranks without exclusions are the exact ones
        np.testing.assert_array_equal(
            fast_ranks.count_outscoring(queries, candidates, positives), reference_counts(exact, positives)
        )


@needs_kernel
def test_empty_inputs_and_zero_dim():
    _, _, candidates = integer_data(1, 10, 4)
    empty = fast_ranks.count_outscoring(np.zeros((0, 4), "float32"), candidates, np.zeros(0, int))
    assert empty.shape == (0,)
    np.testing.assert_array_equal(
        fast_ranks.count_outscoring(np.zeros((3, 0)), np.zeros((10, 0)), np.array([-1.0, 0.0, 1.0])),
        [10, 0, 0],
    )


@needs_kernel
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"isa": "sse9"}, ValueError, r"The `isa` parameter must be one of 'portable', 'avx2', 'avx512'"),
        ({"threads": 0}, ValueError, r"The `threads` parameter must be an int in \[1, 256\]. Got 0 instead."),
        ({"candidates": np.zeros((10, 3))}, ValueError, r"must have the same dim. Got 4 and 3"),
        ({"positive": np.array([0, 10])}, ValueError, r"must be in \[0, 10\). Got min 0, max 10"),
        ({"positive": np.array([0])}, ValueError, r"must be a vector of length 2"),
        ({"positive": np.array(["a", "b"])}, ValueError, r"must be a vector of 2 ints .* or floats"),
        ({"queries": np.zeros(4)}, ValueError, r"`queries` must be a \[rows, dim\] matrix"),
    ],
)
def test_errors(kwargs, error, match):
    args = {"queries": np.zeros((2, 4)), "candidates": np.zeros((10, 4)), "positive": np.array([0, 1])}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fast_ranks.count_outscoring(
            args["queries"], args["candidates"], args["positive"], args.get("threads"), args.get("isa")
        )


def test_missing_extension_raises_import_error_with_the_fix(monkeypatch):
    monkeypatch.setattr(fast_ranks, "_rank_kernel", None)
    assert not fast_ranks.available() and fast_ranks.kernel_isa() is None
    match = r"`tfrs_twotower.metrics._rank_kernel` extension is not built.*`pip install -e .`"
    with pytest.raises(ImportError, match=match):
        fast_ranks.count_outscoring(np.zeros((1, 2)), np.zeros((3, 2)), np.array([0]))


@pytest.mark.parametrize("seed", [0, 1])
def test_tf_path_matches_the_fma_chain_reference_without_the_kernel(seed, monkeypatch):
    """The TF path alone (no C kernel at all, as on ARM or a GPU host) gives the fma-chain ranks, also for
    exact duplicates of the positive, zero vectors, ties and NaN scores."""
    monkeypatch.setattr(fast_ranks, "_rank_kernel", None)
    queries, positives, candidates = float_data(45, 260, 19, seed=seed)
    candidates = np.concatenate([candidates, candidates[positives], np.zeros((3, 19), "float32")])
    queries[0] = 0.0  # every score 0: rank 1
    queries[1, 3] = np.nan  # every score NaN: nothing outscores, rank 1
    expected = reference_counts(fma_chain_scores(queries, candidates), positives) + 1
    ranks, _ = positive_ranks(queries, positives, candidates, query_block=16, candidate_block=64)
    np.testing.assert_array_equal(ranks, expected)
    assert ranks[0] == 1 and ranks[1] == 1 and ranks.max() > 10
