"""The pair `scan` of one parsed TFRecord batch: `PairBatchScanner.add` updates a `ScanResult` with numpy.

Counts, the split, candidate frequencies, Numeric statistics, Id value counts and seen items are computed
on the batch's columns (`native_scan._Parsed`); a new corpus candidate becomes a dict, and a row the TF
checks flag (or with explicit negatives) goes through the Python parser and the Python scan's bookkeeping.

Example:
>>> from tfrs_twotower.data.tfrecord import write_tfrecord
>>> from tfrs_twotower.data.scan import scan
>>> schema = {"query": {"u": {"feature_type": "Id", "config": {"num_buckets": 9}}},
...           "candidate": {"m": {"feature_type": "Id", "config": {"num_buckets": 9}}}}
>>> records = [{"query": {"u": f"u{i}"}, "candidate": {"m": f"m{i % 2}"}} for i in range(4)]
>>> _ = write_tfrecord(records, "ram://nsp_doc.tfrecord", schema)
>>> sorted(scan("ram://nsp_doc.tfrecord", schema, "tfrecord", eval_split=0.0).train_positive_counts.items())
[('m0', 2), ('m1', 2)]
"""

from __future__ import annotations

import numpy as np

from tfrs_twotower.data.native_scan import _Parsed, add_new_candidates, flagged_rows, judge, split_flags
from tfrs_twotower.data.records import Location, RecordParser


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
        """`_corpus` for a batch of native rows keyed by an Id feature (`add_new_candidates`)."""
        rows = np.flatnonzero(good)
        add_new_candidates(
            self.result.corpus, self.fingerprints, parsed, self.schema.candidate, rows, ids[rows]
        )

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
