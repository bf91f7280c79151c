"""`make_dataset` for TFRecord pairs in `tf.data` only: no Python per record.

The pipeline: the files are read by a parallel, deterministic interleave (16 files at a time, blocks of
64 records, as the Python path); each file's records are numbered, and the other subset's records
(`split.py`'s hash, here as TF ops on uint64) and the `skip`ped ones are dropped before parsing; then
cache (optional), shuffle, batch, `NativeParser` in a parallel map, repeat, prefetch. A batch with a row
the TF checks flag goes through the Python parser in a `tf.py_function` (rare: the scan put bad records
in `skip`), so a bad record not in `skip` fails with the Python path's message, naming file and record.
With `with_keys` and no candidate Id feature, the keys (`CandidateKey` fingerprints: blake2b of the
canonical JSON) are hashed per batch in a `tf.py_function` from the parsed columns.

Limits: the value kind of each numeric key (float_list, or int64_list read as int64) is taken from the
first record of the first file; a record of another kind (a bytes_list Categorical written as floats,
say) fails `tf.io.parse_example` for its whole batch, and unscanned such a record stops the dataset
with TF's error naming the file, record and key (the scan gives the Python verdict). With
`allow_extra_features=True`, records carrying extra keys take the Python parser (correct but slow).
Shuffled with a seed, the order is reproducible but differs from the Python path's (tf.data's shuffle).

Example:
>>> from tfrs_twotower.data.tfrecord import write_tfrecord
>>> from tfrs_twotower.data.dataset import make_dataset
>>> schema = {"query": {"q": {"feature_type": "Text"}},
...           "candidate": {"c": {"feature_type": "Id", "config": {"num_buckets": 9}}}}
>>> records = [{"query": {"q": "hi"}, "candidate": {"c": "m1"}}] * 5
>>> _ = write_tfrecord(records, "ram://nd_doc.tfrecord", schema)
>>> ds = make_dataset("ram://nd_doc.tfrecord", schema, "tfrecord", subset="all", batch_size=2, seed=0)
>>> [int(b["weight"].shape[0]) for b in ds]
[2, 2, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.compression import is_gzip
from tfrs_twotower.data.native_parse import NativeParser, feature_rows
from tfrs_twotower.data.records import Location
from tfrs_twotower.data.split import _GOLDEN, _M1, _M2, _file_seed
from tfrs_twotower.data.tfrecord import iter_tfrecord, parse_example
from tfrs_twotower.feature_types import feature_type_of

_CYCLE_LENGTH = 16
_BLOCK_LENGTH = 64
_READ_BATCH = 1024


def int64_keys(path: str | None, schema) -> frozenset[str]:
    """The numeric keys the first record of `path` stores as int64_list (empty when unreadable)."""
    if path is None:
        return frozenset()
    try:
        location, data = next(iter_tfrecord(path))
        example = parse_example(data, location)
    except Exception:  # noqa: BLE001 - a bad first record is judged later, like any other
        return frozenset()
    numeric = {"weight"} | {f"negative_{s.name}" for s in schema.candidate if feature_type_of(s).float_values}
    numeric |= {
        s.tfrecord_key
        for side in ("query", "candidate")
        for s in schema.side(side)
        if feature_type_of(s).float_values
    }
    return frozenset(
        k
        for k, f in example.features.feature.items()
        if k in numeric and f.WhichOneof("kind") == "int64_list"
    )


def _eval_flags_t(seed: tf.Tensor, indices: tf.Tensor, eval_split: float) -> tf.Tensor:
    """`eval_flags` with the file's seed as a uint64 tensor."""
    if eval_split <= 0.0:
        return tf.zeros_like(indices, dtype=tf.bool)
    if eval_split >= 1.0:
        return tf.ones_like(indices, dtype=tf.bool)

    def shift(z: tf.Tensor, n: int) -> tf.Tensor:
        return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(n, tf.uint64)))

    x = tf.cast(indices, tf.uint64)
    z = seed + (x + tf.constant(1, tf.uint64)) * tf.constant(int(_GOLDEN), tf.uint64)
    z = shift(
        shift(shift(z, 30) * tf.constant(int(_M1), tf.uint64), 27) * tf.constant(int(_M2), tf.uint64), 31
    )
    u = tf.cast(tf.bitwise.right_shift(z, tf.constant(11, tf.uint64)), tf.float64) / float(1 << 53)
    return u < eval_split


