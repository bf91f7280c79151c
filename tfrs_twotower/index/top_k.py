"""`TopK`: the base of the retrieval index layers (TFRS `factorized_top_k.TopK` contract, Keras 3)."""

from __future__ import annotations

import abc

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.index import keras_state
from tfrs_twotower.index.exclusions import check_exclusions, top_k_excluding

NOT_INDEXED = "The index is empty: call index() or index_from_dataset() first."


def check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"The `{name}` parameter must be an int in [1, inf). Got {k!r} instead.")
    return int(k)


class TopK(keras.layers.Layer, abc.ABC):
    """Interface of the top-k retrieval layers: `index()`, `index_from_dataset()`, `call()`, `is_exact()`.

    Subclasses implement `_index(embeddings, identifiers)` and `_search(queries, k)`; this base validates
    inputs, applies the optional `query_model`, maps row positions to identifiers and implements
    `query_with_exclusions`.

    Args:
        query_model: optional Keras layer/model (or callable) applied to the call's input, so that the
            layer maps raw query features to top-k. Without it, `call` takes query embeddings `[B, dim]`.
        k: default number of results; `call(queries, k=...)` overrides it.
    """

    def __init__(self, query_model=None, k: int = 10, **kwargs):
        super().__init__(**kwargs)
        if query_model is not None and not callable(query_model):
            raise TypeError(
                "The `query_model` parameter must be a Keras layer/model or a callable. "
                f"Got {type(query_model).__name__} instead."
            )
        self.query_model = query_model
        self._k = check_k(k)
        self._num_candidates = None
        self._dim = None
        self._identifiers = None  # tf.Variable [n] or None (row positions are the identifiers)

    # -- indexing ------------------------------------------------------------------------------------

    def index(self, candidates, identifiers=None) -> "TopK":
        """Builds the index from candidate embeddings `[n, dim]` and optional identifiers `[n]`.

        Identifiers may be strings or integers; without them, results carry row positions (int32).
        Calling it again replaces the index; with the same number of candidates (BruteForce) the
        variables are updated in place, so functions traced over the index see the new candidates.
        Returns self.
        """
        candidates = tf.convert_to_tensor(candidates)
        if candidates.shape.rank != 2:
            raise ValueError(
                f"The candidates tensor must be 2D `[num_candidates, dim]`. Got shape {candidates.shape} "
                "instead."
            )
        if not candidates.dtype.is_floating:
            raise TypeError(f"The candidates tensor must be floating point. Got {candidates.dtype.name}.")
        if identifiers is not None:
            identifiers = tf.convert_to_tensor(identifiers)
            if identifiers.shape.rank != 1:
                raise ValueError(
                    f"The identifiers tensor must be 1D `[num_candidates]`. Got shape {identifiers.shape} "
                    "instead."
                )
            if identifiers.shape[0] != candidates.shape[0]:
                raise ValueError(
                    "The candidates and identifiers tensors must have the same number of rows. Got "
                    f"{candidates.shape[0]} candidate rows and {identifiers.shape[0]} identifier rows."
                )
        if candidates.shape[0] == 0:
            raise ValueError("The candidates tensor is empty. Pass at least one candidate.")
        self._index(tf.cast(candidates, tf.float32), identifiers)
        return self

    def index_from_dataset(self, dataset: tf.data.Dataset) -> "TopK":
        """Builds the index from a batched dataset of embeddings or of `(identifiers, embeddings)`.

        The batches are streamed into storage allocated once (see `streaming`): memory holds the
        embeddings (plus identifiers), not a list of batches and their concatenation. Returns self.
        """
        self._index_dataset(dataset)
        return self

    @abc.abstractmethod
    def _index(self, candidates: tf.Tensor, identifiers: tf.Tensor | None) -> None: ...

    @abc.abstractmethod
    def _index_dataset(self, dataset: tf.data.Dataset) -> None: ...

    def _set_identifiers(self, identifiers) -> None:
        current = self._identifiers
        if (
            identifiers is not None
            and current is not None
            and current.shape == identifiers.shape
            and current.dtype == identifiers.dtype
        ):
            current.assign(identifiers)  # in place, as the embeddings (see BruteForce._index)
            return
        self._identifiers = (
            None if identifiers is None else tf.Variable(identifiers, trainable=False, name="identifiers")
        )

    # -- querying ------------------------------------------------------------------------------------

    def call(self, queries, k: int | None = None):
        """Returns `(scores [B, k] float32, identifiers [B, k])`, best first, for queries `[B, dim]`.

        A single query `[dim]` gives `[k]` results.
        """
        k = self._k if k is None else check_k(k)
        if self._num_candidates is None:
            raise ValueError(NOT_INDEXED)
        if self.query_model is not None:
            queries = self.query_model(queries)
        queries = self._check_queries(queries)
        if k > self._num_candidates:
            raise ValueError(
                f"The `k` parameter must be at most the number of indexed candidates "
                f"({self._num_candidates}). Got {k} instead."
            )
        if queries.shape.rank == 1:
            scores, rows = self._search_one(queries, k)
        else:
            scores, rows = self._search(queries, k)
        if self._identifiers is None:
            return scores, rows
        return scores, tf.gather(self._identifiers, rows)

    @abc.abstractmethod
    def _search(self, queries: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]: ...

    def _search_one(self, query: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        scores, rows = self._search(query[None, :], k)
        return scores[0], rows[0]

    def _check_queries(self, queries) -> tf.Tensor:
        if isinstance(queries, (dict, list, tuple)):
            raise TypeError(
                "Queries must be a tensor of query embeddings `[batch, dim]` (after the `query_model`, "
                f"if any). Got {type(queries).__name__} instead; pass a `query_model` to map features."
            )
        queries = tf.convert_to_tensor(queries)
        if queries.shape.rank not in (1, 2):
            raise ValueError(
                f"Queries must be of rank 2 `[batch, dim]` (or 1 `[dim]` for a single query). Got shape "
                f"{queries.shape} instead."
            )
        if queries.shape[-1] is not None and queries.shape[-1] != self._dim:
            raise ValueError(
                f"Queries must have the candidates' dimension {self._dim}. Got shape {queries.shape} instead."
            )
        return tf.cast(queries, tf.float32)

    def query_with_exclusions(self, queries, exclusions, k: int | None = None):
        """Like `call`, dropping each row's `exclusions` `[B, E]` identifiers from its results.

        Fetches `k + E` results and keeps the best `k` not excluded (see `index.exclusions`): exact for
        `BruteForce`. Rows of `exclusions` are padded with "" (or -1 for integer identifiers); `E` may
        vary between calls. When fewer than `k` candidates remain, the tail is padding ("" or -1, score
        -inf); an excluded identifier is never returned.
        """
        k = self._k if k is None else check_k(k)
        if self._num_candidates is None:
            raise ValueError(NOT_INDEXED)
        if self.query_model is not None:
            queries = self.query_model(queries)
        queries = self._check_queries(queries)
        if queries.shape.rank != 2:
            raise ValueError("`query_with_exclusions` takes queries of rank 2 `[batch, dim]`.")
        ids_dtype = tf.int32 if self._identifiers is None else self._identifiers.dtype
        exclusions = check_exclusions(exclusions, ids_dtype)
        return top_k_excluding(
            self._search,
            self._identifiers,
            queries,
            exclusions,
            min(k, self._num_candidates),
            self._num_candidates,
            self._higher_is_better,
        )

    @property
    def _higher_is_better(self) -> bool:
        return True

    @abc.abstractmethod
    def is_exact(self) -> bool:
        """Whether the results are exact (BruteForce) or approximate (ScaNN)."""

    # -- Keras plumbing ------------------------------------------------------------------------------

    def compute_output_spec(self, queries, k: int | None = None):
        k = self._k if k is None else k
        if self.query_model is not None and hasattr(self.query_model, "compute_output_spec"):
            queries = self.query_model.compute_output_spec(queries)
        batch = tuple(queries.shape[:-1]) if hasattr(queries, "shape") else (None,)
        ids_dtype = "int32" if self._identifiers is None else self._identifiers.dtype.name
        ids_dtype = getattr(self, "_restored_ids_dtype", None) or ids_dtype
        return (
            keras.KerasTensor(batch + (k,), dtype="float32"),
            keras.KerasTensor(batch + (k,), dtype=ids_dtype),
        )

    @property
    def k(self) -> int:
        return self._k

    @property
    def num_candidates(self) -> int | None:
        """The number of indexed candidates (None before indexing)."""
        return self._num_candidates

    # -- Keras saving: the index travels in `.keras` files ---------------------------------------------

    def build(self, queries_shape=None):
        model = self.query_model
        if (
            isinstance(model, keras.layers.Layer)
            and not model.built
            and type(model).build is not keras.layers.Layer.build
        ):
            model.build(queries_shape)

    def get_build_config(self):
        config = super().get_build_config() or {}
        if self._num_candidates is not None:
            ids = self._identifiers
            config["index"] = {
                "num_candidates": self._num_candidates,
                "dim": self._dim,
                "identifiers_dtype": None if ids is None else ids.dtype.name,
            }
        return config or None

    def build_from_config(self, config):
        # Before the weights load, a functional model calls the layer symbolically: the output spec needs
        # the identifiers' dtype.
        super().build_from_config(config)
        index = config.get("index")
        if index and self._num_candidates is None:
            self._restored_ids_dtype = index["identifiers_dtype"]

    def save_own_variables(self, store):
        if self._num_candidates is None:
            return
        for key, value in self._state_arrays().items():
            keras_state.put(store, key, value)
        if self._identifiers is not None:
            keras_state.put(store, "identifiers", self._identifiers.numpy()[: self._num_candidates])

    def load_own_variables(self, store):
        identifiers = keras_state.get(store, "identifiers")
        if self._restore(store, identifiers) is not False:
            self._restored_ids_dtype = None

    def _state_arrays(self) -> dict:
        """The index's arrays (not the identifiers) for `save_own_variables`."""
        raise NotImplementedError

    def _restore(self, store, identifiers):
        """Rebuilds the index from `_state_arrays`' arrays in `store`; False when it holds none."""
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config["k"] = self._k
        if self.query_model is not None and isinstance(self.query_model, keras.layers.Layer):
            config["query_model"] = keras.saving.serialize_keras_object(self.query_model)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("query_model"), dict):
            config["query_model"] = keras.saving.deserialize_keras_object(config["query_model"])
        return cls(**config)
