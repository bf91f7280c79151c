"""Streams a `tf.data` dataset of candidates into preallocated storage.

`index_from_dataset` must not hold more than the embeddings themselves: TFRS collects the batches in a
Python list and concatenates them (two to three copies at peak). Here the storage is allocated once, at
its final size, and each batch is written into its slice as it arrives:

- the size is `cardinality * batch_size` when both are static (`.batch(n, drop_remainder=True)`);
- with a known cardinality but a dynamic batch dimension (plain `.batch(n)`), `cardinality * rows of the
  first batch`; the unused tail (less than one batch) is reported so the index can ignore it;
- with an unknown cardinality (after `filter`, for example) the dataset is iterated once more, first, only
  to count its rows.

A later batch larger than the first one (a rare, irregular pipeline) makes the storage grow, which copies.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

ACCEPTED = (
    "a batched tf.data.Dataset of candidate embeddings `[batch, dim]`, or of "
    "(identifiers `[batch]`, embeddings `[batch, dim]`) tuples"
)


def check_dataset(dataset) -> tuple[bool, tf.TensorSpec, tf.TensorSpec | None]:
    """Validates the dataset's structure; returns `(has_identifiers, embeddings_spec, ids_spec)`."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`index_from_dataset` accepts {ACCEPTED}. Got {type(dataset).__name__} instead; "
            "for in-memory arrays call `index(candidates, identifiers)`."
        )
    spec = dataset.element_spec
    if isinstance(spec, tuple):
        if len(spec) != 2 or not all(isinstance(s, tf.TensorSpec) for s in spec):
            raise ValueError(f"`index_from_dataset` accepts {ACCEPTED}. Got elements {spec} instead.")
        ids_spec, emb_spec = spec
    elif isinstance(spec, tf.TensorSpec):
        ids_spec, emb_spec = None, spec
    else:
        raise ValueError(f"`index_from_dataset` accepts {ACCEPTED}. Got elements {spec} instead.")
    if emb_spec.shape.rank != 2:
        raise ValueError(
            "The candidate embeddings in `index_from_dataset` must be batches of rank 2 "
            f"`[batch, dim]`. Got shape {emb_spec.shape} instead; batch the dataset with `.batch(n)`."
        )
    if emb_spec.shape[1] is None:
        raise ValueError(
            "The embedding dimension of the candidates in `index_from_dataset` must be static. "
            f"Got shape {emb_spec.shape} instead; set it with "
            "`.map(lambda x: tf.ensure_shape(x, [None, d]))`."
        )
    if ids_spec is not None:
        if ids_spec.shape.rank != 1:
            raise ValueError(
                "The identifiers in `index_from_dataset` must be batches of rank 1 `[batch]`. "
                f"Got shape {ids_spec.shape} instead."
            )
        b_ids, b_emb = ids_spec.shape[0], emb_spec.shape[0]
        if b_ids is not None and b_emb is not None and b_ids != b_emb:
            raise ValueError(
                "Candidates and identifiers must have the same batch dimension in `index_from_dataset`. "
                f"Got {b_emb} and {b_ids} instead."
            )
    return ids_spec is not None, emb_spec, ids_spec


