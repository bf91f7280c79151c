"""Packed lists: many variable-length lists stored as one `values` array and its row `splits`.

Row `i` is `values[splits[i]:splits[i + 1]]` (`tf.io.parse_example`'s ragged output in numpy, or
`seen.npz`'s query rows). `take_rows` picks some rows at once, without a Python loop per row.

Example:
>>> values, splits = take_rows(np.array([1, 2, 3, 4]), np.array([0, 1, 1, 4]), [2, 0])
>>> values.tolist(), splits.tolist()
([2, 3, 4, 1], [0, 3, 4])
"""

from __future__ import annotations

import numpy as np


def take_rows(values: np.ndarray, splits: np.ndarray, rows) -> tuple[np.ndarray, np.ndarray]:
    """`(values, splits)` of the rows `rows` (indices in any order, or a bool mask over the rows)."""
    splits = np.asarray(splits, dtype=np.int64)
    rows = np.asarray(rows)
    starts, counts = splits[:-1][rows], np.diff(splits)[rows]
    kept = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Value j of kept row i is value j - kept[i] + starts[i] of the input.
    index = np.arange(kept[-1]) + np.repeat(starts - kept[:-1], counts)
    return values[index], kept
