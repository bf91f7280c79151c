import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features import FeatureEncoder
from tfrs_twotower.towers import Tower, build_towers

SCHEMA = {
    "query": {
        "user": {"feature_type": "Id", "config": {"num_buckets": 20, "embedding_dim": 4}},
        "age": {"feature_type": "Numeric"},
        "country": {"feature_type": "Categorical", "config": {"vocab": ["de", "fr"], "embedding_dim": 3}},
        "bio": {"feature_type": "Text"},
        "taste": {"feature_type": "Vector", "config": {"length": 2}},
    },
    "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 20, "embedding_dim": 8}}},
}
QUERY = {
    "user": tf.constant(["u1", "u2"]),
    "age": tf.constant([[30.0], [np.nan]]),
    "country": tf.constant([["de", ""], ["xx", "fr"]]),
    "bio": tf.constant([["likes jazz"], [""]]),
    "taste": tf.constant([[0.1, 0.2], [0.3, 0.4]]),
}


def test_feature_encoder_concatenates_in_schema_order():
    encoder = FeatureEncoder(SCHEMA, "query", numeric_stats={"age": (30.0, 1.0)})
    out = encoder(QUERY).numpy()
    text_dim = encoder.encoders["bio"].output_dim
    assert out.shape == (2, 4 + 2 + 3 + text_dim + 2) == (2, encoder.output_dim)
    np.testing.assert_allclose(out[:, 4:6], [[0.0, 0.0], [0.0, 1.0]])  # age: standardised, missing flag
    np.testing.assert_allclose(out[:, -2:], QUERY["taste"].numpy())  # the vector, as is


def test_missing_feature_is_named():
    encoder = FeatureEncoder(SCHEMA, "query")
    features = dict(QUERY)
    del features["age"]
    with pytest.raises(KeyError, match=r"missing \['age'\]"):
        encoder(features)


def test_unknown_numeric_stats_rejected():
    with pytest.raises(ValueError, match="not Numeric features of the query side"):
        FeatureEncoder(SCHEMA, "query", numeric_stats={"user": (0, 1)})


def test_tower_shapes_normalisation_and_round_trip():
    query_tower, candidate_tower = build_towers(SCHEMA, hidden_units=[16, 8], output_dim=6, l2_normalize=True)
    out = query_tower(QUERY).numpy()
    assert out.shape == (2, 6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert [layer.units for layer in query_tower.hidden_layers] == [16, 8]
    clone = Tower.from_config(query_tower.get_config())
    clone(QUERY)
    clone.set_weights(query_tower.get_weights())
    np.testing.assert_allclose(clone(QUERY).numpy(), out, rtol=1e-6)


def test_no_projection_uses_the_feature_vector():
    schema = {
        "query": {"user": SCHEMA["query"]["user"] | {"config": {"num_buckets": 20, "embedding_dim": 8}}},
        "candidate": SCHEMA["candidate"],
    }
    _, candidate_tower = build_towers(schema, output_dim=8, projection=False)
    ids = {"item": tf.constant(["a"])}
    embedding = candidate_tower(ids).numpy()
    np.testing.assert_allclose(embedding, candidate_tower.feature_encoder(ids).numpy())


def test_no_projection_needs_matching_width():
    with pytest.raises(ValueError, match="`projection=False` needs no hidden layers"):
        build_towers(SCHEMA, output_dim=5, projection=False)


@pytest.mark.parametrize(
    "kwargs, message", [({"output_dim": 0}, "`output_dim`"), ({"hidden_units": [0]}, "hidden_units")]
)
def test_tower_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_towers(SCHEMA, **kwargs)


def test_numeric_stats_straight_from_a_scan():
    from tfrs_twotower.data import NumericStats

    encoder = FeatureEncoder(
        SCHEMA, "query", numeric_stats={"age": NumericStats(count=3, mean=30.0, variance=4.0)}
    )
    assert encoder.numeric_stats == {"age": (30.0, 4.0)}
    query_tower, _ = build_towers(SCHEMA, numeric_stats={"query": {"age": NumericStats(3, 30.0, 4.0)}})
    assert query_tower.feature_encoder.numeric_stats == {"age": (30.0, 4.0)}


def test_key_only_id_is_not_encoded():
    schema = {
        "query": SCHEMA["query"],
        "candidate": {
            "item": {"feature_type": "Id", "config": {"num_buckets": 1, "embedding_dim": 0}},
            "genre": {"feature_type": "Categorical", "config": {"vocab": ["a", "b"], "embedding_dim": 4}},
        },
    }
    _, candidate_tower = build_towers(schema, output_dim=4)
    encoder = candidate_tower.feature_encoder
    assert list(encoder.encoders) == ["genre"] and encoder.output_dim == 4
    same_genre = candidate_tower(
        {"item": tf.constant(["x", "y"]), "genre": tf.constant([["a"], ["a"]])}
    ).numpy()
    np.testing.assert_allclose(same_genre[0], same_genre[1])  # the id does not reach the tower
    assert candidate_tower({"genre": tf.constant([["b"]])}).shape == (1, 4)  # and is not required


def test_side_of_key_only_ids_is_refused():
    schema = {
        "query": SCHEMA["query"],
        "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 5, "embedding_dim": 0}}},
    }
    with pytest.raises(ValueError, match="candidate side has no feature to encode"):
        build_towers(schema)
