"""A learned per-candidate score inside the two-tower contract: the candidate tower appends a scalar `b_i`
looked up by the candidate's Id, the query tower appends the constant 1, so `dot(q, c) = q'.c' + b_i`.

Why: with `l2_normalize` the logits are cosines over a temperature, bounded by `1 / T`; a candidate's
popularity (a prior no query feature explains) then competes with the personal signal for that range.
The bias gives it its own term. Exported encoders, brute-force and ScaNN indexes serve it unchanged:
it is one more embedding column.

Example:
>>> bias = CandidateBias("item", num_buckets=10, vocabulary=["a", "b"])
>>> x = tf.zeros([2, 3])
>>> bias({"item": tf.constant(["a", "zzz"])}, x).shape
TensorShape([2, 1])
>>> QueryBias()({"user": tf.constant(["u"])}, tf.zeros([1, 3])).numpy().tolist()
[[1.0]]
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfrs_twotower.features.id import IdEncoder


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class CandidateBias(keras.layers.Layer):
    """A trained scalar per candidate Id value (zero at the start), as a `[B, 1]` column.

    Args:
      feature: the candidate Id feature it is keyed by.
      num_buckets: that feature's `num_buckets` (used when hashing).
      vocabulary: that feature's known values (see `IdEncoder`); None hashes.

    Call arguments:
      features: the candidate side's raw features; `x`: the tower's embedding `[B, D]` (unused).
    """

    def __init__(self, feature: str, num_buckets: int, vocabulary: Sequence[str] | None = None, **kwargs):
        kwargs.setdefault("name", "candidate_bias")
        super().__init__(**kwargs)
        self.feature = feature
        self.num_buckets = num_buckets
        self.ids = IdEncoder(num_buckets, 1, vocabulary=vocabulary, name="bias")
        self.ids.embedding.embeddings_initializer = keras.initializers.Zeros()
        self.supports_jit = False

    def build(self, input_shape=None):
        self.ids.build((None,))

    def call(self, features, x=None):
        if self.feature not in features:
            raise KeyError(
                f"The candidate bias needs the candidate Id feature `{self.feature}`; got {sorted(features)}."
            )
        return self.ids(features[self.feature])

    def get_config(self):
        return {
            **super().get_config(),
            "feature": self.feature,
            "num_buckets": self.num_buckets,
            "vocabulary": self.ids.vocabulary,
        }


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class QueryBias(keras.layers.Layer):
    """The query side's partner of `CandidateBias`: a column of ones `[B, 1]`."""

    def call(self, features, x):
        return tf.ones_like(x[:, :1])
