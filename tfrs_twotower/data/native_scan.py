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
from tfrs_twotower.data.native_dataset import int64_keys
from tfrs_twotower.data.native_parse import NativeParser, _Column
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


def _decoded(values: np.ndarray) -> list[str]:
    return [b.decode("utf-8") for b in values]


class PairBatchScanner:
    """Adds one parsed batch of pair records to a `ScanResult` (the body of `scan` for TFRecord).

    Args:
      result, reject, parser: the scan's `ScanResult`, its rejection counter and `RecordParser`.
      accumulators, id_counters: `(side, name, accumulator)` of the Numeric and encoded Id features.
      add_python_record: `(record, is_eval)` -> None, the Python scan's bookkeeping of one good record.
    """

    def __init__(self, result, reject, parser: RecordParser, accumulators, id_counters, add_python_record):
        self.result, self.reject, self.parser = result, reject, parser
        self.schema = parser.schema
        self.accumulators, self.id_counters = accumulators, id_counters
        self.add_python_record = add_python_record
        self.specs = {(s.side, s.name): s for side in ("query", "candidate") for s in self.schema.side(side)}
        self.key = result.corpus.key
        self.fingerprints: dict[str, int | None] = {}

    def _column(self, parsed, py: dict, rows: np.ndarray, side: str, name: str) -> list:
        """An Id feature's values in `rows` (Python rows from their records)."""
        values = parsed.ids(self.specs[(side, name)])[rows]
        for i in np.flatnonzero(np.isin(rows, list(py))) if py else ():
            values[i] = py[int(rows[i])][side][name]
        return values.tolist()

    def add(self, path: str, start: int, serialized: np.ndarray, parsed: _Parsed | None) -> None:
        result, n = self.result, len(serialized)
        result.records_read += n
        is_eval = split_flags(path, start, n, result.eval_split)
        py, good = {}, np.ones(n, dtype=bool)
        for r in flagged_rows(parsed, n):
            record = judge(
                bytes(serialized[r]), Location(path, start + int(r)), self.parser, "pairs", self.reject
            )
            if record is None:
                good[r] = False
            else:
                py[int(r)] = record
        if parsed is None:  # every row was judged by Python
            for r in np.flatnonzero(good):
                self.add_python_record(py[int(r)], bool(is_eval[r]))
            return
        self._corpus(parsed, py, good)
        train, held = good & ~is_eval, good & is_eval
        keys = self._keys(parsed, py, good)
        result.train_count += int(train.sum())
        result.eval_count += int(held.sum())
        result.train_positive_counts.update(keys[train].tolist())
        result.eval_positive_counts.update(keys[held].tolist())
        weight_rows = parsed["weight/s"][1:] > parsed["weight/s"][:-1]
        native = good.copy()
        native[list(py)] = False
        result.weighted_count += int((weight_rows & native).sum())  # Python rows: in _count_extras
        train_rows = np.flatnonzero(train)
        self._numeric(parsed, py, train, train_rows)
        for side, name, counter in self.id_counters:
            counter.add_many(self._column(parsed, py, train_rows, side, name))
        seen = result.seen
        if seen is not None:
            index_of = result.corpus.index_of
            seen.add_many(
                self._column(parsed, py, train_rows, "query", seen.feature),
                [index_of(k) for k in keys[train]],
            )

    def _keys(self, parsed: _Parsed, py: dict, good: np.ndarray) -> np.ndarray:
        if self.key.feature is None:
            return np.array([k for k in self._row_keys], dtype=object)
        keys = parsed.ids(self.specs[("candidate", self.key.feature)]).copy()
        for r, record in py.items():
            keys[r] = self.key(record["candidate"])
        return keys

    def _candidate(self, parsed: _Parsed, r: int) -> dict:
        return {s.name: parsed.row(s, r) for s in self.schema.candidate}

    def _corpus(self, parsed: _Parsed, py: dict, good: np.ndarray) -> None:
        corpus, result, fingerprints = self.result.corpus, self.result, self.fingerprints
        fingerprint = parsed["fingerprint"]
        by_feature = self.key.feature is not None
        ids = parsed.ids(self.specs[("candidate", self.key.feature)]) if by_feature else None
        if by_feature and not py:
            self._corpus_vectorised(parsed, ids, good)
            return
        self._row_keys = []
        for r in np.flatnonzero(good).tolist():
            record = py.get(r)
            candidate = record["candidate"] if record is not None else None
            if by_feature and candidate is None:
                k = ids[r]
            else:
                candidate = candidate if candidate is not None else self._candidate(parsed, r)
                k = self.key(candidate)
            self._row_keys.append(k)
            if k not in corpus:
                corpus.add(candidate if candidate is not None else self._candidate(parsed, r), k)
                fingerprints[k] = int(fingerprint[r])
            elif fingerprints.get(k) is not None:
                corpus.conflicts += fingerprints[k] != int(fingerprint[r])
            else:
                stored = corpus.candidates[corpus.index_of(k)]
                corpus.conflicts += stored != (
                    candidate if candidate is not None else self._candidate(parsed, r)
                )
            if record is not None and len(record) > 2:
                from tfrs_twotower.data.scan import _count_extras

                _count_extras(result, record, corpus.add)
        if not by_feature:
            keys = iter(self._row_keys)
            self._row_keys = [next(keys) if g else "" for g in good]

    def _corpus_vectorised(self, parsed: _Parsed, ids: np.ndarray, good: np.ndarray) -> None:
        """`_corpus` for a batch of native rows keyed by an Id feature: new keys in first-seen order,
        conflicts by fingerprint."""
        corpus, fingerprints = self.result.corpus, self.fingerprints
        rows = np.flatnonzero(good)
        keys, fingerprint = ids[rows], parsed["fingerprint"][rows]
        if not len(rows):
            return
        unique, first = np.unique(keys.astype(str), return_index=True)
        for j in np.argsort(first, kind="stable"):
            key = keys[first[j]]
            if key not in corpus:
                corpus.add(self._candidate(parsed, int(rows[first[j]])), key)
                fingerprints[key] = int(fingerprint[first[j]])
        stored = [fingerprints.get(k) for k in keys.tolist()]
        for i in [i for i, f in enumerate(stored) if f is None]:  # stored by a batch Python parsed
            candidate = corpus.candidates[corpus.index_of(keys[i])]
            corpus.conflicts += candidate != self._candidate(parsed, int(rows[i]))
        known = np.array([f if f is not None else 0 for f in stored], dtype=np.int64)
        corpus.conflicts += int(((known != fingerprint) & np.array([f is not None for f in stored])).sum())

    def _numeric(self, parsed: _Parsed, py: dict, train: np.ndarray, train_rows: np.ndarray) -> None:
        n = len(train)
        for side, name, acc in self.accumulators:
            spec = self.specs[(side, name)]
            values = parsed[spec.tfrecord_key + "/v"].astype(np.float32).astype(np.float64)
            splits = parsed[spec.tfrecord_key + "/s"]
            counts = np.diff(splits)
            sums = np.bincount(np.repeat(np.arange(n), counts), weights=values, minlength=n)
            use = train & (counts > 0)
            use[list(py)] = False
            means = (sums[use] / counts[use]).tolist()
            means += [sum(v) / len(v) for r in train_rows if r in py for v in [py[r][side][name]] if v]
            acc.add_means(means)
