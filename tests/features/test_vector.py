import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.features import VectorEncoder


def test_passes_through():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(VectorEncoder(3)(tf.constant(values)).numpy(), values)


def test_wrong_length_names_feature_and_fix():
    with pytest.raises(ValueError, match=r"Vector feature `emb` must have length 4; got shape \(2, 3\)"):
        VectorEncoder(4, name="emb")(tf.ones([2, 3]))


def test_rejects_bad_length_and_round_trips():
    with pytest.raises(ValueError, match="`length` parameter must be an int >= 1"):
        VectorEncoder(0)
    assert VectorEncoder.from_config(VectorEncoder(5).get_config()).length == 5
