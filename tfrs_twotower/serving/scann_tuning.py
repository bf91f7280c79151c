"""Recall-checked ScaNN: measure the index against exact search on real queries, widen it if needed.

ScaNN's default of searching 10% of the leaves is tuned on clustered synthetic data
(docs/benchmarks.md); a trained model's embeddings can spread a query's top-k over more leaves (on the
sample model with 20K candidates, 10% of the leaves gave recall@10 0.94, 20% gave 0.98). So the export
measures recall@k of the ScaNN index against exact search on up to 1000 distinct queries of the job's
own data (its evaluation data, else its training data) and, while it is below `target_recall`, doubles
`num_leaves_to_search` (when that was left to its default) and rebuilds. The measured recall is
recorded in `index/index.json`.

Example:
>>> docs, note = query_documents("job-dir", schema)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfrs_twotower import progress
from tfrs_twotower.data.formats import read_records
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.data.records import RecordParser
from tfrs_twotower.index import BruteForce, ScaNN
from tfrs_twotower.schema import InputSchema

MAX_QUERIES = 1000


def query_documents(job_dir: str, schema: InputSchema, limit: int = MAX_QUERIES) -> tuple[list[dict], str]:
    """Up to `limit` distinct query documents (normalised) of the job's evaluation (else training) data.

    Returns `(documents, note)`; `note` says where they came from, or why there are none (the data is
    gone, say), so that the caller can record it. Bad records are skipped (they are counted in `note`).
    """
    config_path = os.path.join(job_dir, "config.json")
    if not tf.io.gfile.exists(config_path):
        return [], f"no queries: {config_path} is missing"
    with tf.io.gfile.GFile(config_path) as f:
        config = json.load(f)
    spec = config.get("eval_data_path") or config.get("training_data_path")
    file_format = config.get("input_file_format", "jsonl")
    if config.get("prepared_data_path"):  # `tfrs-twotower prepare`'s shards: eval's, else train's
        root = config["prepared_data_path"].rstrip("/")
        split = "eval" if tf.io.gfile.glob(f"{root}/eval-*.tfrecord") else "train"
        spec, file_format = f"{root}/{split}-*.tfrecord", "tfrecord"
    try:
        paths = resolve_paths(spec)
    except (FileNotFoundError, ValueError) as e:
        return [], f"no queries: the job's data {spec!r} cannot be read ({e})"
    parser, seen, bad = RecordParser(schema), {}, []
    for path in paths:
        records = read_records(path, parser, file_format, "pairs", bad.append)
        for _, record in records:
            seen.setdefault(json.dumps(record["query"], sort_keys=True), record["query"])
            if len(seen) >= limit:
                break
        if len(seen) >= limit:
            break
    skipped = f", {len(bad)} bad records skipped" if bad else ""
    return list(seen.values()), f"{len(seen)} distinct queries of {spec}{skipped}"


def tune_scann(
    make_index: Callable[[dict[str, Any]], ScaNN],
    options: dict[str, Any],
    features: dict[str, tf.Tensor],
    exact_ids: np.ndarray,
    target_recall: float,
) -> tuple[ScaNN, dict[str, Any]]:
    """Builds `make_index(options)` and widens its search until recall@k >= `target_recall`.

    Args:
        make_index: builds the ScaNN index (with its `query_model`) from ScaNN options.
        options: the options to start from; a `num_leaves_to_search` given here is kept.
        features: the queries, `{name: tensor [n, ...]}` (what the index's `query_model` takes).
        exact_ids: the exact top-k ids `[n, k]` of the queries.
        target_recall: the recall@k to reach.

    Returns:
        The index and `{"recall_at_k", "tried": [{"num_leaves_to_search", "recall_at_k"}, ...]}`.
    """
    widen = "num_leaves_to_search" not in options  # a value the user chose is kept
    index, tried = make_index(options), []
    while True:
        recall = _recall(index, features, exact_ids)
        params = index.params
        tried.append({"num_leaves_to_search": params.num_leaves_to_search, "recall_at_k": round(recall, 4)})
        if not params.brute_force:
            progress.log(
                f"  ScaNN: {params.num_leaves_to_search} of {params.num_leaves} leaves searched: recall@k "
                f"{recall:.3f} on {len(exact_ids)} queries (target {target_recall})"
            )
        if (
            recall >= target_recall
            or not widen
            or params.brute_force
            or (params.num_leaves_to_search >= params.num_leaves)
        ):
            return index, {"recall_at_k": round(recall, 4), "tried": tried}
        options = {**options, "num_leaves_to_search": min(params.num_leaves, 2 * params.num_leaves_to_search)}
        index = make_index(options)


def exact_top_k(
    query_embeddings: np.ndarray, embeddings: np.ndarray, ids, k: int, batch: int = 256
) -> np.ndarray:
    """The exact top-k ids `[n, k]` of query embeddings (by `BruteForce`, `batch` queries a call)."""
    exact = BruteForce(k=k).index(np.asarray(embeddings, np.float32), np.asarray(ids, dtype=object))
    parts = [
        exact(query_embeddings[i : i + batch])[1].numpy() for i in range(0, len(query_embeddings), batch)
    ]
    return np.concatenate(parts)


def _recall(index: ScaNN, features: dict[str, tf.Tensor], exact_ids: np.ndarray, batch: int = 256) -> float:
    hits = 0
    for start in range(0, len(exact_ids), batch):
        _, got = index({name: t[start : start + batch] for name, t in features.items()})
        for approx, truth in zip(got.numpy(), exact_ids[start : start + batch], strict=True):
            hits += len(set(approx.tolist()) & set(truth.tolist()))
    return hits / exact_ids.size
