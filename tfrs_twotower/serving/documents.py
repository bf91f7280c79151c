"""Documents to encode or query: one side's features per record, validated against the schema.

A document is one side's features `{name: value}`, with the value forms of training data
(docs/architecture.md), in either file format:

- JSONL: one document a line, either plain (`{"user_id": "u1", "age": 31, ...}`) or in Vertex AI's
  prediction-instance form (`{"data": "<the document as a JSON string>", "key": "k1"}`; `data` may also
  be the object itself, `key` is optional). The form is detected per file from its first record; every
  record of a file must then have that form.
- TFRecord: one `tf.train.Example` per document with the training keys of that side (`query_<name>` or
  `candidate_<name>`).

Errors are `BadRecordError`s naming the file, the line (record for TFRecord), the side and the feature:
`queries.jsonl line 3: query.age: expected a finite number or a list of finite numbers (Numeric), got "x"`.

Example:
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Numeric"}}})
>>> where = Location("<doc>", 0, 1)
>>> parse_document({"data": '{"q": "hi"}', "key": "k1"}, where, RecordParser(schema), "query")
Document(location=Location(file='<doc>', index=0, line=1), features={'q': ['hi']}, key='k1', instance=True)
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterator, NamedTuple

from tfrs_twotower.data.formats import check_file_format
from tfrs_twotower.data.jsonl import decode_line, iter_jsonl
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser, describe
from tfrs_twotower.data.tfrecord import feature_values, iter_tfrecord, parse_example
from tfrs_twotower.serving.encoder import check_side

INSTANCE_KEYS = frozenset({"data", "key"})


class Document(NamedTuple):
    """One validated document: where it was, its normalised features, its Vertex key (if any)."""

    location: Location
    features: dict[str, Any]
    key: str | None = None
    instance: bool = False


def is_instance(obj: Any, parser: RecordParser, side: str) -> bool:
    """Whether `obj` has Vertex's instance form `{"data": ..., "key": ...}` rather than being a document.

    A side whose features are named `data` (and `key`) reads such objects as plain documents.
    """
    return (
        type(obj) is dict
        and "data" in obj
        and set(obj) <= INSTANCE_KEYS
        and set(obj) != set(parser.feature_names(side))
    )


def parse_side(parser: RecordParser, side: str, obj: Any, location: Location) -> dict[str, Any]:
    """Validates and normalises one side's features (errors name the side and the feature)."""
    # RecordParser has a public method for candidate documents only; its per-side check is shared.
    return parser._side(side, obj, location, side)


def parse_document(
    obj: Any, location: Location, parser: RecordParser, side: str, instance: bool | None = None
):
    """A decoded JSON record as a `Document`; `instance=None` detects the form from `obj` itself."""
    if instance is None:
        instance = is_instance(obj, parser, side)
    if not instance:
        if is_instance(obj, parser, side):
            raise BadRecordError(
                location,
                "a Vertex prediction instance, but the file's first record is a plain document; "
                "a file holds documents of one form",
            )
        return Document(location, parse_side(parser, side, obj, location))
    if not is_instance(obj, parser, side):
        raise BadRecordError(
            location,
            'expected a Vertex prediction instance {"data": "<JSON of the features>", "key": "..."} like the '
            f"first record of the file, got {describe(obj)}",
        )
    data, key = obj["data"], obj.get("key")
    if type(data) is str:
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise BadRecordError(
                location, f"not a valid JSON string: {e.msg} at column {e.colno}", "data"
            ) from None
    if key is not None and type(key) not in (str, int):
        raise BadRecordError(location, f"expected a string, got {describe(key)}", "key")
    features = parse_side(parser, side, data, location)
    return Document(location, features, None if key is None else str(key), True)


def read_documents(
    paths: str | list[str], parser: RecordParser, side: str, file_format: str = "jsonl"
) -> Iterator[Document]:
    """Yields a `Document` per record of `paths` (a path spec: file, directory, glob, comma list).

    Raises:
        BadRecordError: on the first bad record.
    """
    check_side(side)
    check_file_format(file_format)
    for path in resolve_paths(paths):
        if file_format == "jsonl":
            instance = None
            for location, line in iter_jsonl(path):
                obj = decode_line(line, location)
                if instance is None:
                    instance = is_instance(obj, parser, side)
                yield parse_document(obj, location, parser, side, instance)
        else:
            yield from tfrecord_documents(path, parser, side)


def tfrecord_documents(path: str, parser: RecordParser, side: str, start: int = 0) -> Iterator[Document]:
    """Yields a `Document` per record of the TFRecord file `path`, from record index `start` on.

    Raises:
        BadRecordError: on the first bad record, or on corrupt data (naming the file and record).
    """
    for location, data in itertools.islice(iter_tfrecord(path), start, None):
        yield example_document(data, location, parser, side)


def example_document(data: bytes, location: Location, parser: RecordParser, side: str) -> Document:
    """One serialized `tf.train.Example` document, validated (`BadRecordError` when it is bad)."""
    return Document(location, parse_side(parser, side, example_features(data, location, side), location))


def example_features(data: bytes, location: Location, side: str) -> dict[str, Any]:
    """The `<side>_<name>` features of a serialized `tf.train.Example` as `{name: list}` (unvalidated).

    Keys of the other side are refused (a document holds one side).
    """
    example = parse_example(data, location)
    prefix = f"{side}_"
    features: dict[str, Any] = {}
    for key, feature in sorted(example.features.feature.items()):
        if not key.startswith(prefix):
            raise BadRecordError(
                location, f"unknown key `{key}`; a {side} document has only `{prefix}<name>` keys"
            )
        features[key[len(prefix) :]] = feature_values(feature, location, key)
    return features
