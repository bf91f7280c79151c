"""`BruteForce`: exact top-k by scoring every candidate (TFRS `factorized_top_k.BruteForce`, Keras 3)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfrs_twotower.index import keras_state, streaming
from tfrs_twotower.index.top_k import TopK


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class BruteForce(TopK):
    """Exact retrieval: dot products of the queries with every candidate, then `tf.math.top_k`.

    Pure TensorFlow ops over two `tf.Variable`s (embeddings, identifiers), so a SavedModel holding it is
    served by stock TF Serving. Cost per query is `O(num_candidates * dim)`; a query batch `[B, dim]`
    materialises a `[B, num_candidates]` score matrix. Safe inside a Keras 3 model and a `tf.function`;
    not meant for a `tf.data` pipeline.

    Args:
        query_model: optional Keras layer/model (or callable) mapping the call's input to query
            embeddings `[B, dim]`.
        k: default number of results.
        name: layer name.

    Call arguments:
        queries: query embeddings `[B, dim]` (or `[dim]`), or the `query_model`'s input.
        k: number of results; defaults to the constructor's `k`.

    Returns:
        `(scores [B, k] float32, identifiers [B, k])`, highest score first. Identifiers are those given
        to `index`, or int32 row positions.

    Raises:
        ValueError: when called before `index()`/`index_from_dataset()`, or on shapes that do not match.

    Example:
    >>> import numpy as np
    >>> candidates = np.eye(4, dtype="float32")
    >>> index = BruteForce(k=2).index(candidates, np.array([b"a", b"b", b"c", b"d"]))
    >>> scores, ids = index(np.array([[0.0, 0.9, 0.1, 0.0]], "float32"))
    >>> ids.numpy().tolist()
    [[b'b', b'c']]
    """

    def __init__(self, query_model=None, k: int = 10, name: str | None = None, **kwargs):
        super().__init__(query_model=query_model, k=k, name=name, **kwargs)
        self._candidates = None  # tf.Variable [capacity, dim]; rows >= num_candidates unused

    def _index(self, candidates, identifiers) -> None:
        # Same shape: update in place, so functions traced over the old index (a compiled `evaluate`
        # with FactorizedTopK) read the new candidates.
        if self._candidates is not None and self._candidates.shape == candidates.shape:
            self._candidates.assign(tf.cast(candidates, self._candidates.dtype))
        else:
            self._candidates = tf.Variable(candidates, trainable=False, name="candidates")
        self._set_identifiers(identifiers)
        self._num_candidates, self._dim = int(candidates.shape[0]), int(candidates.shape[1])

    def _index_dataset(self, dataset) -> None:
        storage, n = streaming.stream_into(dataset, streaming.VariableStorage)
        self._candidates = storage.embeddings
        self._identifiers = storage.identifiers
        self._num_candidates, self._dim = n, int(storage.embeddings.shape[1])

    def _search(self, queries, k):
        scores = tf.matmul(queries, self._candidates, transpose_b=True)
        if self._candidates.shape[0] != self._num_candidates:
            # The streamed storage ends with less than one batch of unused rows.
            scores = scores[:, : self._num_candidates]
        return tf.math.top_k(scores, k=k)

    def is_exact(self) -> bool:
        return True

    def _state_arrays(self) -> dict:
        return {"candidates": self._candidates.numpy()[: self._num_candidates]}

    def _restore(self, store, identifiers):
        candidates = keras_state.get(store, "candidates")
        if candidates is None:
            return False
        if identifiers is not None and identifiers.dtype == object:
            identifiers = tf.constant(identifiers.tolist(), tf.string)
        self.index(candidates, identifiers)

    @property
    def index_bytes(self) -> int:
        """Bytes held by the index's embeddings (and numeric identifiers)."""
        if self._candidates is None:
            return 0
        total = self._candidates.shape.num_elements() * 4
        if self._identifiers is not None and self._identifiers.dtype != tf.string:
            total += self._identifiers.shape.num_elements() * self._identifiers.dtype.size
        return total
