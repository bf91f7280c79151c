"""Numeric: a list of finite numbers (may be empty), normalised with the training data's mean/variance.

JSON: a finite number or a list of them (booleans refused) -> `list[float]`. Example: float_list
(int64_list accepted by the Python reader; negatives: flat, with `.lengths`). Batch: tf.float32
`[B, L]`, padded with NaN. Encoder: `features.NumericEncoder`.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="age", side="query", feature_type="Numeric")
>>> NUMERIC.column(spec, [[1.0, 2.0], []]).tolist()
[[1.0, 2.0], [nan, nan]]
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tfrs_twotower.feature_types.base import NAN
from tfrs_twotower.feature_types.lists import ListFeatureType
from tfrs_twotower.feature_types.values import check_numbers


class NumericType(ListFeatureType):
    name = "Numeric"
    config_keys: dict[str, bool] = {}
    value_dtype = tf.float32
    pad_value = NAN  # NaN pads lists: "no value"; real NaN values are refused

    def expected(self, spec) -> str:
        return "a finite number or a list of finite numbers (Numeric)"

    def checker(self, spec) -> Callable[[Any], Any]:
        return check_numbers

    def invalid_elements(self, spec, flat_values: tf.Tensor) -> tf.Tensor:
        return tf.logical_not(tf.math.is_finite(flat_values))

    def make_encoder(self, spec, numeric_stats=None, vocabulary=None):
        from tfrs_twotower.features.numeric import NumericEncoder

        mean, variance = numeric_stats if numeric_stats is not None else (None, None)
        return NumericEncoder(mean=mean, variance=variance, name=spec.name)


NUMERIC = NumericType()
