"""Per-query exclusions in serving: the reserved name, and reading them from query documents.

The exported retrieval SavedModels (`index/<flavour>/`) have a second signature, `serving_exclude`,
that takes the query features plus one more input: the candidate ids to leave out of each query's
results, a string `[batch, E]` tensor padded with "". A query JSON document (`tfrs-twotower query`,
`Retriever`) carries its exclusions under the same reserved key, next to its features:
`{"user_id": "u1", ..., "exclude": ["m1", "m7"]}`.

The name is `exclude` unless the query side has a feature of that name: then it is `_exclude` (one more
leading underscore until it is free), so a feature is never read as exclusions, nor exclusions as a
feature. `exclusion_name(schema)` gives it; `index/index.json` records it as `exclude_input`.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"exclude": {"feature_type": "Text"}},
...                       "candidate": {"m": {"feature_type": "Id", "config": {"num_buckets": 9}}}})
>>> exclusion_name(schema)
'_exclude'
>>> split_exclusions({"exclude": "a b", "_exclude": ["m1"]}, "_exclude", Location("<doc>", 0, 1))
({'exclude': 'a b'}, ['m1'])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tfrs_twotower.data.records import BadRecordError, Location, describe
from tfrs_twotower.schema import InputSchema

SIGNATURE = "serving_exclude"
RESERVED = "exclude"


def exclusion_name(schema: InputSchema) -> str:
    """The reserved input/key name of exclusions: `exclude`, or `_exclude`... when a query feature has it."""
    taken = {spec.name for spec in schema.query}
    name = RESERVED
    while name in taken:
        name = "_" + name
    return name


def split_exclusions(obj: Any, name: str, location: Location) -> tuple[Any, list[str]]:
    """`(document without the key, its exclusions)` for a decoded query document (or Vertex instance).

    Raises:
        BadRecordError: when the value is not a string or a list of strings.
    """
    if type(obj) is not dict or name not in obj:
        return obj, []
    obj = dict(obj)
    value = obj.pop(name)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadRecordError(
            location,
            f"expected a candidate id or a list of candidate ids to exclude, got {describe(value)}",
            name,
        )
    return obj, values


def exclusion_matrix(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """One list of ids per query as a `[B, E]` bytes array padded with "" (E >= 1, the signature's form)."""
    width = max([len(row) for row in rows] + [1])
    out = np.full([len(rows), width], b"", dtype=object)
    for i, row in enumerate(rows):
        out[i, : len(row)] = [v.encode("utf-8") if isinstance(v, str) else v for v in row]
    return out