def _capacity(dataset, emb_spec, has_ids) -> tuple[int | None, bool]:
    """Returns (capacity or None to take it from the first batch, exact)."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`index_from_dataset` needs a finite dataset. Got an infinite one (remove `.repeat()`)."
        )
    if cardinality >= 0 and emb_spec.shape[0] is not None:
        return cardinality * emb_spec.shape[0], True
    if cardinality >= 0:
        return None, False
    # Unknown cardinality: count the rows first, so that the storage is allocated once.
    rows = dataset.map(lambda *x: tf.shape(x[-1], out_type=tf.int64)[0])
    return int(rows.reduce(tf.constant(0, tf.int64), lambda a, r: a + r)), True


def stream_into(dataset, make_storage):
    """Writes every batch of `dataset` into storage made by `make_storage(capacity, dim, ids_dtype)`.

    `ids_dtype` is None when the dataset has no identifiers. The storage has `write(start, embeddings,
    identifiers)`, `grow(capacity)` and `capacity`. Returns `(storage, num_rows)`; rows past `num_rows`
    are unused.
    """
    has_ids, emb_spec, ids_spec = check_dataset(dataset)
    capacity, _ = _capacity(dataset, emb_spec, has_ids)
    cardinality = int(dataset.cardinality())
    dim = emb_spec.shape[1]
    storage, offset = None, 0
    for element in dataset:
        ids, emb = element if has_ids else (None, element)
        rows = int(tf.shape(emb)[0])
        if ids is not None and int(tf.shape(ids)[0]) != rows:
            raise ValueError(
                "Candidates and identifiers must have the same number of rows in each batch of "
                f"`index_from_dataset`. Got {rows} and {int(tf.shape(ids)[0])} at row {offset} instead."
            )
        if storage is None:
            if capacity is None:
                capacity = cardinality * rows
            storage = make_storage(max(capacity, rows), dim, ids_spec.dtype if has_ids else None)
        if offset + rows > storage.capacity:
            storage.grow(max(offset + rows, storage.capacity + storage.capacity // 2))
        storage.write(offset, emb, ids)
        offset += rows
    if storage is None or offset == 0:
        raise ValueError("`index_from_dataset` got an empty dataset. Pass at least one candidate.")
    return storage, offset


class NumpyStorage:
    """Host storage (used by ScaNN, whose builder copies the data into its own structures)."""

    def __init__(self, capacity: int, dim: int, ids_dtype: tf.DType | None):
        self.capacity = capacity
        self.embeddings = np.empty((capacity, dim), np.float32)
        if ids_dtype is None:
            self.identifiers = None
        else:
            np_dtype = object if ids_dtype == tf.string else ids_dtype.as_numpy_dtype
            self.identifiers = np.empty((capacity,), np_dtype)

    def write(self, start, embeddings, identifiers) -> None:
        end = start + int(embeddings.shape[0])
        self.embeddings[start:end] = np.asarray(embeddings, np.float32)
        if identifiers is not None:
            self.identifiers[start:end] = np.asarray(identifiers)

    def grow(self, capacity: int) -> None:
        emb = np.empty((capacity, self.embeddings.shape[1]), np.float32)
        emb[: self.capacity] = self.embeddings
        self.embeddings = emb
        if self.identifiers is not None:
            ids = np.empty((capacity,), self.identifiers.dtype)
            ids[: self.capacity] = self.identifiers
            self.identifiers = ids
        self.capacity = capacity


class VariableStorage:
    """`tf.Variable` storage written slice by slice in place (used by BruteForce: pure TF ops)."""

    def __init__(self, capacity: int, dim: int, ids_dtype: tf.DType | None):
        self.capacity = capacity
        # An initializer callable: the zeros are not kept alive next to the variable's buffer.
        self.embeddings = tf.Variable(lambda: tf.zeros([capacity, dim], tf.float32), trainable=False)
        self.identifiers = None
        if ids_dtype is not None:
            self.identifiers = tf.Variable(lambda: tf.zeros([capacity], ids_dtype), trainable=False)

    def write(self, start, embeddings, identifiers) -> None:
        end = start + int(embeddings.shape[0])
        _assign_rows(self.embeddings, start, end, tf.cast(embeddings, tf.float32))
        if identifiers is not None:
            _assign_rows(self.identifiers, start, end, identifiers)

    def grow(self, capacity: int) -> None:
        def _grown(var, shape):
            pad = tf.zeros([capacity - self.capacity, *shape[1:]], var.dtype)
            return tf.Variable(tf.concat([var, pad], 0), trainable=False)

        self.embeddings = _grown(self.embeddings, self.embeddings.shape)
        if self.identifiers is not None:
            self.identifiers = _grown(self.identifiers, self.identifiers.shape)
        self.capacity = capacity


def _assign_rows(variable: tf.Variable, start: int, end: int, value) -> None:
    # Not `variable[start:end].assign(value)`: that first reads the slice, which can alias the
    # variable's buffer, and the assignment then copies the whole variable (copy-on-write).
    rank = variable.shape.rank
    tf.raw_ops.ResourceStridedSliceAssign(
        ref=variable.handle,
        begin=[start] + [0] * (rank - 1),
        end=[end] + list(variable.shape[1:]),
        strides=[1] * rank,
        value=value,
    )
