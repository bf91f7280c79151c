"""Normalised records -> columnar numpy batches in the model-input format (docs/architecture.md).

| type | dtype | shape | padding |
|---|---|---|---|
| Id | tf.string | `[B]` | - |
| Categorical, Text | tf.string | `[B, L]` | `""` |
| Numeric | tf.float32 | `[B, L]` | `NaN` |
| Vector | tf.float32 | `[B, length]` | - |

`L` is the longest list among the rows batched together (at least 0). Explicit negatives add a `K` axis
after `B` (`[B, K]`, `[B, K, L]`, `[B, K, length]`); rows with fewer than K negatives are padded with
`""` (Id, Categorical, Text), `NaN` (Numeric) and `0.0` (Vector), and `negative_mask` `[B, K]` (bool)
is True for the real ones.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Numeric"}}})
>>> side_columns(schema.candidate, [{"c": [1.0, 2.0]}, {"c": []}])["c"].tolist()
[[1.0, 2.0], [nan, nan]]
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.schema import FeatureSpec

_NAN = float("nan")


def feature_signature(spec: FeatureSpec, extra_dims: int = 0) -> tf.TensorSpec:
    """The `tf.TensorSpec` of `spec`'s batched tensor; `extra_dims=1` adds the negatives' K axis."""
    lead = [None] * (1 + extra_dims)
    if spec.feature_type == "Id":
        return tf.TensorSpec(lead, tf.string)
    if spec.feature_type == "Vector":
        return tf.TensorSpec([*lead, spec.length], tf.float32)
    dtype = tf.float32 if spec.feature_type == "Numeric" else tf.string
    return tf.TensorSpec([*lead, None], dtype)


def side_signature(specs: Sequence[FeatureSpec], extra_dims: int = 0) -> dict[str, tf.TensorSpec]:
    return {s.name: feature_signature(s, extra_dims) for s in specs}


def _padded(lists: list[list], pad: Any, dtype) -> np.ndarray:
    width = max(map(len, lists), default=0)
    if width == 1 and all(len(v) == 1 for v in lists):
        flat = list(itertools.chain.from_iterable(lists))
    else:
        padding = [pad] * width
        flat = list(itertools.chain.from_iterable(v + padding[len(v) :] for v in lists))
    return np.array(flat, dtype=dtype).reshape(len(lists), width)


def feature_column(spec: FeatureSpec, values: list) -> np.ndarray:
    """The batched numpy array of one feature from its normalised values (one per row)."""
    kind = spec.feature_type
    if kind == "Id":
        return np.array(values, dtype=object).reshape(len(values))
    if kind == "Vector":
        return np.array(values, dtype=np.float32).reshape(len(values), spec.length)
    if kind == "Numeric":
        return _padded(values, _NAN, np.float32)
    return _padded(values, "", object)


def side_columns(specs: Sequence[FeatureSpec], docs: list[dict]) -> dict[str, np.ndarray]:
    """`{name: array}` for one side's features of `docs` (normalised feature dicts)."""
    return {s.name: feature_column(s, [d[s.name] for d in docs]) for s in specs}


def _empty_value(spec: FeatureSpec) -> Any:
    if spec.feature_type == "Id":
        return ""
    if spec.feature_type == "Vector":
        return [0.0] * spec.length
    return []


def negative_columns(
    specs: Sequence[FeatureSpec], negatives: list[list[dict]]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`({name: [B, K, ...] array}, mask [B, K])` for each row's list of negative candidate documents."""
    rows = len(negatives)
    k = max(map(len, negatives), default=0)
    mask = np.zeros((rows, k), dtype=bool)
    for i, negs in enumerate(negatives):
        mask[i, : len(negs)] = True
    columns = {}
    for spec in specs:
        empty = _empty_value(spec)
        values = []
        for negs in negatives:
            values.extend(n[spec.name] for n in negs)
            values.extend([empty] * (k - len(negs)))
        column = feature_column(spec, values)
        columns[spec.name] = column.reshape(rows, k, *column.shape[1:])
    return columns, mask
