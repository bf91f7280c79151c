"""In-batch retrieval metrics: `auc`, `precision_at_1`, `top_k_categorical_accuracy`.

These are the Vertex AI Two-Tower batch metrics. They take what a TFRS `Retrieval` task hands its
`batch_metrics`: `y_true`, a one-hot `[batch, num_candidates]` matrix marking each query's positive, and
`y_pred`, the `[batch, num_candidates]` logits. Each is computed from the number of candidates in the row
that *outscore* the positive:

- a candidate outscores the positive when its logit is strictly greater; a tie does not outscore (the
  convention of `tf.math.in_top_k` and of TFRS's `FactorizedTopK`);
- columns whose logit is at or below `MASKED_LOGIT_THRESHOLD` are ignored: that is where `Retrieval`
  puts removed accidental hits and masked negatives (`MASK_VALUE`), which are not negatives.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# What `Retrieval` writes into a removed column (the value TFRS uses). Finite, so that a zero label times
# the log-softmax of a removed column stays 0 in the cross-entropy (with -inf it would be NaN).
MASK_VALUE = float(np.finfo(np.float32).min / 100.0)
# Logits at or below this are treated as removed columns by the metrics in this module.
MASKED_LOGIT_THRESHOLD = MASK_VALUE / 2.0


class _InBatchRankMetric(keras.metrics.Metric):
    """Weighted mean over queries of a function of the positive's in-batch rank."""

    def __init__(self, name: str, dtype: str | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def _values(self, outscoring, num_negatives):
        """Returns per-query values and per-query weights (0 where the value is undefined)."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Accumulates the metric over a batch.

        Args:
            y_true: `[batch, num_candidates]` one-hot labels (the positive is the row's argmax).
            y_pred: `[batch, num_candidates]` logits.
            sample_weight: optional `[batch]` weight of each query.
        """
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        if len(y_pred.shape) != 2:
            raise ValueError(
                f"`y_pred` must be a [batch, num_candidates] matrix of logits. Got shape {y_pred.shape}."
            )
        num_columns = ops.shape(y_pred)[1]
        positive_column = ops.argmax(y_true, axis=1)
        is_positive = ops.equal(
            ops.expand_dims(positive_column, 1), ops.expand_dims(ops.arange(num_columns), 0)
        )
        positive_logit = ops.take_along_axis(y_pred, ops.expand_dims(positive_column, 1), axis=1)
        is_negative = ops.logical_and(
            ops.logical_not(is_positive), ops.greater(y_pred, MASKED_LOGIT_THRESHOLD)
        )
        outscoring = ops.sum(
            ops.cast(ops.logical_and(is_negative, ops.greater(y_pred, positive_logit)), "float32"), axis=1
        )
        num_negatives = ops.sum(ops.cast(is_negative, "float32"), axis=1)
        self.update_from_ranks(outscoring, num_negatives, sample_weight)

    def update_from_ranks(self, outscoring, num_negatives, sample_weight=None) -> None:
        """Accumulates the metric from per-query counts (what the fused loss kernel computes).

        Args:
            outscoring: `[batch]` number of negatives whose logit is strictly above the positive's.
            num_negatives: `[batch]` number of negatives in the query's row.
            sample_weight: optional `[batch]` weight of each query.
        """
        values, weights = self._values(ops.cast(outscoring, "float32"), ops.cast(num_negatives, "float32"))
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self.total.assign_add(ops.sum(values * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class InBatchAUC(_InBatchRankMetric):
    """Probability that a query's positive is not outscored by one of the other candidates in the batch.

    Per query: `1 - (# negatives outscoring the positive) / (# negatives)`, averaged over queries
    (weighted by `sample_weight`). Queries with no negative in the row (a batch of one) are skipped.

    Example:
    >>> import numpy as np
    >>> m = InBatchAUC()
    >>> m.update_state(np.eye(2), np.array([[2.0, 1.0], [3.0, 0.0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, name: str = "auc", dtype: str | None = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def _values(self, outscoring, num_negatives):
        has_negatives = ops.greater(num_negatives, 0.0)
        values = 1.0 - ops.divide_no_nan(outscoring, num_negatives)
        return values, ops.cast(has_negatives, "float32")


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class InBatchTopKAccuracy(_InBatchRankMetric):
    """Fraction of queries whose positive is among the top `k` of its batch row.

    Matches Keras/TFRS `top_k_categorical_accuracy` on in-batch logits (ties in favour of the positive).

    Args:
        k: how many top candidates count as a hit. An int in [1, inf).
        name: metric name.

    Example:
    >>> import numpy as np
    >>> m = InBatchTopKAccuracy(k=1)
    >>> m.update_state(np.eye(2), np.array([[2.0, 1.0], [3.0, 0.0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: str | None = None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"The `k` parameter must be an int in [1, inf). Got {k!r} instead.")
        super().__init__(name=name, dtype=dtype)
        self.k = int(k)

    def _values(self, outscoring, num_negatives):
        values = ops.cast(ops.less(outscoring, float(self.k)), "float32")
        return values, ops.ones_like(values)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class InBatchPrecisionAt1(InBatchTopKAccuracy):
    """Fraction of queries whose positive has the highest logit of its batch row (ties count as a hit).

    Example:
    >>> import numpy as np
    >>> m = InBatchPrecisionAt1()
    >>> m.update_state(np.eye(2), np.array([[2.0, 1.0], [3.0, 0.0]]))
    >>> float(m.result())
    0.5
    """

    def __init__(self, name: str = "precision_at_1", dtype: str | None = None) -> None:
        super().__init__(k=1, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("k")
        return config
