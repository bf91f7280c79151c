"""`CandidateFrequencies`: each candidate's sampling probability, counted exactly from the training data.

In-batch softmax samples negatives with the candidates' own frequency in the data, so popular candidates
are over-penalised; logQ correction (Yi et al., RecSys 2019) subtracts log(probability) from their logits.
When the training data is scanned before training (as `tfrs_twotower.train` does), the frequencies are
known exactly and need no streaming estimate (`FrequencyEstimator`).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class CandidateFrequencies(keras.layers.Layer):
    """Looks up each candidate id's expected number of appearances in a batch: `batch_size * count / total`,
    the same scale as `FrequencyEstimator`'s estimate and as uniformly drawn extra negatives'
    `num_drawn / corpus_size`; when the largest exceeds 1 (popular candidates in a large batch), all are
    divided by it (`scale`; the model scales the extra negatives' probability alike), so the correction's
    clip at 1 leaves them apart: clipped, every candidate above 1 would get the same correction (at batch
    1024 on MovieLens 100K, ~300 of the 1,682 movies did, and the popular ones were under-corrected:
    Recall@10 0.035 instead of 0.049, docs/benchmarks.md).

    Args:
      ids: the candidate ids (strings).
      counts: how often each id appears as a positive in the training data (>= 0).
      batch_size: the training batch size, >= 1.
      weight: the returned probabilities are raised to this power, so the logQ correction is `weight`
        times the counts' (> 1 corrects more: popular candidates score higher after training).

    Call arguments:
      ids: tf.string `[B]`.

    Returns:
      float32 `[B]`; ids not in `ids` (or with count 0) get the smallest positive probability.

    Example:
    >>> frequencies = CandidateFrequencies(["a", "b"], [3, 1], batch_size=1)
    >>> frequencies(tf.constant(["a", "b", "zz"])).numpy().tolist()
    [0.75, 0.25, 0.25]
    >>> large = CandidateFrequencies(["a", "b"], [3, 1], batch_size=4)  # expected appearances 3 and 1
    >>> large.scale, [round(p, 4) for p in large(tf.constant(["a", "b"])).numpy().tolist()]
    (0.3333333333333333, [1.0, 0.3333])
    """

    def __init__(
        self, ids: Sequence[str], counts: Sequence[float], batch_size: int = 1, weight: float = 1.0, **kwargs
    ):
        super().__init__(**kwargs)
        counts = np.asarray(counts, np.float64)
        if len(ids) != len(counts) or len(ids) == 0:
            raise ValueError(
                f"`ids` and `counts` must be non-empty and of equal length. Got {len(ids)} and {len(counts)}."
            )
        if np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError("`counts` must be >= 0 with a positive total.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f"The `weight` parameter must be a float > 0. Got {weight!r} instead.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"The `batch_size` parameter must be an int >= 1. Got {batch_size!r} instead.")
        self.ids = [str(i) for i in ids]
        self.counts = counts.tolist()
        self.batch_size = batch_size
        expected = batch_size * counts / counts.sum()
        # Expected appearances above 1 (popular candidates in large batches) would be clipped to 1 by the
        # correction, which then under-corrects them; all are scaled by one factor instead (the softmax
        # is unchanged by a shift common to every column).
        self.scale = min(1.0, 1.0 / float(expected.max()))
        self.weight = float(weight)
        # `p ** weight`: the correction, -log(p), is then `weight` times the count's.
        probabilities = np.minimum(1.0, expected * self.scale) ** self.weight
        positive = probabilities[probabilities > 0]
        self.supports_jit = False
        self.default = float(positive.min())
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(i) for i in ids]),
                tf.constant(np.maximum(probabilities, self.default), tf.float32),
            ),
            default_value=self.default,
        )

    def call(self, ids):
        return self.table.lookup(tf.reshape(tf.convert_to_tensor(ids), [-1]))

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0],), dtype="float32")

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "ids": self.ids,
            "counts": self.counts,
            "batch_size": self.batch_size,
            "weight": self.weight,
        }
