"""A Keras callback that evaluates retrieval against the whole candidate corpus after each epoch.

It encodes the corpus once with the candidate tower, then each evaluation batch's queries with the query
tower, and ranks each query's positive among all candidates (`tfrs_twotower.metrics.rank_positives`,
the ranking of `evaluate_retrieval`) batch by batch, keeping only the ranks: memory does not grow with
the number of evaluation queries. The results join the epoch's logs with a `val_` prefix, so
TensorBoard (placed after it) writes them under `validation/`, and `History` keeps them.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import keras
import numpy as np

from tfrs_twotower.export import encode_batches, encoder_function
from tfrs_twotower.metrics import rank_positives, retrieval_metrics

RANK_QUERIES = 1024  # queries ranked at once: their excluded (seen) pairs are the evaluation's peak memory


class CorpusEvaluation(keras.callbacks.Callback):
    """Full-corpus Recall@K, NDCG@10, MRR, AUC and precision@1 after each epoch (and on demand), also
    with each query's seen (training) candidates excluded when `seen_rows` is given.

    Args:
      schema: the input schema (for the encoders' input signatures).
      eval_batches: a re-iterable of evaluation batches `{"query": {...}, "candidate": {...}}`.
      corpus_batches: a re-iterable of candidate feature batches (the corpus, in `corpus_keys` order).
      corpus_keys: the key of each corpus candidate.
      positive_keys: maps an evaluation batch to the keys of its positives (numpy array of str).
      ks: the K of Recall@K.
      max_batches: evaluate at most this many evaluation batches (None: all).
      seen_rows: optional; maps an evaluation batch to each query's training positives (a list of
        corpus-row arrays): every metric is then also reported with them removed from the ranking,
        as `<name>_seen_excluded` (see `evaluate_retrieval(seen=...)`).

    Example:
    >>> callback = CorpusEvaluation(
    ...     schema, eval_ds, corpus_ds, keys, lambda b: b["candidate"]["id"].numpy()
    ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        schema,
        eval_batches: Iterable,
        corpus_batches: Iterable,
        corpus_keys: Sequence[str],
        positive_keys: Callable[[dict], np.ndarray],
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        max_batches: int | None = None,
        seen_rows: Callable[[dict], list[np.ndarray]] | None = None,
    ):
        super().__init__()
        self.schema = schema
        self.eval_batches = eval_batches
        self.corpus_batches = corpus_batches
        self.corpus_keys = [str(k) for k in corpus_keys]
        self.row_of = {key: row for row, key in enumerate(self.corpus_keys)}
        self.positive_keys = positive_keys
        self.ks = tuple(ks)
        self.max_batches = max_batches
        self.seen_rows = seen_rows
        self.last_results: dict[str, float] = {}
        self._encoders = None

    def evaluate(self) -> dict[str, float]:
        """Encodes the corpus and the evaluation queries and returns the metrics (no `val_` prefix)."""
        if self._encoders is None or self._encoders[0] is not self.model:
            # Traced once per model, not once per epoch.
            self._encoders = (
                self.model,
                encoder_function(self.model.candidate_tower, self.schema, "candidate"),
                encoder_function(self.model.query_tower, self.schema, "query"),
            )
        _, encode_candidate, encode_query = self._encoders
        candidates = encode_batches(encode_candidate, self.corpus_batches)
        # One batch's query embeddings and seen items at a time, ranked in parts; only the ranks are kept.
        parts = []
        for i, batch in enumerate(self.eval_batches):
            if self.max_batches is not None and i >= self.max_batches:
                break
            keys = self.positive_keys(batch)
            batch_rows = [self.row_of.get(k.decode() if isinstance(k, bytes) else str(k), -1) for k in keys]
            missing = [k for k, r in zip(keys, batch_rows, strict=True) if r < 0]
            if missing:
                raise ValueError(
                    f"Evaluation positive(s) {missing[:3]} are not in the candidate corpus. With "
                    "--candidate_data_path, the corpus must hold every evaluation pair's candidate."
                )
            queries, positives = encode_query(batch["query"]).numpy(), np.asarray(batch_rows, np.int64)
            seen = self.seen_rows(batch) if self.seen_rows is not None else None
            for start in range(0, len(positives), RANK_QUERIES):
                part = slice(start, start + RANK_QUERIES)
                parts.append(
                    rank_positives(
                        queries[part], positives[part], candidates, seen=None if seen is None else seen[part]
                    )
                )
        if not parts:
            return {}
        # Concatenated per exclusion set: exactly `evaluate_retrieval` over all the queries at once.
        ranked = [
            tuple(np.concatenate(arrays) for arrays in zip(*sets, strict=True))
            for sets in zip(*parts, strict=True)
        ]
        results = retrieval_metrics(ranked, self.ks)
        self.last_results = {name: float(value) for name, value in results.items()}
        return self.last_results

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, value in self.evaluate().items():
            logs[f"val_{name}"] = value
