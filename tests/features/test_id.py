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
