"""Text: a list of strings (may be empty), encoded by a frozen text encoder (`embedding_module`).

JSON: a string or a list of strings -> `list[str]`. Example: bytes_list (negatives: flat, with
`.lengths`). Batch: tf.string `[B, L]`, padded with `""`. Encoder: `features.TextFeatureEncoder`.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="title", side="candidate", feature_type="Text")
>>> TEXT.checker(spec)("a title"), TEXT.signature(spec).shape
(['a title'], TensorShape([None, None]))
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tfrs_twotower.feature_types.lists import ListFeatureType
from tfrs_twotower.feature_types.values import check_strings


class TextType(ListFeatureType):
    name = "Text"
    config_keys = {"embedding_module": False}
    value_dtype = tf.string
    pad_value = ""

    def expected(self, spec) -> str:
        return "a string or a list of strings (Text)"

    def checker(self, spec) -> Callable[[Any], Any]:
        return check_strings

    def invalid_elements(self, spec, flat_values: tf.Tensor) -> tf.Tensor:
        return tf.zeros_like(flat_values, dtype=tf.bool)

    def make_encoder(self, spec, numeric_stats=None, vocabulary=None):
        from tfrs_twotower.features.text import TextFeatureEncoder

        return TextFeatureEncoder(spec.embedding_module, name=spec.name)


TEXT = TextType()
