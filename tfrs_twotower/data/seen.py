"""Each query id's training positives, for seen-item exclusion in full-corpus evaluation.

The scan records, for every training record, `(query id, candidate index)`: the candidate's position in
the scan's corpus (an int, not the key string), appended to a compact `array('i')` per query id, so that
a million pairs take about 4 MB plus one small array per distinct query id. Duplicates are removed when
the rows are read (`rows_for`).

Example:
>>> seen = SeenItems("user_id")
>>> seen.add("u1", 3); seen.add("u1", 0); seen.add("u1", 3); seen.add("u2", 1)
>>> [row.tolist() for row in seen.rows_for(["u1", "u9"])]
[[0, 3], []]
"""

from __future__ import annotations

import array
from typing import Sequence

import numpy as np


class SeenItems:
    """Query id -> the corpus indices of its training positives.

    Args:
      feature: the query Id feature whose values identify a query (a user).
    """

    def __init__(self, feature: str):
        self.feature = feature
        self._rows: dict[str, array.array] = {}
        self.pairs = 0

    def add(self, query_id: str, candidate_index: int) -> None:
        self.add_many((query_id,), (candidate_index,))

    def add_many(self, query_ids, candidate_indices) -> None:
        """Adds `(query id, candidate index)` pairs (a chunk of records' at a time)."""
        rows_of = self._rows
        for query_id, index in zip(query_ids, candidate_indices, strict=True):
            rows = rows_of.get(query_id)
            if rows is None:
                rows = rows_of[query_id] = array.array("i")
            rows.append(index)
            self.pairs += 1

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._rows

    def rows_for(self, query_ids: Sequence[str], remap: np.ndarray | None = None) -> list[np.ndarray]:
        """Each query id's distinct positive indices (int64, sorted); [] for an id never trained.

        `remap[i]` maps a scan-corpus index to a row of another corpus (-1: not there, dropped), for an
        evaluation corpus read from `--candidate_data_path`.
        """
        empty = np.zeros([0], np.int64)
        out = []
        for query_id in query_ids:
            rows = self._rows.get(query_id.decode() if isinstance(query_id, bytes) else str(query_id))
            if rows is None:
                out.append(empty)
                continue
            values = np.unique(np.frombuffer(rows, dtype=np.int32)).astype(np.int64)
            if remap is not None:
                values = remap[values]
                values = np.unique(values[values >= 0])
            out.append(values)
        return out


def corpus_remap(scan_keys: Sequence[str], corpus_index_of) -> np.ndarray:
    """`remap` for `SeenItems.rows_for`: scan-corpus index -> row of the corpus (`corpus_index_of(key)`,
    KeyError when absent -> -1)."""
    remap = np.full([len(scan_keys)], -1, np.int64)
    for i, key in enumerate(scan_keys):
        try:
            remap[i] = corpus_index_of(key)
        except KeyError:
            pass
    return remap
