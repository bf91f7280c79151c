"""`ListFeatureType`: the shared form of the types whose value is a list of any length.

Categorical, Text (strings) and Numeric (numbers) values are padded to `[B, L]` with the type's
`pad_value` in batches; their K explicit negatives are stored flat in `negative_<name>`, with the K list
lengths in `negative_<name>.lengths`.

Example:
>>> padded([["a"], []], "", object).tolist()
[['a'], ['']]
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types.base import FeatureType
from tfrs_twotower.feature_types.values import InvalidValue

if TYPE_CHECKING:
    from tfrs_twotower.schema import FeatureSpec


def padded(lists: list[list], pad: Any, dtype) -> np.ndarray:
    """`[len(lists), L]` array of `lists` padded with `pad` to the longest (L, at least 0)."""
    width = max(map(len, lists), default=0)
    if width == 1 and all(len(v) == 1 for v in lists):
        flat = list(itertools.chain.from_iterable(lists))
    else:
        padding = [pad] * width
        flat = list(itertools.chain.from_iterable(v + padding[len(v) :] for v in lists))
    return np.array(flat, dtype=dtype).reshape(len(lists), width)


class ListFeatureType(FeatureType):
    """A type whose value is a list of any length: padded to `[B, L]` with `pad_value` in batches, and
    negatives stored flat with a `.lengths` list (Categorical, Text, Numeric)."""

    pad_value: ClassVar[Any]

    def fixed_length(self, spec: FeatureSpec) -> int | None:
        return None

    def negatives_to_features(self, spec: FeatureSpec, values: list) -> dict[str, tf.train.Feature]:
        sizes = tf.train.Feature(int64_list=tf.train.Int64List(value=[len(v) for v in values]))
        return {"": self.to_feature(spec, [x for v in values for x in v]), ".lengths": sizes}

    def split_negatives(self, spec: FeatureSpec, flat: list, lengths: list | None, key: str) -> list:
        if lengths is None or any(type(n) is not int or n < 0 for n in lengths) or sum(lengths) != len(flat):
            raise InvalidValue(
                f"expected an int64_list of K list lengths summing to {len(flat)} (the values in "
                f"`{key}`), got {lengths}",
                ".lengths",
            )
        parts, start = [], 0
        for n in lengths:
            parts.append(flat[start : start + n])
            start += n
        return parts

    def dense(self, spec: FeatureSpec, values: tf.RaggedTensor) -> tf.Tensor:
        return values.to_tensor(default_value=tf.constant(self.pad_value, self.value_dtype))

    def negative_parse_specs(self, spec: FeatureSpec) -> dict[str, tf.io.RaggedFeature]:
        lengths = tf.io.RaggedFeature(dtype=tf.int64, row_splits_dtype=tf.int64)
        return {"": self.parse_spec(spec), ".lengths": lengths}

    def negative_counts(self, spec: FeatureSpec, values, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        bad = tf.logical_or(
            self.invalid_values(spec, values),
            tf.reduce_any(lengths < 0, axis=1),
        )
        bad = tf.logical_or(bad, tf.not_equal(tf.reduce_sum(lengths, axis=1), values.row_lengths()))
        return lengths.row_lengths(), bad

    def dense_negatives(self, spec: FeatureSpec, values, lengths, k: tf.Tensor) -> tf.Tensor:
        inner = tf.RaggedTensor.from_row_lengths(values.flat_values, lengths.flat_values, validate=False)
        nested = tf.RaggedTensor.from_row_lengths(inner, k, validate=False)
        return nested.to_tensor(default_value=tf.constant(self.pad_value, self.value_dtype))

    def signature(self, spec: FeatureSpec, extra_dims: int = 0) -> tf.TensorSpec:
        return tf.TensorSpec([None] * (1 + extra_dims) + [None], self.value_dtype)

    def column(self, spec: FeatureSpec, values: list) -> np.ndarray:
        return padded(values, self.pad_value, np.float32 if self.float_values else object)

    def empty_value(self, spec: FeatureSpec) -> Any:
        return []
