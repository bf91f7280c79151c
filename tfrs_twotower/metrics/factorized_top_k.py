"""`FactorizedTopK`: top-K categorical accuracy of a retrieval model over a candidate index (TFRS)."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def _validate_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(
            f"The `ks` parameter must be a non-empty sequence of ints in [1, inf). Got {ks!r} instead."
        )
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"The `ks` parameter must be a non-empty sequence of ints in [1, inf). Got {ks!r} instead."
            )
    return tuple(int(k) for k in ks)


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class FactorizedTopK(keras.metrics.Metric):
    """How often the true candidate is among the top K candidates retrieved for a query.

    TFRS's `tfrs.metrics.FactorizedTopK` as a Keras 3 metric: same constructor, same `update_state`, same
    result names. `result()` returns a dict `{"<name>/top_<k>_categorical_accuracy": value}` (Keras 3
    `fit`/`evaluate` log each entry under its key).

    Evaluation is id-based when `true_candidate_ids` are given (a hit when a retrieved id equals the true
    id; required for an approximate index) and score-based otherwise (a hit when the true candidate's
    score `q . c` is not below the k-th retrieved score: ties count as hits, as in `tf.math.in_top_k`).
    Score-based evaluation compares a row dot product with the index's matmul score of the same candidate;
    the two can differ in the last bits, so a true candidate that is in the index may lose a tie with
    itself (TFRS behaves the same). Prefer id-based evaluation when the true candidates are indexed.

    Args:
        candidates: a top-k layer: `candidates(queries [Q, D], k=k) -> (scores [Q, k] sorted descending,
            identifiers [Q, k])`, with `is_exact() -> bool` (e.g. `tfrs_twotower.index.BruteForce`).
            TFRS also accepts a `tf.data.Dataset` of candidate embeddings; here index a `BruteForce`
            with it instead.
        ks: the values of K to report.
        name: metric name, the prefix of the result keys.

    Call arguments (`update_state`):
        query_embeddings: `[Q, D]` query embeddings.
        true_candidate_embeddings: `[Q, D]` embeddings of each query's true candidate.
        true_candidate_ids: optional `[Q]` ids of the true candidates (id-based evaluation).
        sample_weight: optional `[Q]` weight of each query.

    Example:
    >>> import numpy as np
    >>> class TopK(keras.layers.Layer):  # a stand-in for index.BruteForce
    ...     def __init__(self, candidates, **kw):
    ...         super().__init__(**kw)
    ...         self.c = keras.ops.convert_to_tensor(candidates)
    ...     def is_exact(self):
    ...         return True
    ...     def call(self, queries, k):
    ...         s, i = keras.ops.top_k(keras.ops.matmul(queries, keras.ops.transpose(self.c)), k)
    ...         return s, i
    >>> c = np.eye(3, dtype="float32")
    >>> m = FactorizedTopK(TopK(c), ks=(1, 2))
    >>> m.update_state(np.array([[1.0, 0.5, 0.0]]), c[1:2])
    >>> {k: float(v) for k, v in m.result().items()}
    {'factorized_top_k/top_1_categorical_accuracy': 0.0, 'factorized_top_k/top_2_categorical_accuracy': 1.0}
    """

    def __init__(
        self,
        candidates,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        name: str = "factorized_top_k",
        dtype: str | None = None,
    ) -> None:
        if isinstance(candidates, tf.data.Dataset):
            raise TypeError(
                "`candidates` must be a top-k layer (e.g. tfrs_twotower.index.BruteForce); a tf.data.Dataset "
                "is not accepted. Build one with `BruteForce().index_from_dataset(dataset)`."
            )
        if not callable(candidates) or not hasattr(candidates, "is_exact"):
            raise TypeError(
                "`candidates` must be a top-k layer with `call(queries, k) -> (scores, ids)` and "
                f"`is_exact()`. Got {type(candidates).__name__} instead."
            )
        super().__init__(name=name, dtype=dtype)
        self._ks = _validate_ks(ks)
        self._candidates = candidates
        self._totals = self.add_variable(
            shape=(len(self._ks),), initializer="zeros", dtype="float32", name="totals"
        )
        self._count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    @property
    def ks(self) -> tuple[int, ...]:
        return self._ks

    @property
    def candidates(self):
        return self._candidates

    def update_state(
        self, query_embeddings, true_candidate_embeddings, true_candidate_ids=None, sample_weight=None
    ) -> None:
        if true_candidate_ids is None and not self._candidates.is_exact():
            raise ValueError(
                f"The candidate generation layer ({self._candidates}) does not return exact results. To "
                "evaluate with it, pass `true_candidate_ids`; they are matched against the ids it returns."
            )
        query_embeddings = ops.convert_to_tensor(query_embeddings)
        true_candidate_embeddings = ops.cast(true_candidate_embeddings, query_embeddings.dtype)
        top_scores, retrieved_ids = self._candidates(query_embeddings, k=max(self._ks))
        top_scores = ops.cast(top_scores, "float32")

        if true_candidate_ids is not None:
            true_candidate_ids = ops.convert_to_tensor(true_candidate_ids)
            if len(true_candidate_ids.shape) == 1:
                true_candidate_ids = ops.expand_dims(true_candidate_ids, 1)
            # ScaNN pads with NaN scores where it found fewer than k candidates: those are not hits.
            not_padding = ops.logical_not(ops.isnan(top_scores))
            true_dtype = keras.backend.standardize_dtype(true_candidate_ids.dtype)
            index_dtype = keras.backend.standardize_dtype(retrieved_ids.dtype)
            if true_dtype != index_dtype:
                if "int" not in true_dtype or "int" not in index_dtype:
                    raise TypeError(
                        f"`true_candidate_ids` have dtype {true_dtype} but the index returns identifiers of "
                        f"dtype {index_dtype}; pass ids of the index's type."
                    )
                true_candidate_ids = ops.cast(true_candidate_ids, index_dtype)
            matches = ops.cast(
                ops.logical_and(ops.equal(true_candidate_ids, retrieved_ids), not_padding), "float32"
            )
            hits = [ops.minimum(ops.sum(matches[:, :k], axis=1), 1.0) for k in self._ks]
        else:
            positive_scores = ops.cast(
                ops.sum(query_embeddings * true_candidate_embeddings, axis=1, keepdims=True), "float32"
            )
            predictions = ops.concatenate([positive_scores, top_scores], axis=1)
            targets = ops.zeros((ops.shape(positive_scores)[0],), dtype="int32")
            hits = [ops.cast(ops.in_top_k(targets, predictions, k), "float32") for k in self._ks]

        hits = ops.stack(hits, axis=1)  # [Q, len(ks)]
        if sample_weight is None:
            weights = ops.ones((ops.shape(hits)[0],), dtype="float32")
        else:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self._totals.assign_add(ops.sum(hits * ops.expand_dims(weights, 1), axis=0))
        self._count.assign_add(ops.sum(weights))

    def result(self) -> dict:
        values = ops.divide_no_nan(self._totals, self._count)
        return {f"{self.name}/top_{k}_categorical_accuracy": values[i] for i, k in enumerate(self._ks)}

    def get_config(self) -> dict:
        """The config; `candidates` is serialized by its own config (its index contents are not)."""
        return {
            **super().get_config(),
            "candidates": keras.saving.serialize_keras_object(self._candidates),
            "ks": list(self._ks),
        }

    @classmethod
    def from_config(cls, config: dict) -> "FactorizedTopK":
        config = dict(config)
        config["candidates"] = keras.saving.deserialize_keras_object(config["candidates"])
        return cls(**config)
