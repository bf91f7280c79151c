import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features import IdEncoder, default_embedding_dim


def test_same_id_same_embedding_and_bucket_matches_hashing():
    encoder = IdEncoder(num_buckets=50, embedding_dim=4)
    out = encoder(tf.constant(["a", "b", "a"])).numpy()  # builds the layer
    np.testing.assert_array_equal(out[0], out[2])
    bucket = keras.layers.Hashing(num_bins=50)(tf.constant(["b"])).numpy()[0]
    np.testing.assert_allclose(out[1], encoder.embedding.embeddings.numpy()[bucket])


def test_accepts_n_by_1_ids():
    encoder = IdEncoder(num_buckets=10, embedding_dim=3)
    np.testing.assert_allclose(encoder(tf.constant([["x"]])).numpy(), encoder(tf.constant(["x"])).numpy())


def test_default_embedding_dim_rule():
    assert default_embedding_dim(1) == 8
    assert default_embedding_dim(10_000) == 60
    assert default_embedding_dim(10**9) == 64
    assert IdEncoder(num_buckets=10_000).output_dim == 60


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_rejects_bad_num_buckets(bad):
    with pytest.raises(ValueError, match=r"`num_buckets` parameter must be an int >= 1. Got"):
        IdEncoder(num_buckets=bad)


def test_config_round_trip():
    encoder = IdEncoder(num_buckets=7, embedding_dim=5, name="user")
    clone = IdEncoder.from_config(encoder.get_config())
    assert (clone.num_buckets, clone.embedding_dim, clone.name) == (7, 5, "user")


def test_runs_inside_tf_data_map():
    encoder = IdEncoder(num_buckets=10, embedding_dim=2)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(["a", "b", "c"])).batch(2).map(encoder)
    assert [b.shape[0] for b in ds] == [2, 1]


def test_vocabulary_rows_and_one_unknown_row():
    encoder = IdEncoder(num_buckets=50, embedding_dim=3, vocabulary=["u2", "u1"])
    out = encoder(tf.constant(["u1", "u2", "never", "seen", "u1"])).numpy()
    table = encoder.embedding.embeddings.numpy()
    assert table.shape == (3, 3)  # the unknown row + 2 ids
    np.testing.assert_array_equal(out, table[[2, 1, 0, 0, 2]])
    assert encoder.vocabulary == ["u2", "u1"] and type(encoder.vocabulary) is list


def test_empty_vocabulary_maps_every_id_to_the_unknown_row():
    encoder = IdEncoder(num_buckets=5, embedding_dim=2, vocabulary=[])
    out = encoder(tf.constant([["a"], ["b"]])).numpy()
    np.testing.assert_array_equal(out, encoder.embedding.embeddings.numpy()[[0, 0]])


def test_unknown_row_is_trained_by_rare_ids():
    encoder = IdEncoder(num_buckets=10, embedding_dim=2, vocabulary=["a"])
    encoder(tf.constant(["a"]))
    before = encoder.embedding.embeddings.numpy().copy()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(tf.constant(["rare_1", "rare_2"])))
    grads = tape.gradient(loss, encoder.trainable_variables)
    keras.optimizers.SGD(0.5).apply(grads, encoder.trainable_variables)
    after = encoder.embedding.embeddings.numpy()
    assert not np.allclose(after[0], before[0]) and np.allclose(after[1], before[1])


@pytest.mark.parametrize(
    "vocabulary, match",
    [("abc", "list of strings"), ([1, 2], "list of strings"), (["a", "a"], "must not repeat")],
)
def test_rejects_bad_vocabulary(vocabulary, match):
    with pytest.raises(ValueError, match=match):
        IdEncoder(num_buckets=10, vocabulary=vocabulary)


def test_vocabulary_config_round_trip_and_keras_save(tmp_path):
    encoder = IdEncoder(num_buckets=7, embedding_dim=2, vocabulary=["x", "y"], name="user")
    clone = IdEncoder.from_config(encoder.get_config())
    assert clone.vocabulary == ["x", "y"] and clone.get_config()["vocabulary"] == ["x", "y"]
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, encoder(inputs))
    ids = tf.constant(["y", "new", "x"])
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded(ids).numpy(), model(ids).numpy())


def test_vocabulary_in_exported_saved_model(tmp_path):
    from tfrs_twotower.export import export_encoder
    from tfrs_twotower.towers import build_towers

    schema = {
        "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
        "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    }
    query_tower, _ = build_towers(schema, output_dim=4, id_vocabularies={"query": {"user": ["u1", "u2"]}})
    ids = tf.constant(["u1", "unseen_a", "unseen_b", "u2"])
    expected = query_tower({"user": ids}).numpy()
    served = tf.saved_model.load(export_encoder(query_tower, schema, "query", str(tmp_path / "q")))
    got = served.signatures["serving_default"](user=ids)["encoding"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_array_equal(got[1], got[2])
    config = query_tower.feature_encoder.get_config()
    assert config["id_vocabularies"] == {"user": ["u1", "u2"]}


def test_vocabulary_inside_tf_data_map():
    encoder = IdEncoder(num_buckets=10, embedding_dim=2, vocabulary=["a"])
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(["a", "b", "c"])).batch(2).map(encoder)
    assert [b.shape[0] for b in ds] == [2, 1]
