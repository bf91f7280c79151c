"""Every public layer and model round-trips through a `.keras` file: `model.save` -> `keras.saving.load_model`
gives the same outputs (an index keeps its candidates; a trained model keeps its optimizer state)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrs_twotower as tt
from tfrs_twotower.features import CategoricalEncoder, IdEncoder, NumericEncoder, VectorEncoder
from tfrs_twotower.metrics import InBatchAUC, InBatchPrecisionAt1, InBatchTopKAccuracy
from tfrs_twotower.tasks import CandidateFrequencies, CorpusSampler

SCHEMA = {
    "query": {
        "user": {"feature_type": "Id", "config": {"num_buckets": 20, "embedding_dim": 4}},
        "age": {"feature_type": "Numeric"},
        "country": {"feature_type": "Categorical", "config": {"vocab": ["de", "fr"], "embedding_dim": 3}},
        "taste": {"feature_type": "Vector", "config": {"length": 2}},
    },
    "candidate": {
        "item": {"feature_type": "Id", "config": {"num_buckets": 30, "embedding_dim": 8}},
        "genre": {"feature_type": "Categorical", "config": {"vocab": ["a", "b", "c"]}},
    },
}
QUERY = {
    "user": tf.constant(["u1", "u2", "u3"]),
    "age": tf.constant([[30.0], [np.nan], [41.0]]),
    "country": tf.constant([["de", ""], ["xx", "fr"], ["fr", ""]]),
    "taste": tf.constant([[0.1, 0.2], [0.3, 0.4], [-1.0, 0.5]]),
}
CANDIDATE = {"item": tf.constant(["i1", "i2", "i3"]), "genre": tf.constant([["a", "b"], ["c", ""], ["", ""]])}
TEXT = {"bio": {"feature_type": "Text"}}  # the default offline encoder, @lexical (trainable)
RNG = np.random.default_rng(0)


def _inputs(x, name=None):
    if isinstance(x, dict):
        return {key: _inputs(value, key) for key, value in x.items()}
    return keras.Input(shape=x.shape[1:], dtype=x.dtype.name, name=name)


def save_and_load(tmp_path, model):
    path = str(tmp_path / "model.keras")
    model.save(path)
    return keras.saving.load_model(path)


def assert_same(a, b):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def functional_round_trip(tmp_path, layer, x):
    """`layer` inside a functional model: the reloaded model's outputs on `x` equal the original's."""
    inputs = _inputs(x)
    model = keras.Model(inputs, layer(inputs))
    expected = model(x)
    loaded = save_and_load(tmp_path, model)
    assert_same(loaded(x), expected)
    return loaded


def _scann_tree():
    candidates = RNG.normal(size=(300, 4)).astype("float32")
    index = tt.ScaNN(k=3, num_leaves=10, num_leaves_to_search=3, brute_force_threshold=0)
    return index.index(candidates, np.array([f"item{i}" for i in range(300)]))


LAYERS = {
    "IdEncoder": lambda: (IdEncoder(20, 4), tf.constant(["a", "b", "zz"])),
    "IdEncoder-vocabulary": lambda: (IdEncoder(20, 4, vocabulary=["a", "b"]), tf.constant(["a", "zz", "b"])),
    "IdEncoder-empty-vocabulary": lambda: (IdEncoder(20, 4, vocabulary=[]), tf.constant(["a", "zz"])),
    "CategoricalEncoder": lambda: (CategoricalEncoder(["a", "b"], 3), tf.constant([["a", ""], ["c", "b"]])),
    "NumericEncoder": lambda: (NumericEncoder(3.0, 4.0), tf.constant([[1.0], [np.nan]])),
    "VectorEncoder": lambda: (VectorEncoder(2), tf.constant([[1.0, 2.0]])),
    "RowEmbedding": lambda: (tt.RowEmbedding(10, 3), tf.constant([1, 4, 4])),
    "FeatureEncoder": lambda: (tt.FeatureEncoder(SCHEMA, "query", {"age": (30.0, 4.0)}), QUERY),
    "FeatureEncoder-id-vocabulary": lambda: (
        tt.FeatureEncoder(SCHEMA, "query", {"age": (30.0, 4.0)}, id_vocabularies={"user": ["u1", "u3"]}),
        QUERY,
    ),
    "Tower": lambda: (
        tt.build_towers(SCHEMA, hidden_units=[8, 6], output_dim=4, l2_normalize=True)[0],
        QUERY,
    ),
    "Tower-with-text": lambda: (
        tt.build_towers({"query": TEXT, "candidate": SCHEMA["candidate"]}, output_dim=4)[0],
        {"bio": tf.constant([["a red apple", ""], ["", ""]])},
    ),
    "BruteForce-string-ids": lambda: (
        tt.BruteForce(k=2).index(RNG.normal(size=(5, 4)).astype("float32"), np.array(list("abcde"))),
        tf.constant(RNG.normal(size=(3, 4)).astype("float32")),
    ),
    "BruteForce-int-ids": lambda: (
        tt.BruteForce(k=2).index(RNG.normal(size=(5, 4)).astype("float32"), np.arange(5, dtype="int64") * 7),
        tf.constant(RNG.normal(size=(3, 4)).astype("float32")),
    ),
    "BruteForce-row-positions": lambda: (
        tt.BruteForce(k=3).index(RNG.normal(size=(5, 4)).astype("float32")),
        tf.constant(RNG.normal(size=(3, 4)).astype("float32")),
    ),
    "BruteForce-query-model": lambda: (
        tt.BruteForce(tt.build_towers(SCHEMA, output_dim=4)[0], k=2).index(
            RNG.normal(size=(6, 4)).astype("float32"), np.array(list("abcdef"))
        ),
        QUERY,
    ),
    "ScaNN-exact": lambda: (
        tt.ScaNN(k=2).index(RNG.normal(size=(50, 4)).astype("float32"), np.arange(50) + 100),
        tf.constant(RNG.normal(size=(3, 4)).astype("float32")),
    ),
    "ScaNN-tree": lambda: (_scann_tree(), tf.constant(RNG.normal(size=(7, 4)).astype("float32"))),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trips_in_a_functional_model(tmp_path, name):
    layer, x = LAYERS[name]()
    loaded = functional_round_trip(tmp_path, layer, x)
    restored = next(lay for lay in loaded.layers if type(lay) is type(layer))
    assert json.loads(json.dumps(restored.get_config())) == json.loads(json.dumps(layer.get_config()))
    if isinstance(layer, tt.index.TopK):
        assert restored.num_candidates == layer.num_candidates  # the candidates came along


def test_index_saved_before_indexing_reloads_empty(tmp_path):
    query_tower, candidate_tower = tt.build_towers(SCHEMA, output_dim=4)
    task = tt.Retrieval(metrics=[tt.FactorizedTopK(tt.BruteForce(), ks=(1,))])
    model = tt.TwoTowerModel(query_tower, candidate_tower, task)
    model({"query": QUERY, "candidate": CANDIDATE})
    loaded = save_and_load(tmp_path, model)
    index = loaded.task.factorized_metrics[0]._candidates
    assert isinstance(index, tt.BruteForce) and index.num_candidates is None
    index.index(np.eye(4, dtype="float32"))
    assert index(np.eye(4, dtype="float32")[:1], k=1)[1].numpy().tolist() == [[0]]


def _two_tower_model(**options):
    query_tower, candidate_tower = tt.build_towers(SCHEMA, hidden_units=[8], output_dim=4)
    candidates = RNG.normal(size=(5, 4)).astype("float32")
    task = tt.Retrieval(
        temperature=0.5,
        batch_metrics=[InBatchAUC(), InBatchTopKAccuracy(k=2), InBatchPrecisionAt1()],
        metrics=[tt.FactorizedTopK(tt.BruteForce().index(candidates, np.array(list("abcde"))), ks=(1, 2))],
        **options,
    )
    return tt.TwoTowerModel(query_tower, candidate_tower, task, candidate_id_feature="item")


def test_two_tower_model_round_trips_with_its_metrics(tmp_path):
    model = _two_tower_model()
    batch = {"query": QUERY, "candidate": CANDIDATE}
    expected = model(batch)
    model.compute_loss(batch)  # the metrics hold a batch (not saved: Keras resets them each epoch)
    loaded = save_and_load(tmp_path, model)
    assert isinstance(loaded, tt.TwoTowerModel)
    assert_same(loaded(batch), expected)
    np.testing.assert_allclose(float(loaded.compute_loss(batch)), float(model.compute_loss(batch)), rtol=1e-6)
    assert {m.name: m.get_config() for m in loaded.task.batch_metrics} == {
        m.name: m.get_config() for m in model.task.batch_metrics
    }
    assert loaded.task.factorized_metrics[0]._candidates.num_candidates == 5
    # Metric states are per epoch (not saved); the reloaded metrics compute the same values.
    for metric in (
        model.task.batch_metrics
        + loaded.task.batch_metrics
        + [
            model.task.factorized_metrics[0],
            loaded.task.factorized_metrics[0],
        ]
    ):
        metric.reset_state()
    model.compute_loss(batch)
    loaded.compute_loss(batch)
    for before, after in zip(
        model.task.batch_metrics + model.task.factorized_metrics,
        loaded.task.batch_metrics + loaded.task.factorized_metrics,
        strict=True,
    ):
        assert_same(after.result(), before.result())


def test_trained_model_resumes_with_its_optimizer_state(tmp_path):
    counts = CandidateFrequencies(["i1", "i2", "i3"], [3, 1, 1], batch_size=3)
    corpus = {"item": np.array([b"i1", b"i4"]), "genre": np.array([[b"a"], [b"b"]])}
    sampler = CorpusSampler(corpus, 2, seed=3)
    query_tower, candidate_tower = tt.build_towers(SCHEMA, hidden_units=[8], output_dim=4)
    model = tt.TwoTowerModel(
        query_tower,
        candidate_tower,
        tt.Retrieval(),
        candidate_id_feature="item",
        sampling_probability="counts",
        frequency_estimator=counts,
        negative_sampler=sampler,
    )
    model.compile(optimizer=tt.RowSparseAdagrad(0.1), jit_compile=False)
    data = tf.data.Dataset.from_tensors({"query": QUERY, "candidate": CANDIDATE}).repeat(3)
    model.fit(data, epochs=1, verbose=0)  # trained through compute_loss only: never called as model(x)
    loaded = save_and_load(tmp_path, model)
    assert loaded.frequency_estimator.get_config() == counts.get_config()
    assert loaded.negative_sampler.get_config() == sampler.get_config()
    assert loaded.optimizer.iterations.numpy() == 3
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert_same(loaded.query_tower(QUERY), model.query_tower(QUERY))


def test_tfrs_style_model_subclass_round_trips(tmp_path):
    @keras.saving.register_keras_serializable(package="test_keras_saving")
    class Ranker(tt.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

        def compute_loss(self, inputs, training=False):
            return tf.reduce_sum(self(inputs["x"]))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = Ranker()
    x = RNG.normal(size=(2, 5)).astype("float32")
    expected = model(x)
    loaded = save_and_load(tmp_path, model)
    assert_same(loaded(x), expected)
