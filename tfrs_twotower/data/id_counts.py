"""How often each value of an Id feature occurs in the training part, for Id vocabularies.

`IdValueCounter` counts exactly while a feature has at most `2 * num_buckets` (at least 65,536)
distinct values; past that it keeps the `num_buckets` most frequent values and goes on counting, so
memory stays bounded and the counts become approximate (lower bounds) for the tail. `vocabulary()`
picks the values seen at least `min_count` times, most frequent first; when they would not fit in
`num_buckets` rows (one row is kept for unknown values) it returns None: the feature then hashes into
`num_buckets` buckets, as Vertex AI does.

Example:
>>> counter = IdValueCounter(num_buckets=10)
>>> for value in ["u1", "u2", "u1", "u3", "u1", "u2"]:
...     counter.add(value)
>>> counter.vocabulary(min_count=2)
['u1', 'u2']
"""

from __future__ import annotations

import collections

_MIN_CAP = 65536


def check_min_count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"The `id_min_count` parameter must be an int in [0, inf). Got {value!r} instead.")
    return value


class IdValueCounter:
    """Counts one Id feature's values, keeping memory bounded by `num_buckets`.

    Args:
      num_buckets: the feature's schema `num_buckets` (the most rows its table may have).
    """

    def __init__(self, num_buckets: int):
        self.num_buckets = int(num_buckets)
        self.cap = max(2 * self.num_buckets, _MIN_CAP)
        self.counts: collections.Counter = collections.Counter()
        self.pruned = False

    def add(self, value: str) -> None:
        self.add_many((value,))

    def add_many(self, values) -> None:
        """Counts an iterable of values (a chunk of records' values: Counter.update runs in C)."""
        self.counts.update(values)
        if len(self.counts) > self.cap:
            self.counts = collections.Counter(dict(self.counts.most_common(self.num_buckets)))
            self.pruned = True

    def vocabulary(self, min_count: int) -> list[str] | None:
        """The values seen at least `min_count` (>= 1) times, most frequent first (ties by value);
        None when they need more than `num_buckets - 1` rows (hash instead)."""
        if min_count < 1:
            raise ValueError(f"`min_count` must be >= 1 for a vocabulary. Got {min_count}.")
        kept = [(-n, value) for value, n in self.counts.items() if n >= min_count]
        if len(kept) + 1 > self.num_buckets:
            return None
        return [value for _, value in sorted(kept)]


def id_vocabularies(counters: dict, min_count: int) -> dict[str, dict[str, list[str] | None]]:
    """`{side: {name: vocabulary or None}}` from the scan's `{side: {name: IdValueCounter}}`;
    `min_count` 0 gives None everywhere (hash every Id feature, as Vertex AI)."""
    min_count = check_min_count(min_count)
    return {
        side: {name: (None if min_count == 0 else c.vocabulary(min_count)) for name, c in by_name.items()}
        for side, by_name in counters.items()
    }
