"""`scan` and `scan_candidates` of TFRecord files from parsed batches: the same `ScanResult`, vectorised.

Each file is read in batches of 4096 records by `tf.data` and parsed and checked by `NativeParser` in one
traced function; counts, the split, numeric statistics, Id value counts, seen items and candidate
frequencies are then computed on the batch's columns with numpy. Python touches a record only to add a
new candidate to the corpus, for a row the TF checks flag (judged by `example_to_record`, so bad records
get today's verdict and message), and for a record with explicit negatives. Corrupt data (a CRC mismatch,
a cut-off file) makes the rest of that file go through the Python reader, which names the file and record
and counts it as one bad record, as `scan` always did.

Example:
>>> from tfrs_twotower.data.tfrecord import write_tfrecord
>>> from tfrs_twotower.data.scan import scan
>>> schema = {"query": {"age": {"feature_type": "Numeric"}},
...           "candidate": {"movie": {"feature_type": "Id", "config": {"num_buckets": 9}}}}
>>> records = [{"query": {"age": 30}, "candidate": {"movie": "m1"}}] * 3
>>> _ = write_tfrecord(records, "ram://ns_doc.tfrecord", schema)
>>> result = scan("ram://ns_doc.tfrecord", schema, "tfrecord", eval_split=0.0)
>>> result.records_read, result.train_count, len(result.corpus), result.numeric_stats["query"]["age"].mean
(3, 3, 1, 30.0)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.data.compression import is_gzip
from tfrs_twotower.data.gc_pause import gc_paused
from tfrs_twotower.data.native_dataset import int64_keys
from tfrs_twotower.data.native_parse import NativeParser, _Column, feature_rows
from tfrs_twotower.data.records import BadRecordError, Location, RecordParser
from tfrs_twotower.data.split import eval_mask
from tfrs_twotower.data.tfrecord import example_to_record, iter_tfrecord
from tfrs_twotower.feature_types import feature_type_of

_BATCH = 4096
_TRACED: dict = {}


def _fingerprint(parser: NativeParser, parsed: dict) -> tf.Tensor:
    """int64 `[B]`: a hash of each row's candidate features (equal features, equal hash)."""
    parts = []
    for spec in parser.schema.candidate:
        col: _Column = parsed[spec.tfrecord_key]
        values = col.values
        if values.dtype != tf.string:
            values = tf.strings.as_string(tf.bitcast(tf.cast(values, tf.float32) + 0.0, tf.int32))
        joined = tf.strings.unsorted_segment_join(values, col.rowids, col.rows, separator="\x1f")
        parts += [tf.strings.as_string(col.count), joined]
    return tf.strings.to_hash_bucket_fast(tf.strings.join(parts, separator="\x1e"), 1 << 62)


class _Parsed:
    """One parsed batch as numpy: `values(key)`, `splits(key)`, `bad`, `fingerprint`, `negatives`."""

    def __init__(self, out: dict[str, Any]):
        self.out = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in out.items()}
        self._ids: dict[str, np.ndarray] = {}

    def ids(self, spec) -> np.ndarray:
        """An Id feature's values, one str per row (object array); "" in rows without exactly one."""
        if spec.name not in self._ids:
            values, splits = self.out[spec.tfrecord_key + "/v"], self.out[spec.tfrecord_key + "/s"]
            if len(values) == len(splits) - 1:
                out = np.array(_decoded(values), dtype=object)
            else:  # a bad row's list is not one value long
                one = np.diff(splits) == 1
                out = np.full(len(one), "", dtype=object)
                out[one] = _decoded(values[splits[:-1][one]])
            self._ids[spec.name] = out
        return self._ids[spec.name]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.out[key]

    def candidates(self, specs, rows) -> list[dict[str, Any]]:
        """The candidate dicts `{name: normalised value}` of `rows` (valid ones), built column by column."""
        columns = [(self.out[s.tfrecord_key + "/v"], self.out[s.tfrecord_key + "/s"]) for s in specs]
        return feature_rows(specs, columns, rows)

    def row(self, spec, r: int) -> Any:
        """The normalised value of `spec`'s feature in row `r`, as the Python parser gives it."""
        values, splits = self.out[spec.tfrecord_key + "/v"], self.out[spec.tfrecord_key + "/s"]
        return feature_type_of(spec).from_example_values(spec, values[splits[r] : splits[r + 1]])


class NativeScanner:
    """Parses TFRecord batches for `scan`: `batches(path)` yields `(start, serialized, _Parsed or None)`,
    None when the batch could not be parsed natively (every row then goes through Python)."""

    def __init__(self, schema, kind: str, first_file: str | None):
        cache_key = (schema, kind, int64_keys(first_file, schema))
        if cache_key not in _TRACED:  # a scan's traced function serves the next scans of its schema
            _TRACED[cache_key] = self._traced(NativeParser(schema, kind == "pairs", kind, cache_key[2]))
        self._parse = _TRACED[cache_key]

    @staticmethod
    def _traced(parser: NativeParser):

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        def parse(serialized):
            parsed = parser.parse(serialized)
            out = {}
            for key in parser.keys:
                out[key + "/v"], out[key + "/s"] = parsed[key].values, parsed[key].splits
            out["bad"] = parser.bad_rows(parsed)
            out["fingerprint"] = _fingerprint(parser, parsed)
            if parser.negatives:
                out["negatives"] = parser.negative_k(parsed)
            return out

        return parse

    def batches(self, path: str):
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP" if is_gzip(path) else "")
        it = iter(ds.batch(_BATCH).prefetch(2))
        start = 0
        while True:
            try:
                serialized = next(it)
            except StopIteration:
                return
            except tf.errors.OpError:
                # Corrupt or unreadable: the Python reader gives the verdict from here on.
                yield start, None, None
                return
            try:
                parsed = _Parsed(self._parse(serialized))
            except tf.errors.InvalidArgumentError:  # a type mismatch: Python judges each record
                parsed = None
            yield start, serialized.numpy(), parsed
            start += len(serialized)


