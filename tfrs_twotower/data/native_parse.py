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

import tensorflow as tf

from tfrs_twotower.data.tfrecord import LENGTHS_SUFFIX
from tfrs_twotower.schema import FeatureSpec, InputSchema

_LISTS = ("Categorical", "Text", "Numeric")


_VARINT_LIMITS = [1 << (7 * k) for k in range(1, 9)]


def _varint_size(n: tf.Tensor) -> tf.Tensor:
    """Bytes of the protobuf varint of each int64 (negative ones take 10)."""
    n = tf.reshape(tf.cast(n, tf.int64), [-1])
    size = tf.searchsorted(tf.constant(_VARINT_LIMITS, tf.int64), n, side="right", out_type=tf.int64) + 1
    return tf.where(n < 0, tf.constant(10, tf.int64), size)


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

    def padded(self, pad: Any) -> tf.Tensor:
        return tf.RaggedTensor.from_row_splits(self.values, self.splits, validate=False).to_tensor(pad)


class _Key:
    """One Example key the parser reads: its name, dtype and whether a record must have it."""

    def __init__(self, key: str, dtype: tf.DType, required: bool):
        self.key, self.dtype, self.required = key, dtype, required

    def value_size(self, col: _Column) -> tf.Tensor:
        """The canonical size of each row's `Feature` entry in the Example's map (0 when absent)."""
        count = col.count
        if self.dtype == tf.string:
            lengths = tf.cast(tf.strings.length(col.values), tf.int64)
            payload = col.row_sum(_field_size(lengths))
        else:
            packed = col.row_sum(_varint_size(col.values)) if self.dtype == tf.int64 else 4 * count
            payload = tf.where(count > 0, _field_size(packed), 0)
        feature = _field_size(payload)  # a Feature holding one list
        key_len = len(self.key.encode("utf-8"))
        key_field = 2 + key_len if key_len < 128 else 3 + key_len
        entry = _field_size(key_field + _field_size(feature))  # a map entry: key, value
        return entry if self.required else tf.where(count > 0, entry, 0)


def _utf8_bad(values: tf.Tensor) -> tf.Tensor:
    """Which strings are not valid UTF-8; one regex over the joined batch skips the check when it is
    all ASCII (the usual case), as transcoding every string costs more than parsing."""

    def check() -> tf.Tensor:
        fixed = tf.strings.unicode_transcode(values, "UTF-8", "UTF-8", errors="replace")
        return tf.not_equal(fixed, values)

    ascii_only = tf.strings.regex_full_match(tf.strings.reduce_join(values), "[\\x00-\\x7f]*")
    return tf.cond(ascii_only, lambda: tf.zeros_like(values, dtype=tf.bool), check)


def _value_bad(spec: FeatureSpec, col: _Column) -> tf.Tensor:
    """Rows whose values break `spec`'s rules other than the count (bad UTF-8, empty Id, non-finite)."""
    if col.values.dtype == tf.string:
        bad = _utf8_bad(col.values)
        if spec.feature_type == "Id":
            bad |= tf.equal(tf.strings.length(col.values), 0)
        return col.row_any(bad)
    return col.row_any(tf.logical_not(tf.math.is_finite(tf.cast(col.values, tf.float32))))


