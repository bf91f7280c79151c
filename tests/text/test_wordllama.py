import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.text import WordLlamaEncoder, get_text_encoder
from tfrs_twotower.text import wordllama as wordllama_module

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("wordllama") is None, reason="needs `pip install wordllama`"
)

TEXTS = [
    "Hello world",
    "",
    "red running shoes for men",
    "The quick brown fox jumps over the lazy dog.",
    "Zürich café naïve 東京 🙂 ünïcödé",
    "co-operation e-mail #hashtag @user 3.14159 $100",
    "CamelCaseWordsAndNumbers12345",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def encoder():
    return WordLlamaEncoder()


@pytest.fixture(scope="module")
def reference():
    """The Hugging Face tokenizer and the float32 embeddings WordLlama itself uses."""
    tokenizers = pytest.importorskip("tokenizers")
    weights, tokenizer = wordllama_module.wheel_files()
    return tokenizers.Tokenizer.from_file(str(tokenizer)), wordllama_module.read_safetensor(weights).astype(
        np.float32
    )


def test_token_ids_match_the_llama_tokenizer(encoder, reference):
    tokenizer, _ = reference
    expected = [e.ids for e in tokenizer.encode_batch(TEXTS, add_special_tokens=False)]
    assert encoder.token_ids(tf.constant(TEXTS)).to_list() == expected


def test_whitespace_runs_count_as_one_space(encoder):
    ids = encoder.token_ids(tf.constant(["  red \t running\n shoes ", "red running shoes"])).to_list()
    assert ids[0] == ids[1]


@pytest.mark.parametrize("dim", [64, 256])
def test_matches_numpy_reference(reference, dim):
    tokenizer, table = reference
    got = WordLlamaEncoder(output_dim=dim)(tf.constant(TEXTS)).numpy()
    assert got.shape == (len(TEXTS), dim) and got.dtype == np.float32
    for row, encoding in zip(got, tokenizer.encode_batch(TEXTS, add_special_tokens=False), strict=True):
        mean = table[encoding.ids, :dim].mean(0) if encoding.ids else np.zeros(dim)
        norm = np.linalg.norm(mean)
        np.testing.assert_allclose(row, mean / norm if norm else mean, atol=1e-5)


def test_empty_strings_give_zero_and_similar_texts_are_close(encoder):
    out = encoder(tf.constant(["", "   ", "running shoes", "shoes for running", "tax law reform"])).numpy()
    np.testing.assert_array_equal(out[:2], 0.0)
    assert out[2] @ out[3] > out[2] @ out[4]


def test_bad_output_dim_and_missing_wheel(monkeypatch):
    with pytest.raises(
        ValueError, match=r"The `output_dim` parameter must be one of \(64, 128, 256\). Got 100"
    ):
        WordLlamaEncoder(output_dim=100)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"`wordllama` package .* not installed. .*`pip install wordllama`"):
        get_text_encoder("@wordllama-l2")


def test_preset_and_config_round_trip(encoder):
    preset = get_text_encoder("@wordllama-l2")
    assert isinstance(preset, WordLlamaEncoder) and preset.output_dim == 256 and not preset.trainable
    config = WordLlamaEncoder(output_dim=128, name="wl").get_config()
    restored = WordLlamaEncoder.from_config(config)
    assert restored.get_config() == config and restored.output_dim == 128


def test_in_tf_data_map(encoder):
    batches = list(tf.data.Dataset.from_tensor_slices(TEXTS).batch(3).map(encoder))
    np.testing.assert_allclose(np.concatenate(batches), encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)


@pytest.mark.slow
def test_saved_model_serves_in_fresh_process_without_the_wheel(tmp_path, encoder, fresh_python):
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, encoder(inputs))
    model.export(str(tmp_path / "sm"), verbose=False)
    size = sum(p.stat().st_size for p in (tmp_path / "sm").rglob("*") if p.is_file())
    assert size < 40 * 2**20
    # A `wordllama` package that cannot be imported: the SavedModel must not need it.
    (tmp_path / "fake" / "wordllama").mkdir(parents=True)
    (tmp_path / "fake" / "wordllama" / "__init__.py").write_text("raise ImportError('no wheel at serving')")
    got = fresh_python(
        f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({str(tmp_path / "sm")!r})
        print(json.dumps(model.serve(tf.constant({TEXTS!r})).numpy().tolist()))
        """,
        env={"PYTHONPATH": str(tmp_path / "fake")},
    )
    np.testing.assert_allclose(np.array(got), encoder(tf.constant(TEXTS)).numpy(), atol=1e-6)


def test_weights_stay_frozen_in_training():
    encoder = WordLlamaEncoder(output_dim=64)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(1)(encoder(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    before = keras.ops.convert_to_numpy(encoder.token_embeddings).copy()
    assert encoder.trainable_weights == [] and len(model.trainable_weights) == 2
    model.fit(tf.constant(TEXTS * 2), np.arange(16, dtype="float32"), epochs=2, batch_size=4, verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.token_embeddings), before)
