import shutil
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.text import get_text_encoder, hub_handles
from tfrs_twotower.text.hub_encoder import HubTextEncoder

TEXTS = ["red shoes", "Blue running shirt", "", "unknown words here"]
HANDLE = "https://tfhub.dev/tfrs-twotower-tests/tiny-text/1"


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory, tiny_hub):
    path = tmp_path_factory.mktemp("hub") / "tiny"
    tiny_hub.build(path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty TF Hub cache and no network."""
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub_cache"))
    monkeypatch.setenv(hub_handles.OFFLINE_ENV, "1")
    return tmp_path / "tfhub_cache"


def test_path_matches_reference(hub_dir, tiny_hub):
    encoder = get_text_encoder(str(hub_dir))
    assert (
        isinstance(encoder, HubTextEncoder) and encoder.output_dim == tiny_hub.dim and not encoder.trainable
    )
    got = encoder(tf.constant(TEXTS)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, tiny_hub.reference(TEXTS), atol=1e-6)


def test_file_uri(hub_dir, tiny_hub):
    got = get_text_encoder(f"file://{hub_dir}")(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(got, tiny_hub.reference(TEXTS), atol=1e-6)


def test_handle_from_tfhub_cache_without_network(hub_dir, offline, tiny_hub):
    shutil.copytree(hub_dir, hub_handles.cached_path(HANDLE))
    assert hub_handles.cached_path(HANDLE).startswith(str(offline))
    got = get_text_encoder(HANDLE)(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(got, tiny_hub.reference(TEXTS), atol=1e-6)


@pytest.mark.parametrize("kind", ["dict", "signature"])
def test_dict_and_signature_models(tmp_path, kind, tiny_hub):
    tiny_hub.build(tmp_path / kind, kind)
    got = HubTextEncoder(str(tmp_path / kind))(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(got, tiny_hub.reference(TEXTS), atol=1e-6)


def test_preprocessor_and_pooled_output(tmp_path, tiny_hub):
    tiny_hub.build(tmp_path / "pre", "preprocessor")
    tiny_hub.build(tmp_path / "enc", "encoder")
    encoder = HubTextEncoder(str(tmp_path / "enc"), preprocessor=str(tmp_path / "pre"))
    np.testing.assert_allclose(encoder(tf.constant(TEXTS)).numpy(), tiny_hub.reference(TEXTS), atol=1e-6)


def test_bad_output_keys(tmp_path, tiny_hub):
    tiny_hub.build(tmp_path / "dict", "dict")
    with pytest.raises(
        ValueError, match=r"`output_key` 'pooled' is not an output of .*\['default', 'sequence'\]"
    ):
        HubTextEncoder(str(tmp_path / "dict"), output_key="pooled")
    with pytest.raises(ValueError, match=r"must return a `\[batch, dim\]` tensor .* shape \(1, 2, 6\)"):
        HubTextEncoder(str(tmp_path / "dict"), output_key="sequence")


def test_missing_path_and_bad_type(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no SavedModel exists at that path"):
        get_text_encoder(str(tmp_path / "nothing"))
    with pytest.raises(TypeError, match=r"`embedding_module` must be a string or None. Got 3 \(int\)"):
        get_text_encoder(3)
    with pytest.raises(TypeError, match=r"`output_key` must be a string. Got 1 \(int\)"):
        HubTextEncoder(str(tmp_path), output_key=1)


def test_nnlm_offline_fails_fast_with_clear_error(offline):
    start = time.monotonic()
    with pytest.raises(
        hub_handles.HubUnavailableError,
        match=r"`@nnlm` \(https://tfhub.dev/google/nnlm-en-dim128/2\)"
        r" is not in the TF Hub cache .* offline preset: @lexical, @hashed-ngrams",
    ):
        get_text_encoder("@nnlm")
    assert time.monotonic() - start < 5


def test_nnlm_without_network_fails_fast(monkeypatch, tmp_path):
    """The real reachability check (no override), where this machine has no network."""
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(hub_handles.OFFLINE_ENV, raising=False)
    start = time.monotonic()
    if hub_handles._unreachable_reason("https://tfhub.dev") is None:
        pytest.skip("tfhub.dev is reachable from here")
    with pytest.raises(OSError, match=r"cannot be downloaded: connecting to .* failed"):
        get_text_encoder("@nnlm")
    assert time.monotonic() - start < 10


def test_config_round_trip(hub_dir, tiny_hub):
    encoder = HubTextEncoder(str(hub_dir), name="hub")
    config = encoder.get_config()
    restored = HubTextEncoder.from_config(config)
    assert restored.get_config() == config and restored.output_dim == tiny_hub.dim
    np.testing.assert_array_equal(restored(tf.constant(TEXTS)).numpy(), encoder(tf.constant(TEXTS)).numpy())


def test_in_tf_data_map(hub_dir, tiny_hub):
    encoder = HubTextEncoder(str(hub_dir))
    batches = list(tf.data.Dataset.from_tensor_slices(TEXTS).batch(3).map(encoder))
    np.testing.assert_allclose(np.concatenate(batches), tiny_hub.reference(TEXTS), atol=1e-6)


def _model(encoder):
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(encoder(inputs)))


@pytest.mark.slow
def test_exported_model_reloads_in_fresh_process_without_the_hub_model(
    tmp_path, hub_dir, offline, fresh_python
):
    cached = hub_handles.cached_path(HANDLE)
    shutil.copytree(hub_dir, cached)
    model = _model(get_text_encoder(HANDLE))
    expected = model(tf.constant(TEXTS)).numpy()
    model.export(str(tmp_path / "keras_export"), verbose=False)

    class Tower(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, strings):
            return self.model(strings)

    tf.saved_model.save(Tower(model), str(tmp_path / "tf_export"))
    shutil.rmtree(cached)  # the exported SavedModels must carry the text model, its table and vocabulary
    got = fresh_python(f"""
        import json, tensorflow as tf
        texts = tf.constant({TEXTS!r})
        keras_export = tf.saved_model.load({str(tmp_path / "keras_export")!r})
        tf_export = tf.saved_model.load({str(tmp_path / "tf_export")!r})
        a, b = keras_export.serve(texts), tf_export(texts)
        print(json.dumps([a.numpy().tolist(), b.numpy().tolist()]))
    """)
    np.testing.assert_allclose(np.array(got[0]), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(got[1]), expected, atol=1e-6)


def test_keras_file_round_trip(tmp_path, hub_dir):
    model = _model(HubTextEncoder(str(hub_dir)))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored(tf.constant(TEXTS)).numpy(), model(tf.constant(TEXTS)).numpy())


def test_weights_stay_frozen_in_training(hub_dir):
    encoder = HubTextEncoder(str(hub_dir))
    model = _model(encoder)
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    before = [v.numpy().copy() for v in [encoder.encoder_module.embeddings]]
    head_before = model.get_layer("head").get_weights()[0].copy()
    assert before and len(model.trainable_weights) == 2
    model.fit(tf.constant(TEXTS * 4), np.ones((16, 2), "float32"), epochs=3, batch_size=5, verbose=0)
    for variable, value in zip([encoder.encoder_module.embeddings], before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert not np.allclose(model.get_layer("head").get_weights()[0], head_before)
