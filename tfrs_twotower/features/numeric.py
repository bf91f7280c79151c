"""Numeric features: a number (or a list of numbers, mean-pooled), normalised with training statistics."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.features._pooling import as_matrix


def pool_numeric(values) -> tf.Tensor:
    """Mean of each row's non-NaN values: [B, L] (NaN-padded) -> [B]; NaN where a row has none."""
    values = tf.cast(as_matrix(values), tf.float32)
    present = tf.logical_not(tf.math.is_nan(values))
    total = tf.reduce_sum(tf.where(present, values, 0.0), axis=-1)
    count = tf.reduce_sum(tf.cast(present, tf.float32), axis=-1)
    return tf.where(count > 0, total / tf.maximum(count, 1.0), np.nan)


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class NumericEncoder(keras.layers.Layer):
    """Mean-pools a list of numbers to one value, standardises it and adds a "missing" indicator.

    A row with no value (an empty list: all NaN padding) encodes as `[0, 1]`: the mean after
    standardisation, with the missing indicator set. Otherwise `[(x - mean) / std, 0]`.

    Args:
      mean, variance: the training statistics; None until `adapt()` sets them (then 0 and 1).

    Call arguments:
      values: float32 `[B, L]` padded with NaN (or `[B]`).

    Returns:
      float32 `[B, 2]`.

    Example:
    >>> encoder = NumericEncoder(mean=10.0, variance=4.0)
    >>> encoder(tf.constant([[12.0, np.nan], [np.nan, np.nan]])).numpy().tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, mean: float | None = None, variance: float | None = None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("mean", mean), ("variance", variance)):
            if value is not None and not np.isfinite(value):
                raise ValueError(f"The `{name}` parameter must be a finite number. Got {value!r} instead.")
        if variance is not None and variance < 0:
            raise ValueError(f"The `variance` parameter must be >= 0. Got {variance!r} instead.")
        self.mean = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(0.0 if mean is None else float(mean)),
            trainable=False,
            name="mean",
        )
        self.variance = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(1.0 if variance is None else float(variance)),
            trainable=False,
            name="variance",
        )

    def adapt(self, data) -> None:
        """Sets mean and variance from `data`: an array, or a `tf.data` dataset of [B] or [B, L] batches."""
        if isinstance(data, tf.data.Dataset):
            pooled = np.concatenate([pool_numeric(batch).numpy() for batch in data])
        elif isinstance(data, (np.ndarray, list, tuple, tf.Tensor)):
            pooled = pool_numeric(tf.constant(np.asarray(data, dtype=np.float32))).numpy()
        else:
            raise TypeError(
                "`adapt()` accepts a numpy array, a list, a tensor or a batched tf.data.Dataset. "
                f"Got {type(data).__name__} instead."
            )
        pooled = pooled[~np.isnan(pooled)]
        self.mean.assign(float(pooled.mean()) if pooled.size else 0.0)
        self.variance.assign(float(pooled.var()) if pooled.size else 1.0)

    @property
    def output_dim(self) -> int:
        return 2

    def call(self, values):
        pooled = pool_numeric(values)
        missing = tf.math.is_nan(pooled)
        std = tf.sqrt(tf.maximum(tf.cast(self.variance, tf.float32), 1e-12))
        standardised = tf.where(missing, 0.0, (pooled - tf.cast(self.mean, tf.float32)) / std)
        return tf.stack([standardised, tf.cast(missing, tf.float32)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)

    def get_config(self):
        return {
            **super().get_config(),
            "mean": float(keras.ops.convert_to_numpy(self.mean)),
            "variance": float(keras.ops.convert_to_numpy(self.variance)),
        }
