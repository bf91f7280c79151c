"""Seen-item exclusion in the per-epoch metrics and Id vocabularies (unseen ids), through `train`."""

import collections
import json

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.data import eval_mask
from tfrs_twotower.metrics import evaluate_retrieval
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.schema import load_schema
from tfrs_twotower.serving import instances_to_tensors
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.trainer import train


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(
        str(tmp_path_factory.mktemp("sample")), num_pairs=900, num_users=70, num_items=50, seed=5
    )


@pytest.fixture(scope="module")
def records(sample):
    with open(sample.train_jsonl) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def run(sample, tmp_path_factory):
    """One epoch with a candidate file (so the evaluation corpus is not the scan's) and id_min_count 2."""
    return train(
        TrainingConfig(
            training_data_path=sample.train_jsonl,
            input_schema_path=sample.schema,
            candidate_data_path=sample.candidates_jsonl,
            job_dir=str(tmp_path_factory.mktemp("job")),
            num_epochs=1,
            train_batch_size=128,
            eval_top_k="1,10",
            id_min_count=2,
            verbose=0,
        )
    )


def _encode(run, docs):
    schema = load_schema(run.paths["schema"])
    return run.model.query_tower(instances_to_tensors(schema, "query", docs), training=False).numpy()


def test_epoch_metrics_include_seen_excluded_ones_equal_to_a_numpy_reference(run, records):
    is_eval = eval_mask(run.config.training_data_path, np.arange(len(records)), run.config.eval_split)
    row = {key: i for i, key in enumerate(run.candidate_ids)}
    seen = collections.defaultdict(set)
    for record, held_out in zip(records, is_eval, strict=True):
        if not held_out:
            seen[record["query"]["user_id"]].add(row[record["candidate"]["item_id"]])
    evaluated = [r for r, held_out in zip(records, is_eval, strict=True) if held_out]
    queries = _encode(run, [r["query"] for r in evaluated])
    positives = np.array([row[r["candidate"]["item_id"]] for r in evaluated])
    scores = queries.astype(np.float64) @ run.candidate_embeddings.astype(np.float64).T
    ranks = []
    for i, record in enumerate(evaluated):
        keep = np.ones(len(row), bool)
        keep[list(seen[record["query"]["user_id"]])] = False
        keep[positives[i]] = False
        ranks.append(1 + int(np.sum(scores[i, keep] > scores[i, positives[i]])))
    ranks = np.array(ranks)
    metrics = run.metrics
    assert metrics["val_recall_at_10_seen_excluded"] == pytest.approx(np.mean(ranks <= 10), abs=1e-12)
    assert metrics["val_mrr_seen_excluded"] == pytest.approx(np.mean(1 / ranks), rel=1e-4)
    assert metrics["val_recall_at_10_seen_excluded"] > metrics["val_recall_at_10"]
    for name in ("ndcg_at_10", "auc", "precision_at_1", "factorized_top_k/top_10_categorical_accuracy"):
        assert f"val_{name}_seen_excluded" in metrics and f"val_{name}" in metrics
    assert all("val_recall_at_1_seen_excluded" in epoch for epoch in run.history)


def test_id_vocabularies_from_the_training_data(run, records):
    encoders = run.model.query_tower.feature_encoder.encoders
    is_eval = eval_mask(run.config.training_data_path, np.arange(len(records)), run.config.eval_split)
    counts = collections.Counter(
        r["query"]["user_id"] for r, e in zip(records, is_eval, strict=True) if not e
    )
    assert set(encoders["user_id"].vocabulary) == {u for u, n in counts.items() if n >= 2}
    assert encoders["user_id"].embedding.embeddings.shape[0] == len(encoders["user_id"].vocabulary) + 1


def test_unseen_ids_replaced_by_other_unseen_strings_give_exactly_the_same_recall(run, records):
    schema = load_schema(run.paths["schema"])
    row = {key: i for i, key in enumerate(run.candidate_ids)}
    docs = [r["query"] for r in records[:200]]
    positives = np.array([row[r["candidate"]["item_id"]] for r in records[:200]])
    results = []
    for prefix in ("never_seen_", "other_unknown_"):
        renamed = [dict(d, user_id=f"{prefix}{i}") for i, d in enumerate(docs)]
        results.append(
            evaluate_retrieval(_encode(run, renamed), positives, run.candidate_embeddings, ks=(10, 50))
        )
        served = tf.saved_model.load(run.paths["query_model"]).signatures["serving_default"]
        exported = served(**instances_to_tensors(schema, "query", renamed))["encoding"].numpy()
        np.testing.assert_allclose(exported, _encode(run, renamed), rtol=1e-5, atol=1e-6)
    assert results[0] == results[1]


@pytest.mark.slow
def test_hashing_with_id_min_count_zero(sample, tmp_path):
    run = train(
        TrainingConfig(
            training_data_path=sample.train_jsonl,
            input_schema_path=sample.schema,
            job_dir=str(tmp_path / "job"),
            num_epochs=1,
            train_batch_size=128,
            id_min_count=0,
            verbose=0,
        )
    )
    user = run.model.query_tower.feature_encoder.encoders["user_id"]
    assert user.vocabulary is None and user.embedding.embeddings.shape[0] == 1000  # num_buckets
    doc = json.loads(open(sample.train_jsonl).readline())["query"]
    a, b = _encode(run, [dict(doc, user_id="never_seen_0"), dict(doc, user_id="never_seen_1")])
    assert not np.allclose(a, b)  # two unseen ids land in two (trained) buckets
