"""Vector features: a fixed-length list of floats, passed to the tower as is."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class VectorEncoder(keras.layers.Layer):
    """Passes a `[B, length]` float vector through after checking its length.

    Args:
      length: the vector's length (the schema's `length`), >= 1.

    Call arguments:
      values: float32 `[B, length]`.

    Returns:
      float32 `[B, length]`.

    Raises:
      ValueError: when the input's last dimension is known and differs from `length`.

    Example:
    >>> VectorEncoder(length=3)(tf.ones([2, 3])).shape
    TensorShape([2, 3])
    """

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"The `length` parameter must be an int >= 1. Got {length!r} instead.")
        self.length = length

    @property
    def output_dim(self) -> int:
        return self.length

    def call(self, values):
        values = tf.cast(values, tf.float32)
        last = values.shape[-1]
        if last is not None and last != self.length:
            raise ValueError(
                f"Vector feature `{self.name}` must have length {self.length}; got shape {values.shape}. "
                "Fix the data or the schema's `length`."
            )
        if last is None:
            values = tf.ensure_shape(values, [None, self.length])
        return values

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self):
        return {**super().get_config(), "length": self.length}
