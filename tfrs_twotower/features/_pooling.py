"""Masked mean pooling shared by the multi-valued feature encoders."""

import tensorflow as tf


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` [B, L, D] over the positions where `mask` [B, L] is true; zeros where none is.

    Example:
    >>> masked_mean(tf.ones([1, 2, 3]), tf.constant([[True, False]])).shape
    TensorShape([1, 3])
    """
    weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(values * weights, axis=-2)
    count = tf.reduce_sum(weights, axis=-2)
    return tf.math.divide_no_nan(total, count)


def as_matrix(values: tf.Tensor) -> tf.Tensor:
    """A multi-valued feature as [B, L]: a [B] batch of single values becomes [B, 1]."""
    values = tf.convert_to_tensor(values)
    if values.shape.rank == 1:
        return values[:, tf.newaxis]
    return values
