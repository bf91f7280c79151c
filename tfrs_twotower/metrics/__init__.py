"""Retrieval metrics: in-batch (`auc`, `precision_at_1`, `top_k_categorical_accuracy`), `FactorizedTopK`,
and the full-corpus evaluator."""

from tfrs_twotower.metrics.corpus_evaluation import (
    evaluate_retrieval,
    positive_ranks,
    rank_positives,
    retrieval_metrics,
)
from tfrs_twotower.metrics.factorized_top_k import FactorizedTopK
from tfrs_twotower.metrics.in_batch import (
    MASK_VALUE,
    InBatchAUC,
    InBatchPrecisionAt1,
    InBatchTopKAccuracy,
)

__all__ = [
    "MASK_VALUE",
    "FactorizedTopK",
    "InBatchAUC",
    "InBatchPrecisionAt1",
    "InBatchTopKAccuracy",
    "evaluate_retrieval",
    "positive_ranks",
    "rank_positives",
    "retrieval_metrics",
]
