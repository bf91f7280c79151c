import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features import CategoricalEncoder


def test_multi_valued_mean_pooling_and_oov_index():
    encoder = CategoricalEncoder(["Action", "Comedy"], embedding_dim=3)
    out = encoder(tf.constant([["Action", "Comedy", ""], ["Drama", "", ""], ["", "", ""]])).numpy()
    table = encoder.embedding.embeddings.numpy()  # rows: 0 mask, 1 OOV, 2 Action, 3 Comedy
    np.testing.assert_allclose(out[0], (table[2] + table[3]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[1], table[1], rtol=1e-6)  # out-of-vocabulary kept as its own value
    np.testing.assert_array_equal(out[2], np.zeros(3))  # empty list -> zeros


def test_single_values_as_rank_1():
    encoder = CategoricalEncoder(["x", "y"], embedding_dim=2)
    np.testing.assert_allclose(encoder(tf.constant(["y"])).numpy(), encoder(tf.constant([["y"]])).numpy())


@pytest.mark.parametrize(
    "vocab, message",
    [([], "non-empty list of strings"), ([1, 2], "non-empty list of strings"), (["a", ""], "empty string")],
)
def test_rejects_bad_vocab(vocab, message):
    with pytest.raises(ValueError, match=message):
        CategoricalEncoder(vocab)


def test_config_round_trip_and_tf_data():
    encoder = CategoricalEncoder(["a", "b"], embedding_dim=4, name="genre")
    clone = CategoricalEncoder.from_config(encoder.get_config())
    assert clone.vocab == ["a", "b"] and clone.output_dim == 4
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([["a", ""], ["b", "a"]])).batch(2).map(encoder)
    assert next(iter(ds)).shape == (2, 4)
