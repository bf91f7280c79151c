"""JSON Lines files: one record per line, UTF-8, read and written via `tf.io.gfile`.

Blank (whitespace-only) lines are skipped: they are not records and are not counted, but line numbers
in messages are the file's real, 1-based line numbers. A UTF-8 byte order mark at the start is allowed.

Example:
>>> write_jsonl([{"query": {"q": "a"}, "candidate": {"c": "b"}}], "ram://jsonl_doc.jsonl")
1
>>> [loc.line for loc, _ in iter_jsonl("ram://jsonl_doc.jsonl")]
[1]
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Callable, Iterable, Iterator

import tensorflow as tf

from tfrs_twotower.data.compression import gzip_error, open_binary
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser, parse_each

_READ_SIZE = 4 << 20
_BOM = b"\xef\xbb\xbf"
_raw_decode = json.JSONDecoder().raw_decode  # json.loads minus its encoding sniffing and regex passes


def iter_jsonl(path: str) -> Iterator[tuple[Location, bytes]]:
    """Yields `(location, line)` for each non-blank line of `path` (gzip or not), without decoding it."""
    index = 0
    line_no = 0
    rest = b""
    with open_binary(path) as f:
        first = True
        while True:
            try:
                block = f.read(_READ_SIZE)
            except (OSError, EOFError, zlib.error) as e:  # a damaged gzip stream
                raise gzip_error(path, e) from e
            if first and block.startswith(_BOM):
                block = block[len(_BOM) :]
            first = False
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                line_no += 1
                if line.strip():
                    yield Location(path, index, line_no), line
                    index += 1
    if rest.strip():
        yield Location(path, index, line_no + 1), rest


def decode_line(line: bytes, location: Location) -> Any:
    """Decodes one JSON line; `BadRecordError` when it is not valid UTF-8 JSON."""
    try:
        text = line.decode("utf-8").strip()
        obj, end = _raw_decode(text)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return obj
    except UnicodeDecodeError as e:
        raise BadRecordError(location, f"not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadRecordError(
            location, f"not valid JSON: {e.msg} at column {e.colno}; got {line[:60]!r}"
        ) from None


def parse_jsonl_line(line: bytes, location: Location, parser: RecordParser, kind: str = "pairs") -> dict:
    """Decodes and normalises one line: a pair record (`kind="pairs"`) or a candidate document."""
    obj = decode_line(line, location)
    return parser.pair(obj, location) if kind == "pairs" else parser.candidate(obj, location)


def read_jsonl(
    path: str,
    parser: RecordParser,
    kind: str = "pairs",
    on_error: Callable[[BadRecordError], None] | None = None,
) -> Iterator[tuple[Location, dict]]:
    """Yields `(location, normalised_record)` for each record of one JSONL file.

    Args:
      path: the file.
      parser: a `RecordParser` for the schema.
      kind: "pairs" (query/candidate records) or "candidates" (candidate documents).
      on_error: called with each `BadRecordError` (the record is then skipped); None raises it.
    """
    return parse_each(iter_jsonl(path), parse_jsonl_line, parser, kind, on_error)


def write_jsonl(records: Iterable[dict], path: str) -> int:
    """Writes `records` (pair records or candidate documents) to `path`, one JSON object a line.

    Returns:
      The number of records written.
    """
    count = 0
    with tf.io.gfile.GFile(path, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            count += 1
    return count
