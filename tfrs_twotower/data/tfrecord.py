"""TFRecord files of `tf.train.Example`s, one per pair record (or per candidate document).

Keys and value lists:

- `query_<name>`, `candidate_<name>`: Id: bytes_list of 1; Categorical and Text: bytes_list; Numeric:
  float_list (int64_list accepted); Vector: float_list of `length`.
- `weight` (optional): float_list (or int64_list) of 1.
- `negative_<name>` (optional): the K explicit negatives' values of candidate feature `<name>`,
  concatenated: Id: bytes_list of K; Vector: float_list of K * length; Categorical, Text and Numeric:
  the K value lists flattened into one bytes_list / float_list,
- `negative_<name>.lengths`: Categorical, Text and Numeric only: int64_list of K, the length of each
  negative's list (the `.` cannot occur in a feature name, so the key cannot clash with one).

With negatives, every candidate feature needs its `negative_` key(s) and all must agree on K; no
`negative_` key means no negatives. A candidate-document file uses the `candidate_<name>` keys only.
Strings are UTF-8. Record numbers in messages are 1-based.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Numeric"}}})
>>> write_tfrecord([{"query": {"q": "hi"}, "candidate": {"c": 2}}], "ram://tfr_doc.tfrecord", schema)
1
>>> [r for _, r in read_tfrecord("ram://tfr_doc.tfrecord", RecordParser(schema))]
[{'query': {'q': ['hi']}, 'candidate': {'c': [2.0]}}]
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator

import tensorflow as tf

from tfrs_twotower.data.compression import is_gzip, open_binary
from tfrs_twotower.data.records import ALLOW_EXTRA_HINT, BadRecordError, Location, RecordParser, parse_each
from tfrs_twotower.errors import DataError
from tfrs_twotower.feature_types import InvalidValue, feature_type_of
from tfrs_twotower.schema import InputSchema, load_schema

LENGTHS_SUFFIX = ".lengths"


class CorruptRecord(bytes):
    """The payload `iter_tfrecord(..., corrupt="yield")` gives for unreadable data: `example_to_record`
    rejects it as a bad record (counted against --max_bad_records); the rest of its file is not read."""

    reason: str


def iter_tfrecord(path: str, corrupt: str = "raise") -> Iterator[tuple[Location, bytes]]:
    """Yields `(location, serialized_example)` for each record of `path` (plain or gzip TFRecord).

    Corrupt data (a checksum mismatch, a cut-off file) raises `BadRecordError` naming the file and record
    (`corrupt="raise"`), or ends the file with one `CorruptRecord` payload (`corrupt="yield"`: the scan
    counts it as a bad record and goes on with the next file). A file that is not TFRecord at all (JSON
    Lines, say) raises `DataError` saying which format it looks like.
    """
    options = tf.io.TFRecordOptions(compression_type="GZIP" if is_gzip(path) else "")
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the public reader logs a deprecation notice meant for graph users
    try:
        records = iter(tf.compat.v1.io.tf_record_iterator(path, options=options))
    finally:
        logger.setLevel(level)
    index = 0
    while True:
        try:
            data = next(records)
        except StopIteration:
            return
        except tf.errors.DataLossError as e:
            if index == 0:
                _check_not_text(path, e)
            reason = (
                f"corrupted TFRecord data ({e.message}); the rest of this file cannot be read, so its "
                "records from here on are not used. Re-copy or re-write the file"
            )
            if corrupt != "yield":
                raise BadRecordError(Location(path, index), reason) from None
            payload = CorruptRecord()
            payload.reason = reason
            yield Location(path, index), payload
            return
        yield Location(path, index), data
        index += 1


def _check_not_text(path: str, error: tf.errors.DataLossError) -> None:
    with open_binary(path) as f:
        head = f.read(64)
    if head.lstrip()[:1] in (b"{", b"["):
        raise DataError(
            f"{path} is not a TFRecord file: it starts with {head[:40]!r}, which looks like JSON Lines. "
            "Pass --input_file_format jsonl (file_format='jsonl' in Python), or convert the file."
        ) from error


def parse_example(data: bytes, location: Location) -> tf.train.Example:
    """A serialized `tf.train.Example`, parsed; a `BadRecordError` at `location` when it is not one."""
    try:
        return tf.train.Example.FromString(data)
    except Exception as e:  # protobuf's DecodeError has no stable import path
        raise BadRecordError(location, f"not a valid tf.train.Example ({e})") from None


def feature_values(feature: tf.train.Feature, location: Location, key: str) -> list:
    """One Example feature's values as a list (bytes decoded as UTF-8 text; `key` names it in errors)."""
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        try:
            return [b.decode("utf-8") for b in feature.bytes_list.value]
        except UnicodeDecodeError:
            raise BadRecordError(location, "a bytes_list value is not valid UTF-8 text", key) from None
    if kind == "float_list":
        return list(feature.float_list.value)
    if kind == "int64_list":
        return list(feature.int64_list.value)
    return []


