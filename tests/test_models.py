import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import InBatchAUC
from tfrs_twotower.models import Model, TwoTowerModel
from tfrs_twotower.tasks import Retrieval
from tfrs_twotower.towers import build_towers

SCHEMA = {
    "query": {"user": {"feature_type": "Id", "config": {"num_buckets": 64, "embedding_dim": 8}}},
    "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 64, "embedding_dim": 8}}},
}


def pairs(n=512, seed=0):
    """Users u0..u31 each like the items of their own group (user % 8)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 32, n)
    items = (users % 8) * 4 + rng.integers(0, 4, n)
    return {
        "query": {"user": np.array([f"u{u}" for u in users])},
        "candidate": {"item": np.array([f"i{i}" for i in items])},
    }


def make_model(**task_kwargs):
    query_tower, candidate_tower = build_towers(SCHEMA, output_dim=8)
    task = Retrieval(batch_metrics=[InBatchAUC()], **task_kwargs)
    model = TwoTowerModel(query_tower, candidate_tower, task, candidate_id_feature="item")
    model.compile(optimizer=keras.optimizers.Adagrad(0.1), jit_compile=False)
    return model


def test_fit_learns_and_logs_tfrs_style_metrics():
    model = make_model()
    dataset = tf.data.Dataset.from_tensor_slices(pairs()).batch(64)
    history = model.fit(dataset, epochs=5, verbose=0, validation_data=dataset)
    logs = history.history
    assert {"loss", "regularization_loss", "total_loss", "auc", "val_loss", "val_auc"} <= set(logs)
    assert logs["loss"][-1] < logs["loss"][0] * 0.9
    assert logs["val_auc"][-1] > 0.75


def test_compute_loss_is_the_task_on_both_towers():
    model = make_model()
    batch = {side: {k: tf.constant(v[:16]) for k, v in feats.items()} for side, feats in pairs().items()}
    loss = model.compute_loss(batch)
    expected = Retrieval()(model.query_tower(batch["query"]), model.candidate_tower(batch["candidate"]))
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)
    embeddings = model(batch)
    assert embeddings["query"].shape == (16, 8) and embeddings["candidate"].shape == (16, 8)


def test_weight_reaches_the_task_as_sample_weight():
    model = make_model()
    batch = {side: {k: tf.constant(v[:8]) for k, v in feats.items()} for side, feats in pairs().items()}
    unweighted = model.compute_loss(batch).numpy()
    doubled = model.compute_loss({**batch, "weight": tf.fill([8], 2.0)}).numpy()
    np.testing.assert_allclose(doubled, 2 * unweighted, rtol=1e-5)


def test_base_model_requires_compute_loss():
    with pytest.raises(NotImplementedError, match="must implement `compute_loss"):
        Model().compute_loss({})


def test_estimated_sampling_probability_needs_an_id():
    query_tower, candidate_tower = build_towers(SCHEMA, output_dim=8)
    with pytest.raises(ValueError, match="needs `candidate_id_feature`"):
        TwoTowerModel(query_tower, candidate_tower, Retrieval(), sampling_probability="estimate")
