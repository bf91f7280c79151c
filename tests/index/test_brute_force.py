import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.index import BruteForce


@pytest.mark.parametrize("ids_kind", ["none", "str", "int"])
def test_top_k_matches_numpy(corpus, numpy_top_k, ids_kind):
    x, str_ids, int_ids, q = corpus
    ids = {"none": None, "str": str_ids, "int": int_ids}[ids_kind]
    index = BruteForce(k=5).index(x, ids)
    scores, got = index(q)
    ref_scores, ref_rows = numpy_top_k(q, x, 5)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-5, atol=1e-5)
    expected = ref_rows if ids is None else ids[ref_rows]
    if ids_kind == "str":
        expected = expected.astype(object).astype(bytes)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert got.dtype == {"none": tf.int32, "str": tf.string, "int": tf.int64}[ids_kind]
    assert index.is_exact()


def test_k_override_and_single_query(corpus, numpy_top_k):
    x, _, _, q = corpus
    index = BruteForce(k=5).index(x)
    scores, rows = index(q, k=12)
    assert rows.shape == (len(q), 12)
    np.testing.assert_array_equal(rows.numpy(), numpy_top_k(q, x, 12)[1])
    one_scores, one_rows = index(q[0])
    assert one_rows.shape == (5,)
    np.testing.assert_array_equal(one_rows.numpy(), rows.numpy()[0, :5])


def test_query_with_exclusions(corpus, numpy_top_k):
    x, str_ids, _, q = corpus
    index = BruteForce(k=4).index(x, str_ids)
    _, rows = numpy_top_k(q, x, 10)
    excluded = str_ids[rows[:, [0, 2]]]  # drop the 1st and 3rd best of each query
    scores, got = index.query_with_exclusions(q, excluded)
    expected = str_ids[rows[:, [1, 3, 4, 5]]].astype(bytes)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert scores.shape == (len(q), 4)


def test_query_with_exclusions_int_ids_cast(corpus, numpy_top_k):
    x, _, _, q = corpus
    index = BruteForce(k=3).index(x)  # row positions, int32
    _, rows = numpy_top_k(q, x, 6)
    _, got = index.query_with_exclusions(q, rows[:, :2].astype(np.int64))
    np.testing.assert_array_equal(got.numpy(), rows[:, 2:5])


def test_query_model_and_keras_models(corpus, numpy_top_k):
    x, str_ids, _, q = corpus
    query_model = keras.Sequential([keras.layers.Dense(16, use_bias=False, kernel_initializer="identity")])
    index = BruteForce(query_model=query_model, k=3).index(x, str_ids)
    expected = str_ids[numpy_top_k(q, x, 3)[1]].astype(bytes)
    np.testing.assert_array_equal(index(q)[1].numpy(), expected)

    inputs = keras.Input((16,))
    functional = keras.Model(inputs, index(inputs))
    np.testing.assert_array_equal(functional.predict(q, verbose=0)[1], expected)

    class Retriever(keras.Model):
        def __init__(self, topk):
            super().__init__()
            self.topk = topk

        def call(self, inputs):
            return self.topk(inputs, k=2)

    np.testing.assert_array_equal(Retriever(index)(q)[1].numpy(), expected[:, :2])


def test_inside_tf_function(corpus, numpy_top_k):
    x, _, int_ids, q = corpus
    index = BruteForce(k=3).index(x, int_ids)
    serve = tf.function(lambda queries: index(queries))
    np.testing.assert_array_equal(serve(tf.constant(q))[1].numpy(), int_ids[numpy_top_k(q, x, 3)[1]])


def test_get_config_round_trip():
    layer = BruteForce(k=7, name="bf")
    clone = BruteForce.from_config(layer.get_config())
    assert clone.k == 7 and clone.name == "bf"
    with_model = BruteForce(query_model=keras.layers.Dense(4), k=2)
    clone = BruteForce.from_config(with_model.get_config())
    assert isinstance(clone.query_model, keras.layers.Dense) and clone.k == 2


def test_errors(corpus):
    x, str_ids, _, q = corpus
    with pytest.raises(ValueError, match=r"call index\(\) or index_from_dataset\(\) first"):
        BruteForce()(q)
    with pytest.raises(ValueError, match=r"call index\(\) or index_from_dataset\(\) first"):
        BruteForce().query_with_exclusions(q, [["a"]] * len(q))
    with pytest.raises(ValueError, match="same number of rows. Got 1000 candidate rows and 999"):
        BruteForce().index(x, str_ids[:-1])
    with pytest.raises(ValueError, match=r"must be 2D `\[num_candidates, dim\]`. Got shape \(1000,\)"):
        BruteForce().index(x[:, 0])
    with pytest.raises(ValueError, match="identifiers tensor must be 1D"):
        BruteForce().index(x, str_ids[:, None])
    index = BruteForce().index(x)
    with pytest.raises(ValueError, match="Queries must be of rank 2"):
        index(q[None])
    with pytest.raises(ValueError, match="candidates' dimension 16"):
        index(q[:, :3])
    with pytest.raises(ValueError, match=r"`k` parameter must be at most .* \(1000\). Got 1001"):
        index(q, k=1001)
    with pytest.raises(ValueError, match=r"`k` parameter must be an int in \[1, inf\). Got 0"):
        BruteForce(k=0)
    with pytest.raises(TypeError, match="`exclusions` dtype must match"):
        BruteForce().index(x, str_ids).query_with_exclusions(q, np.zeros((len(q), 1), np.int64))


def test_reindex_same_shape_updates_traced_functions():
    index = BruteForce(k=1).index(np.eye(3, dtype="float32"), np.array([b"a", b"b", b"c"]))
    search = tf.function(lambda q: index(q))
    query = np.array([[1.0, 0.0, 0.0]], "float32")
    assert search(query)[1].numpy().tolist() == [[b"a"]]
    index.index(np.eye(3, dtype="float32")[::-1].copy(), np.array([b"x", b"y", b"z"]))
    assert search(query)[1].numpy().tolist() == [[b"z"]]  # the traced function reads the new index
