import numpy as np
import tensorflow as tf

from tfrs_twotower.features import TextFeatureEncoder


def test_list_of_strings_is_mean_of_each_string_encoding():
    feature = TextFeatureEncoder()
    one = feature.encoder(tf.constant(["red apple", "green pear"])).numpy()
    pooled = feature(tf.constant([["red apple", "green pear"], ["red apple", ""]])).numpy()
    np.testing.assert_allclose(pooled[0], one.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled[1], one[0], rtol=1e-5, atol=1e-6)


def test_empty_list_and_empty_strings_give_zeros():
    feature = TextFeatureEncoder()
    out = feature(tf.constant([["", ""]])).numpy()
    np.testing.assert_array_equal(out, np.zeros_like(out))


def test_unicode_and_long_text():
    feature = TextFeatureEncoder()
    out = feature(tf.constant([["Les Misérables — 東京物語", "word " * 5000]])).numpy()
    assert np.all(np.isfinite(out)) and np.abs(out).sum() > 0


def test_preset_encoder_is_frozen_and_config_round_trips():
    feature = TextFeatureEncoder("@hashed-ngrams", name="title")
    feature(tf.constant([["x"]]))
    assert feature.trainable_weights == [] and not feature.identity_projection
    clone = TextFeatureEncoder.from_config(feature.get_config())
    np.testing.assert_allclose(clone(tf.constant([["a b"]])).numpy(), feature(tf.constant([["a b"]])).numpy())


def test_default_encoder_trains_and_config_round_trips():
    feature = TextFeatureEncoder(name="title")
    feature(tf.constant([["x"]]))
    assert [w.name for w in feature.trainable_weights] == ["embeddings"] and feature.identity_projection
    clone = TextFeatureEncoder.from_config(feature.get_config())
    assert clone.get_config() == feature.get_config()
    np.testing.assert_allclose(clone(tf.constant([["a b"]])).numpy(), feature(tf.constant([["a b"]])).numpy())


def test_each_distinct_string_is_encoded_once():
    layer = TextFeatureEncoder()
    inner, seen = layer.encoder, []

    class Spy:
        output_dim = inner.output_dim

        def __call__(self, strings):
            seen.append(sorted(s.decode() for s in strings.numpy()))
            return inner(strings)

    layer.encoder = Spy()
    values = tf.constant([["red shoes", ""], ["red shoes", "blue hat"], ["blue hat", ""]])
    out = layer(values).numpy()
    assert seen == [["", "blue hat", "red shoes"]]
    red, blue = inner(tf.constant(["red shoes", "blue hat"])).numpy()
    np.testing.assert_allclose(out, [red, (red + blue) / 2, blue], rtol=1e-6, atol=1e-7)
