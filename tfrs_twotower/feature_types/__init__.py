"""The five schema feature types, each owning its value rules, Example form, batch form, serving input
and encoder (see `base.FeatureType`); `feature_type_of(spec)` finds a spec's type.

Example:
>>> from tfrs_twotower.schema import FeatureSpec
>>> feature_type_of(FeatureSpec(name="user", side="query", feature_type="Id", num_buckets=9)) is ID
True
>>> list(REGISTRY)
['Id', 'Categorical', 'Numeric', 'Text', 'Vector']
"""

from __future__ import annotations

from typing import Any

from tfrs_twotower.feature_types.base import FeatureType
from tfrs_twotower.feature_types.categorical import CATEGORICAL, CategoricalType
from tfrs_twotower.feature_types.id import ID, IdType
from tfrs_twotower.feature_types.lists import ListFeatureType
from tfrs_twotower.feature_types.numeric import NUMERIC, NumericType
from tfrs_twotower.feature_types.text import TEXT, TextType
from tfrs_twotower.feature_types.values import InvalidValue, describe
from tfrs_twotower.feature_types.vector import VECTOR, VectorType

# Name -> type, in the order the schema documents them (and its error messages list them).
REGISTRY: dict[str, FeatureType] = {t.name: t for t in (ID, CATEGORICAL, NUMERIC, TEXT, VECTOR)}


def feature_type_of(spec: Any) -> FeatureType:
    """The `FeatureType` of `spec`: a `FeatureSpec`, a schema entry `{"feature_type": ...}` or a name.

    Raises:
      ValueError: for an unknown type name.
    """
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, dict):
        name = spec.get("feature_type")
    else:
        name = spec.feature_type
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown feature type {name!r}; the types are {', '.join(REGISTRY)}.") from None


__all__ = [
    "CATEGORICAL",
    "ID",
    "NUMERIC",
    "REGISTRY",
    "TEXT",
    "VECTOR",
    "CategoricalType",
    "FeatureType",
    "IdType",
    "InvalidValue",
    "ListFeatureType",
    "NumericType",
    "TextType",
    "VectorType",
    "describe",
    "feature_type_of",
]
