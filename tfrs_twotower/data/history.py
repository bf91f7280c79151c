"""`add_history`: each pair's query gains the items its user chose before it, from the training pairs.

A user's history is the strongest query feature a recommender usually has (docs/benchmarks.md, "Round 4":
on MovieLens it doubled Recall@10). It depends on which pairs are training pairs, so build it after the
split: training pairs see the training items strictly earlier in time, and evaluation pairs see training
items only, so no held-out pair reaches training. Declare it in the schema as a Categorical whose vocab
is the item ids (the tower mean-pools it); at serving time pass the user's latest items.

Example:
>>> pair = lambda t, item: {"query": {"user": "u", "time": t}, "candidate": {"item": item}}
>>> train, test = add_history([pair(1, "a"), pair(2, "b")], [pair(3, "c")],
...                           user_feature="user", item_feature="item", time_feature="time")
>>> train[1]["query"]["history"], test[0]["query"]["history"]
(['a'], ['b', 'a'])
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

Record = dict[str, dict[str, Any]]


def add_history(
    train: Sequence[Record],
    *others: Sequence[Record],
    user_feature: str,
    item_feature: str,
    time_feature: str = "timestamp",
    max_length: int = 10,
    name: str = "history",
) -> list[list[Record]]:
    """Each record's query gains `name`: its user's latest items in `train` before it, latest first.

    Args:
      train: pair records whose items make the histories.
      *others: more record lists (test, validation pairs) to give histories from `train` only.
      user_feature: the query feature naming the user (an Id: one string).
      item_feature: the candidate feature naming the item (an Id: one string).
      time_feature: the query feature with the pair's time (Numeric: a number or a list of one).
        A history holds only items chosen strictly earlier, so a pair never sees itself.
      max_length: at most this many item ids per history (the latest; 10 measured best on MovieLens).
      name: the new query feature's name.

    Returns:
      `[train', *others']`: new records with new query dicts; candidate dicts are shared.

    Raises:
      ValueError: a record lacks the user, item or time (naming the list and the record), or
        `max_length` is not a positive int.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"The `max_length` parameter must be a positive int. Got {max_length!r} instead.")
    keys = (user_feature, item_feature, time_feature)
    parts = [train, *others]
    labels = ["train"] + [f"others[{i}]" for i in range(len(others))]
    # (user, item, time) of every record, checked once; evaluation pairs need no item.
    fields = [
        [_fields(r, keys, f"{label} record {n}", need_item=part == 0) for n, r in enumerate(records, 1)]
        for part, (label, records) in enumerate(zip(labels, parts, strict=True))
    ]
    rated: dict[str, list[tuple[float, str]]] = {}
    for user, item, time in fields[0]:
        rated.setdefault(user, []).append((time, item))
    times, items = {}, {}
    for user, pairs in rated.items():
        pairs.sort(key=lambda p: p[0])
        times[user] = [t for t, _ in pairs]
        items[user] = [i for _, i in pairs]
    out = []
    for records, record_fields in zip(parts, fields, strict=True):
        with_history = []
        for r, (user, _, time) in zip(records, record_fields, strict=True):
            end = bisect.bisect_left(times.get(user, []), time)
            history = items[user][max(0, end - max_length) : end][::-1] if end else []
            with_history.append({"query": {**r["query"], name: history}, "candidate": r["candidate"]})
        out.append(with_history)
    return out


def _fields(record: Record, keys: tuple[str, str, str], where: str, need_item: bool = True):
    """(user, item, time) of one record, or a ValueError naming where and what is wrong."""
    user_feature, item_feature, time_feature = keys
    query, candidate = record.get("query", {}), record.get("candidate", {})
    user = _value(query, user_feature, _is_id, where, "query", "the user: a non-empty string")
    item = None
    if need_item:
        item = _value(candidate, item_feature, _is_id, where, "candidate", "the item: a non-empty string")
    time = _value(query, time_feature, _is_number, where, "query", "a number, or a list of one")
    return user, item, float(time)


def _value(side: dict, name: str, valid, where: str, side_name: str, expected: str):
    """`side[name]` (a list of one unwrapped) when `valid`; else a ValueError naming all of it."""
    value = side.get(name)
    one = value[0] if isinstance(value, list) and len(value) == 1 else value
    if not valid(one):
        raise ValueError(
            f"{where}: `add_history` needs the {side_name}'s `{name}` ({expected}). Got {value!r} instead."
        )
    return one


def _is_id(value) -> bool:
    return isinstance(value, str) and value != ""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
