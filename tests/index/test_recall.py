import pytest
import tensorflow as tf

from tfrs_twotower.index import BruteForce, ScaNN, measure_recall


def test_exact_index_has_recall_one(corpus):
    x, str_ids, _, q = corpus
    assert measure_recall(BruteForce().index(x, str_ids), x, q, k=10, identifiers=str_ids) == 1.0


def test_recall_counts_overlap(corpus, numpy_top_k):
    x, _, _, q = corpus

    class HalfRight(BruteForce):
        """Returns the exact top-k with its second half replaced by the next-best candidates."""

        def _search(self, queries, k):
            scores, rows = super()._search(queries, 2 * k)
            return scores[:, :k], tf.concat([rows[:, : k // 2], rows[:, k : k + k - k // 2]], 1)

    assert measure_recall(HalfRight().index(x), x, q, k=10) == pytest.approx(0.5)


def test_sampled_queries(corpus):
    x, _, _, q = corpus
    assert measure_recall(ScaNN().index(x), BruteForce().index(x), q, k=5, num_queries=7) == 1.0


def test_errors(corpus):
    x, _, _, q = corpus
    with pytest.raises(TypeError, match="must be a TopK layer"):
        measure_recall(x, x, q)
    with pytest.raises(ValueError, match="must be an exact index"):
        measure_recall(BruteForce().index(x), ScaNN().index(x), q)
    with pytest.raises(ValueError, match=r"non-empty `\[num_queries, dim\]`"):
        measure_recall(BruteForce().index(x), x, q[0])
