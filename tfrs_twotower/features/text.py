"""Text features: each string encoded by a text encoder (the default one trains), a list mean-pooled."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfrs_twotower.feature_types import TEXT, feature_type_of
from tfrs_twotower.features._pooling import as_matrix, masked_mean


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class TextFeatureEncoder(keras.layers.Layer):
    """Encodes every string of a `[B, L]` batch with a text encoder (each distinct string once) and
    mean-pools over the non-empty strings of each row. A row with no non-empty string gives a zero vector.

    With no `embedding_module`, the encoder is the trainable `LexicalTextEncoder` (TF-IDF-weighted hashed
    words; `adapt_text_features` starts it from the corpus' LSA); any `embedding_module` is a frozen encoder.

    Args:
      embedding_module: the schema's `embedding_module` (None: the default, `@lexical`). See
        `tfrs_twotower.text.get_text_encoder` for the accepted forms.

    Call arguments:
      values: tf.string `[B, L]` padded with "" (or `[B]`).

    Returns:
      float32 `[B, encoder.output_dim]`.

    Example:
    >>> encoder = TextFeatureEncoder()
    >>> encoder(tf.constant([["a red apple", ""], ["", ""]])).shape[0]
    2
    """

    def __init__(self, embedding_module: str | None = None, **kwargs):
        super().__init__(**kwargs)
        from tfrs_twotower.text import get_text_encoder

        self.embedding_module = embedding_module
        self.supports_jit = False
        self.encoder = get_text_encoder(embedding_module)
        if not getattr(self.encoder, "identity_projection", False):
            self.encoder.trainable = False  # pretrained and hashed encoders stay frozen, as Vertex's do

    @property
    def identity_projection(self) -> bool:
        """True for a trainable lexical encoder: the tower then starts its projection at the identity."""
        return bool(getattr(self.encoder, "identity_projection", False))

    @property
    def projection_gain(self) -> float:
        return float(getattr(self.encoder, "projection_gain", 1.0))

    @property
    def output_dim(self) -> int:
        return int(self.encoder.output_dim)

    def call(self, values):
        values = as_matrix(values)
        # Each distinct string is encoded once: a batch repeats popular candidates' texts and the ""
        # padding, and the encoder (n-gram hashing, a tokenizer, a network) costs per string.
        distinct, positions = tf.unique(tf.reshape(values, [-1]))
        encoded = tf.gather(tf.cast(self.encoder(distinct), tf.float32), positions)
        shape = tf.concat([tf.shape(values), [self.output_dim]], axis=0)
        encoded = tf.reshape(encoded, shape)
        return masked_mean(encoded, tf.not_equal(values, ""))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "embedding_module": self.embedding_module}


def adapt_text_features(towers, documents) -> int:
    """Fits one `LexicalSpace` on `documents` and starts every `LexicalTextEncoder` of `towers` from it.

    All the lexical encoders (query and candidate side) get the same space, so that their vectors are
    comparable before training. Encoders of other widths or bucket counts get a space of their own.

    Args:
      towers: layers (or a model) holding `TextFeatureEncoder`s, searched recursively.
      documents: iterable of strings, one document each (e.g. a candidate's Text features joined).

    Returns:
      the number of encoders adapted (0 when there is none, or no document has a word).

    Example:
    >>> encoder = TextFeatureEncoder(name="title")
    >>> adapt_text_features([encoder], ["wing lift", "lift drag", "shock wave"])
    1
    """
    from tfrs_twotower.text.lexical import LexicalTextEncoder
    from tfrs_twotower.text.lexical_space import LexicalSpace

    found: list[LexicalTextEncoder] = []
    for layer in towers if isinstance(towers, (list, tuple)) else [towers]:
        found += [
            x
            for x in layer._flatten_layers(include_self=True, recursive=True)
            if isinstance(x, LexicalTextEncoder) and not any(x is y for y in found)
        ]
    if not found:
        return 0
    documents = [d for d in documents if d]
    if not documents:
        return 0
    spaces = {}
    for encoder in found:
        key = (encoder.num_buckets, encoder.output_dim)
        if key not in spaces:
            spaces[key] = LexicalSpace.fit(documents, encoder.num_buckets, encoder.output_dim)
        encoder.set_space(spaces[key])
    return len(found)


def candidate_documents(schema, candidates) -> list[str]:
    """Each candidate's Text feature values joined by spaces: the documents `adapt_text_features` fits on.

    Args:
      schema: the input schema.
      candidates: normalised candidate feature dicts (Text values are lists of strings).
    """
    names = [s.name for s in schema.candidate if feature_type_of(s) is TEXT]
    out = []
    for candidate in candidates:
        parts = []
        for name in names:
            value = candidate.get(name, [])
            parts.extend([value] if isinstance(value, str) else list(value))
        out.append(" ".join(p for p in parts if p))
    return out
