"""Deterministic train/eval assignment of a record from where it is.

A record goes to eval when `u < eval_split`, where `u` in [0, 1) is a hash of the file's base name
without its last extension (`part-0` for `gs://b/data/part-0.jsonl`) and the record's 0-based index in
that file (`Location.index`). The hash is blake2b (file name) mixed with
splitmix64 (index): no Python `hash()`, so the assignment is the same in the scan and in the dataset,
across runs, processes and machines, for a copy of the data moved from a local disk to `gs://`, and for
the same records converted between JSONL and TFRecord (`part-0.jsonl` and `part-0.tfrecord` split alike).
The expected eval fraction is `eval_split`; files sharing a name (in different folders) split alike.

Example:
>>> assigner = SplitAssigner("train.jsonl", eval_split=0.2)
>>> assigner.is_eval(0) == SplitAssigner("gs://bucket/data/train.jsonl", 0.2).is_eval(0)
True
"""

from __future__ import annotations

import hashlib
import posixpath

import numpy as np

_BLOCK = 4096
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def check_eval_split(eval_split: float) -> float:
    """Validates `eval_split` (a fraction in [0, 1]) and returns it as a float."""
    if isinstance(eval_split, bool) or not isinstance(eval_split, (int, float)) or not 0 <= eval_split <= 1:
        raise ValueError(f"The `eval_split` parameter must be a float in [0, 1]. Got {eval_split!r} instead.")
    return float(eval_split)


def _file_seed(file: str) -> np.uint64:
    name = posixpath.splitext(posixpath.basename(file.rstrip("/")))[0]
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little"))


def split_values(file: str, indices: np.ndarray) -> np.ndarray:
    """The values `u` in [0, 1) (float64) of the records `indices` of `file`."""
    x = np.asarray(indices, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _file_seed(file) + (x + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def eval_mask(file: str, indices: np.ndarray, eval_split: float) -> np.ndarray:
    """A boolean array: which of the records `indices` of `file` belong to eval."""
    return split_values(file, indices) < check_eval_split(eval_split)


class SplitAssigner:
    """Answers `is_eval(index)` for the records of one file, computing the hashes in vectorised blocks.

    Args:
      file: the file's path (only its base name without extension counts).
      eval_split: the eval fraction, in [0, 1].
    """

    def __init__(self, file: str, eval_split: float):
        self.file = file
        self.eval_split = check_eval_split(eval_split)
        self._start = -1
        self._mask: list[bool] = []

    def is_eval(self, index: int) -> bool:
        if self.eval_split == 0.0:
            return False
        if self.eval_split == 1.0:
            return True
        offset = index - self._start
        if self._start < 0 or not 0 <= offset < _BLOCK:
            self._start = index - index % _BLOCK
            indices = np.arange(self._start, self._start + _BLOCK, dtype=np.uint64)
            self._mask = (split_values(self.file, indices) < self.eval_split).tolist()
            offset = index - self._start
        return self._mask[offset]
