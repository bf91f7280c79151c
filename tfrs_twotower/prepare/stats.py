"""What `prepare` learns about the data, file by file, merged into one summary (a Beam combine).

`PartialStats` holds the statistics of one input file, or of several merged: counts, per-feature
numeric moments, Id value counts, candidate positive counts (for logQ), the candidates first seen (with
their first-seen order `(file index, record index, position)`, so that merging in any order gives the
corpus `scan` builds: first-seen order over the files in order) and the shards written. `merge` is
associative and commutative, as Beam's `CombineFn` needs.

Example:
>>> a, b = PartialStats(), PartialStats()
>>> a.add_numeric(("query", "age"), 2, 1.0, 0.0); b.add_numeric(("query", "age"), 2, 3.0, 0.0)
>>> a.merge(b).numeric_result()["query"]["age"]
NumericStats(count=4, mean=2.0, variance=1.0)
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from tfrs_twotower.data.id_counts import IdValueCounter
from tfrs_twotower.data.records import BadRecordError
from tfrs_twotower.data.stats import NumericStats

SHOWN_ERRORS = 10  # the first bad records kept (in file order) for the error message


@dataclasses.dataclass
class PartialStats:
    """Statistics of some input files; `merge` combines two (see the module docstring)."""

    files: dict[int, str] = dataclasses.field(default_factory=dict)
    records_read: int = 0
    train_count: int = 0
    eval_count: int = 0
    rejected_count: int = 0
    first_errors: list[tuple[int, int, BadRecordError]] = dataclasses.field(default_factory=list)
    rejected_files: list[str] = dataclasses.field(default_factory=list)
    weighted_count: int = 0
    negatives_count: int = 0
    max_negatives: int = 0
    numeric: dict[tuple[str, str], tuple[int, float, float]] = dataclasses.field(default_factory=dict)
    id_counts: dict[tuple[str, str], collections.Counter] = dataclasses.field(default_factory=dict)
    id_buckets: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    train_positive_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    eval_positive_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    candidates: dict[str, tuple[tuple[int, int, int], dict]] = dataclasses.field(default_factory=dict)
    conflicts: int = 0
    shards: dict[str, list[tuple[str, int]]] = dataclasses.field(default_factory=dict)
    seen_files: list[str] = dataclasses.field(default_factory=list)

    def add_numeric(self, key: tuple[str, str], count: int, mean: float, m2: float) -> None:
        """Merges `count` values with this `mean` and sum of squared deviations `m2` (Chan et al.)."""
        n0, mean0, m20 = self.numeric.get(key, (0, 0.0, 0.0))
        total = n0 + count
        if count == 0:
            self.numeric[key] = (n0, mean0, m20)
            return
        delta = mean - mean0
        self.numeric[key] = (
            total,
            mean0 + delta * count / total,
            m20 + m2 + delta * delta * n0 * count / total,
        )

    def add_candidate(self, key: str, order: tuple[int, int, int], features: dict) -> None:
        known = self.candidates.get(key)
        if known is None:
            self.candidates[key] = (order, features)
            return
        if known[1] != features:
            self.conflicts += 1
        if order < known[0]:
            self.candidates[key] = (order, features)

    def reject(self, file_index: int, error: BadRecordError) -> None:
        self.rejected_count += 1
        if len(self.first_errors) < SHOWN_ERRORS:
            self.first_errors.append((file_index, error.location.index, error.with_traceback(None)))

    def merge(self, other: "PartialStats") -> "PartialStats":
        """Adds `other` into this one and returns it."""
        self.files.update(other.files)
        for name in (
            "records_read",
            "train_count",
            "eval_count",
            "rejected_count",
            "weighted_count",
            "negatives_count",
            "conflicts",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_negatives = max(self.max_negatives, other.max_negatives)
        self.first_errors = sorted(self.first_errors + other.first_errors, key=lambda e: e[:2])[:SHOWN_ERRORS]
        self.rejected_files += other.rejected_files
        self.seen_files += other.seen_files
        for key, (n, mean, m2) in other.numeric.items():
            self.add_numeric(key, n, mean, m2)
        self.id_buckets.update(other.id_buckets)
        for key, counts in other.id_counts.items():
            self.id_counts.setdefault(key, collections.Counter()).update(counts)
        self.train_positive_counts.update(other.train_positive_counts)
        self.eval_positive_counts.update(other.eval_positive_counts)
        for key, (order, features) in other.candidates.items():
            self.add_candidate(key, order, features)
        for split, shards in other.shards.items():
            self.shards.setdefault(split, []).extend(shards)
        return self

    def numeric_result(self) -> dict[str, dict[str, NumericStats]]:
        out: dict[str, dict[str, NumericStats]] = {"query": {}, "candidate": {}}
        for (side, name), (n, mean, m2) in self.numeric.items():
            out[side][name] = NumericStats(n, mean, m2 / n) if n else NumericStats(0, 0.0, 0.0)
        return out

    def id_counters(self) -> dict[str, dict[str, IdValueCounter]]:
        """`{side: {name: IdValueCounter}}` as `scan` gives them (the most frequent kept past the cap)."""
        out: dict[str, dict[str, IdValueCounter]] = {}
        for (side, name), buckets in self.id_buckets.items():
            counter = IdValueCounter(buckets)
            counter.add_many(self.id_counts.get((side, name), collections.Counter()))
            out.setdefault(side, {})[name] = counter
        return out

    def corpus_order(self) -> list[tuple[str, dict]]:
        """The distinct candidates, first seen first."""
        return [
            (key, features) for key, (_, features) in sorted(self.candidates.items(), key=lambda kv: kv[1][0])
        ]


def counter_json(counter: IdValueCounter) -> dict[str, Any]:
    return {"num_buckets": counter.num_buckets, "pruned": counter.pruned, "counts": dict(counter.counts)}


def counter_from_json(value: dict[str, Any]) -> IdValueCounter:
    counter = IdValueCounter(value["num_buckets"])
    counter.counts = collections.Counter(value["counts"])
    counter.pruned = bool(value["pruned"])
    return counter
