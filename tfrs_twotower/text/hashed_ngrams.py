"""HashedNgramEncoder: an offline text encoder with no weights file."""

import keras
import numpy as np
import tensorflow as tf

# Anything that is not a letter or a digit separates words (RE2 syntax, Unicode-aware).
_NON_WORD = r"[^\p{L}\p{N}]+"
_BOUNDARY_START = "<"
_BOUNDARY_END = ">"


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"The `{name}` parameter must be an int. Got {value!r} ({type(value).__name__}) instead."
        )
    if not low <= value <= high:
        raise ValueError(f"The `{name}` parameter must be an int in [{low}, {high}]. Got {value} instead.")
    return int(value)


def _sign_table(num_buckets: int, output_dim: int, seed: int) -> np.ndarray:
    """The random +-1 vector of every bucket, float32 `[num_buckets, output_dim]`.

    Drawn as random bytes whose bits, most significant first, give the signs (1 -> +1, 0 -> -1). numpy's
    PCG64 stream is the same on every platform, so the table depends on `seed` only.
    """
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, size=(num_buckets, -(-output_dim // 8)), dtype=np.uint8)
    return np.unpackbits(packed, axis=1)[:, :output_dim].astype(np.float32) * 2.0 - 1.0


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class HashedNgramEncoder(keras.layers.Layer):
    """Encodes strings as the normalised sum of random vectors of their hashed n-grams.

    The text is lowercased (UTF-8) and split into words at every run of characters that are neither
    letters nor digits. Its grams are the words, the word bigrams and the character n-grams of each word
    padded with boundary markers (`"<cat>"` -> `"<ca"`, `"cat"`, `"at>"`). Each gram, prefixed with its
    kind, is hashed with `tf.strings.to_hash_bucket_fast` (FarmHash, the same in every process) into
    `num_buckets` buckets; each bucket owns a fixed random +-1 vector drawn from `seed`, stored as bfloat16
    in a non-trainable weight (`num_buckets * output_dim * 2` bytes: 4 MiB by default), so that one
    `tf.sparse.segment_sum` gathers and sums a batch's vectors (4x faster than unpacking a bit-packed
    table). The output is the sum of the vectors of all grams, L2-normalised, so texts sharing words or
    word pieces get a positive cosine; the sums are exact up to 256 grams per string (rounded to bfloat16
    beyond: under 0.4% per component). A string with no letters or digits (e.g. `""`) gives the zero
    vector.

    The weights never train. The layer runs TensorFlow string ops: it needs the TensorFlow backend, is
    safe inside a `tf.data` pipeline, and cannot be XLA-compiled (`supports_jit = False`).

    Args:
        output_dim: size of the output vectors.
        num_buckets: number of hash buckets.
        char_ngram: length of the character n-grams; 0 turns them off.
        seed: seed of the random bucket vectors.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        strings: tf.string tensor of shape `[N]`.

    Returns:
        float tensor of shape `[N, output_dim]` with unit or zero rows.

    Raises:
        TypeError, ValueError: a constructor argument of the wrong type or out of range.

    Example:
    >>> encoder = HashedNgramEncoder(output_dim=16, num_buckets=256)
    >>> encoder(tf.constant(["Hello world", ""])).shape
    TensorShape([2, 16])
    """

    def __init__(
        self,
        output_dim: int = 128,
        num_buckets: int = 2**14,
        char_ngram: int = 3,
        seed: int = 1337,
        **kwargs,
    ):
        kwargs.pop("trainable", None)  # always frozen, also when restored from a config
        super().__init__(trainable=False, **kwargs)
        self.output_dim = _check_int("output_dim", output_dim, 1, 2**16)
        self.num_buckets = _check_int("num_buckets", num_buckets, 1, 2**24)
        self.char_ngram = _check_int("char_ngram", char_ngram, 0, 16)
        self.seed = _check_int("seed", seed, 0, 2**32 - 1)
        self.supports_jit = False
        self.build()  # the table depends on the arguments only; building now keeps it out of traced code

    def build(self, input_shape=None):
        table = _sign_table(self.num_buckets, self.output_dim, self.seed)
        self.bucket_signs = self.add_weight(
            name="bucket_signs",
            shape=table.shape,
            dtype="bfloat16",
            initializer=lambda shape, dtype=None: tf.constant(table, dtype=tf.bfloat16),
            trainable=False,
        )
        self.built = True

    def grams(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """The prefixed grams of each string: a `[N, None]` ragged tf.string tensor."""
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        text = tf.strings.lower(strings, encoding="utf-8")
        text = tf.strings.strip(tf.strings.regex_replace(text, _NON_WORD, " "))
        words = tf.strings.split(text)  # [N, W]; "" gives no words
        parts = [
            tf.strings.join(["w:", words]),
            tf.strings.join(["b:", tf.strings.ngrams(words, 2, separator=" ")]),
        ]
        if self.char_ngram:
            padded = tf.strings.join([_BOUNDARY_START, words, _BOUNDARY_END])
            chars = tf.strings.unicode_split(padded, "UTF-8")  # [N, W, C]
            char_grams = tf.strings.ngrams(chars, self.char_ngram, separator="")  # [N, W, G]
            parts.append(tf.strings.join(["c:", char_grams.merge_dims(1, 2)]))
        return tf.concat(parts, axis=1)

    def bucket_vectors(self, buckets: tf.Tensor) -> tf.Tensor:
        """The float32 +-1 vectors `[..., output_dim]` of int64 bucket ids `buckets`."""
        return tf.cast(tf.gather(tf.convert_to_tensor(self.bucket_signs), buckets), tf.float32)

    def call(self, strings):
        grams = self.grams(strings)
        buckets = tf.strings.to_hash_bucket_fast(grams.flat_values, self.num_buckets)
        sums = tf.sparse.segment_sum(
            tf.convert_to_tensor(self.bucket_signs), buckets, grams.value_rowids(), num_segments=grams.nrows()
        )
        return tf.cast(tf.math.l2_normalize(tf.cast(sums, tf.float32), axis=1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        config.update(
            output_dim=self.output_dim,
            num_buckets=self.num_buckets,
            char_ngram=self.char_ngram,
            seed=self.seed,
        )
        return config
