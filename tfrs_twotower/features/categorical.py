"""Categorical features: values from a fixed vocabulary, out-of-vocabulary kept as its own value."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfrs_twotower.features._pooling import as_matrix, masked_mean
from tfrs_twotower.features.embedding import RowEmbedding
from tfrs_twotower.features.id import default_embedding_dim


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class CategoricalEncoder(keras.layers.Layer):
    """Looks up each value in `vocab` (one extra index for out-of-vocabulary values), embeds it, and
    mean-pools a multi-valued list to one vector.

    The empty string marks an absent value (it pads lists in a batch); a list with no values gives a
    zero vector.

    Args:
      vocab: the known values, non-empty, no duplicates, no empty string.
      embedding_dim: the embedding width; None picks `default_embedding_dim(len(vocab) + 1)`.

    Call arguments:
      values: tf.string `[B, L]` padded with "" (or `[B]` for one value each).

    Returns:
      float32 `[B, embedding_dim]`.

    Example:
    >>> encoder = CategoricalEncoder(["Action", "Comedy"], embedding_dim=3)
    >>> encoder(tf.constant([["Action", "Comedy"], ["Drama", ""]])).shape
    TensorShape([2, 3])
    """

    def __init__(self, vocab: Sequence[str], embedding_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        vocab = list(vocab)
        if not vocab or not all(isinstance(v, str) for v in vocab):
            raise ValueError(
                f"The `vocab` parameter must be a non-empty list of strings. Got {vocab!r} instead."
            )
        if "" in vocab:
            raise ValueError(
                "The `vocab` parameter must not contain the empty string: it marks absent values."
            )
        self.vocab = vocab
        self.embedding_dim = embedding_dim or default_embedding_dim(len(vocab) + 1)
        self.supports_jit = False
        self.lookup = keras.layers.StringLookup(
            vocabulary=vocab, mask_token="", num_oov_indices=1, name="lookup"
        )
        # Index 0 is the mask (absent), 1 the out-of-vocabulary value, 2.. the vocabulary.
        self.embedding = RowEmbedding(len(vocab) + 2, self.embedding_dim, name="embedding")

    @property
    def output_dim(self) -> int:
        return self.embedding_dim

    def build(self, input_shape=None):
        # The table is made here, not on the first call, so a reloaded `.keras` model has it to load into.
        self.embedding.build((None, None))

    def call(self, values):
        indices = self.lookup(as_matrix(values))
        return masked_mean(self.embedding(indices), tf.not_equal(indices, 0))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embedding_dim)

    def get_config(self):
        return {**super().get_config(), "vocab": list(self.vocab), "embedding_dim": self.embedding_dim}
