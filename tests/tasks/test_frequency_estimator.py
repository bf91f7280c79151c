"""FrequencyEstimator: the paper's sequential loop in numpy, errors, config, save/reload."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.tasks import FrequencyEstimator


def reference(batches_of_buckets, num_buckets, alpha):
    """Algorithm 2 of Yi et al. 2019, one id at a time; returns 1/B (clipped to 1) after each step.
    A slot's first sighting sets B to the gap since the start (our documented warm start)."""
    a = np.zeros(num_buckets, np.int64)
    b = np.zeros(num_buckets, np.float64)
    outputs = []
    for t, buckets in enumerate(batches_of_buckets, start=1):
        for h in buckets:
            b[h] = (t - a[h]) if a[h] == 0 else (1 - alpha) * b[h] + alpha * (t - a[h])
            a[h] = t
        outputs.append(np.where(b[buckets] > 1, 1 / np.maximum(b[buckets], 1), 1.0))
    return outputs, a, b


def test_matches_sequential_reference_int_ids():
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, 41) ** 1.1
    batches = [rng.choice(40, size=16, p=popularity / popularity.sum()) for _ in range(300)]
    est = FrequencyEstimator(num_buckets=32, alpha=0.05)  # 40 ids into 32 slots: collisions included
    got = [est.update(batch).numpy() for batch in batches]
    expected, a, b = reference([batch % 32 for batch in batches], 32, 0.05)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4)
    np.testing.assert_array_equal(est.last_step.numpy(), a)
    np.testing.assert_allclose(est.gap.numpy(), b, rtol=1e-4)
    assert int(est.step.numpy()) == 300


def test_estimates_converge_to_batch_frequency():
    rng = np.random.default_rng(1)
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    est = FrequencyEstimator(num_buckets=1000, alpha=0.01)
    ids = tf.constant(rng.choice(4, size=3000, p=probs))

    @tf.function  # 3000 one-id steps in one graph loop (eagerly they took ~20 s)
    def run():
        for i in tf.range(3000):
            est.update(ids[i : i + 1])

    run()
    assert int(est.step.numpy()) == 3000
    np.testing.assert_allclose(est.estimate(np.arange(4)).numpy(), probs, rtol=0.35)


def test_string_ids_use_fast_hash_and_call_training_flag():
    est = FrequencyEstimator(num_buckets=64, alpha=0.5)
    ids = tf.constant(["a", "b", "a"])
    np.testing.assert_array_equal(est.buckets(ids).numpy(), tf.strings.to_hash_bucket_fast(ids, 64).numpy())
    est(ids, training=False)
    assert int(est.step.numpy()) == 0
    for _ in range(3):
        est(ids, training=True)
    expected, _, _ = reference([tf.strings.to_hash_bucket_fast(ids, 64).numpy()] * 3, 64, 0.5)
    np.testing.assert_allclose(est(ids).numpy(), expected[-1], rtol=1e-6)


def test_first_sighting_starts_at_the_gap():
    est = FrequencyEstimator(num_buckets=16, alpha=0.01)
    for _ in range(3):
        est.update([1])  # id 1 in steps 1-3
    probability = est.update([2]).numpy()  # id 2 first seen at step 4: one batch in 4
    np.testing.assert_allclose(probability, [0.25])


def test_update_inside_tf_function():
    est = FrequencyEstimator(num_buckets=16, alpha=0.1)
    step = tf.function(est.update)
    batches = [np.array([1, 2, 2, 5]), np.array([2, 3]), np.array([1, 1, 1])]
    got = [step(tf.constant(b)).numpy() for b in batches]
    expected, _, _ = reference(batches, 16, 0.1)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_buckets": 0}, r"The `num_buckets` parameter must be an int in \[1, inf\). Got 0 instead."),
        ({"num_buckets": 2.5}, r"The `num_buckets` parameter must be an int in \[1, inf\). Got 2.5 instead."),
        ({"alpha": 0.0}, r"The `alpha` parameter must be a float in \(0, 1\]. Got 0.0 instead."),
        ({"alpha": 1.5}, r"The `alpha` parameter must be a float in \(0, 1\]. Got 1.5 instead."),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrequencyEstimator(**kwargs)


def test_float_ids_refused():
    with pytest.raises(TypeError, match="`ids` must be strings or integers. Got dtype float32"):
        FrequencyEstimator(num_buckets=4).update(np.array([1.0], "float32"))


def test_config_round_trip():
    est = FrequencyEstimator(num_buckets=100, alpha=0.2, name="freq")
    clone = FrequencyEstimator.from_config(est.get_config())
    assert clone.get_config() == est.get_config()


def test_save_and_reload_keeps_state(tmp_path):
    est = FrequencyEstimator(num_buckets=50, alpha=0.3)
    for batch in (["x", "y"], ["x"], ["x", "z", "z"]):
        est.update(batch)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, est(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    ids = tf.constant(["x", "y", "z", "w"])
    np.testing.assert_allclose(restored(ids).numpy(), model(ids).numpy())
    layer = restored.layers[-1]
    assert int(layer.step.numpy()) == 3
    np.testing.assert_allclose(layer.gap.numpy(), est.gap.numpy())
