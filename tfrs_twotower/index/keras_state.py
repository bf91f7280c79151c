"""An index's state in a `.keras` file: numpy arrays under named keys of Keras's weights store.

Keras saves a layer's state through `save_own_variables(store)` / `load_own_variables(store)`, where
`store` maps names to numpy arrays (an HDF5 group). Strings (identifiers, ScaNN's serialized config) are
stored as their UTF-8 bytes concatenated plus the lengths, which keeps any byte, NUL included (HDF5's
fixed-length strings drop trailing NULs).

Example:
>>> store = {}
>>> put(store, "ids", np.array([b"a", b"bc"], dtype=object))
>>> get(store, "ids").tolist()
[b'a', b'bc']
"""

from __future__ import annotations

import json

import numpy as np

_BYTES, _LENGTHS, _SCALAR = ".bytes", ".lengths", ".scalar"


def put(store, key: str, value) -> None:
    """Stores `value` (a numpy array of numbers or of bytes/str, any rank) under `key`."""
    value = np.asarray(value)
    if value.dtype.kind not in "OSU":
        store[key] = value
        return
    items = [v.encode() if isinstance(v, str) else bytes(v) for v in value.reshape(-1)]
    store[key + _BYTES] = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
    store[key + _LENGTHS] = np.array([len(v) for v in items], dtype=np.int64)
    store[key + _SCALAR] = np.array(value.shape, dtype=np.int64)


def get(store, key: str):
    """The array stored under `key` by `put` (strings as an object array of bytes), or None."""
    if key in store:
        return np.asarray(store[key])
    if key + _BYTES not in store:
        return None
    data = np.asarray(store[key + _BYTES]).tobytes()
    ends = np.cumsum(np.asarray(store[key + _LENGTHS]))
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    items = np.array([data[s:e] for s, e in zip(starts, ends, strict=True)] or [], dtype=object)
    return items.reshape(tuple(np.asarray(store[key + _SCALAR]).tolist()))


def put_json(store, key: str, value) -> None:
    put(store, key, np.array(json.dumps(value).encode(), dtype=object))


def get_json(store, key: str):
    value = get(store, key)
    return None if value is None else json.loads(value.item().decode())
