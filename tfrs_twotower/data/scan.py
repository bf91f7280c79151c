"""One streaming pass over the input before training: counts, bad records, numeric stats, the corpus.

`scan` reads every record once, in file order, holding only the statistics and the candidate corpus
in memory. A bad record is counted and kept in `rejected` (its `Location` goes into `skip`, which
`make_dataset` uses to leave it out); more than `max_bad_records` raises `TooManyBadRecordsError`,
after reading a few more bad records so that the message shows more than one problem.

The train/eval split is `split.SplitAssigner`'s, the same as `make_dataset`'s. Numeric statistics are
computed on the train part; the corpus holds the candidates of every used record (train and eval) and
their explicit negatives. `scan_candidates` builds the corpus from a `candidate_data_path` instead.

Example:
>>> from tfrs_twotower.data.jsonl import write_jsonl
>>> schema = {"query": {"age": {"feature_type": "Numeric"}},
...           "candidate": {"movie": {"feature_type": "Id", "config": {"num_buckets": 9}}}}
>>> _ = write_jsonl([{"query": {"age": 30}, "candidate": {"movie": "m1"}}] * 3, "ram://scan_doc.jsonl")
>>> result = scan("ram://scan_doc.jsonl", schema, eval_split=0.0)
>>> result.records_read, result.train_count, len(result.corpus), result.numeric_stats["query"]["age"].mean
(3, 3, 1, 30.0)
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from typing import Any, Callable, Iterator, Sequence

from tfrs_twotower.data.corpus import CandidateKey, Corpus
from tfrs_twotower.data.formats import check_file_format, iter_payloads, payload_parser
from tfrs_twotower.data.gc_pause import gc_paused
from tfrs_twotower.data.id_counts import IdValueCounter
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.data.records import BadRecordError, RecordParser
from tfrs_twotower.data.seen import SeenItems
from tfrs_twotower.data.split import SplitAssigner, check_eval_split
from tfrs_twotower.data.stats import NumericStats, NumericStatsAccumulator
from tfrs_twotower.errors import DataError
from tfrs_twotower.feature_types import NUMERIC, feature_type_of
from tfrs_twotower.schema import load_schema

_EXTRA_ERRORS = 9  # bad records read past the limit before giving up, to show several problems
_SHOWN_ERRORS = 10


class TooManyBadRecordsError(DataError):
    """More bad records than `max_bad_records`; `errors` holds the first ones, `count` how many were seen."""

    def __init__(self, errors: list[BadRecordError], count: int, max_bad_records: int, finished: bool):
        self.errors = list(errors)
        self.count = count
        self.max_bad_records = max_bad_records
        shown = "\n".join(f"  - {e}" for e in self.errors[:_SHOWN_ERRORS])
        more = count - min(len(self.errors), _SHOWN_ERRORS)
        seen = f"{count} bad records" if finished else f"at least {count} bad records (stopped reading early)"
        super().__init__(
            f"{seen}, more than max_bad_records={max_bad_records}. The first ones:\n{shown}\n"
            + (f"  ... and {more} more\n" if more > 0 else "")
            + "Fix the data (each line names its file and line or record), or raise --max_bad_records "
            "to skip up to that many bad records."
        )


def _check_max_bad_records(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"The `max_bad_records` parameter must be an int in [0, inf). Got {value!r} instead."
        )
    return value


@dataclasses.dataclass
class ScanResult:
    """What `scan` (or `scan_candidates`) found.

    Attributes:
      files: the files read, in order.
      file_format: "jsonl" or "tfrecord".
      kind: "pairs" (`scan`) or "candidates" (`scan_candidates`).
      eval_split: the eval fraction used.
      records_read: records seen (blank JSONL lines are not records).
      train_count, eval_count: good records assigned to train and to eval (0 for candidate files).
      rejected: the bad records' errors, each with its `location`.
      numeric_stats: `{side: {name: NumericStats}}` for every Numeric feature, on the train part.
      corpus: the distinct candidates.
      weighted_count: records with an explicit `weight`.
      negatives_count: records with at least one explicit negative; `max_negatives`: the most in one.
      train_positive_counts: how often each candidate key is the positive of a train record (the
        candidates' sampling frequencies, for logQ correction).
      seen: each query id's train positives as corpus indices (`SeenItems`, for seen-item exclusion),
        keyed by the query side's first Id feature; None without one.
      id_counts: `{side: {name: IdValueCounter}}`: the train part's values of each encoded Id feature.
      eval_positive_counts: the same for the eval records (for the popularity baseline).
      seconds: how long the scan took.
    """

    files: list[str]
    file_format: str
    kind: str
    eval_split: float
    records_read: int = 0
    train_count: int = 0
    eval_count: int = 0
    rejected: list[BadRecordError] = dataclasses.field(default_factory=list)
    numeric_stats: dict[str, dict[str, NumericStats]] = dataclasses.field(default_factory=dict)
    corpus: Corpus | None = None
    weighted_count: int = 0
    negatives_count: int = 0
    max_negatives: int = 0
    train_positive_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    seen: SeenItems | None = None
    id_counts: dict[str, dict[str, IdValueCounter]] = dataclasses.field(default_factory=dict)
    eval_positive_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    @property
    def used_count(self) -> int:
        """Good records: train + eval for pairs, the documents read for candidate files."""
        return self.records_read - self.rejected_count

    @property
    def has_negatives(self) -> bool:
        return self.max_negatives > 0

    @property
    def skip(self) -> frozenset[tuple[str, int]]:
        """The rejected records' `(file, index)`, for `make_dataset(skip=...)`."""
        return frozenset((e.location.file, e.location.index) for e in self.rejected)

    def summary(self) -> str:
        """A few human-readable lines for logs."""
        lines = [
            f"{self.records_read} records read from {len(self.files)} {self.file_format} file(s)"
            + (f" in {self.seconds:.1f} s: " if self.seconds else ": ")
            + (
                f"{self.train_count} train, {self.eval_count} eval, "
                if self.kind == "pairs"
                else f"{self.used_count} candidate documents, "
            )
            + f"{self.rejected_count} rejected.",
            f"{len(self.corpus)} distinct candidates"
            + (
                f" ({self.corpus.conflicts} records reuse a key with different features)"
                if self.corpus.conflicts
                else ""
            )
            + ".",
        ]
        lines += [f"  rejected: {e}" for e in self.rejected[:_SHOWN_ERRORS]]
        return "\n".join(lines)


def _chunks(items: Iterator, size: int = 4096) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _count_extras(result: ScanResult, record: dict, add_candidate: Callable[[dict], bool]) -> None:
    result.weighted_count += "weight" in record
    negatives = record.get("negatives")
    if negatives:
        result.negatives_count += 1
        result.max_negatives = max(result.max_negatives, len(negatives))
        for negative in negatives:
            add_candidate(negative)


class _Rejections:
    def __init__(self, result: ScanResult, max_bad_records: int):
        self.result = result
        self.max_bad_records = max_bad_records

    def __call__(self, error: BadRecordError) -> None:
        # The traceback would keep the parser's frames (and the record) alive for each kept error.
        self.result.rejected.append(error.with_traceback(None))
        if len(self.result.rejected) > self.max_bad_records + _EXTRA_ERRORS:
            self.fail(finished=False)

    def check(self) -> None:
        if len(self.result.rejected) > self.max_bad_records:
            self.fail(finished=True)

    def fail(self, finished: bool) -> None:
        rejected = self.result.rejected
        raise TooManyBadRecordsError(rejected[:_SHOWN_ERRORS], len(rejected), self.max_bad_records, finished)


def _native_scanner(result: ScanResult, schema, kind: str):
    """The `NativeScanner` of a TFRecord scan (None for JSONL, or when the native path is off)."""
    from tfrs_twotower.data.dataset import native_enabled

    if not native_enabled(result.file_format) or not result.files:
        return None
    from tfrs_twotower.data.native_scan import NativeScanner

    return NativeScanner(schema, kind, result.files[0])


def _python_tail(path: str, start: int):
    from tfrs_twotower.data.native_scan import python_tail

    return python_tail(path, start)


def scan(
    paths: str | Sequence[str],
    schema: Any,
    file_format: str = "jsonl",
    max_bad_records: int = 0,
    eval_split: float = 0.2,
    candidate_key_feature: str | None = None,
    allow_extra_features: bool = False,
) -> ScanResult:
    """Reads training data once: counts, bad records, train-part numeric stats and the candidate corpus.

    Args:
      paths: a path spec (file, directory, glob, comma-separated list) or a list of them.
      schema: the input schema (an `InputSchema`, a dict or a path).
      file_format: "jsonl" or "tfrecord".
      max_bad_records: how many bad records may be skipped (counted and listed) before failing.
      eval_split: the fraction of records assigned to eval, in [0, 1] (1.0 for an eval-only input).
      candidate_key_feature: the candidate Id feature keying the corpus (see `CandidateKey`).
      allow_extra_features: ignore unknown features instead of rejecting their records.

    Returns:
      A `ScanResult`.

    Raises:
      TooManyBadRecordsError: with more than `max_bad_records` bad records.
      FileNotFoundError: when a part of `paths` matches no file.

    Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
    >>> with open(path, "w") as f:
    ...     f.writelines(json.dumps({"query": {"age": [20.0 + i]}, "candidate": {"item": f"i{i % 3}"}})
    ...                  + "\\n" for i in range(10))
    >>> schema = {"query": {"age": {"feature_type": "Numeric"}},
    ...           "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}}
    >>> result = scan(path, schema, eval_split=0.0)
    >>> result.train_count, len(result.corpus), result.numeric_stats["query"]["age"].mean
    (10, 3, 24.5)
    """
    started = time.perf_counter()
    schema = load_schema(schema)
    parser = RecordParser(schema, allow_extra_features)
    result = ScanResult(
        files=resolve_paths(paths),
        file_format=check_file_format(file_format),
        kind="pairs",
        eval_split=check_eval_split(eval_split),
        corpus=Corpus(CandidateKey(schema, candidate_key_feature)),
    )
    reject = _Rejections(result, _check_max_bad_records(max_bad_records))
    accumulators = [
        (spec.side, spec.name, NumericStatsAccumulator())
        for side in ("query", "candidate")
        for spec in schema.side(side)
        if feature_type_of(spec) is NUMERIC
    ]
    id_counters = [
        (spec.side, spec.name, IdValueCounter(spec.num_buckets))
        for side in ("query", "candidate")
        for spec in schema.side(side)
        if feature_type_of(spec).identifies and spec.encoded
    ]
    for side, name, counter in id_counters:
        result.id_counts.setdefault(side, {})[name] = counter
    query_ids = [s.name for s in schema.query if feature_type_of(s).identifies]
    seen = result.seen = SeenItems(query_ids[0]) if query_ids else None
    parse = payload_parser(file_format)
    add_candidate = result.corpus.add
    candidate_key = result.corpus.key
    candidate_index = result.corpus.index_of
    positive_counts = result.train_positive_counts

    def add_python_record(record: dict, is_eval: bool) -> None:
        """The bookkeeping of one good record, as the loop below does it per chunk."""
        key = candidate_key(record["candidate"])
        add_candidate(record["candidate"], key)
        if is_eval:
            result.eval_count += 1
            result.eval_positive_counts[key] += 1
        else:
            result.train_count += 1
            positive_counts[key] += 1
            for side, name, acc in accumulators:
                acc.add(record[side][name])
            for side, name, counter in id_counters:
                counter.add_many([record[side][name]])
            if seen is not None:
                seen.add(record["query"][seen.feature], candidate_index(key))
        if len(record) > 2:
            _count_extras(result, record, add_candidate)

    native = _native_scanner(result, schema, "pairs")
    if native is not None:
        from tfrs_twotower.data.native_scan_pairs import PairBatchScanner

        batches = PairBatchScanner(result, reject, parser, accumulators, id_counters, add_python_record)
    for path in result.files:
        if native is not None:
            for start, serialized, parsed in native.batches(path):
                if serialized is not None:
                    batches.add(path, start, serialized, parsed)
                    continue
                for location, payload in _python_tail(path, start):  # corrupt data: Python's verdict
                    result.records_read += 1
                    try:
                        record = parse(payload, location, parser, "pairs")
                    except BadRecordError as e:
                        reject(e)
                        continue
                    add_python_record(record, SplitAssigner(path, result.eval_split).is_eval(location.index))
            continue
        assigner = SplitAssigner(path, result.eval_split)
        for chunk in _chunks(iter_payloads(path, file_format)):
            train_chunk, train_keys = [], []
            with gc_paused():
                for location, payload in chunk:
                    result.records_read += 1
                    try:
                        record = parse(payload, location, parser, "pairs")
                    except BadRecordError as e:
                        reject(e)
                        continue
                    key = candidate_key(record["candidate"])
                    add_candidate(record["candidate"], key)
                    if assigner.is_eval(location.index):
                        result.eval_count += 1
                        result.eval_positive_counts[key] += 1
                    else:
                        result.train_count += 1
                        positive_counts[key] += 1
                        for side, name, acc in accumulators:
                            acc.add(record[side][name])
                        train_chunk.append(record)
                        train_keys.append(key)
                    if len(record) > 2:
                        _count_extras(result, record, add_candidate)
                for side, name, counter in id_counters:
                    counter.add_many([r[side][name] for r in train_chunk])
                if seen is not None:
                    seen.add_many(
                        [r["query"][seen.feature] for r in train_chunk],
                        [candidate_index(k) for k in train_keys],
                    )
    reject.check()
    result.numeric_stats = {side: {} for side in ("query", "candidate")}
    for side, name, acc in accumulators:
        result.numeric_stats[side][name] = acc.result()
    result.seconds = time.perf_counter() - started
    return result


def scan_candidates(
    paths: str | Sequence[str],
    schema: Any,
    file_format: str = "jsonl",
    candidate_key_feature: str | None = None,
    max_bad_records: int = 0,
    allow_extra_features: bool = False,
) -> ScanResult:
    """Builds the corpus from candidate files (`candidate_data_path`): one candidate document a record.

    A JSONL line is `{name: value}` with the candidate side's features; a TFRecord Example has the
    `candidate_<name>` keys. Arguments, errors and the result are as `scan`'s (`kind="candidates"`).
    """
    started = time.perf_counter()
    schema = load_schema(schema)
    parser = RecordParser(schema, allow_extra_features)
    result = ScanResult(
        files=resolve_paths(paths),
        file_format=check_file_format(file_format),
        kind="candidates",
        eval_split=0.0,
        corpus=Corpus(CandidateKey(schema, candidate_key_feature)),
    )
    reject = _Rejections(result, _check_max_bad_records(max_bad_records))
    parse = payload_parser(file_format)
    native = _native_scanner(result, schema, "candidates")
    if native is not None:
        from tfrs_twotower.data.native_scan import CandidateBatchScanner

        native = CandidateBatchScanner(result, reject, parser, native)
    for path in result.files:
        if native is not None:
            native.scan_file(path)
            continue
        for chunk in _chunks(iter_payloads(path, file_format)):
            with gc_paused():
                for location, payload in chunk:
                    result.records_read += 1
                    try:
                        result.corpus.add(parse(payload, location, parser, "candidates"))
                    except BadRecordError as e:
                        reject(e)
    reject.check()
    result.seconds = time.perf_counter() - started
    return result