class NativeParser:
    """Parses and checks batches of serialized pair Examples (or candidate documents) with TF ops.

    Args:
      schema: the `InputSchema`.
      negatives: read the `negative_<name>` keys and return `negatives` / `negative_mask`.
      kind: "pairs" or "candidates" (documents with `candidate_<name>` keys only).
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
        sides = ("query", "candidate") if kind == "pairs" else ("candidate",)
        for side in sides:
            for spec in schema.side(side):
                self._add(spec.tfrecord_key, spec, True, int64_keys)
        if kind == "pairs":
            self._add("weight", None, False, int64_keys)
        if self.negatives:
            for spec in schema.candidate:
                self._add(f"negative_{spec.name}", spec, False, int64_keys)
                if spec.feature_type in _LISTS:
                    self.keys[f"negative_{spec.name}{LENGTHS_SUFFIX}"] = _Key(
                        f"negative_{spec.name}{LENGTHS_SUFFIX}", tf.int64, False
                    )
        self.spec = {
            k.key: tf.io.RaggedFeature(k.dtype, row_splits_dtype=tf.int64) for k in self.keys.values()
        }

    def _add(self, key: str, spec: FeatureSpec | None, required: bool, int64_keys) -> None:
        if spec is not None and spec.feature_type in ("Id", "Categorical", "Text"):
            dtype = tf.string
        else:
            dtype = tf.int64 if key in int64_keys else tf.float32
        self.keys[key] = _Key(key, dtype, required)

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
            col = parsed[f"negative_{spec.name}"]
            bad = _value_bad(spec, col)
            if spec.feature_type == "Id":
                k = col.count
            elif spec.feature_type == "Vector":
                k = col.count // spec.length
                bad |= tf.not_equal(col.count % spec.length, 0)
            else:
                lengths = parsed[f"negative_{spec.name}{LENGTHS_SUFFIX}"]
                k = lengths.count
                bad |= lengths.row_any(lengths.values < 0)
                bad |= tf.not_equal(lengths.row_sum(lengths.values), col.count)
            out[spec.name] = (k, bad)
        return out

    def bad_rows(self, parsed: dict) -> tf.Tensor:
        """bool `[B]`: the rows the Python parser must judge (bad, or encoded in an unusual way)."""
        total = tf.add_n([key.value_size(parsed[key.key]) for key in self.keys.values()])
        bad = tf.not_equal(_field_size(total), parsed["__size__"])  # Example.features holds the map
        sides = ("query", "candidate") if self.kind == "pairs" else ("candidate",)
        for side in sides:
            for spec in self.schema.side(side):
                col = parsed[spec.tfrecord_key]
                bad |= _value_bad(spec, col)
                if spec.feature_type == "Id":
                    bad |= tf.not_equal(col.count, 1)
                elif spec.feature_type == "Vector":
                    bad |= tf.not_equal(col.count, spec.length)
        if self.kind == "pairs":
            weight = parsed["weight"]
            value = tf.cast(weight.values, tf.float32)
            bad |= weight.count > 1
            bad |= weight.row_any(tf.logical_not(tf.math.is_finite(value)) | (value < 0))
        if self.negatives:
            counts = list(self._negative_counts(parsed).values())
            for k, b in counts:
                bad |= b | tf.not_equal(k, counts[0][0])
        return bad

    def _dense(self, spec: FeatureSpec, col: _Column) -> tf.Tensor:
        kind = spec.feature_type
        if kind == "Id":
            return tf.reshape(col.values, [-1])
        if kind == "Vector":
            return tf.reshape(tf.cast(col.values, tf.float32), [-1, spec.length])
        if kind == "Numeric":
            col = _Cast(col)
            return col.padded(float("nan"))
        return col.padded("")

    def side(self, parsed: dict, side: str) -> dict[str, tf.Tensor]:
        """`{name: padded tensor}` of one side (rows must be good: `bad_rows` all False)."""
        return {s.name: self._dense(s, parsed[s.tfrecord_key]) for s in self.schema.side(side)}

    def _negatives(self, parsed: dict) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        k = next(iter(self._negative_counts(parsed).values()))[0]
        out = {}
        for spec in self.schema.candidate:
            col = parsed[f"negative_{spec.name}"]
            kind = spec.feature_type
            if kind == "Id":
                out[spec.name] = col.padded("")
                continue
            flat = tf.cast(col.values, tf.float32) if kind in ("Numeric", "Vector") else col.values
            if kind == "Vector":
                inner = tf.reshape(flat, [-1, spec.length])
                pad = 0.0
            else:
                lengths = parsed[f"negative_{spec.name}{LENGTHS_SUFFIX}"].values
                inner = tf.RaggedTensor.from_row_lengths(flat, lengths, validate=False)
                pad = float("nan") if kind == "Numeric" else ""
            nested = tf.RaggedTensor.from_row_lengths(inner, k, validate=False)
            out[spec.name] = nested.to_tensor(default_value=pad)
        mask = tf.sequence_mask(k, tf.reduce_max(tf.concat([k, tf.zeros([1], k.dtype)], 0)))
        return out, mask

    def batch(self, parsed: dict) -> dict[str, Any]:
        """The model-input batch of good rows, as `batching` builds it (docs/architecture.md)."""
        if self.kind != "pairs":
            return self.side(parsed, "candidate")
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


class _Cast(_Column):
    """A numeric `_Column` with float32 values."""

    def __init__(self, col: _Column):  # noqa: D107 - shares the column's splits
        self.__dict__.update(col.__dict__)
        self.values = tf.cast(col.values, tf.float32)
