"""The input schema: which features each side (query, candidate) has and of what type.

The format is the Vertex AI Two-Tower built-in algorithm's input schema:

```json
{"query": {"user_id": {"feature_type": "Id", "config": {"num_buckets": 1000}}},
 "candidate": {"movie_genres": {"feature_type": "Categorical",
                                "config": {"vocab": ["Action", "Comedy"]}}}}
```

Every problem in a schema is reported at once, each with its JSON path.

Example:
>>> schema = load_schema({"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
...                       "candidate": {"title": {"feature_type": "Text"}}})
>>> [spec.name for spec in schema.query]
['user']
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from typing import Any, Mapping

import tensorflow as tf

from tfrs_twotower.errors import UserError
from tfrs_twotower.feature_types import REGISTRY

SIDES = ("query", "candidate")
# The types and the config keys each accepts (name -> required?: Vertex's keys, plus `embedding_dim`,
# ours and optional) are owned by `tfrs_twotower.feature_types`.
FEATURE_TYPES = tuple(REGISTRY)
_CONFIG_KEYS: dict[str, dict[str, bool]] = {name: dict(t.config_keys) for name, t in REGISTRY.items()}
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class SchemaError(UserError, ValueError):
    """A schema with one or more problems; `problems` lists them, each starting with its JSON path.

    Example:
    >>> try:
    ...     load_schema({"query": {"u": {"feature_type": "Id"}}, "candidate": {}})
    ... except SchemaError as e:
    ...     print(len(e.problems) >= 1, e.problems[0].startswith("query.u"))
    True True
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Invalid input schema {source}: {len(self.problems)} problem(s):\n{lines}\n"
            "See schemas/ for examples and README.md#input-schema for the format."
        )


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One feature of one side.

    Attributes:
      name: the feature's name as in the schema (and in the data).
      side: "query" or "candidate".
      feature_type: one of "Id", "Categorical", "Numeric", "Text", "Vector".
      num_buckets: Id only, the hash bucket count.
      vocab: Categorical only, the known values.
      embedding_module: Text only, the text encoder (None: the default offline preset).
      length: Vector only, the vector's length.
      embedding_dim: Id and Categorical, the embedding width (None: chosen from the bucket/vocab size).
        0 makes an Id feature a key only: it identifies candidates (corpus, metrics, accidental hits,
        frequency estimates) but is not encoded, e.g. for cold-start models of new items.

    Example:
    >>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
    ...                       "candidate": {"v": {"feature_type": "Vector", "config": {"length": 4}}}})
    >>> spec = schema.feature("candidate", "v")
    >>> spec.path, spec.feature_type, spec.length
    ('candidate.v', 'Vector', 4)
    """

    name: str
    side: str
    feature_type: str
    num_buckets: int | None = None
    vocab: tuple[str, ...] | None = None
    embedding_module: str | None = None
    length: int | None = None
    embedding_dim: int | None = None

    @property
    def encoded(self) -> bool:
        """False for an Id feature with `embedding_dim` 0: a key only, not an input of the tower."""
        kind = REGISTRY.get(self.feature_type)
        return kind is None or kind.is_encoded(self)

    @property
    def path(self) -> str:
        """The feature's location, as used in error messages: `query.user_id`."""
        return f"{self.side}.{self.name}"

    @property
    def tfrecord_key(self) -> str:
        """The feature's key in a TFRecord `tf.train.Example`: `query_user_id`."""
        return f"{self.side}_{self.name}"

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.num_buckets is not None:
            config["num_buckets"] = self.num_buckets
        if self.vocab is not None:
            config["vocab"] = list(self.vocab)
        if self.embedding_module is not None:
            config["embedding_module"] = self.embedding_module
        if self.length is not None:
            config["length"] = self.length
        if self.embedding_dim is not None:
            config["embedding_dim"] = self.embedding_dim
        out: dict[str, Any] = {"feature_type": self.feature_type}
        if config:
            out["config"] = config
        return out


