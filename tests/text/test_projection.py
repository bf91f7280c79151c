"""The towers' lexical-match prior: identity projections for the default text features, and adapting them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features.text import TextFeatureEncoder, adapt_text_features, candidate_documents
from tfrs_twotower.schema import load_schema
from tfrs_twotower.text.projection import IdentityBlocks
from tfrs_twotower.towers import Tower, build_towers

DOCS = [
    "wing lift in a slipstream",
    "boundary layer on a flat plate",
    "shock wave interaction",
    "slender wing drag",
]


def _schema(module=None, extra=None):
    text = {"feature_type": "Text", **({"config": {"embedding_module": module}} if module else {})}
    candidate = {"doc": {"feature_type": "Id", "config": {"num_buckets": 1, "embedding_dim": 0}}}
    candidate.update(title=text, abstract=text, **(extra or {}))
    return {"query": {"q": text}, "candidate": candidate}


def test_identity_blocks_kernel():
    kernel = IdentityBlocks([["identity", 2], ["glorot_uniform", 1], ["identity", 2]], gain=3.0, seed=1)(
        (5, 2)
    )
    kernel = np.asarray(kernel)
    np.testing.assert_array_equal(kernel[:2], 3 * np.eye(2))
    np.testing.assert_array_equal(kernel[3:], 3 * np.eye(2))
    assert np.all(kernel[2] != 0) and np.all(np.abs(kernel[2]) <= np.sqrt(6 / 7))
    config = IdentityBlocks.from_config(IdentityBlocks([["identity", 2]], gain=2.0).get_config()).get_config()
    assert config == {"blocks": [["identity", 2]], "gain": 2.0, "seed": None}
    with pytest.raises(ValueError, match=r"blocks \[\['identity', 2\]\] for a kernel of 3 rows"):
        IdentityBlocks([["identity", 2]])((3, 2))


def test_identity_blocks_in_a_graph_equal_the_eager_kernel():
    # Keras builds a layer's weights inside `model.fit`'s graph when nothing built them before.
    init = IdentityBlocks([["identity", 2], ["glorot_uniform", 1]], gain=3.0, seed=0)
    eager = init((3, 2)).numpy()
    graph = tf.function(lambda: init((3, 2)))().numpy()
    np.testing.assert_array_equal(graph, eager)
    np.testing.assert_array_equal(eager[:2], [[3.0, 0.0], [0.0, 3.0]])


def test_adapted_default_towers_start_at_the_lsa_cosine():
    """Both towers start with the same map: the embeddings' dot product is 16 x the text cosines' sum."""
    schema = load_schema(_schema())
    query_tower, candidate_tower = build_towers(schema, output_dim=8)
    assert (
        adapt_text_features(
            [query_tower, candidate_tower],
            candidate_documents(
                schema,
                [{"doc": str(i), "title": [d], "abstract": [d + " abstract"]} for i, d in enumerate(DOCS)],
            ),
        )
        == 3
    )
    docs = {"doc": tf.constant(["0", "1"]), "title": tf.constant([[DOCS[0]], [DOCS[1]]]),
            "abstract": tf.constant([["lift"], ["plate"]])}  # fmt: skip
    query = {"q": tf.constant([["wing lift"]])}
    scores = (query_tower(query).numpy() @ candidate_tower(docs).numpy().T)[0]
    encoder = candidate_tower.feature_encoder.encoders["title"].encoder
    q = encoder(tf.constant(["wing lift"])).numpy()[0]
    # output_dim 8 < 64: the projection keeps the 8 leading (largest) LSA dimensions.
    expected = [q[:8] @ (encoder(tf.constant([t])).numpy()[0] + encoder(tf.constant([a])).numpy()[0])[:8]
                for t, a in ((DOCS[0], "lift"), (DOCS[1], "plate"))]  # fmt: skip
    np.testing.assert_allclose(scores, 256 * np.array(expected), rtol=1e-4, atol=1e-5)
    assert scores[0] > scores[1]


def test_frozen_presets_and_hidden_layers_keep_glorot_projections():
    query_tower, _ = build_towers(_schema("@hashed-ngrams"), output_dim=8)
    assert isinstance(query_tower.output_layer.kernel_initializer, keras.initializers.GlorotUniform)
    query_tower, _ = build_towers(_schema(), hidden_units=[4], output_dim=8)
    assert isinstance(query_tower.output_layer.kernel_initializer, keras.initializers.GlorotUniform)
    _, candidate_tower = build_towers(
        _schema(
            extra={"tags": {"feature_type": "Categorical", "config": {"vocab": ["a"], "embedding_dim": 3}}}
        ),
        output_dim=8,
    )
    assert candidate_tower.output_layer.kernel_initializer.get_config()["blocks"] == [
        ["identity", 64], ["identity", 64], ["glorot_uniform", 3]
    ]  # fmt: skip


def test_default_tower_saves_and_reloads(tmp_path):
    schema = load_schema(_schema())
    query_tower, _ = build_towers(schema, output_dim=8)
    adapt_text_features(query_tower, DOCS)
    inputs = {"q": keras.Input(shape=(1,), dtype="string", name="q")}
    model = keras.Model(inputs, query_tower(inputs))
    model.save(tmp_path / "tower.keras")
    loaded = keras.saving.load_model(tmp_path / "tower.keras")
    batch = {"q": tf.constant([["wing lift"], ["shock"], [""]])}
    np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(), atol=1e-6)
    clone = Tower.from_config(query_tower.get_config())
    assert (
        clone.output_layer.kernel_initializer.get_config()
        == query_tower.output_layer.kernel_initializer.get_config()
    )


def test_adapt_without_default_encoders_or_words_does_nothing():
    assert adapt_text_features([TextFeatureEncoder("@hashed-ngrams")], DOCS) == 0
    assert adapt_text_features([TextFeatureEncoder()], ["", ""]) == 0
    schema = load_schema(_schema())
    assert candidate_documents(schema, [{"doc": "1", "title": ["A"], "abstract": []}, {"doc": "2"}]) == [
        "A",
        "",
    ]
