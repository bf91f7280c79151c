"""Id features: a string id hashed into `num_buckets` buckets, each with a trained embedding."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfrs_twotower.features.embedding import RowEmbedding


def default_embedding_dim(cardinality: int) -> int:
    """A rule-of-thumb embedding width for `cardinality` values: 6 * n**0.25, clamped to [8, 64].

    Example:
    >>> default_embedding_dim(10_000)
    60
    """
    return int(min(64, max(8, round(6 * math.pow(cardinality, 0.25)))))


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class IdEncoder(keras.layers.Layer):
    """Hashes string ids into `num_buckets` buckets and looks up a trained embedding per bucket.

    Args:
      num_buckets: the hash bucket count (the schema's `num_buckets`), >= 1.
      embedding_dim: the embedding width; None picks `default_embedding_dim(num_buckets)`.

    Call arguments:
      ids: tf.string `[B]` (or `[B, 1]`).

    Returns:
      float32 `[B, embedding_dim]`.

    Example:
    >>> encoder = IdEncoder(num_buckets=100, embedding_dim=4)
    >>> encoder(tf.constant(["user_1", "user_2"])).shape
    TensorShape([2, 4])
    """

    def __init__(self, num_buckets: int, embedding_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_buckets, int) or num_buckets < 1:
            raise ValueError(f"The `num_buckets` parameter must be an int >= 1. Got {num_buckets!r} instead.")
        self.num_buckets = num_buckets
        self.embedding_dim = embedding_dim or default_embedding_dim(num_buckets)
        self.supports_jit = False
        self.hashing = keras.layers.Hashing(num_bins=num_buckets, name="hashing")
        self.embedding = RowEmbedding(num_buckets, self.embedding_dim, name="embedding")

    @property
    def output_dim(self) -> int:
        return self.embedding_dim

    def build(self, input_shape=None):
        # The table is made here, not on the first call, so a reloaded `.keras` model has it to load into.
        self.embedding.build((None,))

    def call(self, ids):
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank == 2:
            ids = ids[:, 0]
        return self.embedding(self.hashing(ids))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embedding_dim)

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets, "embedding_dim": self.embedding_dim}
