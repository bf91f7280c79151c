import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.index import BruteForce, ScaNN, ScannParams, measure_recall, scann_params


@pytest.fixture(scope="module")
def large():
    """20K clustered candidates (above the brute-force threshold: tree + AH + reordering)."""
    from tests.index.conftest import clustered

    x = clustered(20_000, clusters=200)
    ids = np.array([f"c{i}" for i in range(len(x))])
    return x, ids, clustered(300, clusters=200, seed=1), ScaNN(k=10).index(x, ids)


def test_recall_vs_exact_on_clustered_data(large):
    x, ids, q, index = large
    assert not index.params.brute_force and not index.is_exact()
    assert index.params == ScannParams(False, 141, 15, 2, 200, 12)
    assert measure_recall(index, x, q, k=10, identifiers=ids) >= 0.95
    assert measure_recall(index, BruteForce().index(x, ids), q, k=10) >= 0.95


def test_string_and_int_ids_and_k_override(large):
    x, ids, q, index = large
    int_index = ScaNN(k=10).index(x, np.arange(len(x), dtype=np.int64) + 5)
    _, got = int_index(q, k=20)
    assert got.dtype == tf.int64 and got.shape == (len(q), 20)
    _, exact = BruteForce(k=20).index(x)(q)
    assert (
        np.mean([len(set(g - 5) & set(e)) / 20 for g, e in zip(got.numpy(), exact.numpy(), strict=False)])
        >= 0.95
    )
    scores, str_got = index(q[0])
    assert str_got.dtype == tf.string and str_got.shape == (10,)


def test_small_corpus_falls_back_to_exact_scoring(corpus, numpy_top_k):
    x, str_ids, _, q = corpus
    index = ScaNN(k=5).index(x, str_ids)
    assert index.params.brute_force
    np.testing.assert_array_equal(index(q)[1].numpy(), str_ids[numpy_top_k(q, x, 5)[1]].astype(bytes))


def test_query_with_exclusions(corpus, numpy_top_k):
    x, _, int_ids, q = corpus
    index = ScaNN(k=3).index(x, int_ids)
    rows = numpy_top_k(q, x, 8)[1]
    _, got = index.query_with_exclusions(q, int_ids[rows[:, :2]])
    np.testing.assert_array_equal(got.numpy(), int_ids[rows[:, 2:5]])


def test_inside_keras_models(large):
    x, ids, q, index = large
    expected = index(q)[1].numpy()
    inputs = keras.Input((16,))
    functional = keras.Model(inputs, index(inputs))
    np.testing.assert_array_equal(functional.predict(q, verbose=0)[1], expected)
    negated = ScaNN(query_model=keras.layers.Rescaling(-1.0), k=10).index(x, ids)
    scores, got = negated(-q)  # the query model maps -q back to q
    assert got.shape == (len(q), 10)
    exact = BruteForce(k=10).index(x, ids)(q)[1].numpy()
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.numpy(), exact, strict=False)]) >= 0.95
    np.testing.assert_array_equal(tf.function(lambda z: index(z))(tf.constant(q))[1].numpy(), expected)


def test_defaults_from_corpus_size():
    assert scann_params.resolve(5_000, 10, None, None, 2, None, 12, 10_000).brute_force
    p = scann_params.resolve(1_000_000, 10, None, None, 2, None, 12, 10_000)
    assert (p.num_leaves, p.num_leaves_to_search, p.num_reordering_candidates) == (1000, 100, 200)
    p = scann_params.resolve(100_000, 50, None, None, 2, 0, 12, 10_000)
    assert (p.num_leaves, p.num_leaves_to_search, p.num_reordering_candidates) == (316, 32, None)


def test_get_config_round_trip():
    layer = ScaNN(k=5, num_leaves=50, num_leaves_to_search=5, num_reordering_candidates=40, name="ann")
    clone = ScaNN.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_errors(corpus):
    x, str_ids, _, q = corpus
    with pytest.raises(ValueError, match=r"call index\(\) or index_from_dataset\(\) first"):
        ScaNN()(q)
    with pytest.raises(ValueError, match="same number of rows"):
        ScaNN().index(x, str_ids[:10])
    with pytest.raises(ValueError, match="must be 2D"):
        ScaNN().index(x[None])
    with pytest.raises(ValueError, match="`distance_measure` parameter must be a str among"):
        ScaNN(distance_measure="cosine")
    with pytest.raises(
        ValueError, match=r"`num_leaves` parameter must be an int in \[2, inf\) or None. Got 0"
    ):
        ScaNN(num_leaves=0)
    with pytest.raises(
        ValueError, match=r"`num_leaves_to_search` parameter must be at most `num_leaves` \(10\)"
    ):
        ScaNN(num_leaves=10, num_leaves_to_search=11, brute_force_threshold=0).index(x)
    with pytest.raises(ValueError, match="Queries must be of rank 2"):
        ScaNN().index(x)(q[None])