def _split_negatives(parser: RecordParser, values: dict, lengths: dict, location: Location) -> list[dict]:
    counts: dict[str, int] = {}
    per_feature: dict[str, list] = {}
    for spec in parser.schema.candidate:
        key = f"negative_{spec.name}"
        if spec.name not in values:
            raise BadRecordError(
                location, "missing; a record with negatives needs every candidate feature", key
            )
        try:
            kind = feature_type_of(spec)
            parts = kind.split_negatives(spec, values[spec.name], lengths.get(spec.name), key)
        except InvalidValue as e:
            raise BadRecordError(location, e.detail, key + e.suffix) from None
        counts[key] = len(parts)
        per_feature[spec.name] = parts
    if len(set(counts.values())) > 1:
        found = ", ".join(f"{k}: {n}" for k, n in counts.items())
        raise BadRecordError(
            location, f"the negative_ features disagree on the number of negatives ({found})"
        )
    k = next(iter(counts.values()), 0)
    return [{name: parts[i] for name, parts in per_feature.items()} for i in range(k)]


def example_to_record(data: bytes, location: Location, parser: RecordParser, kind: str = "pairs") -> dict:
    """Decodes and normalises one serialized `tf.train.Example`."""
    if isinstance(data, CorruptRecord):
        raise BadRecordError(location, data.reason)
    example = parse_example(data, location)
    raw: dict[str, Any] = {"query": {}, "candidate": {}}
    negatives: dict[str, list] = {}
    lengths: dict[str, list] = {}
    for key, feature in example.features.feature.items():
        if key.startswith("candidate_"):
            raw["candidate"][key[10:]] = feature_values(feature, location, key)
        elif kind != "pairs":
            raw[key] = None
        elif key.startswith("query_"):
            raw["query"][key[6:]] = feature_values(feature, location, key)
        elif key.startswith("negative_"):
            name = key[9:]
            if name.endswith(LENGTHS_SUFFIX):
                lengths[name[: -len(LENGTHS_SUFFIX)]] = feature_values(feature, location, key)
            else:
                negatives[name] = feature_values(feature, location, key)
        elif key == "weight":
            w = feature_values(feature, location, key)
            if len(w) != 1:
                raise BadRecordError(location, f"expected a float_list of one value, got {w}", "weight")
            raw["weight"] = w[0]
        else:
            raw[key] = None
    if kind != "pairs":
        extra = [k for k in raw if k not in ("query", "candidate")]
        if extra and not parser.allow_extra_features:
            raise BadRecordError(
                location,
                f"unknown key(s) {', '.join(f'`{k}`' for k in sorted(extra))}; a candidate document has "
                f"only `candidate_<name>` keys (or allow extra features: {ALLOW_EXTRA_HINT})",
            )
        return parser.candidate(raw["candidate"], location)
    if negatives or lengths:
        unknown = sorted((set(negatives) | set(lengths)) - parser.feature_names("candidate"))
        if unknown and not parser.allow_extra_features:
            raise BadRecordError(
                location, f"unknown negative feature(s) {', '.join(f'`negative_{k}`' for k in unknown)}"
            )
        raw["negatives"] = _split_negatives(parser, negatives, lengths, location)
    return parser.pair(raw, location)


def read_tfrecord(
    path: str,
    parser: RecordParser,
    kind: str = "pairs",
    on_error: Callable[[BadRecordError], None] | None = None,
) -> Iterator[tuple[Location, dict]]:
    """Yields `(location, normalised_record)` for each record of one TFRecord file.

    Args: as `read_jsonl`.
    """
    return parse_each(iter_tfrecord(path, corrupt="yield"), example_to_record, parser, kind, on_error)


def _feature(spec, value) -> tf.train.Feature:
    return feature_type_of(spec).to_feature(spec, value)


def record_to_example(record: dict, schema: InputSchema, kind: str = "pairs") -> tf.train.Example:
    """Encodes one normalised record (or candidate document when `kind="candidates"`) as an Example."""
    features: dict[str, tf.train.Feature] = {}
    sides = ("query", "candidate") if kind == "pairs" else ("candidate",)
    for side in sides:
        values = record[side] if kind == "pairs" else record
        for spec in schema.side(side):
            features[spec.tfrecord_key] = _feature(spec, values[spec.name])
    if kind == "pairs" and "weight" in record:
        features["weight"] = tf.train.Feature(float_list=tf.train.FloatList(value=[record["weight"]]))
    if kind == "pairs" and record.get("negatives"):
        negs = record["negatives"]
        for spec in schema.candidate:
            key = f"negative_{spec.name}"
            values = [n[spec.name] for n in negs]
            for suffix, feature in feature_type_of(spec).negatives_to_features(spec, values).items():
                features[key + suffix] = feature
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_tfrecord(records: Iterable[dict], path: str, schema: InputSchema | Any, kind: str = "pairs") -> int:
    """Validates `records` (raw or normalised) and writes them to `path` as TFRecord Examples.

    Args:
      records: pair records, or candidate documents with `kind="candidates"`.
      path: the output file (any `tf.io.gfile` path).
      schema: the input schema.
      kind: "pairs" or "candidates".

    Returns:
      The number of records written.

    Raises:
      BadRecordError: for a record that does not match the schema (located as `<records> record N`).
    """
    schema = load_schema(schema)
    parser = RecordParser(schema)
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for index, record in enumerate(records):
            location = Location("<records>", index)
            normalised = (
                parser.pair(record, location) if kind == "pairs" else parser.candidate(record, location)
            )
            writer.write(record_to_example(normalised, schema, kind).SerializeToString())
            count += 1
    return count
