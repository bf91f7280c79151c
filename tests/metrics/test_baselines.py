import numpy as np
import pytest

from tfrs_twotower.metrics.baselines import recall_baselines


def test_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    keys = [f"c{i}" for i in range(50)]
    train = {k: int(n) for k, n in zip(keys, rng.zipf(1.5, size=50), strict=True)}
    eval_positives = rng.choice(keys, size=400, p=np.array(list(train.values())) / sum(train.values()))
    eval_counts = {k: int(np.sum(eval_positives == k)) for k in set(eval_positives)}
    got = recall_baselines(train, eval_counts, corpus_size=60, ks=[1, 5, 10, 100])
    order = sorted(keys, key=lambda k: (-train[k], k))
    for k in (1, 5, 10, 100):
        expected = np.mean([p in order[:k] for p in eval_positives])
        assert got["most_popular"][k] == pytest.approx(expected)
    assert got["random"] == {1: 1 / 60, 5: 5 / 60, 10: 10 / 60, 100: 1.0}


def test_no_evaluation_pairs_and_bad_corpus():
    assert recall_baselines({"a": 1}, {}, 3, [1])["most_popular"] == {1: 0.0}
    with pytest.raises(ValueError, match="corpus_size"):
        recall_baselines({"a": 1}, {"a": 1}, 0, [1])
