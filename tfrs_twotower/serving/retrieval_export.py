"""Retrieval SavedModels in `job-dir/index/`: raw query features -> top-k candidate ids and scores.

`export_retrieval_models(job_dir)` puts the query encoder and the candidate embeddings of a job-dir
(`candidate_embeddings/`) behind one `serving_default` signature:

- inputs: the query side's raw features, named as in the schema (the query encoder's own inputs);
- outputs: `{"ids": string [batch, k], "scores": float32 [batch, k]}`, best first (dot products).

and a second signature, `serving_exclude`: the same inputs plus `exclude` (string `[batch, E]`, padded
with ""; see `serving.exclusions` for the name), the candidate ids to leave out of each query's
results (`index.exclusions`: the top k of the rest; a short tail is padded with "" and -inf).

Two flavours, one folder each:

- `index/brute_force/`: exact (`tfrs_twotower.index.BruteForce`); plain TensorFlow ops only, so stock
  TF Serving and `tf.saved_model.load` serve it without this package.
- `index/scann/`: approximate (`tfrs_twotower.index.ScaNN`); it holds ScaNN's custom ops (namespace
  `Scann`), so the process that loads it must `import scann` first, with the scann release built for
  its TensorFlow (scann 1.4.2 <-> tensorflow 2.20; the ops' ABI moves in lockstep with TF). Stock TF
  Serving lacks these ops: serve it from Python, or a TF Serving built with them.

`index/index.json` records, per flavour, k, the corpus size and, for ScaNN, the resolved parameters and
its recall@k against exact search measured on the job's own queries (`scann_tuning`: the search is
widened until it reaches `target_recall`, 0.97 by default: a margin over 0.95 for queries the check
did not see).

Example:
>>> paths = export_retrieval_models("job-dir", k=10)  # doctest: +SKIP
>>> served = tf.saved_model.load(paths["index_brute_force"]).signatures["serving_default"]  # doctest: +SKIP
>>> served(user_id=tf.constant(["u1"]), age=tf.constant([[31.0]]), ...)["ids"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from importlib.metadata import version
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower import progress
from tfrs_twotower.export import EMBEDDINGS_DIR, read_embeddings, side_signature
from tfrs_twotower.features.finite import check_finite
from tfrs_twotower.index import BruteForce, ScaNN
from tfrs_twotower.index.top_k import TopK, check_k
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.serving import exclusions
from tfrs_twotower.serving.encoder import load_encoder
from tfrs_twotower.serving.instances import instances_to_tensors
from tfrs_twotower.serving.scann_tuning import exact_top_k, query_documents, tune_scann
from tfrs_twotower.training.links import check_links

INDEX_DIR = "index"
METADATA = "index.json"
FLAVOURS = ("brute_force", "scann")
SCANN_NAMESPACE = "Scann"
SCANN_OPTIONS = (
    "num_leaves",
    "num_leaves_to_search",
    "num_reordering_candidates",
    "dimensions_per_block",
    "training_iterations",
    "brute_force_threshold",
    "anisotropic_quantization_threshold",
)


def check_flavours(flavours: str | Sequence[str] | None) -> tuple[str, ...]:
    """`None` or "both" -> both flavours; a name or a list of names -> those, validated."""
    if flavours is None or flavours == "both":
        return FLAVOURS
    names = (flavours,) if isinstance(flavours, str) else tuple(flavours)
    bad = [f for f in names if f not in FLAVOURS]
    if bad or not names:
        raise ValueError(
            f"The `flavour` parameter must be one of {', '.join(FLAVOURS)} or both. Got {flavours!r} instead."
        )
    return names


class RetrievalModule(tf.Module):
    """A top-k index with a `query_model`, served on raw query features (what `index/<flavour>` holds).

    Args:
        index: an indexed `BruteForce` or `ScaNN` whose `query_model` maps the features to embeddings.
        input_signature: `{name: tf.TensorSpec}` of the query side's raw features.
        exclude_name: the name of the exclusions input (`serving.exclusions.exclusion_name(schema)`).

    The `serve` function (also the SavedModel's `serving_default`) returns
    `{"ids": [batch, k], "scores": float32 [batch, k]}`; `serve_exclude` (`serving_exclude`) takes the
    features and `exclude_name` (string `[batch, E]`, "" padding) and leaves those ids out.
    """

    def __init__(
        self,
        index: TopK,
        input_signature: Mapping[str, tf.TensorSpec],
        exclude_name: str = exclusions.RESERVED,
    ):
        super().__init__(name="retrieval")
        if index.query_model is None or index.num_candidates is None:
            raise ValueError("The `index` parameter must be indexed and have a `query_model`.")
        if exclude_name in input_signature:
            raise ValueError(
                f"`exclude_name` {exclude_name!r} is a query feature; use `exclusion_name(schema)`."
            )
        self.index = index
        self.exclude_name = exclude_name
        self._signature = dict(input_signature)
        self.serve = tf.function(self._serve, input_signature=[dict(input_signature)])
        with_exclusions = {
            **input_signature,
            exclude_name: tf.TensorSpec([None, None], tf.string, name=exclude_name),
        }
        self.serve_exclude = tf.function(self._serve_exclude, input_signature=[with_exclusions])

    def _serve(self, features):
        features = check_finite(features, self._signature, "query")  # inf/NaN: an error naming it
        return self._outputs(*self.index(features))

    def _serve_exclude(self, inputs):
        features = {name: value for name, value in inputs.items() if name != self.exclude_name}
        features = check_finite(features, self._signature, "query")
        return self._outputs(*self.index.query_with_exclusions(features, inputs[self.exclude_name]))

    def _outputs(self, scores, ids):
        # ScaNN's ops give no static shape; the signature (and saved_model_cli) should show [-1, k].
        shape = [None, self.index.k]
        return {"ids": tf.ensure_shape(ids, shape), "scores": tf.ensure_shape(scores, shape)}

    def save(self, path: str) -> str:
        options = tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE])
        signatures = {"serving_default": self.serve, exclusions.SIGNATURE: self.serve_exclude}
        tf.saved_model.save(self, path, signatures=signatures, options=options)
        return path


def build_index(
    flavour: str,
    query_model: Callable,
    candidate_ids: Sequence[str],
    candidate_embeddings: np.ndarray,
    k: int = 10,
    scann_options: Mapping[str, Any] | None = None,
) -> TopK:
    """An indexed `BruteForce` (flavour "brute_force") or `ScaNN` ("scann") over the candidates.

    `k` is clipped to the number of candidates. `scann_options` are `ScaNN` constructor arguments
    (`num_leaves`, `num_leaves_to_search`, `num_reordering_candidates`, `brute_force_threshold`, ...).
    """
    if flavour not in FLAVOURS:
        raise ValueError(
            f"The `flavour` parameter must be one of {', '.join(FLAVOURS)}. Got {flavour!r} instead."
        )
    k = min(check_k(k), len(candidate_ids))
    if k == 0:
        raise ValueError("The candidate embeddings are empty: there is nothing to index.")
    options = dict(scann_options or {})
    unknown = sorted(set(options) - set(SCANN_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown `scann_options` {unknown}; they may be {', '.join(SCANN_OPTIONS)}.")
    if flavour == "brute_force":
        index: TopK = BruteForce(query_model=query_model, k=k, name="brute_force")
    else:
        index = ScaNN(query_model=query_model, k=k, name="scann", **options)
    return index.index(np.asarray(candidate_embeddings, np.float32), np.asarray(candidate_ids, dtype=object))


def export_retrieval_models(
    job_dir: str,
    query_model: Callable | None = None,
    k: int = 10,
    flavours: str | Sequence[str] | None = None,
    scann_options: Mapping[str, Any] | None = None,
    schema: InputSchema | None = None,
    target_recall: float | None = 0.97,
    recall_queries: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Writes `job_dir/index/<flavour>/` for each flavour; see the module docstring.

    Args:
        job_dir: a job-dir holding `schema.json`, `candidate_embeddings/` and (unless `query_model` is
            given) `query_model/`.
        query_model: the query encoder: the trained Keras query tower, or None to use the exported
            `query_model` SavedModel of `job_dir`.
        k: the number of results (clipped to the corpus size).
        flavours: "brute_force", "scann", a list of them, or None / "both".
        scann_options: `ScaNN` arguments (see `build_index`).
        schema: the input schema; default `job_dir/schema.json`.
        target_recall: ScaNN's recall@k against exact search is measured on real queries and its search
            widened until it reaches this (see `scann_tuning`); None skips the check.
        recall_queries: query documents for that check; default: up to 1000 distinct queries of the
            job's evaluation (else training) data.

    Returns:
        `{"index_<flavour>": path}` for each flavour written.

    Raises:
        FileNotFoundError: when the job-dir lacks what is needed.
    """
    flavours = check_flavours(flavours)
    check_links(job_dir, [INDEX_DIR], "write or delete")  # never through a link leaving job-dir
    schema = load_schema(schema if schema is not None else _require(os.path.join(job_dir, "schema.json")))
    ids, embeddings = read_embeddings(_require(os.path.join(job_dir, EMBEDDINGS_DIR)))
    if query_model is None:
        query_model = load_encoder(job_dir, "query")
    signature = side_signature(schema, "query")
    metadata = read_metadata(job_dir)
    paths = {}
    for flavour in flavours:
        recall = None
        with progress.step(f"Index {flavour} ({len(ids)} candidates, k={min(k, len(ids))})") as done:
            if flavour == "scann" and target_recall is not None:
                index, recall = _checked_scann(
                    job_dir,
                    schema,
                    query_model,
                    ids,
                    embeddings,
                    k,
                    scann_options,
                    target_recall,
                    recall_queries,
                )
            else:
                index = build_index(flavour, query_model, ids, embeddings, k, scann_options)
            path = index_path(job_dir, flavour)
            if tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)
            RetrievalModule(index, signature, exclusions.exclusion_name(schema)).save(path)
            measured = (recall or {}).get("recall_at_k")
            done(f"saved to {path}" + (f", recall@k {measured}" if measured is not None else ""))
        metadata[flavour] = _describe(index, len(ids), embeddings.shape[1])
        metadata[flavour]["exclude_input"] = exclusions.exclusion_name(schema)
        if recall is not None:
            metadata[flavour]["recall"] = recall
        paths[f"index_{flavour}"] = path
    with tf.io.gfile.GFile(os.path.join(job_dir, INDEX_DIR, METADATA), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    return paths


def _checked_scann(job_dir, schema, query_model, ids, embeddings, k, scann_options, target_recall, queries):
    """A ScaNN index whose recall@k on real queries was measured (and widened to `target_recall`)."""
    if queries is None:
        queries, note = query_documents(job_dir, schema)
    else:
        queries, note = list(queries), f"{len(queries)} given queries"
    if not queries:
        warnings.warn(
            f"ScaNN's recall was not measured ({note}); pass `recall_queries` to measure it.", stacklevel=3
        )
        return build_index("scann", query_model, ids, embeddings, k, scann_options), {"queries": note}
    features = instances_to_tensors(schema, "query", queries)
    k = min(check_k(k), len(ids))
    exact_ids = exact_top_k(np.asarray(query_model(features), np.float32), embeddings, ids, k)
    index, recall = tune_scann(
        lambda options: build_index("scann", query_model, ids, embeddings, k, options),
        dict(scann_options or {}),
        features,
        exact_ids,
        target_recall,
    )
    recall.update(k=k, target=target_recall, queries=note)
    if recall["recall_at_k"] < target_recall:
        warnings.warn(
            f"ScaNN's recall@{k} is {recall['recall_at_k']} (< {target_recall}) on {note}; raise "
            "`num_leaves_to_search` or `num_reordering_candidates`, or serve the brute_force index.",
            stacklevel=3,
        )
    return index, recall


def index_path(job_dir: str, flavour: str) -> str:
    return os.path.join(job_dir, INDEX_DIR, check_flavours(flavour)[0])


def read_metadata(job_dir: str) -> dict[str, Any]:
    """`index/index.json` of `job_dir` (`{flavour: {"k", "num_candidates", ...}}`), or {} when absent."""
    path = os.path.join(job_dir, INDEX_DIR, METADATA)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _describe(index: TopK, num_candidates: int, dim: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "k": index.k,
        "num_candidates": num_candidates,
        "dim": int(dim),
        "exact": index.is_exact(),
        "tensorflow": tf.__version__,
    }
    if isinstance(index, ScaNN):
        # The scann release is tied to the TensorFlow release (the ops' ABI): both are recorded.
        out.update(params=index.params.to_dict(), scann=version("scann"), needs="import scann")
    return out


def _require(path: str) -> str:
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} is missing. Pass a job-dir written by `tfrs-twotower train` (it holds schema.json, "
            "query_model/ and candidate_embeddings/)."
        )
    return path
