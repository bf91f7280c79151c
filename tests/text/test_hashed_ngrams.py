import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.text import HashedNgramEncoder

TEXTS = ["Hello world", "", "hello, World!", "Héllo Wörld  again", "!!", "a", "Zürich 2024 ÉTÉ"]


def reference_grams(text: str, char_ngram: int = 3) -> list[str]:
    words = [w for w in re.split(r"[^\w]+|_", text.lower()) if w]
    grams = [f"w:{w}" for w in words]
    grams += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    for word in words:
        padded = f"<{word}>"
        grams += [f"c:{padded[i : i + char_ngram]}" for i in range(len(padded) - char_ngram + 1)]
    return grams


def reference_encode(layer: HashedNgramEncoder, texts: list[str]) -> np.ndarray:
    table = keras.ops.convert_to_numpy(keras.ops.cast(layer.bucket_signs, "float64"))
    rows = []
    for text in texts:
        grams = reference_grams(text, layer.char_ngram)
        total = np.zeros(layer.output_dim)
        if grams:
            buckets = tf.strings.to_hash_bucket_fast(grams, layer.num_buckets).numpy()
            total = table[buckets].sum(axis=0)
        norm = np.linalg.norm(total)
        rows.append(total / norm if norm > 0 else total)
    return np.stack(rows)


def test_grams_match_reference():
    layer = HashedNgramEncoder()
    grams = layer.grams(tf.constant(TEXTS)).to_list()
    for text, got in zip(TEXTS, grams, strict=True):
        assert sorted(g.decode() for g in got) == sorted(reference_grams(text)), text


def test_matches_numpy_reference():
    layer = HashedNgramEncoder(output_dim=36, num_buckets=512)
    got = layer(tf.constant(TEXTS)).numpy()
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 36)
    np.testing.assert_allclose(got, reference_encode(layer, TEXTS), atol=1e-6)


def test_empty_and_punctuation_give_zero_vectors_and_others_unit_norm():
    out = HashedNgramEncoder()(tf.constant(["", "  ", "?!", "ok"])).numpy()
    np.testing.assert_array_equal(out[:3], 0.0)
    assert np.linalg.norm(out[3]) == pytest.approx(1.0, abs=1e-6)


def test_case_and_punctuation_insensitive_and_similar_texts_close():
    out = HashedNgramEncoder()(
        tf.constant(["Red running shoes", "red, RUNNING shoes!", "running shoe", "quantum chromodynamics"])
    ).numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    assert out[0] @ out[2] > 0.5 > abs(out[0] @ out[3])


def test_table_is_signs_of_the_seed():
    a, b, c = HashedNgramEncoder(seed=1), HashedNgramEncoder(seed=1), HashedNgramEncoder(seed=2)
    ta, tb, tc = (keras.ops.convert_to_numpy(keras.ops.cast(x.bucket_signs, "float32")) for x in (a, b, c))
    assert a.bucket_signs.shape == (2**14, 128) and a.bucket_signs.dtype == "bfloat16"
    assert set(np.unique(ta)) == {-1.0, 1.0} and abs(ta.mean()) < 0.01
    vectors = a.bucket_vectors(tf.constant([3, 5], tf.int64)).numpy()
    np.testing.assert_array_equal(vectors, ta[[3, 5]])
    np.testing.assert_array_equal(ta, tb)
    assert (ta != tc).mean() > 0.4


@pytest.mark.slow
def test_deterministic_across_processes(fresh_python):
    code = f"""
        import json, tensorflow as tf
        from tfrs_twotower.text import HashedNgramEncoder
        print(json.dumps(HashedNgramEncoder()(tf.constant({TEXTS!r})).numpy().tolist()))
    """
    first = np.array(fresh_python(code, env={"PYTHONHASHSEED": "1"}))
    second = np.array(fresh_python(code, env={"PYTHONHASHSEED": "2"}))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, HashedNgramEncoder()(tf.constant(TEXTS)).numpy(), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"output_dim": 0}, ValueError, r"The `output_dim` parameter must be an int in \[1, 65536\]. Got 0"),
        ({"num_buckets": 2.5}, TypeError, r"The `num_buckets` parameter must be an int. Got 2.5 \(float\)"),
        ({"char_ngram": -1}, ValueError, r"`char_ngram` parameter must be an int in \[0, 16\]"),
        ({"seed": True}, TypeError, r"`seed` parameter must be an int. Got True"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        HashedNgramEncoder(**kwargs)


def test_config_round_trip():
    layer = HashedNgramEncoder(output_dim=24, num_buckets=300, char_ngram=4, seed=7, name="enc")
    config = layer.get_config()
    restored = HashedNgramEncoder.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert not restored.trainable
    np.testing.assert_array_equal(restored(tf.constant(TEXTS)).numpy(), layer(tf.constant(TEXTS)).numpy())


def test_without_char_ngrams():
    layer = HashedNgramEncoder(char_ngram=0)
    assert all(not g.startswith(b"c:") for g in layer.grams(tf.constant(["one two"])).flat_values.numpy())


def test_in_tf_data_map():
    layer = HashedNgramEncoder()
    batches = list(tf.data.Dataset.from_tensor_slices(TEXTS).batch(3).map(layer))
    np.testing.assert_allclose(np.concatenate(batches), layer(tf.constant(TEXTS)).numpy(), atol=1e-7)


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, HashedNgramEncoder(output_dim=16, num_buckets=128)(inputs))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored(tf.constant(TEXTS)).numpy(), model(tf.constant(TEXTS)).numpy())


@pytest.mark.slow
def test_saved_model_reloads_in_fresh_process_with_plain_tensorflow(tmp_path, fresh_python):
    layer = HashedNgramEncoder()
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("serve", layer.call, input_signature=[tf.TensorSpec([None], tf.string)])
    archive.write_out(str(tmp_path / "sm"), verbose=False)
    size = sum(p.stat().st_size for p in (tmp_path / "sm").rglob("*") if p.is_file())
    assert size < 9 * 2**20  # the 4 MiB bfloat16 table, which ExportArchive stores twice, and the graph
    got = fresh_python(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({str(tmp_path / "sm")!r})
        print(json.dumps(model.serve(tf.constant({TEXTS!r})).numpy().tolist()))
    """)
    np.testing.assert_allclose(np.array(got), layer(tf.constant(TEXTS)).numpy(), atol=1e-7)


def test_weights_stay_frozen_in_training():
    encoder = HashedNgramEncoder(output_dim=16, num_buckets=256)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(1)(encoder(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    before = keras.ops.convert_to_numpy(keras.ops.cast(encoder.bucket_signs, "float32")).copy()
    dense_before = model.layers[-1].get_weights()[0].copy()
    assert encoder.trainable_weights == [] and len(model.trainable_weights) == 2
    model.fit(
        tf.constant(TEXTS * 4), np.arange(len(TEXTS) * 4, dtype="float32"), epochs=3, batch_size=7, verbose=0
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(keras.ops.cast(encoder.bucket_signs, "float32")), before
    )
    assert not np.allclose(model.layers[-1].get_weights()[0], dense_before)
