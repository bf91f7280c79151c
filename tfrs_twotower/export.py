"""Exports to job-dir: the query and candidate encoders as SavedModels, and the candidate embeddings.

The encoders' `serving_default` signature takes a side's raw features, named as in the schema, in the
model-input format of docs/architecture.md, and returns `{"encoding": float32 [batch, output_dim]}`.
They load with plain TensorFlow (`tf.saved_model.load`) and serve under TF Serving.

Example:
>>> export_encoder(query_tower, schema, "query", "job-dir/query_model")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.features.finite import check_finite
from tfrs_twotower.schema import FeatureSpec, load_schema

QUERY_MODEL_DIR = "query_model"
CANDIDATE_MODEL_DIR = "candidate_model"
EMBEDDINGS_DIR = "candidate_embeddings"


def feature_signature(spec: FeatureSpec) -> tf.TensorSpec:
    """The serving input of one feature: its model-input spec (`data.batching`), named after it: Id `[B]`
    string; Categorical/Text `[B, L]` string; Numeric `[B, L]` float32; Vector `[B, length]` float32."""
    return feature_type_of(spec).serving_signature(spec)


def side_signature(schema: Any, side: str) -> dict[str, tf.TensorSpec]:
    """`{feature name: TensorSpec}` for the raw features of `side`."""
    return {spec.name: feature_signature(spec) for spec in load_schema(schema).side(side)}


class _Encoder(tf.Module):
    """What an encoder SavedModel holds: the tower and its serving function."""

    def __init__(self, tower: keras.layers.Layer, signature: dict[str, tf.TensorSpec], side: str = "query"):
        super().__init__(name=None)
        self.tower = tower
        self._signature, self._side = signature, side
        self.serve = tf.function(self._serve, input_signature=[signature])

    @tf.autograph.experimental.do_not_convert
    def _serve(self, features):
        features = check_finite(features, self._signature, self._side)  # inf/NaN: an error naming it
        return {"encoding": self.tower(features, training=False)}


def export_encoder(tower: keras.layers.Layer, schema: Any, side: str, path: str) -> str:
    """Writes `tower` as a SavedModel at `path` with a `serving_default` signature over `side`'s raw
    features. Returns `path`.

    Saved with `tf.saved_model.save` rather than `keras.export.ExportArchive`, which stores every
    variable twice (a model twice the size).

    Example:
    >>> path = export_encoder(model.query_tower, schema, "query", "out/query_model")  # doctest: +SKIP
    >>> serve = tf.saved_model.load(path).signatures["serving_default"]  # doctest: +SKIP
    >>> serve(user_id=tf.constant(["u1"]), age=tf.constant([[31.0]]))["encoding"].shape  # doctest: +SKIP
    TensorShape([1, 64])
    """
    module = _Encoder(tower, side_signature(schema, side), side)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def encoder_function(tower: keras.layers.Layer, schema: Any, side: str):
    """`tower` as a `tf.function` over `side`'s raw features, traced once for every batch shape."""
    return tf.function(
        lambda features: tower(features, training=False), input_signature=[side_signature(schema, side)]
    )


def encode_batches(encode, batches: Iterable[dict[str, tf.Tensor]], width: int = 0) -> np.ndarray:
    """Runs `encode` (e.g. `encoder_function(...)`) over feature batches and stacks the embeddings:
    float32 `[N, D]` (`[0, width]` when there is no batch)."""
    parts = [encode(batch).numpy() for batch in batches]
    return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)


def write_embeddings(directory: str, ids: Sequence[str], embeddings: np.ndarray) -> dict[str, str]:
    """Writes `embeddings.npy`, `ids.txt` (one id a line, the npy's row order) and `embeddings.jsonl`
    (`{"id": ..., "embedding": [...]}` per line: the Vertex AI Vector Search input format)."""
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} ids for {len(embeddings)} embeddings: they must match one to one.")
    tf.io.gfile.makedirs(directory)
    paths = {
        name: os.path.join(directory, name) for name in ("embeddings.npy", "ids.txt", "embeddings.jsonl")
    }
    with tf.io.gfile.GFile(paths["embeddings.npy"], "wb") as f:
        np.save(f, embeddings.astype(np.float32))
    with tf.io.gfile.GFile(paths["ids.txt"], "w") as f:
        f.write("".join(f"{i}\n" for i in ids))
    with tf.io.gfile.GFile(paths["embeddings.jsonl"], "w") as f:
        for i, row in zip(ids, embeddings, strict=True):
            f.write(json.dumps({"id": str(i), "embedding": [round(float(x), 7) for x in row]}) + "\n")
    return paths


def read_embeddings(directory: str) -> tuple[list[str], np.ndarray]:
    """Reads what `write_embeddings` wrote: (ids, float32 [N, D]).

    Example:
    >>> ids, embeddings = read_embeddings("job-dir/candidate_embeddings")  # doctest: +SKIP
    >>> len(ids) == embeddings.shape[0]  # doctest: +SKIP
    True
    """
    with tf.io.gfile.GFile(os.path.join(directory, "embeddings.npy"), "rb") as f:
        embeddings = np.load(f)
    with tf.io.gfile.GFile(os.path.join(directory, "ids.txt"), "r") as f:
        ids = [line.rstrip("\n") for line in f]
    return ids, embeddings
