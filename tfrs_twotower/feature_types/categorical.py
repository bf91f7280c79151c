"""Categorical: a list of values from the schema's `vocab` (may be empty), embedded and mean-pooled.

JSON: a string or a list of strings -> `list[str]`. Example: bytes_list (negatives: flat, with
`.lengths`). Batch: tf.string `[B, L]`, padded with `""`. Encoder: `features.CategoricalEncoder`.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="genres", side="candidate", feature_type="Categorical", vocab=("a", "b"))
>>> CATEGORICAL.column(spec, [["a", "b"], ["a"]]).tolist()
[['a', 'b'], ['a', '']]
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tfrs_twotower.feature_types.lists import ListFeatureType
from tfrs_twotower.feature_types.values import check_strings


class CategoricalType(ListFeatureType):
    name = "Categorical"
    config_keys = {"vocab": True, "embedding_dim": False}
    value_dtype = tf.string
    pad_value = ""

    def expected(self, spec) -> str:
        return "a string or a list of strings (Categorical)"

    def checker(self, spec) -> Callable[[Any], Any]:
        return check_strings

    def invalid_elements(self, spec, flat_values: tf.Tensor) -> tf.Tensor:
        return tf.zeros_like(flat_values, dtype=tf.bool)

    def make_encoder(self, spec, numeric_stats=None, vocabulary=None):
        from tfrs_twotower.features.categorical import CategoricalEncoder

        return CategoricalEncoder(spec.vocab, spec.embedding_dim, name=spec.name)

    def embedding_table(self, spec) -> tuple[int, int] | None:
        from tfrs_twotower.features.id import default_embedding_dim

        rows = len(spec.vocab) + 2  # the vocabulary, an unknown-value row and the padding row
        return rows, int(spec.embedding_dim or default_embedding_dim(rows - 1))


CATEGORICAL = CategoricalType()
