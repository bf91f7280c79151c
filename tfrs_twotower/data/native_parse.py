"""Batches of serialized `tf.train.Example` pairs -> model-input batches, with TF ops only.

`NativeParser` parses a whole batch with `tf.io.parse_example` (the keys of `tfrecord.py`) and checks
every row as TF ops: Id values are exactly one non-empty string, Vector values exactly `length`, numbers
finite, weights finite and >= 0, strings valid UTF-8, and the explicit negatives' counts agree. Missing
and unknown keys are found by comparing each record's size with the canonical protobuf size of what was
parsed: a record holding anything else (an unknown key, an absent feature, another encoding) differs.

A flagged row is not judged natively: the batch is handed to the Python parser (`example_to_record`),
which gives today's verdict and message (file, record, feature, expectation) or, for a record that was
only encoded unusually (an empty `Feature`, `allow_extra_features`), the same batch the fast path would.
So the native path accepts and refuses exactly what the Python path does.

Example:
>>> from tfrs_twotower.data.tfrecord import record_to_example
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Numeric"}}})
>>> data = record_to_example({"query": {"q": ["a", "b"]}, "candidate": {"c": [2.0]}}, schema)
>>> parser = NativeParser(schema)
>>> parsed = parser.parse(tf.constant([data.SerializeToString()]))
>>> parser.bad_rows(parsed).numpy().tolist(), parser.batch(parsed)["query"]["q"].numpy().tolist()
([False], [[b'a', b'b']])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.schema import FeatureSpec, InputSchema

_SIDES = {"pairs": ("query", "candidate"), "candidates": ("candidate",), "queries": ("query",)}
_VARINT_LIMITS = [1 << (7 * k) for k in range(1, 9)]


def _varint_size(n: tf.Tensor) -> tf.Tensor:
    """Bytes of the protobuf varint of each int64 (negative ones take 10), in the shape of `n`."""
    n = tf.cast(n, tf.int64)
    flat = tf.reshape(n, [-1])
    size = tf.searchsorted(tf.constant(_VARINT_LIMITS, tf.int64), flat, side="right", out_type=tf.int64) + 1
    return tf.reshape(tf.where(flat < 0, tf.constant(10, tf.int64), size), tf.shape(n))


def _field_size(payload: tf.Tensor) -> tf.Tensor:
    """Size of a length-delimited field (one-byte tag) whose payload is `payload` bytes."""
    return 1 + _varint_size(payload) + payload


class _Column:
    """One parsed key as flat `values` and `splits` (row i is `values[splits[i]:splits[i+1]]`); plain
    tensor ops on these keep the traced graph small (ragged ops add many assertions)."""

    def __init__(self, ragged: tf.RaggedTensor):
        self.values = ragged.flat_values
        self.splits = ragged.row_splits
        self.count = self.splits[1:] - self.splits[:-1]
        self.rows = tf.size(self.count)
        n = tf.size(self.values, out_type=tf.int64)
        self.rowids = tf.searchsorted(self.splits[1:], tf.range(n), side="right")

    def row_sum(self, x: tf.Tensor) -> tf.Tensor:
        return tf.math.unsorted_segment_sum(x, self.rowids, self.rows)

    def row_any(self, flags: tf.Tensor) -> tf.Tensor:
        return self.row_sum(tf.cast(flags, tf.int32)) > 0

    def ragged(self, dtype: tf.DType | None = None) -> tf.RaggedTensor:
        """The column as a RaggedTensor, its values cast to `dtype` (int64_list numbers to float32)."""
        values = self.values if dtype is None else tf.cast(self.values, dtype)
        return tf.RaggedTensor.from_row_splits(values, self.splits, validate=False)


class _Key:
    """One Example key the parser reads: its name, dtype, whether a record must have it, and the rule its
    values follow: a feature's `spec`, "weight", or None (explicit negatives: checked on their own)."""

    def __init__(self, key: str, dtype: tf.DType, required: bool, rule: FeatureSpec | str | None = None):
        self.key, self.dtype, self.required, self.rule = key, dtype, required, rule
        key_len = len(key.encode("utf-8"))
        self.key_field = 2 + key_len if key_len < 128 else 3 + key_len  # tag, length, the key

    def invalid_elements(self, values: tf.Tensor) -> tf.Tensor | None:
        """bool `[N]`: the values its rule refuses (UTF-8 aside); None when it has no rule."""
        if self.rule is None:
            return None
        numbers = values if values.dtype == tf.string else tf.cast(values, tf.float32)
        if self.rule == "weight":
            return tf.logical_not(tf.math.is_finite(numbers)) | (numbers < 0)
        return feature_type_of(self.rule).invalid_elements(self.rule, numbers)


