"""Vector: exactly `length` finite numbers per record (a precomputed embedding), used as is.

JSON: a list of exactly `length` finite numbers -> `list[float]`. Example: float_list of `length`
(negatives: the K vectors concatenated). Batch: tf.float32 `[B, length]`. Encoder:
`features.VectorEncoder`.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="v", side="candidate", feature_type="Vector", length=2)
>>> VECTOR.expected(spec), VECTOR.signature(spec).shape
('a list of exactly 2 finite numbers (Vector)', TensorShape([None, 2]))
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types.base import FeatureType
from tfrs_twotower.feature_types.values import InvalidValue, check_numbers


def vector_checker(length: int) -> Callable[[Any], list[float]]:
    """The checker of a list of exactly `length` finite numbers (tuples and arrays too, from Python)."""

    def check(v: Any) -> list[float]:
        if type(v) is not list:
            if isinstance(v, (list, tuple, np.ndarray)) and len(v) == length:
                return check_numbers([x for x in v])
            raise InvalidValue()
        if len(v) != length:
            raise InvalidValue(f" (a list of {len(v)})")
        return check_numbers(v)

    return check


class VectorType(FeatureType):
    name = "Vector"
    config_keys = {"length": True}
    value_dtype = tf.float32

    def expected(self, spec) -> str:
        return f"a list of exactly {spec.length} finite numbers (Vector)"

    def checker(self, spec) -> Callable[[Any], Any]:
        return vector_checker(spec.length)

    def fixed_length(self, spec) -> int | None:
        return spec.length

    def negatives_to_features(self, spec, values: list) -> dict[str, tf.train.Feature]:
        return {"": self.to_feature(spec, [x for v in values for x in v])}

    def split_negatives(self, spec, flat: list, lengths: list | None, key: str) -> list:
        if len(flat) % spec.length:
            raise InvalidValue(f"expected K * {spec.length} floats (Vector), got {len(flat)}")
        return [flat[i : i + spec.length] for i in range(0, len(flat), spec.length)]

    def invalid_elements(self, spec, flat_values: tf.Tensor) -> tf.Tensor:
        return tf.logical_not(tf.math.is_finite(flat_values))

    def dense(self, spec, values: tf.RaggedTensor) -> tf.Tensor:
        return tf.reshape(values.flat_values, [-1, spec.length])  # valid rows hold `length` values

    def negative_counts(self, spec, values, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        count = values.row_lengths()
        bad = tf.logical_or(self.invalid_values(spec, values), tf.not_equal(count % spec.length, 0))
        return count // spec.length, bad

    def dense_negatives(self, spec, values, lengths, k: tf.Tensor) -> tf.Tensor:
        vectors = tf.reshape(values.flat_values, [-1, spec.length])
        nested = tf.RaggedTensor.from_row_lengths(vectors, k, validate=False)
        return nested.to_tensor(default_value=0.0)

    def signature(self, spec, extra_dims: int = 0) -> tf.TensorSpec:
        return tf.TensorSpec([None] * (1 + extra_dims) + [spec.length], tf.float32)

    def column(self, spec, values: list) -> np.ndarray:
        return np.array(values, dtype=np.float32).reshape(len(values), spec.length)

    def empty_value(self, spec) -> Any:
        return [0.0] * spec.length

    def make_encoder(self, spec, numeric_stats=None, vocabulary=None):
        from tfrs_twotower.features.vector import VectorEncoder

        return VectorEncoder(spec.length, name=spec.name)


VECTOR = VectorType()
