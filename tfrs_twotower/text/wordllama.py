"""WordLlamaEncoder: pretrained token embeddings from the `wordllama` wheel, tokenized with TensorFlow ops."""

import importlib.util
import json
import pathlib
import struct

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.text.pooling import normalized_sums

CONFIG = "l2_supercat"
DIMS = (64, 128, 256)  # the Matryoshka sizes WordLlama is trained for; smaller ones are prefixes
_WORD_START = "\u2581"  # SentencePiece's "▁", which the Llama tokenizer puts before each word
_NO_MERGE = np.iinfo(np.int64).max


def wheel_files(config: str = CONFIG) -> tuple[pathlib.Path, pathlib.Path]:
    """The weights and tokenizer files of the installed `wordllama` wheel (without importing it)."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The `@wordllama-l2` text encoder reads its weights from the `wordllama` package (MIT), which is "
            "not installed. Install it with `pip install wordllama`."
        )
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    weights = root / "weights" / f"{config}_256.safetensors"
    tokenizer = root / "tokenizers" / f"{config}_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ImportError(
                f"The `wordllama` package has no {path}; reinstall it with `pip install wordllama`."
            )
    return weights, tokenizer


def read_safetensor(path: pathlib.Path, key: str = "embedding.weight") -> np.ndarray:
    """One float16 tensor of a safetensors file (8-byte header size, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))[key]
        if header["dtype"] != "F16":
            raise ValueError(f"`{path}` holds {key!r} as {header['dtype']}; expected F16.")
        start, end = header["data_offsets"]
        f.seek(8 + header_size + start)
        return np.frombuffer(f.read(end - start), dtype="<f2").reshape(header["shape"])


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class WordLlamaEncoder(keras.layers.Layer):
    """Mean of WordLlama token embeddings (the Llama 2 vocabulary), L2-normalised; frozen.

    WordLlama (`pip install wordllama`, MIT) ships 32,000 x 256 float16 token embeddings trained from the
    concatenated codebooks of Llama 2 family models. This layer copies them (the first `output_dim`
    columns, a Matryoshka prefix) into a non-trainable weight and the tokenizer's vocabulary and BPE merges
    into lookup tables when it is built, so a SavedModel exported from it serves without the wheel.

    Tokenization runs as TensorFlow ops and reproduces the Llama 2 BPE tokenizer (byte fallback, no lower-
    casing) for text whose words are separated by single spaces: runs of whitespace (tabs, newlines,
    repeated spaces) count as one space, where the original tokenizer would also emit tokens for the extra
    whitespace. Each word, prefixed with "▁", is split into characters (characters outside the vocabulary
    into their UTF-8 byte tokens) and merged pair by pair, the lowest-ranked merge first and the leftmost
    on ties, as in Hugging Face `tokenizers`. A string without tokens gives the zero vector.

    Args:
        output_dim: 64, 128 or 256.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        strings: tf.string tensor of shape `[N]`.

    Returns:
        float tensor of shape `[N, output_dim]` with unit or zero rows.

    Raises:
        ImportError: the `wordllama` package is not installed.
        ValueError: an `output_dim` that is not 64, 128 or 256.

    Example:
    >>> encoder = WordLlamaEncoder(output_dim=64)
    >>> encoder(tf.constant(["red running shoes", ""])).shape
    TensorShape([2, 64])
    """

    def __init__(self, output_dim: int = 256, **kwargs):
        kwargs.pop("trainable", None)  # always frozen, also when restored from a config
        super().__init__(trainable=False, **kwargs)
        if isinstance(output_dim, bool) or output_dim not in DIMS:
            raise ValueError(f"The `output_dim` parameter must be one of {DIMS}. Got {output_dim!r} instead.")
        self.output_dim = int(output_dim)
        self.supports_jit = False
        # Built now, eagerly: the lookup tables must not be created inside a traced function, and a
        # missing wheel should fail here rather than at the first call.
        self.build()

    def build(self, input_shape=None):
        weights_path, tokenizer_path = wheel_files()
        table = read_safetensor(weights_path)[:, : self.output_dim]
        self.token_embeddings = self.add_weight(
            name="token_embeddings",
            shape=table.shape,
            dtype="float16",
            initializer=lambda shape, dtype=None: tf.constant(table, tf.float16),
            trainable=False,
        )
        model = json.loads(tokenizer_path.read_text(encoding="utf-8"))["model"]
        tokens = sorted(model["vocab"], key=model["vocab"].get)
        self._vocab = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tokens, [model["vocab"][t] for t in tokens], tf.string, tf.int64
            ),
            default_value=-1,
        )
        self._merges = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                model["merges"], np.arange(len(model["merges"]), dtype=np.int64)
            ),
            default_value=_NO_MERGE,
        )
        self._byte_tokens = tf.constant([f"<0x{b:02X}>" for b in range(256)])
        self.built = True

    def _symbols(self, words: tf.Tensor) -> tf.RaggedTensor:
        """The initial BPE symbols of each word `[M]`: its characters, or byte tokens for unknown ones."""
        chars = tf.strings.unicode_split(words, "UTF-8")  # [M, C]
        flat = chars.flat_values
        known = self._vocab.lookup(flat) >= 0
        as_char = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(flat, known), tf.cast(known, tf.int64))
        raw = tf.strings.bytes_split(flat)  # [K, B]
        codes = tf.cast(tf.reshape(tf.io.decode_raw(raw.flat_values, tf.uint8), [-1]), tf.int32)
        unknown_values = tf.repeat(~known, raw.row_lengths())
        as_bytes = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(tf.gather(self._byte_tokens, codes), unknown_values),
            tf.where(known, tf.constant(0, tf.int64), raw.row_lengths()),
        )
        return chars.with_flat_values(tf.concat([as_char, as_bytes], axis=1)).merge_dims(1, 2)

    def _merge(self, symbols: tf.Tensor) -> tf.Tensor:
        """Applies the BPE merges to `[M, L]` symbols ("" pads) until none applies."""

        def step(symbols):
            left, right = symbols[:, :-1], symbols[:, 1:]
            ranks = self._merges.lookup(tf.strings.join([left, right], " "))
            ranks = tf.where((left == "") | (right == ""), tf.constant(_NO_MERGE, tf.int64), ranks)
            best = tf.reduce_min(ranks, axis=1, keepdims=True)
            columns = tf.range(tf.shape(symbols)[1], dtype=tf.int64)[None, :]
            # The leftmost position of the best merge; words with no merge left point past the end.
            position = tf.reduce_min(tf.where(ranks == best, columns[:, :-1], tf.int64.max), 1, keepdims=True)
            position = tf.where(best == _NO_MERGE, tf.int64.max - 1, position)
            following = tf.concat([right, tf.fill([tf.shape(symbols)[0], 1], "")], axis=1)
            merged = tf.where(columns == position, tf.strings.join([symbols, following]), symbols)
            kept = tf.ragged.boolean_mask(merged, columns != position + 1)
            return [kept.to_tensor("", shape=tf.shape(symbols))]

        def mergeable(symbols):
            ranks = self._merges.lookup(tf.strings.join([symbols[:, :-1], symbols[:, 1:]], " "))
            return tf.reduce_any(ranks != _NO_MERGE)

        return tf.while_loop(mergeable, step, [symbols])[0]

    def token_ids(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """The Llama 2 token ids of each string: a `[N, None]` ragged int64 tensor."""
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        words = tf.strings.split(tf.strings.strip(tf.strings.regex_replace(strings, r"\s+", " ")))
        symbols = self._symbols(tf.strings.join([_WORD_START, words.flat_values]))
        merged = self._merge(symbols.to_tensor(""))
        pieces = tf.ragged.boolean_mask(merged, merged != "")
        ids = tf.ragged.map_flat_values(self._vocab.lookup, pieces)
        ids = tf.ragged.map_flat_values(tf.maximum, ids, tf.constant(0, tf.int64))  # 0 is <unk>
        return words.with_flat_values(ids).merge_dims(1, 2)

    def call(self, strings):
        ids = self.token_ids(strings)
        vectors = tf.cast(tf.gather(tf.convert_to_tensor(self.token_embeddings), ids.flat_values), tf.float32)
        return tf.cast(normalized_sums(vectors, ids), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        config.update(output_dim=self.output_dim)
        return config
