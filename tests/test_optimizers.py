"""`RowSparseAdagrad` gives Keras Adagrad's results on the dense gradient while touching only the
looked-up rows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features.embedding import RowEmbedding
from tfrs_twotower.optimizers import RowSparseAdagrad
from tfrs_twotower.training import trainer
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.trainer import make_optimizer


def _train(optimizer, steps=6, densify=False):
    """An embedding (sparse gradient, duplicate ids in each batch) feeding a Dense layer (dense gradient)."""
    keras.utils.set_random_seed(0)
    table, dense = RowEmbedding(50, 4, name="table"), keras.layers.Dense(1, name="dense")
    table.build((None,))
    dense.build((None, 4))
    variables = table.trainable_variables + dense.trainable_variables
    rng = np.random.default_rng(0)

    @tf.function
    def step(ids, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(dense(table(ids))[:, 0] - targets))
        grads = tape.gradient(loss, variables)
        applied = [tf.convert_to_tensor(g) for g in grads] if densify else grads
        optimizer.apply_gradients(zip(applied, variables, strict=True))
        return grads[0]

    for _ in range(steps):
        ids, targets = rng.integers(0, 20, 32), rng.standard_normal(32).astype("float32")
        gradient = step(tf.constant(ids), tf.constant(targets))
    assert isinstance(gradient, tf.IndexedSlices)
    return [v.numpy() for v in variables], optimizer


def test_same_weights_as_keras_adagrad_on_the_dense_gradient():
    # Each batch repeats ids: the summed gradient of a row is squared, as with a dense gradient (and in
    # Keras 2 / TFRS). Keras 3's Adagrad given the IndexedSlices squares each occurrence instead.
    ours, optimizer = _train(RowSparseAdagrad(learning_rate=0.1))
    keras_weights, keras_optimizer = _train(keras.optimizers.Adagrad(learning_rate=0.1), densify=True)
    for got, want in zip(ours, keras_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the same optimizer variables (checkpoints stay interchangeable), equal values
    assert [v.path.split("/", 1)[1] for v in optimizer.variables] == [
        v.path.split("/", 1)[1] for v in keras_optimizer.variables
    ]
    for got, want in zip(optimizer.variables, keras_optimizer.variables, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_rows_never_looked_up_keep_their_values_and_accumulators():
    (table, *_), optimizer = _train(RowSparseAdagrad(learning_rate=0.1, initial_accumulator_value=0.5))
    keras.utils.set_random_seed(0)
    untouched = RowEmbedding(50, 4, name="table")
    untouched.build((None,))
    np.testing.assert_array_equal(table[20:], untouched.embeddings.numpy()[20:])  # ids were drawn < 20
    accumulator = optimizer.variables[2].numpy()
    assert accumulator.shape == (50, 4) and np.all(accumulator[20:] == 0.5) and np.all(accumulator[:20] > 0.5)


def test_duplicate_rows_are_summed_before_squaring():
    table = keras.Variable(np.ones((4, 2), "float32"))
    optimizer = RowSparseAdagrad(learning_rate=0.1)
    optimizer.apply_gradients([(tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 1])), table)])
    np.testing.assert_allclose(optimizer.variables[2].numpy()[:, 0], [0.1, 4.1, 0.1, 0.1])
    np.testing.assert_allclose(table.numpy()[:, 0], [1, 1 - 0.2 / np.sqrt(4.1), 1, 1], rtol=1e-6)


def test_make_optimizer_picks_it_for_adagrad_and_keeps_the_others():
    for name in ("adagrad", "Adagrad"):
        optimizer = make_optimizer(TrainingConfig(optimizer=name, learning_rate=0.05))
        # the class make_optimizer uses (pytest's importlib mode may load a doctested module twice)
        assert isinstance(optimizer, trainer.RowSparseAdagrad)
        assert float(optimizer.learning_rate) == pytest.approx(0.05)
    assert type(make_optimizer(TrainingConfig(optimizer="adam"))) is keras.optimizers.Adam
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer(TrainingConfig(optimizer="adagrad", momentum=0.9))


def test_serializes_as_itself():
    optimizer = RowSparseAdagrad(learning_rate=0.2, epsilon=1e-6)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, RowSparseAdagrad) and restored.epsilon == 1e-6