def eval_flags(file: str, indices: tf.Tensor, eval_split: float) -> tf.Tensor:
    """`split.eval_mask` as TF ops: which records `indices` (int64) of `file` go to eval."""
    return _eval_flags_t(
        tf.constant(int(_file_seed(file)), tf.uint64), tf.cast(indices, tf.int64), eval_split
    )


class _FileRecords:
    """`(serialized, file_id, index)` of the subset's records of one file, in file order; called in
    `interleave` with one file's `(path, id, seed, compression, has_skip)` as tensors."""

    def __init__(self, source):
        self.subset = source.subset
        self.eval_split = source.eval_split
        keys = [(i << 40) | int(j) for i, f in enumerate(source.files) for j in source.skip.get(f, ())]
        self.skip = np.array(sorted(keys) + [-1], dtype=np.int64)  # -1: a sentinel past the end
        self.files = source.files
        self.file_ids = np.arange(len(source.files), dtype=np.int64)
        self.seeds = np.array([int(_file_seed(f)) for f in source.files], dtype=np.uint64)
        self.compression = [("GZIP" if is_gzip(f) else "") for f in source.files]
        skipped = {f for f, s in source.skip.items() if s}
        self.has_skip = np.array([f in skipped for f in source.files])
        self.single = len(source.files) == 1  # one file: no interleave, no blocks

    def tensors(self) -> tuple:
        return (self.files, self.file_ids, self.seeds, self.compression, self.has_skip)

    @tf.autograph.experimental.do_not_convert
    def __call__(self, path, file_id, seed, compression, has_skip) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(path, compression_type=compression)
        if self.has_skip.any():
            # A corrupt tail the scan rejected (its first record is in `skip`) ends the file quietly; a
            # file without skipped records keeps failing loudly on corrupt data.
            choice = tf.data.Dataset.from_tensors(tf.cast(has_skip, tf.int64)).repeat()
            ds = tf.data.Dataset.choose_from_datasets(
                [ds, ds.ignore_errors()], choice, stop_on_empty_dataset=True
            )
        skip = tf.constant(self.skip)
        subset, eval_split = self.subset, self.eval_split

        @tf.autograph.experimental.do_not_convert
        def keep(batch_number: tf.Tensor, records: tf.Tensor):
            index = batch_number * _READ_BATCH + tf.range(tf.size(records, out_type=tf.int64))
            keep = tf.ones_like(index, dtype=tf.bool)
            if subset != "all":
                is_eval = _eval_flags_t(seed, index, eval_split)
                keep = is_eval if subset == "eval" else tf.logical_not(is_eval)
            key = tf.bitwise.left_shift(file_id, 40) | index
            keep &= tf.not_equal(tf.gather(skip, tf.searchsorted(skip[:-1], key)), key)
            ids = tf.fill(tf.shape(index), tf.cast(file_id, tf.int32))
            return tf.boolean_mask(records, keep), tf.boolean_mask(ids, keep), tf.boolean_mask(index, keep)

        kept = ds.batch(_READ_BATCH).enumerate().map(keep)
        if self.single:
            return kept
        # Blocks of _BLOCK_LENGTH kept records: the interleave then takes one block of each file in turn.
        return kept.unbatch().batch(_BLOCK_LENGTH)


