"""`RowEmbedding` is Keras's Embedding with a row gather from the variable."""

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.features.embedding import RowEmbedding


def test_same_outputs_and_gradients_as_keras_embedding():
    ours, theirs = RowEmbedding(30, 5), keras.layers.Embedding(30, 5)
    ours.build((None,))
    theirs.build((None,))
    theirs.set_weights(ours.get_weights())
    ids = tf.constant([[3, 3], [29, 0]], tf.int64)
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(ids) ** 2)
        grads.append(tape.gradient(loss, layer.trainable_variables)[0])
    np.testing.assert_array_equal(ours(ids).numpy(), theirs(ids).numpy())
    assert ours(ids).shape == (2, 2, 5)
    assert isinstance(grads[0], tf.IndexedSlices)
    np.testing.assert_allclose(tf.convert_to_tensor(grads[0]), tf.convert_to_tensor(grads[1]))
    np.testing.assert_array_equal(ours(tf.constant([1.0, 2.0])).numpy(), theirs(tf.constant([1, 2])).numpy())


def test_config_round_trip_and_variable_name():
    layer = RowEmbedding(7, 2, name="emb")
    layer.build((None,))
    restored = RowEmbedding.from_config(layer.get_config())
    assert (restored.input_dim, restored.output_dim) == (7, 2)
    assert layer.embeddings.path == "emb/embeddings"
