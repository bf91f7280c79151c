"""JSON value checks shared by the feature types: strings, finite numbers, and the error detail.

A checker takes one decoded JSON value and returns it normalised, or raises `InvalidValue`; the record
parser (`data.records.RecordParser`) turns that into a `BadRecordError` naming the file, line and
feature. The checks test exact types first (JSON gives exact types, and that is fastest); the slow paths
accept subclasses and numpy scalars too, for records built in Python (`write_jsonl`, `write_tfrecord`).

Example:
>>> check_strings("a"), check_numbers([1, 2.5])
(['a'], [1.0, 2.5])
>>> try:
...     check_numbers([1, "x"])
... except InvalidValue as e:
...     print(e.detail)
 (element 1 is "x")
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np


class InvalidValue(Exception):
    """A value that breaks its type's rule; `detail` (may be empty) says which part, e.g. " (a list of 3)".

    `suffix` is appended to the key named in the error (`.lengths` for a negatives' length list).
    """

    def __init__(self, detail: str = "", suffix: str = ""):
        super().__init__(detail)
        self.detail = detail
        self.suffix = suffix


def describe(value: Any, limit: int = 80) -> str:
    """A short JSON rendering of `value` for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_bad(values: list, ok: Callable[[Any], bool]) -> str:
    """The error detail naming the first element of `values` that is not `ok` ("" when all are)."""
    for i, x in enumerate(values):
        if not ok(x):
            return f" (element {i} is {describe(x, 40)})"
    return ""


def is_real(x: Any) -> bool:
    """An int or float (numpy scalars included), not a bool."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def is_number(x: Any) -> bool:
    """A finite real number (booleans, NaN, infinities and ints beyond float's range are not)."""
    try:
        return (type(x) is float or type(x) is int or is_real(x)) and math.isfinite(x)
    except OverflowError:  # an int beyond float's range
        return False


def check_strings(v: Any) -> list[str]:
    """A string or a list of strings (may be empty) -> `list[str]`."""
    if type(v) is str:
        return [v]
    if type(v) is list:
        for x in v:
            if type(x) is not str:
                if all(isinstance(y, str) for y in v):
                    return [str(y) for y in v]
                raise InvalidValue(first_bad(v, lambda y: isinstance(y, str)))
        return v
    if isinstance(v, str):
        return [str(v)]
    raise InvalidValue()


def check_numbers(v: Any) -> list[float]:
    """A finite number or a list of them (may be empty) -> `list[float]`."""
    if type(v) is list:
        try:
            out = [float(x) for x in v if type(x) is float or type(x) is int]
            if len(out) == len(v) and all(map(math.isfinite, out)):
                return out
        except OverflowError:
            pass
        if all(map(is_number, v)):
            return [float(x) for x in v]
        raise InvalidValue(first_bad(v, is_number))
    if is_number(v):
        return [float(v)]
    raise InvalidValue()
