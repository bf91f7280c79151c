"""Id features: a trained embedding per id value, from a vocabulary (unknown ids share one learned row)
or, as Vertex AI does, per hash bucket of `num_buckets`."""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.features.embedding import RowEmbedding

OOV_INDEX = 0  # the row of every id outside the vocabulary


def default_embedding_dim(cardinality: int) -> int:
    """A rule-of-thumb embedding width for `cardinality` values: 6 * n**0.25, clamped to [8, 64].

    Example:
    >>> default_embedding_dim(10_000)
    60
    """
    return int(min(64, max(8, round(6 * math.pow(cardinality, 0.25)))))


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class IdEncoder(keras.layers.Layer):
    """Looks up a trained embedding per string id: by vocabulary, or by hash bucket.

    With a `vocabulary` (what `train` builds from the ids seen at least `--id_min_count` times in the
    training data), each listed id has its own row and every other id (unseen, or too rare to learn)
    maps to one shared row, `OOV_INDEX` 0, trained on the rare ids of the training data: an unknown id
    always gets the same, learned embedding. Without one, ids hash into `num_buckets` buckets (Vertex
    AI's behaviour: an unseen id lands in some trained id's bucket).

    Args:
      num_buckets: the hash bucket count (the schema's `num_buckets`), >= 1.
      embedding_dim: the embedding width; None picks `default_embedding_dim(num_buckets)`.
      vocabulary: the known ids (distinct strings), or None to hash. Kept as a plain list in
        `self.vocabulary` (and in `get_config()`); an empty list maps every id to the unknown row.

    Call arguments:
      ids: tf.string `[B]` (or `[B, 1]`).

    Returns:
      float32 `[B, embedding_dim]`.

    Example:
    >>> encoder = IdEncoder(num_buckets=100, embedding_dim=4)
    >>> encoder(tf.constant(["user_1", "user_2"])).shape
    TensorShape([2, 4])
    >>> known = IdEncoder(num_buckets=100, embedding_dim=4, vocabulary=["user_1"])
    >>> out = known(tf.constant(["user_1", "new_a", "new_b"])).numpy()
    >>> bool((out[1] == out[2]).all()), bool((out[0] == out[1]).all())
    (True, False)
    """

    def __init__(
        self,
        num_buckets: int,
        embedding_dim: int | None = None,
        vocabulary: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_buckets, int) or num_buckets < 1:
            raise ValueError(f"The `num_buckets` parameter must be an int >= 1. Got {num_buckets!r} instead.")
        self.num_buckets = num_buckets
        self.embedding_dim = embedding_dim or default_embedding_dim(num_buckets)
        self.supports_jit = False
        # Held outside Keras' attribute tracking (which would wrap and walk a million-entry list).
        values = None if vocabulary is None else _check_vocabulary(vocabulary)
        self._vocabulary = None if values is None else np.array(values, dtype=object)
        if values is None:
            self.hashing = keras.layers.Hashing(num_bins=num_buckets, name="hashing")
            rows = num_buckets
        else:
            self.lookup = (
                keras.layers.StringLookup(
                    vocabulary=values, num_oov_indices=1, mask_token=None, name="lookup"
                )
                if values
                else None  # StringLookup refuses an empty vocabulary: every id is unknown
            )
            rows = len(values) + 1
        self.embedding = RowEmbedding(rows, self.embedding_dim, name="embedding")

    @property
    def vocabulary(self) -> list[str] | None:
        """The known ids as a plain list (table row `i + 1` is `vocabulary[i]`); None when hashing."""
        return None if self._vocabulary is None else self._vocabulary.tolist()

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
        if self._vocabulary is None:
            return self.embedding(self.hashing(ids))
        if self.lookup is None:
            return self.embedding(tf.fill(tf.shape(ids), OOV_INDEX))
        return self.embedding(self.lookup(ids))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "num_buckets": self.num_buckets,
            "embedding_dim": self.embedding_dim,
            "vocabulary": self.vocabulary,
        }


def _check_vocabulary(vocabulary) -> list[str]:
    values = list(vocabulary) if not isinstance(vocabulary, (str, bytes)) else None
    if values is None or not all(isinstance(v, str) for v in values):
        raise ValueError(
            f"The `vocabulary` parameter must be a list of strings (or None to hash). Got {vocabulary!r:.80}."
        )
    if len(set(values)) != len(values):
        raise ValueError("The `vocabulary` parameter must not repeat a value.")
    return values
