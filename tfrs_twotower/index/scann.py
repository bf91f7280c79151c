"""`ScaNN`: approximate top-k with the ScaNN TF ops (TFRS `factorized_top_k.ScaNN`, Keras 3)."""

from __future__ import annotations

import json
import uuid

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.index import keras_state, scann_params, streaming
from tfrs_twotower.index.top_k import TopK

try:  # An optional dependency: `pip install "scann[tf]"`.
    from scann.scann_ops.py import scann_ops
except ImportError:  # pragma: no cover - exercised only without scann
    scann_ops = None

_DISTANCES = ("dot_product", "squared_l2")


class _SearcherState(tf.Module):
    """The searcher's tensors as variables (saved in checkpoints and SavedModels).

    Like `scann_ops.ScannState`, but the handle is recreated under a fixed `shared_name`: every graph
    (and eager code) of the process then shares one searcher instead of each building its own copy.
    """

    def __init__(self, tensors, shared_name: str):
        super().__init__()
        self._shared_name = shared_name
        with tf.init_scope():
            self.scann_vars = [tf.Variable(t, validate_shape=False, trainable=False) for t in tensors]

    @tf.function(input_signature=[])
    def recreate_handle(self):
        (config, partitioner, to_token, codebook, hashed, int8_data, int8_mult, norms, dataset) = (
            self.scann_vars
        )
        return scann_ops.tensors_to_scann(
            dataset,
            config,
            partitioner,
            to_token,
            codebook,
            hashed,
            int8_data,
            int8_mult,
            norms,
            shared_name=self._shared_name,
        )


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class ScaNN(TopK):
    """Approximate retrieval with [ScaNN](https://github.com/google-research/google-research/tree/master/scann).

    A tree of `num_leaves` partitions; a query scores the candidates of its `num_leaves_to_search`
    nearest leaves with anisotropic hashing (`dimensions_per_block` dims per 4-bit code), then rescores
    the best `num_reordering_candidates` exactly. Parameters left as None are derived from the corpus
    size at indexing time (`scann_params.resolve`: sqrt(n) leaves, 10% of them searched,
    max(200, 20k) reordered); below `brute_force_threshold` candidates ScaNN scores all of them exactly.
    The resolved values are in `self.params`.

    The searcher is made of variables tracked by the layer, so `tf.saved_model.save` of a module
    holding the layer saves it; save with `tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])`
    and `import scann` before loading (the ops live in the scann package; stock TF Serving lacks them).

    Args:
        query_model: optional Keras layer/model (or callable) mapping the call's input to embeddings.
        k: default number of results.
        distance_measure: "dot_product" (higher is better) or "squared_l2".
        num_leaves, num_leaves_to_search, dimensions_per_block, num_reordering_candidates,
            training_iterations: ScaNN's tree/AH/reordering settings (TFRS names); None = derived from n.
            `num_reordering_candidates=0` disables reordering.
        parallelize_batch_searches: search the queries of a batch on all cores.
        anisotropic_quantization_threshold: ScaNN's AVQ threshold (0.2 suits dot product; NaN = off).
        brute_force_threshold: corpora smaller than this are scored exactly.
        name: layer name.

    Call arguments / Returns / Raises: as `BruteForce` (scores are ScaNN's, exact when reordered).

    Example:
    >>> import numpy as np
    >>> candidates = np.random.default_rng(0).normal(size=(500, 8)).astype("float32")
    >>> index = ScaNN(k=3).index(candidates)
    >>> scores, ids = index(candidates[:2])
    >>> ids.shape.as_list()
    [2, 3]
    """

    def __init__(
        self,
        query_model=None,
        k: int = 10,
        distance_measure: str = "dot_product",
        num_leaves: int | None = None,
        num_leaves_to_search: int | None = None,
        training_iterations: int = 12,
        dimensions_per_block: int = 2,
        num_reordering_candidates: int | None = None,
        parallelize_batch_searches: bool = True,
        anisotropic_quantization_threshold: float = 0.2,
        brute_force_threshold: int = scann_params.BRUTE_FORCE_THRESHOLD,
        name: str | None = None,
        **kwargs,
    ):
        if scann_ops is None:
            raise ImportError('The ScaNN layer needs the scann package: pip install "scann[tf]"')
        super().__init__(query_model=query_model, k=k, name=name, **kwargs)
        if distance_measure not in _DISTANCES:
            raise ValueError(
                f"The `distance_measure` parameter must be a str among {list(_DISTANCES)}. "
                f"Got {distance_measure!r} instead."
            )
        check = scann_params.check_optional_int
        self._config = {
            "distance_measure": distance_measure,
            "num_leaves": check("num_leaves", num_leaves, 2),
            "num_leaves_to_search": check("num_leaves_to_search", num_leaves_to_search),
            "training_iterations": check("training_iterations", training_iterations),
            "dimensions_per_block": check("dimensions_per_block", dimensions_per_block),
            "num_reordering_candidates": check("num_reordering_candidates", num_reordering_candidates, 0),
            "parallelize_batch_searches": bool(parallelize_batch_searches),
            "anisotropic_quantization_threshold": float(anisotropic_quantization_threshold),
            "brute_force_threshold": check("brute_force_threshold", brute_force_threshold, 0),
        }
        if self._config["training_iterations"] is None or self._config["dimensions_per_block"] is None:
            raise ValueError("The `training_iterations` and `dimensions_per_block` parameters must be ints.")
        self.params = None  # scann_params.ScannParams once indexed
        self._state = None
        self._eager_searcher = None

    def _index(self, candidates, identifiers) -> None:
        self._build(candidates.numpy() if tf.executing_eagerly() else candidates)
        self._set_identifiers(identifiers)

    def _index_dataset(self, dataset) -> None:
        storage, n = streaming.stream_into(dataset, streaming.NumpyStorage)
        ids = storage.identifiers
        self._build(storage.embeddings[:n])  # a view: no copy
        del storage  # ScaNN holds its own copy from here
        self._set_identifiers(None if ids is None else ids[:n])

    def _build(self, db) -> None:
        c = self._config
        n, dim = int(db.shape[0]), int(db.shape[1])
        reorder = c["num_reordering_candidates"]
        params = scann_params.resolve(
            n,
            self._k,
            c["num_leaves"],
            c["num_leaves_to_search"],
            c["dimensions_per_block"],
            reorder,
            c["training_iterations"],
            c["brute_force_threshold"],
        )
        builder = scann_ops.builder(db, self._k, c["distance_measure"])
        if params.brute_force:
            builder = builder.score_brute_force()
        else:
            builder = builder.tree(
                num_leaves=params.num_leaves,
                num_leaves_to_search=params.num_leaves_to_search,
                training_iterations=params.training_iterations,
            )
            threshold = c["anisotropic_quantization_threshold"]
            if c["distance_measure"] != "dot_product":
                threshold = float("nan")
            builder = builder.score_ah(
                params.dimensions_per_block, anisotropic_quantization_threshold=threshold
            )
            if params.num_reordering_candidates:
                builder = builder.reorder(params.num_reordering_candidates)
        shared_name = f"tfrs_twotower/{self.name}/{uuid.uuid4().hex}"
        searcher = builder.build(shared_name=shared_name)
        # The state's handle has the builder's shared_name: in this process it finds the built searcher
        # (no second copy); after loading a SavedModel it rebuilds it from the saved variables.
        self._state = _SearcherState(scann_ops.scann_to_tensors(searcher.searcher_handle), shared_name)
        self._eager_searcher = searcher
        self.params = params
        self._num_candidates, self._dim = n, dim

    def _state_arrays(self) -> dict:
        arrays = {f"searcher_{i}": var.numpy() for i, var in enumerate(self._state.scann_vars)}
        arrays["shape"] = np.array([self._num_candidates, self._dim], np.int64)
        arrays["params"] = np.array(json.dumps(self.params.to_dict()).encode(), dtype=object)
        return arrays

    def _restore(self, store, identifiers):
        # The saved searcher itself (tree, codes, reordering data), not a rebuild: the same results.
        if keras_state.get(store, "shape") is None:
            return False
        tensors = []
        while (value := keras_state.get(store, f"searcher_{len(tensors)}")) is not None:
            tensors.append(tf.constant(value.tolist() if value.dtype == object else value))
        shared_name = f"tfrs_twotower/{self.name}/{uuid.uuid4().hex}"
        self._state = _SearcherState(tensors, shared_name)
        self._eager_searcher = scann_ops.ScannSearcher(self._state.recreate_handle())
        self.params = scann_params.ScannParams(**json.loads(keras_state.get(store, "params").item()))
        self._num_candidates, self._dim = (int(v) for v in keras_state.get(store, "shape"))
        if identifiers is not None and identifiers.dtype == object:
            identifiers = tf.constant(identifiers.tolist(), tf.string)
        self._set_identifiers(identifiers)

    def _searcher(self):
        if tf.executing_eagerly():
            return self._eager_searcher
        return scann_ops.ScannSearcher(self._state.recreate_handle())

    def _pre_reorder(self, k: int):
        reorder = self.params.num_reordering_candidates
        if not reorder:
            return None
        # With exclusions, k (= results + excluded ids) is a tensor.
        return max(reorder, k) if isinstance(k, int) else tf.maximum(reorder, k)

    def _search(self, queries, k):
        searcher = self._searcher()
        search = (
            searcher.search_batched_parallel
            if self._config["parallelize_batch_searches"]
            else (searcher.search_batched)
        )
        result = search(queries, final_num_neighbors=k, pre_reorder_num_neighbors=self._pre_reorder(k))
        return self._scores(result.distances), result.indices

    def _search_one(self, query, k):
        result = self._searcher().search(
            query, final_num_neighbors=k, pre_reorder_num_neighbors=self._pre_reorder(k)
        )
        return self._scores(result.distance), result.index

    def _scores(self, distances):
        # As TFRS: ScaNN's scores as they come (dot products; or squared L2 distances, lower is better).
        return distances

    @property
    def _higher_is_better(self) -> bool:
        return self._config["distance_measure"] == "dot_product"

    def is_exact(self) -> bool:
        return False

    @property
    def index_bytes(self) -> int:
        """Bytes held by the saved searcher state (dataset for reordering, codes, tree)."""
        if self._state is None:
            return 0
        total = 0
        for var in self._state.scann_vars:
            if var.dtype == tf.string:
                total += sum(len(s) for s in np.ravel(var.numpy()))
            else:
                total += var.shape.num_elements() * var.dtype.size
        if self._identifiers is not None and self._identifiers.dtype != tf.string:
            total += self._identifiers.shape.num_elements() * self._identifiers.dtype.size
        return total

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(self._config)
        return config
