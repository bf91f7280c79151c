"""The input file formats, by name: "jsonl" and "tfrecord" (the values of `--input_file_format`)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from tfrs_twotower.data.jsonl import iter_jsonl, parse_jsonl_line, read_jsonl
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.tfrecord import example_to_record, iter_tfrecord, read_tfrecord

FILE_FORMATS = ("jsonl", "tfrecord")
KINDS = ("pairs", "candidates")


def check_file_format(file_format: Any) -> str:
    """Validates a file format name and returns it."""
    if file_format not in FILE_FORMATS:
        raise ValueError(
            f"The `file_format` parameter must be one of {', '.join(FILE_FORMATS)}. "
            f"Got {file_format!r} instead."
        )
    return file_format


def check_kind(kind: Any) -> str:
    """Validates a record kind ("pairs" or "candidates") and returns it."""
    if kind not in KINDS:
        raise ValueError(f"The `kind` parameter must be one of {', '.join(KINDS)}. Got {kind!r} instead.")
    return kind


def iter_payloads(path: str, file_format: str) -> Iterator[tuple[Location, bytes]]:
    """Yields `(location, undecoded_record)` for each record of one file."""
    # A corrupt TFRecord ends its file with a payload the parser rejects: a counted bad record.
    return iter_jsonl(path) if file_format == "jsonl" else iter_tfrecord(path, corrupt="yield")


def payload_parser(file_format: str) -> Callable[[bytes, Location, RecordParser, str], dict]:
    """The function `(payload, location, parser, kind) -> normalised record` of a format."""
    return parse_jsonl_line if file_format == "jsonl" else example_to_record


def read_records(
    path: str,
    parser: RecordParser,
    file_format: str = "jsonl",
    kind: str = "pairs",
    on_error: Callable[[BadRecordError], None] | None = None,
) -> Iterator[tuple[Location, dict]]:
    """Yields `(location, normalised_record)` for each record of one file of either format.

    Args:
      path: the file.
      parser: a `RecordParser` for the schema.
      file_format: "jsonl" or "tfrecord".
      kind: "pairs" (query/candidate records) or "candidates" (candidate documents).
      on_error: called with each `BadRecordError`, the record then skipped; None raises it.
    """
    check_kind(kind)
    reader = read_jsonl if check_file_format(file_format) == "jsonl" else read_tfrecord
    return reader(path, parser, kind, on_error)
