"""Parameter constraints declared once, checked by one validator that words every message the same way.

Example:
>>> check_parameter("train_batch_size", 0, Interval(int, 1, None))
Traceback (most recent call last):
...
tfrs_twotower.errors.ConfigError: The `train_batch_size` parameter must be an int in [1, inf). Got 0 instead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tfrs_twotower.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Interval:
    """Numbers of `kind` (int or float) between `low` and `high` (None: unbounded)."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.kind is float and not isinstance(value, (int, float)):
            return False
        if self.kind is float and not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{'an int' if self.kind is int else 'a float'} in {left}{low}, {high}{right}"


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of the listed values."""

    options: tuple

    def accepts(self, value: Any) -> bool:
        return value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


@dataclasses.dataclass(frozen=True)
class Text:
    """A non-empty string."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def __str__(self) -> str:
        return "a non-empty string"


class Boolean:
    """True or False."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "a bool"


def check_parameter(name: str, value: Any, *constraints: Any, optional: bool = False) -> None:
    """Raises ValueError unless `value` meets one of `constraints` (or is None when `optional`)."""
    if value is None and optional:
        return
    if any(c.accepts(value) for c in constraints):
        return
    wanted = " or ".join(str(c) for c in constraints)
    if optional:
        wanted += " or None"
    raise ConfigError(f"The `{name}` parameter must be {wanted}. Got {value!r} instead.")
