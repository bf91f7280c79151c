import pytest

from tfrs_twotower.text import (
    PRESETS,
    HashedNgramEncoder,
    LexicalTextEncoder,
    get_text_encoder,
    offline_presets,
)


@pytest.mark.parametrize("value", ["@hashed-ngrams", " @Hashed-Ngrams "])
def test_hashed_ngrams(value):
    encoder = get_text_encoder(value)
    assert isinstance(encoder, HashedNgramEncoder) and encoder.output_dim == 128 and not encoder.trainable


@pytest.mark.parametrize("value", [None, "@lexical"])
def test_default_is_the_trainable_lexical_encoder(value):
    encoder = get_text_encoder(value)
    assert isinstance(encoder, LexicalTextEncoder) and encoder.output_dim == 64 and encoder.trainable


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"'@bert' is not a known preset. The presets are: @lexical, @hash"):
        get_text_encoder("@bert")


def test_preset_table():
    assert offline_presets() == ["@lexical", "@hashed-ngrams", "@wordllama-l2"]
    assert PRESETS["@nnlm"].handle == "https://tfhub.dev/google/nnlm-en-dim128/2"
    assert PRESETS["@albert-base"].preprocessor and PRESETS["@albert-base"].output_key == "pooled_output"
    assert all(name.startswith("@") and p.name == name for name, p in PRESETS.items())
