"""In-batch metrics: numpy reference, masked columns, weights, errors, config."""

import keras
import numpy as np
import pytest

from tfrs_twotower.metrics import MASK_VALUE, InBatchAUC, InBatchPrecisionAt1, InBatchTopKAccuracy


def reference(labels, logits, weights, kind, k=1):
    values, used = [], []
    for i in range(len(logits)):
        p = np.argmax(labels[i])
        neg = np.array([j for j in range(logits.shape[1]) if j != p and logits[i, j] > MASK_VALUE / 2])
        above = int(np.sum(logits[i, neg] > logits[i, p])) if len(neg) else 0
        if kind == "auc":
            if len(neg) == 0:
                continue
            values.append(1 - above / len(neg))
        else:
            values.append(float(above < k))
        used.append(weights[i])
    return np.sum(np.array(values) * used) / np.sum(used)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    logits = rng.integers(-3, 4, (9, 7)).astype("float32")  # small ints: plenty of ties
    labels = np.eye(9, 7, k=0, dtype="float32")[rng.permutation(9)]
    labels[7:] = np.eye(7, dtype="float32")[[2, 5]]
    logits[0, 3] = MASK_VALUE
    logits[1, :] = MASK_VALUE  # every column removed but the positive: no negatives
    logits[1, np.argmax(labels[1])] = 0.0
    weights = rng.uniform(0.1, 2.0, 9).astype("float32")
    return labels, logits, weights


@pytest.mark.parametrize(
    "metric, kind, k",
    [
        (InBatchAUC(), "auc", None),
        (InBatchPrecisionAt1(), "top", 1),
        (InBatchTopKAccuracy(k=3), "top", 3),
        (InBatchTopKAccuracy(), "top", 5),
    ],
)
def test_matches_numpy_reference(data, metric, kind, k):
    labels, logits, weights = data
    metric.reset_state()  # the parametrized instance is shared by both compute paths
    metric.update_state(labels[:5], logits[:5], sample_weight=weights[:5])
    metric.update_state(labels[5:], logits[5:], sample_weight=weights[5:])
    np.testing.assert_allclose(float(metric.result()), reference(labels, logits, weights, kind, k), rtol=1e-6)
    metric.reset_state()
    metric.update_state(labels, logits)
    np.testing.assert_allclose(
        float(metric.result()), reference(labels, logits, np.ones(9), kind, k), rtol=1e-6
    )


def test_names_and_defaults():
    assert InBatchAUC().name == "auc"
    assert InBatchPrecisionAt1().name == "precision_at_1"
    assert InBatchTopKAccuracy().name == "top_k_categorical_accuracy"
    assert InBatchTopKAccuracy().k == 5


def test_matches_keras_top_k_accuracy_without_ties():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((20, 10)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 20)]
    keras_metric = keras.metrics.TopKCategoricalAccuracy(k=3)
    keras_metric.update_state(labels, logits)
    ours = InBatchTopKAccuracy(k=3)
    ours.update_state(labels, logits)
    np.testing.assert_allclose(float(ours.result()), float(keras_metric.result()), rtol=1e-6)


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_bad_k(k):
    with pytest.raises(
        ValueError, match=rf"The `k` parameter must be an int in \[1, inf\). Got {k!r} instead."
    ):
        InBatchTopKAccuracy(k=k)


def test_bad_logits_shape():
    with pytest.raises(ValueError, match=r"`y_pred` must be a \[batch, num_candidates\] matrix"):
        InBatchAUC().update_state(np.ones(3), np.ones(3))


@pytest.mark.parametrize("metric", [InBatchAUC(name="a"), InBatchPrecisionAt1(), InBatchTopKAccuracy(k=7)])
def test_config_round_trip(metric):
    clone = type(metric).from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()
