"""Id: one non-empty string per record (a user, an item), embedded by hash bucket or vocabulary.

JSON: a non-empty string, or a list of exactly one -> `str`. Example: bytes_list of 1 (negatives: one
per negative). Batch: tf.string `[B]`. Encoder: `features.IdEncoder`.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> spec = FeatureSpec(name="user", side="query", feature_type="Id", num_buckets=10)
>>> ID.checker(spec)(["u1"]), ID.column(spec, ["u1", "u2"]).tolist()
('u1', ['u1', 'u2'])
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types.base import FeatureType
from tfrs_twotower.feature_types.values import InvalidValue


def check_id(v: Any) -> str:
    """A non-empty string, or a list of exactly one -> `str`."""
    if type(v) is str and v:
        return v
    if type(v) is list and len(v) == 1 and type(v[0]) is str and v[0]:
        return v[0]
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, str) and v:
        return str(v)
    raise InvalidValue()


class IdType(FeatureType):
    name = "Id"
    config_keys = {"num_buckets": True, "embedding_dim": False}
    value_dtype = tf.string
    identifies = True
    min_embedding_dim = 0  # 0: a key only, not encoded

    def is_encoded(self, spec) -> bool:
        return spec.embedding_dim != 0

    def expected(self, spec) -> str:
        return "a non-empty string or a list of exactly one (Id)"

    def checker(self, spec) -> Callable[[Any], Any]:
        return check_id

    def fixed_length(self, spec) -> int | None:
        return 1

    def negatives_to_features(self, spec, values: list) -> dict[str, tf.train.Feature]:
        ids = [v.encode("utf-8") for v in values]
        return {"": tf.train.Feature(bytes_list=tf.train.BytesList(value=ids))}

    def split_negatives(self, spec, flat: list, lengths: list | None, key: str) -> list:
        return [[v] for v in flat]

    def invalid_elements(self, spec, flat_values: tf.Tensor) -> tf.Tensor:
        return tf.equal(flat_values, "")

    def from_example_values(self, spec, values: np.ndarray) -> Any:
        return values[0].decode("utf-8")

    def from_example_columns(self, spec, values: np.ndarray, splits: np.ndarray, rows: np.ndarray) -> list:
        return [b.decode("utf-8") for b in values[splits[rows]]]

    def dense(self, spec, values: tf.RaggedTensor) -> tf.Tensor:
        return tf.reshape(values.flat_values, [-1])  # valid rows hold one value each

    def negative_counts(self, spec, values, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        return values.row_lengths(), self.invalid_values(spec, values)

    def dense_negatives(self, spec, values, lengths, k: tf.Tensor) -> tf.Tensor:
        return values.to_tensor(default_value="")

    def signature(self, spec, extra_dims: int = 0) -> tf.TensorSpec:
        return tf.TensorSpec([None] * (1 + extra_dims), tf.string)

    def column(self, spec, values: list) -> np.ndarray:
        return np.array(values, dtype=object).reshape(len(values))

    def empty_value(self, spec) -> Any:
        return ""

    def make_encoder(self, spec, numeric_stats=None, vocabulary=None):
        from tfrs_twotower.features.id import IdEncoder

        return IdEncoder(spec.num_buckets, spec.embedding_dim, vocabulary=vocabulary, name=spec.name)

    def embedding_table(self, spec) -> tuple[int, int] | None:
        if spec.embedding_dim == 0:
            return None
        from tfrs_twotower.features.id import default_embedding_dim

        rows = int(spec.num_buckets)
        return rows, int(spec.embedding_dim or default_embedding_dim(rows))


ID = IdType()
