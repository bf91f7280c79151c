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

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.schema import FeatureSpec


def feature_signature(spec: FeatureSpec, extra_dims: int = 0) -> tf.TensorSpec:
    """The `tf.TensorSpec` of `spec`'s batched tensor; `extra_dims=1` adds the negatives' K axis."""
    return feature_type_of(spec).signature(spec, extra_dims)


def side_signature(specs: Sequence[FeatureSpec], extra_dims: int = 0) -> dict[str, tf.TensorSpec]:
    return {s.name: feature_signature(s, extra_dims) for s in specs}


def feature_column(spec: FeatureSpec, values: list) -> np.ndarray:
    """The batched numpy array of one feature from its normalised values (one per row)."""
    return feature_type_of(spec).column(spec, values)


def side_columns(specs: Sequence[FeatureSpec], docs: list[dict]) -> dict[str, np.ndarray]:
    """`{name: array}` for one side's features of `docs` (normalised feature dicts)."""
    return {s.name: feature_column(s, [d[s.name] for d in docs]) for s in specs}


def _empty_value(spec: FeatureSpec) -> Any:
    return feature_type_of(spec).empty_value(spec)


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