@dataclasses.dataclass(frozen=True)
class InputSchema:
    """The validated schema: a tuple of `FeatureSpec` per side, in the file's order.

    Made by `load_schema` (from a path or a dict); `side(name)` and `feature(side, name)` look features up.

    Example:
    >>> schema = load_schema({"query": {"age": {"feature_type": "Numeric"}},
    ...                       "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}})
    >>> schema.feature("candidate", "item").num_buckets
    10
    """

    query: tuple[FeatureSpec, ...]
    candidate: tuple[FeatureSpec, ...]

    def side(self, side: str) -> tuple[FeatureSpec, ...]:
        """The features of `side` ("query" or "candidate")."""
        if side not in SIDES:
            raise ValueError(f"`side` must be one of {SIDES}. Got {side!r} instead.")
        return self.query if side == "query" else self.candidate

    def feature(self, side: str, name: str) -> FeatureSpec:
        """The spec of feature `name` on `side`; KeyError naming the known features otherwise."""
        for spec in self.side(side):
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.side(side))
        raise KeyError(f"No feature `{name}` on the {side} side; it has: {known}.")

    def to_json(self) -> dict[str, Any]:
        """The schema in its JSON form (what `load_schema` reads)."""
        return {side: {s.name: s.to_json() for s in self.side(side)} for side in SIDES}

    def save(self, path: str) -> None:
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(self.to_json(), f, indent=2)


