import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features import NumericEncoder
from tfrs_twotower.features.numeric import pool_numeric


def test_standardises_pooled_mean_and_flags_missing():
    encoder = NumericEncoder(mean=10.0, variance=4.0)
    out = encoder(tf.constant([[12.0, 16.0], [8.0, np.nan], [np.nan, np.nan]])).numpy()
    np.testing.assert_allclose(out, [[2.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])


def test_pool_numeric_matches_numpy_nanmean():
    values = np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan], [5.0, np.nan, 7.0]], np.float32)
    pooled = pool_numeric(tf.constant(values)).numpy()
    np.testing.assert_allclose(pooled[[0, 2]], [1.5, 6.0])
    assert np.isnan(pooled[1])


def test_adapt_on_array_and_dataset():
    values = np.array([[1.0], [2.0], [3.0], [np.nan]], np.float32)
    from_array = NumericEncoder()
    from_array.adapt(values)
    from_dataset = NumericEncoder()
    from_dataset.adapt(tf.data.Dataset.from_tensor_slices(values).batch(2))
    for encoder in (from_array, from_dataset):
        config = encoder.get_config()
        assert config["mean"] == pytest.approx(2.0) and config["variance"] == pytest.approx(2 / 3)


def test_adapt_refuses_other_inputs():
    with pytest.raises(
        TypeError, match="accepts a numpy array, a list, a tensor or a batched tf.data.Dataset"
    ):
        NumericEncoder().adapt({"x": 1})


def test_zero_variance_gives_zero():
    out = NumericEncoder(mean=3.0, variance=0.0)(tf.constant([[3.0]])).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.0]])


def test_rejects_bad_statistics():
    with pytest.raises(ValueError, match="`variance` parameter must be >= 0"):
        NumericEncoder(mean=0.0, variance=-1.0)
    with pytest.raises(ValueError, match="`mean` parameter must be a finite number"):
        NumericEncoder(mean=float("nan"), variance=1.0)


def test_config_round_trip_keeps_adapted_statistics():
    encoder = NumericEncoder()
    encoder.adapt(np.array([[10.0], [20.0]], np.float32))
    clone = NumericEncoder.from_config(encoder.get_config())
    x = tf.constant([[17.0]])
    np.testing.assert_allclose(clone(x).numpy(), encoder(x).numpy())
