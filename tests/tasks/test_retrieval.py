"""Retrieval task: numpy reference for every option, errors, config round trip, traced use."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import InBatchAUC, InBatchTopKAccuracy
from tfrs_twotower.tasks import Retrieval

pytestmark = pytest.mark.usefixtures("compute_path")  # the fused kernel and the TF ops, same results


def reference_loss(
    q,
    c,
    temperature=None,
    prob=None,
    ids=None,
    remove=False,
    extra=None,
    extra_ids=None,
    extra_prob=None,
    negatives=None,
    negative_mask=None,
    hard=None,
    weights=None,
    reduction="sum",
):
    """Row by row: removed columns are dropped (not masked), hard mining keeps the top `hard` negatives."""
    scale = 1.0 / temperature if temperature else 1.0
    total = 0.0
    for i in range(q.shape[0]):
        logits = (c @ q[i]) * scale
        if prob is not None:
            logits = logits - np.log(np.clip(prob, 1e-6, 1.0))
        keep = np.ones(len(logits), bool)
        if remove:
            keep &= ids != ids[i]
        keep[i] = False
        negs = list(logits[keep])
        if extra is not None:
            e = (extra @ q[i]) * scale
            if extra_prob is not None:
                e = e - np.log(np.clip(extra_prob, 1e-6, 1.0))
            negs += list(e[extra_ids != ids[i]] if remove else e)
        if negatives is not None:
            n = (negatives[i] @ q[i]) * scale
            negs += list(n if negative_mask is None else n[negative_mask[i]])
        negs = np.sort(np.array(negs, np.float64))[::-1]
        if hard is not None:
            negs = negs[:hard]
        row = np.concatenate([[logits[i]], negs])
        m = row.max()
        loss = m + np.log(np.exp(row - m).sum()) - logits[i]
        total += loss * (1.0 if weights is None else weights[i])
    return total / q.shape[0] if reduction == "mean" else total


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((6, 4)).astype("float32")
    c = rng.standard_normal((6, 4)).astype("float32")
    ids = np.array(["a", "b", "a", "c", "b", "d"])
    prob = np.array([0.5, 0.2, 0.5, 1e-8, 0.2, 0.9], "float32")
    return q, c, ids, prob


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"temperature": 0.3},
        {"reduction": "mean"},
        {"prob": True},
        {"remove": True},
        {"hard": 2},
        {"hard": 50},
        {"weights": True},
        {"temperature": 0.5, "prob": True, "remove": True, "hard": 3, "weights": True},
    ],
)
def test_matches_numpy_reference(batch, options):
    q, c, ids, prob = batch
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0], "float32") if options.get("weights") else None
    task = Retrieval(
        temperature=options.get("temperature"),
        remove_accidental_hits=options.get("remove", False),
        num_hard_negatives=options.get("hard"),
        loss_reduction=options.get("reduction", "sum"),
    )
    loss = task(
        q,
        c,
        sample_weight=weights,
        candidate_sampling_probability=prob if options.get("prob") else None,
        candidate_ids=ids,
    )
    expected = reference_loss(
        q,
        c,
        options.get("temperature"),
        prob if options.get("prob") else None,
        ids,
        options.get("remove", False),
        hard=options.get("hard"),
        weights=weights,
        reduction=options.get("reduction", "sum"),
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_mixed_and_explicit_negatives(batch):
    q, c, ids, prob = batch
    rng = np.random.default_rng(1)
    extra = rng.standard_normal((5, 4)).astype("float32")
    extra_ids = np.array(["a", "x", "b", "y", "z"])
    extra_prob = np.array([0.1, 0.01, 0.1, 0.3, 0.05], "float32")
    negatives = rng.standard_normal((6, 3, 4)).astype("float32")
    mask = rng.random((6, 3)) > 0.3
    task = Retrieval(remove_accidental_hits=True, temperature=0.7, num_hard_negatives=6)
    loss = task(
        q,
        c,
        candidate_ids=ids,
        candidate_sampling_probability=prob,
        extra_negative_embeddings=extra,
        extra_negative_ids=extra_ids,
        extra_negative_sampling_probability=extra_prob,
        negative_embeddings=negatives,
        negative_mask=mask,
    )
    expected = reference_loss(
        q, c, 0.7, prob, ids, True, extra, extra_ids, extra_prob, negatives, mask, hard=6
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_extra_candidate_rows_are_negatives_for_all(batch):
    q, c, ids, _ = batch
    loss = Retrieval()(q[:4], c)
    expected = reference_loss(q[:4], c)  # columns 4 and 5 are nobody's positive
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_accidental_hit_removal_is_a_real_mask(batch):
    """Removing a duplicate of the positive must equal dropping it (keras-rs's 1e-40 would not)."""
    q, c, _, _ = batch
    c = c.copy()
    c[2] = c[0] * 10.0  # a strongly scoring duplicate of row 0's positive
    ids = np.array([0, 1, 0, 3, 4, 5])
    removed = float(Retrieval(remove_accidental_hits=True)(q, c, candidate_ids=ids))
    np.testing.assert_allclose(removed, reference_loss(q, c, ids=ids, remove=True), rtol=1e-5)
    assert removed < float(Retrieval()(q, c))


def test_batch_metrics_see_the_loss_logits(batch):
    q, c, ids, _ = batch
    top1 = InBatchTopKAccuracy(k=1)
    auc = InBatchAUC()
    Retrieval(batch_metrics=[top1, auc])(q, c)
    scores = q @ c.T
    ranks = (scores > np.diag(scores)[:, None]).sum(1)
    np.testing.assert_allclose(float(top1.result()), np.mean(ranks == 0), rtol=1e-6)
    np.testing.assert_allclose(float(auc.result()), np.mean(1 - ranks / 5), rtol=1e-6)
    Retrieval(batch_metrics=[top1])(q, c, compute_batch_metrics=False)
    np.testing.assert_allclose(float(top1.result()), np.mean(ranks == 0), rtol=1e-6)


def test_traced_with_unknown_batch_and_gradients(batch):
    q, c, ids, prob = batch
    task = Retrieval(remove_accidental_hits=True, num_hard_negatives=2, temperature=0.5)
    spec = [
        tf.TensorSpec([None, 4]),
        tf.TensorSpec([None, 4]),
        tf.TensorSpec([None], tf.string),
        tf.TensorSpec([None]),
    ]

    @tf.function(input_signature=spec)
    def step(q, c, ids, prob):
        with tf.GradientTape() as tape:
            tape.watch(q)
            loss = task(q, c, candidate_ids=ids, candidate_sampling_probability=prob)
        return loss, tape.gradient(loss, q)

    loss, grad = step(q, c, ids, prob)
    expected = reference_loss(q, c, 0.5, prob, ids, True, hard=2)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"temperature": 0},
            ValueError,
            r"The `temperature` parameter must be a float in \(0, inf\). Got 0 instead.",
        ),
        (
            {"temperature": -1.0},
            ValueError,
            r"`temperature` parameter must be a float in \(0, inf\). Got -1.0",
        ),
        ({"temperature": "hot"}, ValueError, r"`temperature` parameter must be a float"),
        (
            {"num_hard_negatives": 0},
            ValueError,
            r"The `num_hard_negatives` parameter must be an int in \[1, inf\) "
            r"or None. Got 0 instead.",
        ),
        (
            {"loss_reduction": "avg"},
            ValueError,
            r"The `loss_reduction` parameter must be a str among "
            r"\['mean', 'sum'\]. Got 'avg' instead.",
        ),
        ({"remove_accidental_hits": "yes"}, TypeError, r"`remove_accidental_hits` parameter must be a bool"),
        ({"batch_metrics": ["auc"]}, TypeError, r"`batch_metrics` must hold Keras 3 metrics"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Retrieval(**kwargs)


def test_call_errors(batch):
    q, c, ids, _ = batch
    with pytest.raises(ValueError, match="`candidate_ids` must be supplied"):
        Retrieval(remove_accidental_hits=True)(q, c)
    with pytest.raises(ValueError, match="`extra_negative_ids` must be supplied"):
        Retrieval(remove_accidental_hits=True)(q, c, candidate_ids=ids, extra_negative_embeddings=c)
    with pytest.raises(ValueError, match="`negative_mask` needs `negative_embeddings`"):
        Retrieval()(q, c, negative_mask=np.ones((6, 2), bool))
    with pytest.raises(ValueError, match=r"`negative_embeddings` must be \[batch, num_negatives, dim\]"):
        Retrieval()(q, c, negative_embeddings=c)


def test_config_round_trip():
    task = Retrieval(
        temperature=0.2,
        remove_accidental_hits=True,
        num_hard_negatives=4,
        loss_reduction="mean",
        batch_metrics=[InBatchAUC(), InBatchTopKAccuracy(k=3)],
        name="task",
    )
    config = task.get_config()
    clone = Retrieval.from_config(config)
    assert clone.get_config() == config
    assert [type(m) for m in clone.batch_metrics] == [InBatchAUC, InBatchTopKAccuracy]
    assert clone.batch_metrics[1].k == 3
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(task))
    assert restored.get_config() == config


def test_custom_loss_round_trip(batch):
    q, c, _, _ = batch
    task = Retrieval(loss=keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum"))
    clone = Retrieval.from_config(task.get_config())
    np.testing.assert_allclose(float(clone(q, c)), reference_loss(q, c), rtol=1e-5)
