"""Gzip-compressed input files, recognised by their first bytes (`1f 8b`), whatever their name.

`*.jsonl.gz` and `*.tfrecord.gz` (or any gzip file) are read as the text or TFRecord they hold, so a
compressed export from BigQuery or Spark trains without unpacking it first.

Example:
>>> import gzip, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl.gz")
>>> with gzip.open(path, "wb") as f:
...     _ = f.write(b'{"a": 1}\\n')
>>> is_gzip(path), open_binary(path).read()
(True, b'{"a": 1}\\n')
"""

from __future__ import annotations

import gzip
from typing import IO

import tensorflow as tf

from tfrs_twotower.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"


def _head(raw, path: str) -> bytes:
    try:
        return raw.read(2)
    except tf.errors.OpError as e:  # unreadable: permissions, a directory, a vanished file
        raise DataError(
            f"{path} cannot be read ({type(e).__name__}: {e.message}). Check that the file exists and "
            "that this user may read it."
        ) from e


def is_gzip(path: str) -> bool:
    """Whether `path` starts with the gzip magic bytes."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return _head(f, path) == GZIP_MAGIC


def open_binary(path: str) -> IO[bytes]:
    """`path` opened for reading bytes, decompressed when it is gzip."""
    raw = tf.io.gfile.GFile(path, "rb")
    if _head(raw, path) == GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")
    raw.seek(0)
    return raw


def gzip_error(path: str, error: BaseException) -> DataError:
    """A `DataError` for a damaged gzip file (truncated, bad CRC)."""
    return DataError(
        f"{path}: the gzip data is damaged ({type(error).__name__}: {error}); the file was probably cut "
        "short while copying. Copy it again, or check it with `gzip -t`."
    )
