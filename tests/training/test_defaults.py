"""Our objective flags' defaults (docs/benchmarks.md, "MovieLens protocols") and the TFRS-parity switch
README documents: `--sampling_bias_correction none --l2_normalize false --temperature none`."""

import numpy as np
import pytest

from tfrs_twotower.cli import build_parser, config_from_args
from tfrs_twotower.schema import load_schema
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.trainer import build_model

REQUIRED = {"training_data_path": "train.jsonl", "input_schema_path": "schema.json", "job_dir": "out"}
FLAGS = ["train", "--training_data_path", "t.jsonl", "--input_schema_path", "s.json", "--job-dir", "out"]
PARITY = ["--sampling_bias_correction", "none", "--l2_normalize", "false", "--temperature", "none"]
WITH_ID = {
    "query": {"user_id": {"feature_type": "Id", "config": {"num_buckets": 50}}},
    "candidate": {"item_id": {"feature_type": "Id", "config": {"num_buckets": 50}}},
}
WITHOUT_ID = {
    "query": {"user_id": {"feature_type": "Id", "config": {"num_buckets": 50}}},
    "candidate": {"genre": {"feature_type": "Categorical", "config": {"vocab": ["a", "b", "c"]}}},
}


def _batch():
    import tensorflow as tf

    return {
        "query": {"user_id": tf.constant(["u1", "u2", "u3"])},
        "candidate": {"item_id": tf.constant(["i1", "i2", "i1"])},
    }


def test_defaults_are_the_benchmarks_best():
    config = TrainingConfig(**REQUIRED).validate()
    assert (config.sampling_bias_correction, config.l2_normalize, config.temperature) == ("auto", True, 0.2)
    assert (config.candidate_bias, config.logq_weight) == ("auto", 1.0)
    # Vertex's flags keep Vertex's defaults.
    assert (config.train_batch_size, config.learning_rate, config.optimizer, config.num_epochs) == (
        100,
        0.1,
        "adagrad",
        10,
    )


def test_auto_correction_is_counts_with_a_candidate_id_else_none():
    config = TrainingConfig(**REQUIRED)
    assert config.bias_correction("item_id") == "counts"
    assert config.bias_correction(None) is None
    assert TrainingConfig(**REQUIRED, sampling_bias_correction="none").bias_correction("item_id") is None
    assert (
        TrainingConfig(**REQUIRED, sampling_bias_correction="estimate").bias_correction("item_id")
        == "estimate"
    )


def test_default_model_uses_counts_logq_and_cosine_logits():
    model = build_model(TrainingConfig(**REQUIRED), load_schema(WITH_ID), candidate_counts={"i1": 3, "i2": 1})
    assert model.sampling_probability == "counts" and model.task.temperature == 0.2
    query = model.query_tower({"user_id": np.array(["u1", "u2"])}).numpy()
    # Cosine of the first 64 columns; the last is the query's 1 times the candidate bias (auto: on).
    assert query.shape == (2, 65) and np.all(query[:, -1] == 1.0)
    np.testing.assert_allclose(np.linalg.norm(query[:, :-1], axis=1), 1.0, rtol=1e-5)


def test_default_without_candidate_id_trains_plain_softmax():
    model = build_model(TrainingConfig(**REQUIRED), load_schema(WITHOUT_ID))
    assert model.sampling_probability is None and model.frequency_estimator is None


def test_tfrs_parity_flags_give_plain_softmax():
    config = config_from_args(build_parser().parse_args(FLAGS + PARITY))
    assert (config.sampling_bias_correction, config.l2_normalize, config.temperature) == (None, False, None)
    model = build_model(config, load_schema(WITH_ID))
    assert model.sampling_probability is None and model.task.temperature is None
    query = model.query_tower({"user_id": np.array(["u1", "u2"])}).numpy()
    assert not np.allclose(np.linalg.norm(query, axis=1), 1.0)  # dot products, not cosines
    batch = _batch()
    queries = model.query_tower(batch["query"]).numpy()
    candidates = model.candidate_tower(batch["candidate"]).numpy()
    logits = queries @ candidates.T  # TFRS: raw dot products, in-batch softmax, summed over the batch
    logits -= logits.max(axis=1, keepdims=True)
    expected = -np.sum(np.diag(logits) - np.log(np.exp(logits).sum(axis=1)))
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


@pytest.mark.parametrize("flag, value", [("--sampling_bias_correction", "counts"), ("--temperature", "0.1")])
def test_cli_flags_override_the_defaults(flag, value):
    config = config_from_args(build_parser().parse_args(FLAGS + [flag, value]))
    assert str(getattr(config, flag[2:])) == value
