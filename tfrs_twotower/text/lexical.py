"""LexicalTextEncoder: the default text encoder, trainable hashed-word embeddings with TF-IDF pooling."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.features.embedding import RowEmbedding
from tfrs_twotower.text.hashed_ngrams import _check_int
from tfrs_twotower.text.lexical_space import LexicalSpace, word_buckets


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class LexicalTextEncoder(keras.layers.Layer):
    """Encodes strings as the L2-normalised, TF-IDF-weighted sum of trainable embeddings of their words.

    The text is lowercased (UTF-8) and split into words at every run of characters that are neither letters
    nor digits; each word is hashed (`tf.strings.to_hash_bucket_fast`, FarmHash) into `num_buckets`
    buckets. A string's vector is `sum_w (1 + log tf_w) * idf_w * E[w]` over its distinct words,
    L2-normalised and scaled to `output_norm` (zero for a string without words). `E` (`embeddings`,
    `[num_buckets, output_dim]`) is a `RowEmbedding` table and trains (row-sparse with `RowSparseAdagrad`);
    `idf` is a non-trainable weight.

    Before training, `set_space(LexicalSpace.fit(texts, ...))` (which `train` does on the candidate corpus)
    sets `idf` from the texts' document frequencies and `E` to the latent semantic analysis of their TF-IDF
    matrix (its top `output_dim` right singular vectors): the dot product of two encoded texts is then the
    rank-`output_dim` approximation of their TF-IDF cosine, a lexical-match prior that in-batch training
    refines. Unadapted, `idf` is 1 and `E` is random (a trainable bag of words).

    In a `Tower` with no hidden layer, the output projection starts at `projection_gain * I` on this
    feature's block (text/projection.py), in both towers: the embeddings' dot product then starts at
    `(output_norm * projection_gain)**2 = 16` times the texts' cosine (a softmax temperature of 1/16), and
    Adagrad's first steps (about `learning_rate` per kernel entry) are small next to the gain of 16. On
    Cranfield this keeps training from undoing the prior (docs/benchmarks.md).

    `supports_jit = False` (string ops); safe inside `tf.data` (TensorFlow backend).

    Args:
        output_dim: width of the output vectors.
        num_buckets: number of hash buckets (rows of `E`).
        output_norm: the L2 norm of the output vectors.
        projection_gain: the diagonal a `Tower` starts its projection with on this feature's block.
        seed: seed of the random (unadapted) initialisation.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        strings: tf.string tensor of shape `[N]`.

    Returns:
        float32 tensor `[N, output_dim]`, rows of norm `output_norm` (or zero).

    Raises:
        TypeError, ValueError: a constructor argument of the wrong type or out of range.

    Example:
    >>> encoder = LexicalTextEncoder(output_dim=8, num_buckets=64)
    >>> encoder(tf.constant(["Hello world", ""])).shape
    TensorShape([2, 8])
    """

    def __init__(
        self,
        output_dim: int = 64,
        num_buckets: int = 2**16,
        output_norm: float = 0.25,
        projection_gain: float = 16.0,
        seed: int = 1337,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_dim = _check_int("output_dim", output_dim, 1, 2**16)
        self.num_buckets = _check_int("num_buckets", num_buckets, 1, 2**31)
        self.seed = _check_int("seed", seed, 0, 2**32 - 1)
        for name, value in (("output_norm", output_norm), ("projection_gain", projection_gain)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"The `{name}` parameter must be a number > 0. Got {value!r} instead.")
        self.output_norm = float(output_norm)
        self.projection_gain = float(projection_gain)
        self.supports_jit = False
        self.identity_projection = True  # a Tower starts its projection at projection_gain * identity
        self.build()  # the weights depend on the arguments only

    def build(self, input_shape=None):
        self.embedding = RowEmbedding(
            self.num_buckets,
            self.output_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            name="embedding",
        )
        self.embedding.build((None,))
        self.idf = self.add_weight(name="idf", shape=(self.num_buckets,), initializer="ones", trainable=False)
        self.built = True

    def buckets(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """The hash bucket of each word of each string: `[N, None]` ragged int64."""
        return word_buckets(strings, self.num_buckets)

    def call(self, strings):
        buckets = self.buckets(strings)
        rows = buckets.value_rowids()
        # (row, bucket) pairs, first occurrences in row order: segment ids stay sorted.
        keys, _, counts = tf.unique_with_counts(rows * self.num_buckets + buckets.flat_values)
        distinct_rows, distinct = keys // self.num_buckets, keys % self.num_buckets
        weights = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(
            tf.convert_to_tensor(self.idf), distinct
        )
        vectors = tf.cast(self.embedding(distinct), tf.float32) * weights[:, None]
        sums = tf.math.segment_sum(vectors, distinct_rows)
        sums = tf.pad(sums, [[0, buckets.nrows() - tf.shape(sums, out_type=tf.int64)[0]], [0, 0]])
        unit = tf.math.l2_normalize(sums, axis=1, epsilon=1e-12)
        return tf.cast(self.output_norm * unit, self.compute_dtype)

    def set_space(self, space: LexicalSpace) -> None:
        """Sets `idf` and the embedding table from a fitted `LexicalSpace` (same `num_buckets`)."""
        if space.num_buckets != self.num_buckets or space.dim > self.output_dim:
            raise ValueError(
                f"The lexical space has {space.num_buckets} buckets and {space.dim} dimensions; this encoder "
                f"has `num_buckets` {self.num_buckets} and `output_dim` {self.output_dim}."
            )
        table = np.zeros((self.num_buckets, self.output_dim), np.float32)
        table[space.buckets, : space.dim] = space.vectors
        idf = np.full(self.num_buckets, space.unseen_idf, np.float32)
        idf[space.buckets] = space.idf
        self.embedding.embeddings.assign(table)
        self.idf.assign(idf)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            output_dim=self.output_dim,
            num_buckets=self.num_buckets,
            output_norm=self.output_norm,
            projection_gain=self.projection_gain,
            seed=self.seed,
        )
        return config
