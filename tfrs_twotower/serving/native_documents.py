"""TFRecord documents for `encode` read by `tf.data`: batches parsed and checked as TF ops.

The files are read in order (a `TFRecordDataset` each, GZIP by extension) and cut into batches of
`batch_size` documents across file ends, exactly as `read_documents` and `encode`'s batching cut them;
each batch is parsed and checked by `NativeParser` (kind "queries" or "candidates") in a parallel map
and padded as training batches are. No Python runs per record.

A batch with a row the TF checks flag is parsed again by the Python reader (`example_document`), which
raises today's `BadRecordError` (file, record, side, feature) or, for a record only encoded unusually
(an empty `Feature`), gives the same documents. A TF error while reading (corrupt data, a file that is
not TFRecord, a list of the other kind that `tf.io.parse_example` refuses for its whole batch) hands the
rest of the input to the Python reader from the first record not yet delivered: corrupt data then ends
in the Python path's `BadRecordError` naming the file and the record.

Example:
>>> from tfrs_twotower.data.tfrecord import write_tfrecord
>>> from tfrs_twotower.schema import load_schema
>>> schema = load_schema({"query": {"q": {"feature_type": "Text"}},
...                       "candidate": {"c": {"feature_type": "Id", "config": {"num_buckets": 9}}}})
>>> docs = [{"c": "m1"}, {"c": "m2"}, {"c": "m3"}]
>>> _ = write_tfrecord(docs, "ram://nd_docs.tfrecord", schema, kind="candidates")
>>> batches = document_batches("ram://nd_docs.tfrecord", RecordParser(schema), "candidate", 2)
>>> [b.tensors["c"].numpy().tolist() for b in batches]
[[b'm1', b'm2'], [b'm3']]
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, NamedTuple

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.compression import is_gzip
from tfrs_twotower.data.native_dataset import int64_keys
from tfrs_twotower.data.native_parse import NativeParser, feature_rows
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.data.records import Location, RecordParser
from tfrs_twotower.export import feature_signature
from tfrs_twotower.serving.documents import Document, example_document, tfrecord_documents

_READ_BATCH = 1024
_KINDS = {"query": "queries", "candidate": "candidates"}


class NativeBatch(NamedTuple):
    """A batch of good documents: the encoder's `tensors` and, on request, each row's features."""

    tensors: dict[str, tf.Tensor]
    rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])


def _numbered(path: tf.Tensor, compression: tf.Tensor, file_id: tf.Tensor) -> tf.data.Dataset:
    """`(serialized, file_id, index)` of one file's records, in batches of `_READ_BATCH`."""

    @tf.autograph.experimental.do_not_convert
    def number(batch_number, serialized):
        index = batch_number * _READ_BATCH + tf.range(tf.size(serialized, out_type=tf.int64))
        return serialized, tf.fill(tf.shape(index), file_id), index

    ds = tf.data.TFRecordDataset(path, compression_type=compression)
    return ds.batch(_READ_BATCH).enumerate().map(number)


class _BatchParser:
    """The map function: `(serialized, file_id, index)` -> the padded side, its flag and raw columns."""

    def __init__(self, parser: NativeParser, side: str, files: list[str], with_rows: bool):
        self.parser, self.side, self.with_rows = parser, side, with_rows
        self.specs = list(parser.schema.side(side))
        self.files = tf.constant(files)

    def _empty(self) -> dict[str, tf.Tensor]:
        """Placeholders of the side's dtypes and ranks, for a flagged batch (Python parses it)."""
        out = {}
        for spec in self.specs:
            signature = feature_signature(spec)
            out[spec.name] = tf.zeros([0] * signature.shape.rank, signature.dtype)
        return out

    @tf.autograph.experimental.do_not_convert
    def __call__(self, serialized, file_ids, indices) -> dict[str, Any]:
        names = tf.strings.join(
            [tf.gather(self.files, file_ids), " record ", tf.strings.as_string(indices + 1)]
        )
        parsed = self.parser.parse(serialized, names)
        bad = tf.reduce_any(self.parser.bad_rows(parsed))

        def fast() -> dict[str, tf.Tensor]:
            dense = self.parser.side(parsed, self.side)
            return {s.name: tf.cast(dense[s.name], feature_signature(s).dtype) for s in self.specs}

        out = {
            "tensors": tf.cond(bad, self._empty, fast),
            "bad": bad,
            "serialized": serialized,
            "file": file_ids,
            "index": indices,
        }
        if self.with_rows:
            out["columns"] = {
                s.name: (parsed[s.tfrecord_key].values, parsed[s.tfrecord_key].splits) for s in self.specs
            }
        return out


def _rows(specs, columns: dict[str, tuple[tf.Tensor, tf.Tensor]]) -> list[dict[str, Any]]:
    """Each row's normalised features (as the Python parser gives them) from the parsed columns."""
    pairs = [tuple(t.numpy() for t in columns[spec.name]) for spec in specs]
    return feature_rows(specs, pairs, np.arange(len(pairs[0][1]) - 1))


def _python_documents(files: list[str], parser: RecordParser, side: str, file_id: int, start: int):
    """The Python reader's documents from record `start` of `files[file_id]` on."""
    yield from tfrecord_documents(files[file_id], parser, side, start)
    for path in files[file_id + 1 :]:
        yield from tfrecord_documents(path, parser, side)


def document_batches(
    paths: str | list[str],
    parser: RecordParser,
    side: str,
    batch_size: int,
    with_rows: bool = False,
) -> Iterator[NativeBatch | list[Document]]:
    """Batches of the `side` documents of TFRecord `paths`, in file order: a `NativeBatch`, or a list of
    `Document`s where the Python reader parsed the batch (flagged rows, or after a TF error).

    Args:
      paths: a path spec (file, directory, glob, comma-separated list) of TFRecord documents.
      parser: the `RecordParser` of the schema (gives the Python verdicts).
      side: "query" or "candidate".
      batch_size: documents per batch (the last one may be smaller).
      with_rows: also give each row's features as dicts (`NativeBatch.rows`), e.g. for fingerprint ids.

    Raises:
      BadRecordError: on the first bad record or corrupt data, as `read_documents` raises it.
    """
    files = resolve_paths(paths)
    if not files:
        return
    schema = parser.schema
    native = NativeParser(schema, kind=_KINDS[side], int64_keys=int64_keys(files[0], schema))
    ds = tf.data.Dataset.from_tensor_slices(
        (files, [("GZIP" if is_gzip(f) else "") for f in files], np.arange(len(files), dtype=np.int32))
    )
    ds = ds.flat_map(_numbered).rebatch(batch_size)
    ds = ds.map(
        _BatchParser(native, side, files, with_rows), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    batches = iter(ds.prefetch(tf.data.AUTOTUNE))
    resume = (0, 0)  # the first record not yet delivered: (file id, index)
    specs = list(schema.side(side))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except tf.errors.OpError:  # corrupt data, or a batch parse_example refuses: Python from here on
            documents = _python_documents(files, parser, side, *resume)
            while chunk := list(itertools.islice(documents, batch_size)):
                yield chunk
            return
        file_ids, indices = batch["file"].numpy(), batch["index"].numpy()
        resume = (int(file_ids[-1]), int(indices[-1]) + 1)
        if bool(batch["bad"]):
            yield [
                example_document(bytes(data), Location(files[f], int(i)), parser, side)
                for data, f, i in zip(batch["serialized"].numpy(), file_ids, indices, strict=True)
            ]
            continue
        rows = _rows(specs, batch["columns"]) if with_rows else None
        yield NativeBatch(batch["tensors"], rows)