def load_schema(schema: str | Mapping[str, Any] | InputSchema) -> InputSchema:
    """Reads and validates an input schema from a path (local or any `tf.io.gfile` URI) or a dict.

    Raises:
      SchemaError: listing every problem found, each with its JSON path.
      FileNotFoundError: when the path does not exist.

    Example:
    >>> schema = load_schema({"query": {"user_id": {"feature_type": "Id", "config": {"num_buckets": 100}}},
    ...                       "candidate": {"genres": {"feature_type": "Categorical",
    ...                                                "config": {"vocab": ["Comedy", "Drama"]}}}})
    >>> [(spec.name, spec.feature_type) for spec in schema.candidate]
    [('genres', 'Categorical')]
    """
    if isinstance(schema, InputSchema):
        return schema
    if isinstance(schema, Mapping):
        return _parse(schema, source="<dict>")
    if not isinstance(schema, str):
        raise TypeError(
            f"`schema` must be a path, a dict or an InputSchema. Got {type(schema).__name__} instead."
        )
    if not tf.io.gfile.exists(schema):
        raise FileNotFoundError(f"Input schema file not found: {schema}")
    with tf.io.gfile.GFile(schema, "r") as f:
        text = f.read()
    duplicates: list[str] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        raw = json.loads(text, object_pairs_hook=keep_pairs)
    except json.JSONDecodeError as e:
        raise SchemaError(schema, [f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"]) from e
    if duplicates:
        names = ", ".join(f"`{d}`" for d in sorted(set(duplicates)))
        raise SchemaError(schema, [f"duplicate key(s) {names}: each feature (and key) may appear once"])
    return _parse(raw, source=schema)


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(raw: Any, source: str) -> InputSchema:
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise SchemaError(
            source, [f"<root>: must be a JSON object with `query` and `candidate`, got {_describe(raw)}"]
        )
    for key in raw:
        if key not in SIDES:
            problems.append(f"{key}: unknown top-level key; expected only `query` and `candidate`")
    sides: dict[str, tuple[FeatureSpec, ...]] = {}
    for side in SIDES:
        if side not in raw:
            problems.append(f"{side}: missing; the schema needs both `query` and `candidate`")
            sides[side] = ()
            continue
        features = raw[side]
        if not isinstance(features, Mapping) or not features:
            problems.append(f"{side}: must be a non-empty object of features, got {_describe(features)}")
            sides[side] = ()
            continue
        specs = []
        for name, entry in features.items():
            spec = _parse_feature(side, name, entry, problems)
            if spec is not None:
                specs.append(spec)
        sides[side] = tuple(specs)
    if problems:
        raise SchemaError(source, problems)
    return InputSchema(query=sides["query"], candidate=sides["candidate"])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_feature(side: str, name: str, entry: Any, problems: list[str]) -> FeatureSpec | None:
    path = f"{side}.{name}"
    count = len(problems)
    if not name or not _NAME_PATTERN.match(name):
        problems.append(
            f"{path}: invalid feature name {name!r}; use letters, digits, '_' and '-', "
            "not starting with a digit"
        )
    if not isinstance(entry, Mapping):
        problems.append(f"{path}: must be an object with `feature_type` and `config`, got {_describe(entry)}")
        return None
    for key in entry:
        if key not in ("feature_type", "config"):
            problems.append(f"{path}.{key}: unknown key; a feature has only `feature_type` and `config`")
    feature_type = entry.get("feature_type")
    if feature_type not in FEATURE_TYPES:
        problems.append(
            f"{path}.feature_type: must be one of {', '.join(FEATURE_TYPES)}, got {_describe(feature_type)}"
        )
        return None
    config = entry.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        problems.append(f"{path}.config: must be an object, got {_describe(config)}")
        return None
    allowed = _CONFIG_KEYS[feature_type]
    for key in config:
        if key not in allowed:
            expected = ", ".join(f"`{k}`" for k in allowed) or "no keys"
            problems.append(f"{path}.config.{key}: unknown key for {feature_type}; it takes {expected}")
    for key, required in allowed.items():
        if required and key not in config:
            problems.append(f"{path}.config.{key}: required for {feature_type}")

    values: dict[str, Any] = {}
    if "num_buckets" in config and "num_buckets" in allowed:
        v = config["num_buckets"]
        if not _is_int(v) or v < 1:
            problems.append(f"{path}.config.num_buckets: must be an int >= 1, got {_describe(v)}")
        values["num_buckets"] = v
    if "length" in config and "length" in allowed:
        v = config["length"]
        if not _is_int(v) or v < 1:
            problems.append(f"{path}.config.length: must be an int >= 1, got {_describe(v)}")
        values["length"] = v
    if "embedding_dim" in config and "embedding_dim" in allowed:
        v = config["embedding_dim"]
        low = REGISTRY[feature_type].min_embedding_dim
        if not _is_int(v) or v < low:
            key_only = " (0: an Id used as a key only, not encoded)" if low == 0 else ""
            problems.append(
                f"{path}.config.embedding_dim: must be an int >= {low}{key_only}, got {_describe(v)}"
            )
        values["embedding_dim"] = v
    if "vocab" in config and "vocab" in allowed:
        v = config["vocab"]
        # Linear-time checks (set-based): a 1M-entry vocabulary loads in well under a second.
        if not isinstance(v, list) or not v or not all(issubclass(t, str) for t in set(map(type, v))):
            problems.append(f"{path}.config.vocab: must be a non-empty list of strings, got {_describe(v)}")
        else:
            duplicates = []
            if len(set(v)) != len(v):
                duplicates = sorted(x for x, n in collections.Counter(v).items() if n > 1)
            if duplicates:
                problems.append(f"{path}.config.vocab: duplicate values {duplicates}; list each value once")
            if "" in v:
                problems.append(f"{path}.config.vocab: the empty string is reserved for 'absent'; remove it")
            values["vocab"] = tuple(v)
    if "embedding_module" in config and "embedding_module" in allowed:
        v = config["embedding_module"]
        if not isinstance(v, str) or not v.strip():
            problems.append(f"{path}.config.embedding_module: must be a non-empty string, got {_describe(v)}")
        values["embedding_module"] = v
    if len(problems) > count:
        return None
    return FeatureSpec(name=name, side=side, feature_type=feature_type, **values)