def _decoded(values: np.ndarray) -> list[str]:
    return [b.decode("utf-8") for b in values]


def python_tail(path: str, start: int):
    """`(location, payload)` of `path`'s records from `start` on, read by the Python reader."""
    return itertools.islice(iter_tfrecord(path, corrupt="yield"), start, None)


def judge(payload: bytes, location: Location, parser: RecordParser, kind: str, reject) -> dict | None:
    """The Python parser's record, or None after handing its `BadRecordError` to `reject`."""
    try:
        return example_to_record(payload, location, parser, kind)
    except BadRecordError as e:
        reject(e)
        return None


def flagged_rows(parsed: _Parsed | None, n: int) -> np.ndarray:
    """The rows Python must parse: flagged by the TF checks or holding negatives (all without parse)."""
    if parsed is None:
        return np.arange(n)
    rows = parsed["bad"]
    if "negatives" in parsed.out:
        rows = rows | (parsed["negatives"] > 0)
    return np.flatnonzero(rows)


def split_flags(path: str, start: int, n: int, eval_split: float) -> np.ndarray:
    if eval_split <= 0.0:
        return np.zeros(n, dtype=bool)
    return eval_mask(path, np.arange(start, start + n), eval_split)


def add_new_candidates(corpus, fingerprints: dict, parsed: _Parsed, specs, rows, keys) -> None:
    """Adds the native `rows` of a batch (in row order, keyed `keys`) to `corpus` as `Corpus.add` would:
    new keys in first-seen order (their dicts built column by column), a known key with other features
    counted in `corpus.conflicts` (by fingerprint; by dict for a candidate Python parsed)."""
    if not len(rows):
        return
    fingerprint = parsed["fingerprint"][rows]
    keys = keys.tolist()
    _, first = np.unique(np.array(keys, dtype=str), return_index=True)
    new = [j for j in np.sort(first).tolist() if keys[j] not in corpus]
    new_keys = [keys[j] for j in new]
    corpus.extend(new_keys, parsed.candidates(specs, rows[new]))
    fingerprints.update(zip(new_keys, fingerprint[new].tolist(), strict=True))
    stored = np.fromiter(map(fingerprints.get, keys, itertools.repeat(-1)), np.int64, len(keys))
    for i in np.flatnonzero(stored < 0).tolist():  # stored from a row Python parsed: compare dicts
        candidate = corpus.candidates[corpus.index_of(keys[i])]
        corpus.conflicts += candidate != parsed.candidates(specs, rows[i : i + 1])[0]
    corpus.conflicts += int(((stored >= 0) & (stored != fingerprint)).sum())


class CandidateBatchScanner:
    """`scan_candidates`' body for TFRecord files read by `native` (a `NativeScanner`): candidate
    documents added to `result.corpus` in file order, bad ones handed to `reject`. Keyed by an Id
    feature, a batch Python parses no row of goes through `add_new_candidates` (no Python per known
    key); otherwise rows are added one by one (their dicts still built column by column)."""

    def __init__(self, result, reject, parser: RecordParser, native: NativeScanner):
        self.result, self.reject, self.parser, self.native = result, reject, parser, native
        self.specs = list(parser.schema.candidate)
        self.fingerprints: dict[str, int] = {}

    def scan_file(self, path: str) -> None:
        result, parser, corpus = self.result, self.parser, self.result.corpus
        key_spec = next((s for s in self.specs if s.name == corpus.key.feature), None)
        for start, serialized, parsed in self.native.batches(path):
            if serialized is None:
                for location, payload in python_tail(path, start):
                    result.records_read += 1
                    record = judge(payload, location, parser, "candidates", self.reject)
                    if record is not None:
                        corpus.add(record)
                return
            n = len(serialized)
            result.records_read += n
            py = {}
            for r in flagged_rows(parsed, n):
                location = Location(path, start + int(r))
                py[int(r)] = judge(bytes(serialized[r]), location, parser, "candidates", self.reject)
            with gc_paused():
                if key_spec is not None and not py:
                    rows = np.arange(n)
                    add_new_candidates(
                        corpus, self.fingerprints, parsed, self.specs, rows, parsed.ids(key_spec)
                    )
                    continue
                native_rows = [r for r in range(n) if r not in py]
                built = iter(parsed.candidates(self.specs, native_rows) if native_rows else ())
                for r in range(n):
                    candidate = py[r] if r in py else next(built)
                    if candidate is None:
                        continue
                    key = corpus.key(candidate)
                    if corpus.add(candidate, key) and r not in py:
                        self.fingerprints[key] = int(parsed["fingerprint"][r])