def feature_rows(specs, columns, rows) -> list[dict[str, Any]]:
    """`{name: normalised value}` of each row in `rows`, as the Python parser gives it, built a feature at
    a time from a parsed batch's numpy `(values, row splits)` (one pair per spec, in order)."""
    rows = np.asarray(rows, dtype=np.int64)
    by_feature = [
        feature_type_of(s).from_example_columns(s, values, splits, rows)
        for s, (values, splits) in zip(specs, columns, strict=True)
    ]
    names = [s.name for s in specs]
    return [dict(zip(names, row, strict=True)) for row in zip(*by_feature, strict=True)]


def _segments(columns: list[_Column]) -> tf.Tensor:
    """Each value's segment `k * B + row` (`k`: its column) when the columns' values are put end to end."""
    ends = tf.cumsum(tf.concat([c.count for c in columns], 0))
    total = tf.add_n([tf.size(c.values, out_type=tf.int64) for c in columns])
    return tf.searchsorted(ends, tf.range(total), side="right")


def _utf8_bad(parts: list[tf.Tensor]) -> tf.Tensor:
    """Which strings of `parts` (end to end) are not valid UTF-8; one regex over the joined batch skips
    the check when it is all ASCII (the usual case), as transcoding every string costs more than parsing."""

    def check() -> tf.Tensor:
        values = tf.concat(parts, 0)
        fixed = tf.strings.unicode_transcode(values, "UTF-8", "UTF-8", errors="replace")
        return tf.not_equal(fixed, values)

    joined = tf.strings.join([tf.strings.reduce_join(p) for p in parts])
    ascii_only = tf.strings.regex_full_match(joined, "[\\x00-\\x7f]*")
    total = tf.add_n([tf.size(p) for p in parts])
    return tf.cond(ascii_only, lambda: tf.zeros([total], tf.bool), check)


