"""Tests for `tfrs_twotower.packed.take_rows` (packed lists: values + row splits)."""

import numpy as np

from tfrs_twotower.packed import take_rows

VALUES = np.array([b"a", b"b", b"c", b"d", b"e"])
SPLITS = np.array([0, 2, 2, 5])  # rows: [a, b], [], [c, d, e]


def test_takes_rows_by_index_in_the_given_order_and_repeated():
    values, splits = take_rows(VALUES, SPLITS, [2, 0, 2])
    assert values.tolist() == [b"c", b"d", b"e", b"a", b"b", b"c", b"d", b"e"]
    assert splits.tolist() == [0, 3, 5, 8]


def test_takes_rows_by_mask_and_keeps_empty_rows():
    values, splits = take_rows(VALUES, SPLITS, np.array([False, True, True]))
    assert values.tolist() == [b"c", b"d", b"e"] and splits.tolist() == [0, 0, 3]


def test_takes_no_rows():
    values, splits = take_rows(VALUES, SPLITS, np.zeros([0], np.int64))
    assert values.tolist() == [] and splits.tolist() == [0] and splits.dtype == np.int64
