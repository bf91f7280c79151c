"""LexicalTextEncoder and LexicalSpace: numpy references, the LSA prior, training, saving, errors."""

import collections
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.optimizers import RowSparseAdagrad
from tfrs_twotower.text import LexicalSpace, LexicalTextEncoder
from tfrs_twotower.text.lexical_space import word_buckets

DOCS = [
    "Wing lift in a slipstream; lift increase.",
    "Boundary layer flow over a flat plate.",
    "Shock wave and boundary layer interaction.",
    "Heat transfer to a flat plate at high speed.",
    "Lift and drag of a slender wing.",
]


def _reference(encoder, strings):
    """The encoder's output computed in numpy from its weights: sum of (1 + log tf) * idf * E[w], normed."""
    table = encoder.embedding.embeddings.numpy().astype(np.float64)
    idf = encoder.idf.numpy().astype(np.float64)
    out = []
    for row in word_buckets(strings, encoder.num_buckets).to_list():
        total = np.zeros(encoder.output_dim)
        for bucket, count in collections.Counter(row).items():
            total += (1 + math.log(count)) * idf[bucket] * table[bucket]
        norm = np.linalg.norm(total)
        out.append(encoder.output_norm * total / norm if norm > 0 else total)
    return np.array(out)


def test_output_matches_numpy_reference_and_empty_text_is_zero():
    encoder = LexicalTextEncoder(output_dim=8, num_buckets=512)
    encoder.idf.assign(np.linspace(0.5, 3.0, 512).astype(np.float32))
    strings = ["lift lift drag", "", "   ...  ", "Drag, LIFT!", "東京 物語 lift"]
    out = encoder(tf.constant(strings)).numpy()
    np.testing.assert_allclose(out, _reference(encoder, strings), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[1:3], 0.0)
    np.testing.assert_allclose(np.linalg.norm(out[[0, 3, 4]], axis=1), 0.25, rtol=1e-6)


def test_full_rank_space_reproduces_tfidf_cosine():
    """With as many dimensions as documents, the LSA dot product of two documents is their TF-IDF cosine."""
    space = LexicalSpace.fit(DOCS, num_buckets=2**12, dim=8)
    encoder = LexicalTextEncoder(output_dim=8, num_buckets=2**12, output_norm=1.0)
    encoder.set_space(space)
    encoded = encoder(tf.constant(DOCS)).numpy().astype(np.float64)

    words = [collections.Counter(w) for w in word_buckets(DOCS, 2**12).to_list()]
    df = collections.Counter(b for c in words for b in c)
    vocab = sorted(df)
    rows = np.array(
        [
            [(1 + math.log(c[b])) * (math.log(6 / (1 + df[b])) + 1) if b in c else 0.0 for b in vocab]
            for c in words
        ]
    )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert space.dim == 5 and space.num_documents == 5
    np.testing.assert_allclose(encoded @ encoded.T, rows @ rows.T, atol=1e-5)


def test_unseen_words_get_the_largest_idf_and_no_vector():
    space = LexicalSpace.fit(DOCS, num_buckets=2**12, dim=4)
    encoder = LexicalTextEncoder(output_dim=4, num_buckets=2**12)
    encoder.set_space(space)
    (unseen,) = word_buckets(["zeppelin"], 2**12).to_list()[0]
    assert encoder.idf.numpy()[unseen] == pytest.approx(math.log(6) + 1)
    np.testing.assert_array_equal(encoder(tf.constant(["zeppelin"])).numpy(), 0.0)
    assert space.idf.max() < encoder.idf.numpy()[unseen]


def test_embeddings_train_row_sparse_and_idf_stays():
    encoder = LexicalTextEncoder(output_dim=4, num_buckets=64)
    before = encoder.embedding.embeddings.numpy().copy()
    optimizer = RowSparseAdagrad(learning_rate=0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(tf.constant(["lift drag"])) * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
    assert [v.name for v in encoder.trainable_variables] == ["embeddings"]
    (gradient,) = tape.gradient(loss, encoder.trainable_variables)
    assert isinstance(gradient, tf.IndexedSlices)
    optimizer.apply_gradients([(gradient, encoder.trainable_variables[0])])
    changed = np.flatnonzero(np.any(encoder.embedding.embeddings.numpy() != before, axis=1))
    assert sorted(changed.tolist()) == sorted(set(word_buckets(["lift drag"], 64).to_list()[0]))
    np.testing.assert_array_equal(encoder.idf.numpy(), 1.0)


def test_config_round_trip_and_keras_file(tmp_path):
    encoder = LexicalTextEncoder(
        output_dim=4, num_buckets=128, output_norm=0.5, projection_gain=8.0, name="t"
    )
    encoder.set_space(LexicalSpace.fit(DOCS, num_buckets=128, dim=4))
    clone = LexicalTextEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, encoder(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    strings = tf.constant(["lift of a wing", "shock", ""])
    np.testing.assert_allclose(loaded(strings).numpy(), model(strings).numpy(), atol=1e-7)


def test_works_inside_tf_data():
    encoder = LexicalTextEncoder(output_dim=4, num_buckets=128)
    dataset = tf.data.Dataset.from_tensor_slices(["lift", "drag wave", ""]).batch(2).map(encoder)
    out = np.concatenate([batch.numpy() for batch in dataset])
    np.testing.assert_allclose(out, encoder(tf.constant(["lift", "drag wave", ""])).numpy(), atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"output_dim": 0}, ValueError, r"`output_dim` parameter must be an int in \[1, 65536\]. Got 0"),
        ({"num_buckets": "many"}, TypeError, r"`num_buckets` parameter must be an int"),
        ({"output_norm": 0.0}, ValueError, r"`output_norm` parameter must be a number > 0. Got 0.0"),
        ({"projection_gain": True}, ValueError, r"`projection_gain` parameter must be a number > 0"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        LexicalTextEncoder(**kwargs)


def test_space_must_fit_the_encoder_and_texts_need_words():
    space = LexicalSpace.fit(DOCS, num_buckets=128, dim=4)
    with pytest.raises(ValueError, match=r"128 buckets and 4 dimensions; this encoder has `num_buckets` 64"):
        LexicalTextEncoder(output_dim=4, num_buckets=64).set_space(space)
    with pytest.raises(ValueError, match="none of the texts has a word"):
        LexicalSpace.fit(["", "...", "!!"], num_buckets=128, dim=4)


def test_fit_samples_at_most_max_documents():
    space = LexicalSpace.fit(DOCS * 10, num_buckets=256, dim=3, max_documents=7)
    assert space.num_documents == 7 and space.vectors.shape == (len(space.buckets), 3)
    np.testing.assert_allclose(np.mean(np.sum(space.vectors**2, axis=1)), 1.0, rtol=1e-5)
