"""Streaming mean and variance of Numeric features, for Normalization layers.

Each record contributes one value per Numeric feature: the mean of its list (the model mean-pools lists);
records with an empty list contribute nothing. Variance is the population variance (ddof=0), as Keras'
`Normalization.adapt` computes it. Chunks are merged with Chan et al.'s parallel formula in float64.

Example:
>>> acc = NumericStatsAccumulator()
>>> for values in ([1.0], [2.0, 4.0], []):
...     acc.add(values)
>>> acc.result()
NumericStats(count=2, mean=2.0, variance=1.0)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class NumericStats:
    """`count` records with values; their pooled values' `mean` and `variance` (0.0 when `count` is 0)."""

    count: int
    mean: float
    variance: float

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


class NumericStatsAccumulator:
    """Accumulates `NumericStats` one record's list at a time."""

    def __init__(self):
        self._pending: list[float] = []
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0

    def add(self, values: list[float]) -> None:
        if values:
            self._pending.append(sum(values) / len(values) if len(values) > 1 else values[0])
            if len(self._pending) >= _CHUNK:
                self._flush()

    def add_means(self, means: list[float]) -> None:
        """Adds records by their lists' means (records with empty lists left out), e.g. a batch's."""
        self._pending.extend(means)
        if len(self._pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        chunk = np.asarray(self._pending, dtype=np.float64)
        self._pending = []
        n, mean = chunk.size, float(chunk.mean())
        m2 = float(np.sum((chunk - mean) ** 2))
        total = self._count + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._count * n / total
        self._count = total

    def result(self) -> NumericStats:
        self._flush()
        if self._count == 0:
            return NumericStats(0, 0.0, 0.0)
        return NumericStats(self._count, self._mean, self._m2 / self._count)
