"""`--candidate_bias` (a learned score per candidate id, `features/bias.py`): what the towers compute,
what the exports serve, and the TFRS-parity switch that turns it off."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.cli import build_parser, config_from_args
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import instances_to_tensors
from tfrs_twotower.towers import build_towers
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.trainer import build_model, train

SCHEMA = {
    "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}},
}
VOCABULARIES = {"query": {"user": ["a", "b"]}, "candidate": {"item": ["x", "y", "z"]}}
REQUIRED = {"training_data_path": "t.jsonl", "input_schema_path": "s.json", "job_dir": "out"}
FLAGS = ["train", "--training_data_path", "t.jsonl", "--input_schema_path", "s.json", "--job-dir", "out"]
PARITY = ["--sampling_bias_correction", "none", "--l2_normalize", "false", "--temperature", "none"]


def test_scores_are_cosine_plus_the_candidates_bias():
    query_tower, candidate_tower = build_towers(
        SCHEMA, output_dim=4, l2_normalize=True, id_vocabularies=VOCABULARIES, candidate_bias="item"
    )
    items = tf.constant(["x", "y", "z", "unseen"])
    candidate_tower({"item": items})
    table = candidate_tower.bias.ids.embedding.embeddings
    assert np.all(table.numpy() == 0)  # starts at zero: the untrained model scores by cosine alone
    table.assign([[0.5], [1.0], [-2.0], [3.0]])  # row 0 is the unknown id's
    queries = query_tower({"user": tf.constant(["a", "b"])}).numpy()
    candidates = candidate_tower({"item": items}).numpy()
    assert queries.shape == (2, 5) and candidates.shape == (4, 5)
    np.testing.assert_array_equal(queries[:, -1], [1.0, 1.0])
    np.testing.assert_allclose(candidates[:, -1], [1.0, -2.0, 3.0, 0.5])
    cosines = queries[:, :4] @ candidates[:, :4].T
    np.testing.assert_allclose(np.linalg.norm(candidates[:, :4], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(queries @ candidates.T, cosines + [1.0, -2.0, 3.0, 0.5], rtol=1e-5)


def test_auto_is_on_with_logq_and_off_with_the_tfrs_parity_switch():
    counts = {"x": 3, "y": 1}
    default = build_model(TrainingConfig(**REQUIRED), load_schema(SCHEMA), candidate_counts=counts)
    assert default.candidate_tower.bias is not None and default.query_tower.bias is not None
    parity = build_model(config_from_args(build_parser().parse_args(FLAGS + PARITY)), load_schema(SCHEMA))
    assert parity.candidate_tower.bias is None and parity.query_tower.bias is None
    assert parity.candidate_tower({"item": tf.constant(["x"])}).shape == (1, 64)
    off = build_model(
        TrainingConfig(**REQUIRED, candidate_bias="false"), load_schema(SCHEMA), candidate_counts=counts
    )
    assert off.candidate_tower.bias is None
    on = build_model(TrainingConfig(**REQUIRED, candidate_bias="true"), load_schema(SCHEMA))  # no logQ
    assert on.candidate_tower({"item": tf.constant(["x"])}).shape == (1, 65)


def test_bias_needs_a_candidate_id_feature():
    schema = {
        "query": SCHEMA["query"],
        "candidate": {"genre": {"feature_type": "Categorical", "config": {"vocab": ["a", "b"]}}},
    }
    assert build_model(TrainingConfig(**REQUIRED), load_schema(schema)).candidate_tower.bias is None
    with pytest.raises(ValueError, match="--candidate_bias false"):
        build_model(TrainingConfig(**REQUIRED, candidate_bias="true"), load_schema(schema))
    with pytest.raises(ValueError, match="candidate_bias"):
        TrainingConfig(**REQUIRED, candidate_bias="yes").validate()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    sample = generate_sample(
        str(tmp_path_factory.mktemp("sample")), num_pairs=600, num_users=40, num_items=30, seed=3
    )
    with open(sample.train_jsonl) as f:
        docs = [json.loads(next(f))["query"] for _ in range(3)]
    docs[2]["user_id"] = "never_seen"
    run = train(
        TrainingConfig(
            training_data_path=sample.train_jsonl,
            input_schema_path=sample.schema,
            job_dir=str(tmp_path_factory.mktemp("job")),
            num_epochs=2,
            train_batch_size=64,
            candidate_bias="true",
            eval_top_k="1,10",
            verbose=0,
        )
    )
    return run, docs


def test_exports_serve_the_models_scores_with_the_bias(job):
    job, docs = job
    bias = job.model.candidate_tower.bias.ids.embedding.embeddings.numpy()
    assert np.abs(bias).max() > 1e-3  # it trained
    schema = load_schema(job.paths["schema"])
    features = instances_to_tensors(schema, "query", docs)
    queries = job.model.query_tower(features, training=False).numpy()
    served = tf.saved_model.load(job.paths["query_model"]).signatures["serving_default"]
    np.testing.assert_allclose(served(**features)["encoding"].numpy(), queries, rtol=1e-5, atol=1e-6)
    assert queries.shape == (3, 65) and np.all(queries[:, -1] == 1.0)
    scores = queries @ job.candidate_embeddings.T
    index = tf.saved_model.load(job.paths["index_brute_force"]).signatures["serving_default"]
    out = index(**features)
    top = np.argsort(-scores, axis=1, kind="stable")[:, : out["ids"].shape[1]]
    np.testing.assert_allclose(out["scores"].numpy(), np.take_along_axis(scores, top, 1), rtol=1e-4)


def test_scann_index_serves_the_bias_too(job):
    job, docs = job
    if "index_scann" not in job.paths:
        pytest.skip("this job exported no ScaNN index (scann not installed)")
    import scann  # noqa: F401  (registers the ScaNN ops the SavedModel holds)

    schema = load_schema(job.paths["schema"])
    features = instances_to_tensors(schema, "query", docs)
    scores = job.model.query_tower(features, training=False).numpy() @ job.candidate_embeddings.T
    out = tf.saved_model.load(job.paths["index_scann"]).signatures["serving_default"](**features)
    best = np.array(job.candidate_ids)[np.argmax(scores, axis=1)]
    assert [i.decode() for i in out["ids"].numpy()[:, 0]] == [str(b) for b in best]
    np.testing.assert_allclose(out["scores"].numpy()[:, 0], scores.max(axis=1), rtol=1e-3, atol=1e-3)
