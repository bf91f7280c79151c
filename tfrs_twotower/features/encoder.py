"""The encoder of one side: the schema's features of that side -> one concatenated feature vector."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import tensorflow as tf

from tfrs_twotower.feature_types import ID, NUMERIC, feature_type_of
from tfrs_twotower.schema import FeatureSpec, load_schema


def make_feature_encoder(
    spec: FeatureSpec,
    numeric_stats: tuple[float, float] | None = None,
    vocabulary: Sequence[str] | None = None,
):
    """The Keras layer that encodes one feature of type `spec.feature_type` (`vocabulary`: an Id
    feature's known values, see `IdEncoder`).

    Example:
    >>> spec = FeatureSpec(name="user", side="query", feature_type="Id", num_buckets=10)
    >>> type(make_feature_encoder(spec)).__name__
    'IdEncoder'
    """
    try:
        kind = feature_type_of(spec)
    except ValueError:
        raise ValueError(f"Unknown feature type {spec.feature_type!r} for `{spec.path}`.") from None
    return kind.make_encoder(spec, numeric_stats, vocabulary)


def _shape(shape):
    return None if shape is None else tuple(shape)


def _mean_and_variance(stats: Any) -> tuple[float, float]:
    if hasattr(stats, "mean") and hasattr(stats, "variance"):
        return float(stats.mean), float(stats.variance)
    mean, variance = stats
    return float(mean), float(variance)


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class FeatureEncoder(keras.layers.Layer):
    """Encodes a side's raw features (a dict keyed by feature name) into one float32 vector.

    Each feature goes through the encoder of its type (Id, Categorical, Numeric, Text, Vector); the
    results are concatenated in the schema's order.

    Args:
      schema: the input schema (path, dict or `InputSchema`).
      side: "query" or "candidate".
      numeric_stats: `{feature name: (mean, variance)}` (or objects with `mean` and `variance`, such as
        `scan(...).numeric_stats[side]`) for the side's Numeric features, computed on the training data;
        features left out start at (0, 1) until `adapt()`.
      id_vocabularies: `{Id feature name: vocabulary or None}` for the side's Id features (see
        `IdEncoder`); features left out, or None, hash into `num_buckets` buckets.

    Call arguments:
      features: `{name: tensor}` in the model-input format of docs/architecture.md. Extra keys are ignored.

    Returns:
      float32 `[B, output_dim]`.

    Example:
    >>> schema = {"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    ...           "candidate": {"v": {"feature_type": "Vector", "config": {"length": 2}}}}
    >>> FeatureEncoder(schema, "query")({"user": tf.constant(["a"])}).shape[0]
    1
    """

    def __init__(
        self,
        schema: Any,
        side: str,
        numeric_stats: Mapping[str, Sequence[float]] | None = None,
        id_vocabularies: Mapping[str, Sequence[str] | None] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", f"{side}_features")
        super().__init__(**kwargs)
        self.schema = load_schema(schema)
        self.side = side
        self.specs = self.schema.side(side)
        stats = dict(numeric_stats or {})
        unknown = sorted(set(stats) - {s.name for s in self.specs if feature_type_of(s) is NUMERIC})
        if unknown:
            raise ValueError(
                f"`numeric_stats` names {unknown}, which are not Numeric features of the {side} side."
            )
        self.numeric_stats = {k: _mean_and_variance(v) for k, v in stats.items()}
        vocabularies = {k: (None if v is None else list(v)) for k, v in (id_vocabularies or {}).items()}
        unknown = sorted(set(vocabularies) - {s.name for s in self.specs if feature_type_of(s) is ID})
        if unknown:
            raise ValueError(
                f"`id_vocabularies` names {unknown}, which are not Id features of the {side} side."
            )
        self.id_vocabularies = vocabularies
        self.supports_jit = False
        self.encoded_specs = tuple(s for s in self.specs if s.encoded)
        if not self.encoded_specs:
            raise ValueError(
                f"The {side} side has no feature to encode: every feature is a key-only Id "
                "(embedding_dim 0). Give it at least one encoded feature."
            )
        self.encoders = {
            s.name: make_feature_encoder(s, self.numeric_stats.get(s.name), vocabularies.get(s.name))
            for s in self.encoded_specs
        }

    @property
    def output_dim(self) -> int:
        return sum(encoder.output_dim for encoder in self.encoders.values())

    def adapt(self, features: tf.data.Dataset) -> None:
        """Adapts the Numeric features' statistics on a dataset of this side's feature dicts."""
        for spec in self.specs:
            if feature_type_of(spec) is NUMERIC:
                self.encoders[spec.name].adapt(features.map(lambda f, n=spec.name: f[n]))
                config = self.encoders[spec.name].get_config()
                self.numeric_stats[spec.name] = (config["mean"], config["variance"])

    def build(self, input_shape=None):
        # Each feature's encoder builds from its own input shape (`input_shape` is `{name: shape}`), here
        # rather than on the first call, so a reloaded `.keras` model has its weights to load into.
        shapes = input_shape if isinstance(input_shape, Mapping) else {}
        for spec in self.encoded_specs:
            encoder = self.encoders[spec.name]
            if not encoder.built and type(encoder).build is not keras.layers.Layer.build:
                encoder.build(_shape(shapes.get(spec.name)))

    def call(self, features):
        missing = [s.name for s in self.encoded_specs if s.name not in features]
        if missing:
            raise KeyError(
                f"The {self.side} features are missing {missing}; the schema's {self.side} side needs "
                f"{[s.name for s in self.encoded_specs]}, got {sorted(features)}."
            )
        encoded = [self.encoders[s.name](features[s.name]) for s in self.encoded_specs]
        return tf.concat(encoded, axis=-1) if len(encoded) > 1 else encoded[0]

    def compute_output_shape(self, input_shape):
        return (None, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "schema": self.schema.to_json(),
            "side": self.side,
            "numeric_stats": {k: list(v) for k, v in self.numeric_stats.items()},
            "id_vocabularies": {k: (None if v is None else list(v)) for k, v in self.id_vocabularies.items()},
        }
