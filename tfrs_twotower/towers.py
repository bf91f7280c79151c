"""A tower: one side's raw features -> feature vector -> hidden layers -> embedding."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import tensorflow as tf

from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.features.bias import CandidateBias, QueryBias
from tfrs_twotower.features.encoder import FeatureEncoder
from tfrs_twotower.schema import load_schema
from tfrs_twotower.text.projection import projection_initializer


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class Tower(keras.layers.Layer):
    """Maps one side's raw features to an `output_dim` embedding.

    The side's `FeatureEncoder` output goes through `len(hidden_units)` Dense layers (ReLU) and a linear
    projection to `output_dim`, optionally L2-normalised (then dot products are cosine similarities,
    also in the exported encoders and the retrieval index).

    Args:
      feature_encoder: the side's `FeatureEncoder` (or any layer mapping the feature dict to [B, F]).
      hidden_units: units of each hidden Dense layer, in order.
      output_dim: the embedding width, >= 1.
      activation: the hidden layers' activation.
      l2_normalize: L2-normalise the output.
      projection: with no hidden layers, False skips the output projection: the feature vector is the
        embedding (its width must equal `output_dim`); this is the TFRS basic model (an id embedding).
      bias: a layer `(features, x) -> [B, 1]` appended after the normalisation (`features/bias.py`:
        `CandidateBias` on the candidate side, `QueryBias` on the query side); the output is then
        `output_dim + 1` wide.

    Call arguments:
      features: `{name: tensor}`, the side's raw features.

    Returns:
      float32 `[B, output_dim]`.

    Example:
    >>> schema = {"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    ...           "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}}
    >>> tower = Tower(FeatureEncoder(schema, "query"), hidden_units=[16], output_dim=8)
    >>> tower({"user": tf.constant(["u1", "u2"])}).shape
    TensorShape([2, 8])
    """

    def __init__(
        self,
        feature_encoder: keras.layers.Layer,
        hidden_units: Sequence[int] = (),
        output_dim: int = 64,
        activation: str = "relu",
        l2_normalize: bool = False,
        projection: bool = True,
        bias: keras.layers.Layer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(f"The `output_dim` parameter must be an int >= 1. Got {output_dim!r} instead.")
        hidden_units = list(hidden_units)
        for units in hidden_units:
            if not isinstance(units, int) or units < 1:
                raise ValueError(f"Each of `hidden_units` must be an int >= 1. Got {hidden_units!r} instead.")
        if not projection:
            width = getattr(feature_encoder, "output_dim", None)
            if hidden_units or width != output_dim:
                raise ValueError(
                    "`projection=False` needs no hidden layers and a feature vector as wide as `output_dim` "
                    f"({output_dim}); got hidden_units={hidden_units} and a feature width of {width}. "
                    "Set the feature's `embedding_dim` to `output_dim`, or keep the projection."
                )
        self.feature_encoder = feature_encoder
        self.hidden_units = hidden_units
        self.output_dim = output_dim
        self.activation = activation
        self.l2_normalize = l2_normalize
        self.projection = projection
        self.bias = bias
        self.supports_jit = False
        self.hidden_layers = [
            keras.layers.Dense(units, activation=activation, name=f"hidden_{i + 1}")
            for i, units in enumerate(hidden_units)
        ]
        # Trainable text features start the projection at the identity (a lexical-match prior; see
        # text/projection.py); with hidden layers, or without such features, Keras's default.
        prior = None if hidden_units else projection_initializer(feature_encoder)
        self.output_layer = (
            keras.layers.Dense(output_dim, name="projection", kernel_initializer=prior or "glorot_uniform")
            if projection
            else None
        )

    def build(self, input_shape=None):
        # The sublayers build here, not on the first call, so a reloaded `.keras` model has its weights to
        # load into. A custom feature encoder whose width is unknown builds them on the first call.
        encoder = self.feature_encoder
        if not encoder.built and type(encoder).build is not keras.layers.Layer.build:
            encoder.build(input_shape)
        width = getattr(encoder, "output_dim", None)
        if not isinstance(width, int):
            return
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        if self.output_layer is not None:
            self.output_layer.build((None, width))
        if self.bias is not None and not self.bias.built:
            self.bias.build(input_shape)

    def call(self, features, training=False):
        x = self.feature_encoder(features)
        for layer in self.hidden_layers:
            x = layer(x)
        if self.output_layer is not None:
            x = self.output_layer(x)
        if self.l2_normalize:
            x = tf.math.l2_normalize(x, axis=-1)
        if self.bias is not None:
            x = tf.concat([x, self.bias(features, x)], axis=-1)
        return x

    @property
    def embedding_dim(self) -> int:
        """The output's width: `output_dim`, plus 1 with a `bias`."""
        return self.output_dim + (self.bias is not None)

    def compute_output_shape(self, input_shape):
        return (None, self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "feature_encoder": keras.saving.serialize_keras_object(self.feature_encoder),
            "hidden_units": self.hidden_units,
            "output_dim": self.output_dim,
            "activation": self.activation,
            "l2_normalize": self.l2_normalize,
            "projection": self.projection,
            "bias": None if self.bias is None else keras.saving.serialize_keras_object(self.bias),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["feature_encoder"] = keras.saving.deserialize_keras_object(config["feature_encoder"])
        if config.get("bias") is not None:
            config["bias"] = keras.saving.deserialize_keras_object(config["bias"])
        return cls(**config)


def build_towers(
    schema: Any,
    hidden_units: Sequence[int] = (),
    output_dim: int = 64,
    numeric_stats: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    l2_normalize: bool = False,
    projection: bool = True,
    id_vocabularies: Mapping[str, Mapping[str, Sequence[str] | None]] | None = None,
    candidate_bias: str | None = None,
) -> tuple[Tower, Tower]:
    """The query tower and the candidate tower for `schema`, with the same hidden layers and output.

    Args:
      schema: the input schema (path, dict or `InputSchema`).
      hidden_units: units of each hidden layer (the Vertex flags `num_nodes_hidden_layer{i}`).
      output_dim: the embedding width.
      numeric_stats: `{"query": {name: (mean, variance)}, "candidate": {...}}` for Numeric features.
      l2_normalize: L2-normalise both towers' outputs (cosine similarity).
      projection: see `Tower`.
      id_vocabularies: `{"query": {name: vocabulary}, "candidate": {...}}` for Id features (see
        `IdEncoder`; None or absent: hash into `num_buckets`).
      candidate_bias: a candidate Id feature: the candidate tower appends a learned scalar per value of
        it and the query tower a 1, so scores gain a per-candidate bias (`features/bias.py`).

    Example:
    >>> schema = {"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    ...           "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}}
    >>> query_tower, candidate_tower = build_towers(schema, hidden_units=[16], output_dim=8)
    """
    schema = load_schema(schema)
    stats = numeric_stats or {}
    vocabularies = id_vocabularies or {}
    biases = {"query": None, "candidate": None}
    if candidate_bias is not None:
        spec = schema.feature("candidate", candidate_bias)
        if not feature_type_of(spec).identifies:
            raise ValueError(
                f"`candidate_bias` must name a candidate Id feature; "
                f"`{candidate_bias}` is {spec.feature_type}."
            )
        vocabulary = vocabularies.get("candidate", {}).get(candidate_bias)
        biases = {
            "query": QueryBias(name="query_bias"),
            "candidate": CandidateBias(candidate_bias, spec.num_buckets, vocabulary),
        }
    return tuple(
        Tower(
            FeatureEncoder(schema, side, stats.get(side), vocabularies.get(side)),
            hidden_units=hidden_units,
            output_dim=output_dim,
            l2_normalize=l2_normalize,
            projection=projection,
            bias=biases[side],
            name=f"{side}_tower",
        )
        for side in ("query", "candidate")
    )
