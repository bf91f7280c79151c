"""Text features: each string encoded by a frozen text encoder, a list of strings mean-pooled."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfrs_twotower.features._pooling import as_matrix, masked_mean


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class TextFeatureEncoder(keras.layers.Layer):
    """Encodes every string of a `[B, L]` batch with a frozen text encoder (each distinct string once) and
    mean-pools over the non-empty strings of each row. A row with no non-empty string gives a zero vector.

    Args:
      embedding_module: the schema's `embedding_module` (None: the default offline preset). See
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
        self.encoder.trainable = False

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