class NativeParser:
    """Parses and checks batches of serialized pair Examples (or one side's documents) with TF ops.

    Args:
      schema: the `InputSchema`.
      negatives: read the `negative_<name>` keys and return `negatives` / `negative_mask`.
      kind: "pairs", "candidates" or "queries" (documents with the `candidate_<name>` or `query_<name>`
        keys only).
      int64_keys: keys whose numbers are stored as int64_list (read as int64, cast to float32).
    """

    def __init__(
        self,
        schema: InputSchema,
        negatives: bool = False,
        kind: str = "pairs",
        int64_keys: frozenset[str] = frozenset(),
    ):
        self.schema = schema
        self.negatives = bool(negatives) and kind == "pairs"
        self.kind = kind
        self.keys: dict[str, _Key] = {}
        if kind not in _SIDES:
            raise ValueError(
                f"The `kind` parameter must be one of {', '.join(_SIDES)}. Got {kind!r} instead."
            )
        for side in _SIDES[kind]:
            for spec in schema.side(side):
                self._add(spec.tfrecord_key, spec, True, int64_keys, rule=spec)
        if kind == "pairs":
            self._add("weight", None, False, int64_keys, rule="weight")
        if self.negatives:
            for spec in schema.candidate:
                for suffix, parse_spec in feature_type_of(spec).negative_parse_specs(spec).items():
                    key = f"negative_{spec.name}{suffix}"
                    if suffix:  # `.lengths`: int64
                        self.keys[key] = _Key(key, parse_spec.dtype, False)
                    else:
                        self._add(key, spec, False, int64_keys)
        self.spec = {
            k.key: tf.io.RaggedFeature(k.dtype, row_splits_dtype=tf.int64) for k in self.keys.values()
        }

    def _add(self, key: str, spec: FeatureSpec | None, required: bool, int64_keys, rule=None) -> None:
        if spec is not None and not feature_type_of(spec).float_values:
            dtype = tf.string
        else:
            dtype = tf.int64 if key in int64_keys else tf.float32
        self.keys[key] = _Key(key, dtype, required, rule)

    def parse(self, serialized: tf.Tensor, names: tf.Tensor | None = None) -> dict[str, Any]:
        """`{key: _Column}` plus `__size__`; `names` (one per record) name the records in TF's errors."""
        parsed = tf.io.parse_example(serialized, self.spec, example_names=names)
        out: dict[str, Any] = {k: _Column(v) for k, v in parsed.items()}
        out["__size__"] = tf.cast(tf.strings.length(serialized), tf.int64)
        return out

    def _negative_counts(self, parsed: dict) -> dict[str, tuple[tf.Tensor, tf.Tensor]]:
        """`{name: (K per row, bad rows)}` of each candidate feature's negatives."""
        out = {}
        for spec in self.schema.candidate:
            values, lengths = self._negative_columns(parsed, spec)
            k, bad = feature_type_of(spec).negative_counts(spec, values, lengths)
            if values.dtype == tf.string:
                bad |= parsed[f"negative_{spec.name}"].row_any(_utf8_bad([values.flat_values]))
            out[spec.name] = (tf.cast(k, tf.int64), bad)
        return out

    def _negative_columns(self, parsed: dict, spec: FeatureSpec) -> tuple[tf.RaggedTensor, Any]:
        """`negative_<name>`'s values (numbers as float32) and `.lengths` (None without one), ragged."""
        suffixes = feature_type_of(spec).negative_parse_specs(spec)
        col = parsed[f"negative_{spec.name}"]
        values = col.ragged(tf.float32 if col.values.dtype != tf.string else None)
        lengths = [parsed[f"negative_{spec.name}{s}"].ragged() for s in suffixes if s]
        return values, (lengths[0] if lengths else None)

    def negative_k(self, parsed: dict) -> tf.Tensor:
        """int64 `[B]`: each row's number of explicit negatives (as its first candidate feature says)."""
        return next(iter(self._negative_counts(parsed).values()))[0]

    def bad_rows(self, parsed: dict) -> tf.Tensor:
        """bool `[B]`: the rows the Python parser must judge (bad, or encoded in an unusual way).

        The keys are checked a dtype group at a time (few ops per batch whatever the schema): each
        group's values end to end, their sizes and rule flags summed per (key, row) in one segment op.
        """
        sizes = parsed["__size__"]
        rows = tf.size(sizes, out_type=tf.int64)
        order, inner, bad = [], [], tf.zeros([rows], tf.bool)
        for dtype in (tf.string, tf.int64, tf.float32):
            keys = [k for k in self.keys.values() if k.dtype == dtype]
            if not keys:
                continue
            order += keys
            columns = [parsed[k.key] for k in keys]
            segments = len(keys) * rows
            segment = _segments(columns)
            if dtype == tf.string:  # each value is a length-delimited field
                lengths = tf.concat([tf.strings.length(c.values) for c in columns], 0)
                size = _field_size(tf.cast(lengths, tf.int64))
            elif dtype == tf.int64:  # packed varints
                size = _varint_size(tf.concat([c.values for c in columns], 0))
            if dtype != tf.float32:
                inner.append(
                    tf.reshape(tf.math.unsorted_segment_sum(size, segment, segments), [len(keys), -1])
                )
            else:  # packed fixed32
                inner.append(4 * tf.stack([c.count for c in columns]))
            flags = [k.invalid_elements(c.values) for k, c in zip(keys, columns, strict=True)]
            if all(f is None for f in flags) and dtype != tf.string:
                continue
            flags = tf.concat(
                [
                    f if f is not None else tf.zeros_like(c.values, tf.bool)
                    for f, c in zip(flags, columns, strict=True)
                ],
                0,
            )
            if dtype == tf.string:
                flags |= _utf8_bad([c.values for c in columns])
            flagged = tf.math.unsorted_segment_max(tf.cast(flags, tf.int32), segment, segments)
            bad |= tf.reduce_any(tf.reshape(flagged, [len(keys), -1]) > 0, axis=0)
        counts = tf.stack([parsed[k.key].count for k in order])  # [K, B]
        present = counts > 0
        is_list = tf.constant([[k.dtype != tf.string] for k in order])  # numbers: a packed list field
        payload = tf.concat(inner, 0)
        payload = tf.where(is_list, tf.where(present, _field_size(payload), 0), payload)
        key_field = tf.constant([[k.key_field] for k in order], tf.int64)
        entry = _field_size(key_field + _field_size(_field_size(payload)))  # a map entry: key, Feature
        required = tf.constant([[k.required] for k in order])
        total = tf.reduce_sum(tf.where(required | present, entry, 0), axis=0)
        bad |= tf.not_equal(_field_size(total), sizes)  # Example.features holds the map
        for side in _SIDES[self.kind]:
            for spec in self.schema.side(side):
                length = feature_type_of(spec).fixed_length(spec)
                if length is not None:
                    bad |= tf.not_equal(parsed[spec.tfrecord_key].count, length)
        if self.kind == "pairs":
            bad |= parsed["weight"].count > 1
        if self.negatives:
            counts = list(self._negative_counts(parsed).values())
            for k, b in counts:
                bad |= b | tf.not_equal(k, counts[0][0])
        return bad

    def _dense(self, spec: FeatureSpec, col: _Column) -> tf.Tensor:
        feature_type = feature_type_of(spec)
        return feature_type.dense(spec, col.ragged(feature_type.value_dtype))

    def side(self, parsed: dict, side: str) -> dict[str, tf.Tensor]:
        """`{name: padded tensor}` of one side (rows must be good: `bad_rows` all False)."""
        return {s.name: self._dense(s, parsed[s.tfrecord_key]) for s in self.schema.side(side)}

    def _negatives(self, parsed: dict) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        k = self.negative_k(parsed)
        out = {}
        for spec in self.schema.candidate:
            values, lengths = self._negative_columns(parsed, spec)
            out[spec.name] = feature_type_of(spec).dense_negatives(spec, values, lengths, k)
        mask = tf.sequence_mask(k, tf.reduce_max(tf.concat([k, tf.zeros([1], k.dtype)], 0)))
        return out, mask

    def batch(self, parsed: dict) -> dict[str, Any]:
        """The model-input batch of good rows, as `batching` builds it (docs/architecture.md)."""
        if self.kind != "pairs":
            return self.side(parsed, _SIDES[self.kind][0])
        out: dict[str, Any] = {
            "query": self.side(parsed, "query"),
            "candidate": self.side(parsed, "candidate"),
            "weight": _weights(parsed["weight"]),
        }
        if self.negatives:
            out["negatives"], out["negative_mask"] = self._negatives(parsed)
        return out


def _weights(weight: _Column) -> tf.Tensor:
    """Each row's weight: its one value, or 1.0 without one (rows have at most one: checked)."""
    values = tf.cast(weight.values, tf.float32)
    ones = tf.ones([weight.rows], tf.float32)
    return tf.tensor_scatter_nd_update(ones, tf.expand_dims(weight.rowids, 1), values)
