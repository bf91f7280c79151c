"""FactorizedTopK: numpy reference (id- and score-based), ScaNN-style NaN padding, errors, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import FactorizedTopK


@keras.saving.register_keras_serializable(package="tfrs_twotower_tests")
class StandInTopK(keras.layers.Layer):
    """Exact top-k over a small corpus: the `index.BruteForce` contract, for these tests."""

    def __init__(self, embeddings, ids=None, exact=True, **kwargs):
        super().__init__(**kwargs)
        self._embeddings = np.asarray(embeddings, "float32")
        self._ids = np.arange(len(self._embeddings)) if ids is None else np.asarray(ids)
        self._exact = exact

    def is_exact(self):
        return self._exact

    def call(self, queries, k):
        scores, rows = tf.math.top_k(tf.matmul(queries, self._embeddings, transpose_b=True), k)
        return scores, tf.gather(self._ids, rows)

    def get_config(self):
        return {
            **super().get_config(),
            "embeddings": self._embeddings.tolist(),
            "ids": self._ids.tolist(),
            "exact": self._exact,
        }


@pytest.fixture
def corpus():
    rng = np.random.default_rng(5)
    embeddings = rng.integers(-3, 4, (30, 6)).astype("float32")  # exact dot products
    queries = rng.integers(-3, 4, (10, 6)).astype("float32")
    positives = rng.integers(0, 30, 10)
    weights = rng.uniform(0.0, 2.0, 10).astype("float32")
    return embeddings, queries, positives, weights


def reference(embeddings, queries, positives, weights, ks):
    scores = queries @ embeddings.T
    above = (scores > scores[np.arange(len(queries)), positives][:, None]).sum(1)
    return {k: np.sum((above < k) * weights) / np.sum(weights) for k in ks}


def test_score_based_matches_reference(corpus):
    embeddings, queries, positives, weights = corpus
    metric = FactorizedTopK(StandInTopK(embeddings), ks=(1, 2, 5))
    metric.update_state(queries[:4], embeddings[positives[:4]], sample_weight=weights[:4])
    metric.update_state(queries[4:], embeddings[positives[4:]], sample_weight=weights[4:])
    expected = reference(embeddings, queries, positives, weights, (1, 2, 5))
    result = metric.result()
    assert list(result) == [f"factorized_top_k/top_{k}_categorical_accuracy" for k in (1, 2, 5)]
    for k in (1, 2, 5):
        np.testing.assert_allclose(
            float(result[f"factorized_top_k/top_{k}_categorical_accuracy"]), expected[k], rtol=1e-6
        )


def test_id_based_matches_rank_of_the_id(corpus):
    embeddings, queries, positives, _ = corpus
    ids = np.array([f"c{i}" for i in range(30)])
    metric = FactorizedTopK(StandInTopK(embeddings, ids), ks=(1, 3), name="m")
    metric.update_state(queries, embeddings[positives], true_candidate_ids=ids[positives])
    order = np.argsort(-(queries @ embeddings.T), axis=1, kind="stable")
    for k in (1, 3):
        expected = np.mean([positives[i] in order[i, :k] for i in range(10)])
        np.testing.assert_allclose(float(metric.result()[f"m/top_{k}_categorical_accuracy"]), expected)
    metric.reset_state()
    assert float(metric.result()["m/top_1_categorical_accuracy"]) == 0.0


def test_nan_padding_is_not_a_hit():
    class Padded(StandInTopK):
        def call(self, queries, k):
            return tf.constant([[1.0, np.nan]]), tf.constant([[4, 7]])

    metric = FactorizedTopK(Padded(np.eye(2)), ks=(1, 2))
    metric.update_state(np.ones((1, 2), "float32"), np.ones((1, 2), "float32"), true_candidate_ids=[7])
    assert float(metric.result()["factorized_top_k/top_2_categorical_accuracy"]) == 0.0


def test_inexact_index_needs_ids(corpus):
    embeddings, queries, positives, _ = corpus
    metric = FactorizedTopK(StandInTopK(embeddings, exact=False), ks=(1,))
    with pytest.raises(
        ValueError, match="does not return exact results. To evaluate with it, pass `true_candidate_ids`"
    ):
        metric.update_state(queries, embeddings[positives])


def test_id_dtype_mismatch(corpus):
    embeddings, queries, positives, _ = corpus
    metric = FactorizedTopK(StandInTopK(embeddings), ks=(1,))
    with pytest.raises(TypeError, match="`true_candidate_ids` have dtype string but the index returns"):
        metric.update_state(queries, embeddings[positives], true_candidate_ids=np.array(["a"] * 10))


@pytest.mark.parametrize("ks", [(), 5, (0, 1), (1.5,)])
def test_bad_ks(ks):
    with pytest.raises(
        ValueError, match=r"The `ks` parameter must be a non-empty sequence of ints in \[1, inf\)"
    ):
        FactorizedTopK(StandInTopK(np.eye(2)), ks=ks)


@pytest.mark.parametrize("candidates", [tf.data.Dataset.range(3), "index"])
def test_bad_candidates(candidates):
    with pytest.raises(TypeError, match="`candidates` must be a top-k layer"):
        FactorizedTopK(candidates)


def test_config_round_trip(corpus):
    embeddings, queries, positives, _ = corpus
    metric = FactorizedTopK(StandInTopK(embeddings), ks=(1, 4), name="eval")
    clone = FactorizedTopK.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    clone.update_state(queries, embeddings[positives])
    metric.update_state(queries, embeddings[positives])
    assert {k: float(v) for k, v in clone.result().items()} == {
        k: float(v) for k, v in metric.result().items()
    }