class _BatchParser:
    """The map function: serialized records -> a model-input batch (TF checks, Python for flagged rows)."""

    def __init__(self, source, parser: NativeParser, key_feature: str | None):
        self.source = source
        self.parser = parser
        self.key_feature = key_feature
        # Without a key feature, keys are fingerprints of the candidates' features (`CandidateKey`).
        self.fingerprint = source.candidate_key if key_feature is None else None
        self.signature = source.signature()
        self.flat_signature = tf.nest.flatten(self.signature)
        self.files = tf.constant(source.files)

    def python_batch(self, serialized, file_ids, indices) -> list[np.ndarray]:
        files = self.source.files
        records = [
            self.source._parse(Location(files[f], int(i)), bytes(data))
            for data, f, i in zip(serialized.numpy(), file_ids.numpy(), indices.numpy(), strict=True)
        ]
        return tf.nest.flatten(self.source.columns(records))

    def fingerprints(self, *columns: tf.Tensor) -> np.ndarray:
        """The corpus keys of a batch's candidates from their parsed `(values, splits)` per feature."""
        pairs = [(v.numpy(), p.numpy()) for v, p in zip(columns[::2], columns[1::2], strict=True)]
        rows = np.arange(len(pairs[0][1]) - 1)
        keys = [self.fingerprint(row) for row in feature_rows(self.source.schema.candidate, pairs, rows)]
        return np.array(keys, dtype=object).reshape(len(rows))

    @tf.autograph.experimental.do_not_convert
    def __call__(self, serialized, file_ids, indices) -> dict[str, Any]:
        names = tf.strings.join(
            [tf.gather(self.files, file_ids), " record ", tf.strings.as_string(indices + 1)]
        )
        parsed = self.parser.parse(serialized, names)

        def fast():
            out = self.parser.batch(parsed)
            if self.key_feature is not None:
                out["candidate_key"] = out["candidate"][self.key_feature]
            elif self.fingerprint is not None:  # hashed in Python (blake2b of canonical JSON), per batch
                columns = [parsed[s.tfrecord_key] for s in self.source.schema.candidate]
                flat = [t for c in columns for t in (c.values, c.splits)]
                out["candidate_key"] = tf.py_function(self.fingerprints, flat, tf.string)
            return tf.nest.flatten(out)

        def slow():
            return tf.py_function(
                self.python_batch, [serialized, file_ids, indices], [s.dtype for s in self.flat_signature]
            )

        flat = tf.cond(tf.reduce_any(self.parser.bad_rows(parsed)), slow, fast)
        for tensor, spec in zip(flat, self.flat_signature, strict=True):
            tensor.set_shape(spec.shape)
        return tf.nest.pack_sequence_as(self.signature, flat)


def native_pair_dataset(source, batch_size: int, drop_remainder: bool, repeat: bool) -> tf.data.Dataset:
    """The native twin of `make_dataset`'s Python pipeline, for the `_PairBatches` `source`'s settings."""
    key_feature = source.candidate_key.feature if source.candidate_key is not None else None
    parser = NativeParser(
        source.schema,
        negatives=source.negatives,
        int64_keys=int64_keys(source.files[0] if source.files else None, source.schema),
    )
    files = _FileRecords(source)
    if files.single:
        ds = files(*(tf.constant(t[0]) for t in files.tensors()))
    else:
        ds = tf.data.Dataset.from_tensor_slices(files.tensors()).interleave(
            files,
            cycle_length=min(_CYCLE_LENGTH, len(source.files)),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    ds = ds.unbatch()
    if source.cache:
        ds = ds.cache()
    if source.shuffle_buffer > 1:
        ds = ds.shuffle(source.shuffle_buffer, seed=source.seed, reshuffle_each_iteration=True)
    if source.shard is not None:
        index, count, block = source.shard
        ds = ds.batch(count * block, drop_remainder=True)
        ds = ds.map(lambda *t: tuple(x[index * block : (index + 1) * block] for x in t)).unbatch()
    # Parsed in chunks of whole batches and padded per chunk, then sliced into batches: the Python
    # path's shapes exactly (its generator pads chunks of `chunk_records`, then `rebatch`es).
    ds = ds.batch(source.chunk_records)
    ds = ds.map(_BatchParser(source, parser, key_feature), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)
