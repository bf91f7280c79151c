"""The `embedding_module` presets and `get_text_encoder`, which resolves any `embedding_module` value."""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Preset:
    """One `@name` preset: a TF Hub model (`handle`) or an offline encoder (`handle` None)."""

    name: str
    description: str
    output_dim: int
    handle: str | None = None
    preprocessor: str | None = None
    output_key: str | None = None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "@lexical",
            "trainable hashed-word embeddings, TF-IDF pooling, started from the corpus' LSA (the default)",
            64,
        ),
        Preset(
            "@hashed-ngrams", "hashed words, word bigrams and char 3-grams; offline, no weights file", 128
        ),
        Preset(
            "@wordllama-l2",
            "WordLlama l2_supercat: Llama 2 BPE token embeddings, mean-pooled (pip install wordllama)",
            256,
        ),
        Preset(
            "@nnlm",
            "NNLM-en-dim128 from TF Hub (the Vertex default)",
            128,
            "https://tfhub.dev/google/nnlm-en-dim128/2",
        ),
        Preset("@nnlm-50", "NNLM-en-dim50 from TF Hub", 50, "https://tfhub.dev/google/nnlm-en-dim50/2"),
        Preset(
            "@use",
            "Universal Sentence Encoder v4 from TF Hub",
            512,
            "https://tfhub.dev/google/universal-sentence-encoder/4",
        ),
        Preset(
            "@albert-base",
            "ALBERT-en-base from TF Hub, pooled_output (needs tensorflow-text)",
            768,
            "https://tfhub.dev/tensorflow/albert_en_base/3",
            preprocessor="https://tfhub.dev/tensorflow/albert_en_preprocess/3",
            output_key="pooled_output",
        ),
    ]
}

DEFAULT_PRESET = "@lexical"


def offline_presets() -> list[str]:
    """The presets that work without a network or a TF Hub cache."""
    return [name for name, preset in PRESETS.items() if preset.handle is None]


def get_text_encoder(embedding_module: str | None) -> keras.layers.Layer:
    """Resolves a schema's `embedding_module` to a text encoder layer.

    Every encoder is frozen except the default, `@lexical` (`LexicalTextEncoder`), which trains.

    Args:
        embedding_module: None (the default offline preset, `@lexical`), a preset name starting
            with `@` (see `PRESETS`), a TF Hub handle or URL, or a path (local or any `tf.io.gfile` URI)
            to a SavedModel that maps a batch of strings to embeddings.

    Returns:
        a Keras layer: `call(strings [N]) -> float32 [N, output_dim]`, with an `output_dim` attribute.

    Raises:
        TypeError: `embedding_module` is not a string or None.
        ValueError: an unknown `@` preset.
        OSError: a TF Hub model that cannot be downloaded and is not cached.
        ImportError: the package an offline preset needs is not installed.

    Example:
    >>> get_text_encoder(None).output_dim
    64
    """
    if embedding_module is None:
        embedding_module = DEFAULT_PRESET
    if not isinstance(embedding_module, str):
        raise TypeError(
            f"`embedding_module` must be a string or None. Got {embedding_module!r} "
            f"({type(embedding_module).__name__}) instead."
        )
    name = embedding_module.strip()
    if name.startswith("@"):
        preset = PRESETS.get(name.lower())
        if preset is None:
            raise ValueError(
                f"`embedding_module` {embedding_module!r} is not a known preset. "
                f"The presets are: {', '.join(PRESETS)}."
            )
        return _from_preset(preset)
    from tfrs_twotower.text.hub_encoder import HubTextEncoder

    return HubTextEncoder(name)


def _from_preset(preset: Preset) -> keras.layers.Layer:
    if preset.name == "@lexical":
        from tfrs_twotower.text.lexical import LexicalTextEncoder

        return LexicalTextEncoder(output_dim=preset.output_dim)
    if preset.name == "@hashed-ngrams":
        from tfrs_twotower.text.hashed_ngrams import HashedNgramEncoder

        return HashedNgramEncoder(output_dim=preset.output_dim)
    if preset.name == "@wordllama-l2":
        from tfrs_twotower.text.wordllama import WordLlamaEncoder

        return WordLlamaEncoder(output_dim=preset.output_dim)
    from tfrs_twotower.text.hub_encoder import HubTextEncoder

    return HubTextEncoder(
        preset.handle,
        preprocessor=preset.preprocessor,
        output_key=preset.output_key,
        label=f"`{preset.name}` ({preset.handle})",
    )
