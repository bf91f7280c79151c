"""`RowSparseAdagrad`: Keras's Adagrad that updates only the looked-up rows of an embedding table.

Keras 3's Adagrad squares an embedding's `tf.IndexedSlices` gradient as a dense tensor, so every step
rewrites the whole table and its accumulator: O(num_buckets) per step (a batch-256 step of an id model: 0.5
ms at 2,000 buckets, 12 ms at 200,000; with this optimizer and `features.RowEmbedding`, 0.28 ms). Keras 2's
optimizers, which TFRS uses, update the looked-up rows only. This one does too, with the same arithmetic: a
row that was not looked up has a zero gradient, which leaves both its accumulator and its value unchanged
under Adagrad, so the results equal `keras.optimizers.Adagrad`'s given the dense gradient. A row looked up
several times in a batch gets its summed gradient squared, as in Keras 2 (TFRS) and textbook Adagrad; Keras
3's Adagrad given the `IndexedSlices` squares each occurrence instead (a smaller accumulator for repeated
rows). Dense gradients take Keras's own update. `train` uses it for `optimizer="adagrad"`.

Example:
>>> import numpy as np, tensorflow as tf
>>> table = keras.Variable(np.ones((4, 2), "float32"))
>>> optimizer = RowSparseAdagrad(learning_rate=0.1)
>>> _ = optimizer.apply_gradients([(tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 1])), table)])
>>> [round(float(v), 4) for v in table.numpy()[:, 0]]  # only row 1 moved: 1 - 0.1 * 2 / sqrt(0.1 + 4)
[1.0, 0.9012, 1.0, 1.0]
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class RowSparseAdagrad(keras.optimizers.Adagrad):
    """`keras.optimizers.Adagrad` (same arguments and variables; its results on the dense gradient) with
    row-sparse updates of `tf.IndexedSlices` gradients; see the module docstring."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, variable.dtype), positions, tf.shape(rows)[0]
        )
        accumulator = self._accumulators[self._get_variable_index(variable)]
        stored = accumulator.value if isinstance(accumulator, keras.Variable) else accumulator
        accumulated = tf.gather(stored, rows) + tf.square(values)
        self.assign(accumulator, tf.IndexedSlices(accumulated, rows))
        step = tf.cast(learning_rate, variable.dtype) * values / tf.sqrt(accumulated + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(step, rows))
