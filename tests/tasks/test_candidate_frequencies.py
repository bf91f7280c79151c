"""`CandidateFrequencies` at batch sizes where popular candidates appear more than once per batch: the
logQ correction must still tell them apart (docs/benchmarks.md, "MovieLens protocols")."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.tasks import CandidateFrequencies, Retrieval


def _softmax_loss(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    return -np.sum(np.diag(logits) - np.log(np.exp(logits).sum(axis=1)))


def test_expected_appearances_above_one_are_scaled_not_clipped():
    ids, counts = ["a", "b", "c", "d"], [600, 300, 60, 40]
    frequencies = CandidateFrequencies(ids, counts, batch_size=20)  # expected 12, 6, 1.2, 0.8
    assert frequencies.scale == pytest.approx(1 / 12)
    got = frequencies(tf.constant(ids)).numpy()
    np.testing.assert_allclose(got, [1.0, 0.5, 0.1, 0.8 / 12], rtol=1e-6)
    # The ratios, which are all the correction sees, are those of the counts.
    np.testing.assert_allclose(got / got[-1], np.array(counts) / counts[-1], rtol=1e-5)
    assert CandidateFrequencies(ids, counts, batch_size=1).scale == 1.0  # expected <= 1: unchanged


def test_the_loss_equals_the_unclipped_logq_reference():
    rng = np.random.default_rng(0)
    ids, counts = ["a", "b", "c", "d"], [600, 300, 60, 40]
    batch = ["a", "b", "a", "c", "d", "b"]
    q = rng.normal(size=(6, 8)).astype(np.float32)
    c = rng.normal(size=(6, 8)).astype(np.float32)
    frequencies = CandidateFrequencies(ids, counts, batch_size=20)
    probability = frequencies(tf.constant(batch))
    loss = float(Retrieval()(q, c, candidate_sampling_probability=probability))
    expected = 20 * np.array([counts[ids.index(i)] for i in batch]) / sum(counts)  # up to 12: unclipped
    reference = _softmax_loss(q @ c.T - np.log(expected)[None, :])
    np.testing.assert_allclose(loss, reference, rtol=1e-4)
    clipped = _softmax_loss(q @ c.T - np.log(np.minimum(expected, 1.0))[None, :])
    assert abs(clipped - reference) > 0.1  # what the clip at 1 used to compute


def test_mixed_negatives_probability_is_scaled_alike():
    from tfrs_twotower.schema import load_schema
    from tfrs_twotower.training.build import build_model
    from tfrs_twotower.training.config import TrainingConfig

    schema = {
        "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
        "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    }
    config = TrainingConfig(
        training_data_path="t", input_schema_path="s", job_dir="o", train_batch_size=20, num_mixed_negatives=2
    )
    corpus = {"item": np.array(["a", "b", "c", "d"])}
    counts = {"a": 600, "b": 300, "c": 60, "d": 40}
    model = build_model(config, load_schema(schema), corpus_features=corpus, candidate_counts=counts)
    model({"query": {"user": tf.constant(["u"])}, "candidate": {"item": tf.constant(["a"])}})
    extra = model._mixed_negatives({"candidate_sampling_probability": None}, training=True)
    # Uniform draws: 2 of 4 candidates, 0.5 expected appearances, scaled by the in-batch factor 1/12.
    np.testing.assert_allclose(
        extra["extra_negative_sampling_probability"].numpy(), [0.5 / 12] * 2, rtol=1e-6
    )


def test_weight_multiplies_the_correction():
    rng = np.random.default_rng(1)
    ids, counts = ["a", "b", "c", "d"], [600, 300, 60, 40]
    batch = ["a", "b", "c", "d", "a"]
    q = rng.normal(size=(5, 8)).astype(np.float32)
    c = rng.normal(size=(5, 8)).astype(np.float32)
    expected = 20 * np.array([counts[ids.index(i)] for i in batch]) / sum(counts)
    for weight in (1.0, 1.5):
        frequencies = CandidateFrequencies(ids, counts, batch_size=20, weight=weight)
        assert frequencies.get_config()["weight"] == weight
        loss = float(Retrieval()(q, c, candidate_sampling_probability=frequencies(tf.constant(batch))))
        reference = _softmax_loss(q @ c.T - weight * np.log(expected)[None, :])
        np.testing.assert_allclose(loss, reference, rtol=1e-4)
    with pytest.raises(ValueError, match="weight"):
        CandidateFrequencies(ids, counts, weight=0)
