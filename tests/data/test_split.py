import numpy as np
import pytest

from tfrs_twotower.data import SplitAssigner, eval_mask
from tfrs_twotower.data.split import split_values


def test_fraction_close_to_eval_split():
    mask = eval_mask("part-00000.jsonl", np.arange(20000), 0.2)
    assert abs(mask.mean() - 0.2) < 0.01


def test_stable_values_depend_on_base_name_without_extension():
    # Frozen values: a change here changes every user's train/eval split.
    np.testing.assert_allclose(
        split_values("train.jsonl", np.arange(3)), split_values("gs://b/x/train.jsonl", np.arange(3))
    )
    np.testing.assert_allclose(
        split_values("train.jsonl", np.arange(3)), split_values("train.tfrecord", np.arange(3))
    )
    assert split_values("train.jsonl", np.arange(3)).round(6).tolist() == [0.98446, 0.858296, 0.94475]
    assert not np.allclose(split_values("a.jsonl", np.arange(5)), split_values("b.jsonl", np.arange(5)))


def test_assigner_matches_vectorised_mask_across_blocks():
    assigner = SplitAssigner("f.jsonl", 0.3)
    indices = [0, 5, 4095, 4096, 9000, 3, 100_000]
    expected = eval_mask("f.jsonl", np.array(indices), 0.3).tolist()
    assert [assigner.is_eval(i) for i in indices] == expected


def test_edges():
    assert not any(SplitAssigner("f", 0.0).is_eval(i) for i in range(100))
    assert all(SplitAssigner("f", 1.0).is_eval(i) for i in range(100))
    with pytest.raises(ValueError, match=r"The `eval_split` parameter must be a float in \[0, 1\]. Got 1.5"):
        SplitAssigner("f", 1.5)
