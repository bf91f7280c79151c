"""`CorpusEvaluation`: ranks each evaluation batch as it comes, in parts of `RANK_QUERIES` queries (memory
does not grow with the number of evaluation queries), with exactly the metrics of one
`evaluate_retrieval` over all the queries."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_twotower.metrics import evaluate_retrieval
from tfrs_twotower.training import corpus_evaluation
from tfrs_twotower.training.corpus_evaluation import CorpusEvaluation

SIZES = (5, 7, 3)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    candidates = rng.integers(-2, 3, (40, 4)).astype("float32")  # exact scores, with ties
    keys = [f"c{i}" for i in range(40)]
    n = sum(SIZES)
    positives = rng.integers(0, 40, n)
    queries = (rng.integers(-2, 3, (n, 4)) + candidates[positives]).astype("float32")
    users = [f"u{u}" for u in rng.integers(0, 6, n)]
    seen_of = {f"u{u}": rng.choice(40, 8, replace=False) for u in range(6)}
    batches, start = [], 0
    for size in SIZES:
        part = slice(start, start + size)
        batches.append(
            {
                "query": {"e": tf.constant(queries[part]), "user": tf.constant(users[part])},
                "candidate": {"key": tf.constant([keys[p] for p in positives[part]])},
            }
        )
        start += size
    return candidates, keys, positives, queries, users, seen_of, batches


class _Model:  # stands for a TwoTowerModel: the encoders are given, not traced from towers
    pass


def _callback(data, max_batches=None):
    candidates, keys, _, _, _, seen_of, batches = data
    callback = CorpusEvaluation(
        schema=None,
        eval_batches=batches,
        corpus_batches=[{"e": tf.constant(candidates[:25])}, {"e": tf.constant(candidates[25:])}],
        corpus_keys=keys,
        positive_keys=lambda batch: batch["candidate"]["key"].numpy(),
        ks=(1, 5, 10),
        max_batches=max_batches,
        seen_rows=lambda batch: [seen_of[u.decode()] for u in batch["query"]["user"].numpy()],
    )
    model = _Model()
    callback.set_model(model)
    callback._encoders = (model, lambda features: features["e"], lambda features: features["e"])
    return callback


@pytest.mark.parametrize(
    "max_batches, rank_queries, ranked",
    [(None, 1024, list(SIZES)), (2, 1024, [5, 7]), (None, 4, [4, 1, 4, 3, 3]), (2, 2, [2, 2, 1, 2, 2, 2, 1])],
)
def test_batches_ranked_in_parts_give_the_metrics_of_all_queries_at_once(
    data, monkeypatch, max_batches, rank_queries, ranked
):
    candidates, _, positives, queries, users, seen_of, _ = data
    ranked_sizes = []
    rank_positives = corpus_evaluation.rank_positives

    def recording(query_embeddings, *args, **kwargs):
        ranked_sizes.append(len(query_embeddings))
        return rank_positives(query_embeddings, *args, **kwargs)

    monkeypatch.setattr(corpus_evaluation, "rank_positives", recording)
    monkeypatch.setattr(corpus_evaluation, "RANK_QUERIES", rank_queries)
    results = _callback(data, max_batches).evaluate()
    assert ranked_sizes == ranked  # one batch, in parts of at most `RANK_QUERIES` queries, at a time
    evaluated = sum(ranked)
    expected = evaluate_retrieval(
        queries[:evaluated],
        positives[:evaluated],
        candidates,
        ks=(1, 5, 10),
        seen=[seen_of[u] for u in users[:evaluated]],
    )
    assert results == expected  # bit for bit
    assert results["mrr_seen_excluded"] != results["mrr"]  # the seen items change the ranks


def test_positive_missing_from_the_corpus_is_refused(data):
    callback = _callback(data)
    callback.positive_keys = lambda batch: np.array([b"not-in-corpus"] * len(batch["candidate"]["key"]))
    with pytest.raises(ValueError, match=r"not in the candidate corpus.*--candidate_data_path"):
        callback.evaluate()
