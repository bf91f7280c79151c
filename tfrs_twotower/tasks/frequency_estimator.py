"""`FrequencyEstimator`: streaming estimate of each candidate's sampling probability (Yi et al. 2019).

Algorithm 2 of "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations" (RecSys
2019): ids are hashed into `num_buckets` slots; slot `h` keeps `A[h]`, the last step its id was seen, and
`B[h]`, a moving average (learning rate `alpha`) of the number of steps between two sightings. The
probability that a batch holds the id is estimated as `1 / B[h]`, the logQ term of `Retrieval`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class FrequencyEstimator(keras.layers.Layer):
    """Estimates candidate sampling probabilities from the stream of training batches.

    Each `update(ids)` is one training step `t` (starting at 1). For each id, in batch order, exactly as
    the paper's sequential loop: `B[h] <- (1 - alpha) * B[h] + alpha * (t - A[h])`, then `A[h] <- t`. An
    id seen `c` times in one batch is therefore updated once with the gap and `c - 1` times with a gap of
    0 (done in one vectorized step). `A`, `B` and `t` are non-trainable weights, saved with the model.
    Slots start at `A = B = 0`; a slot's first sighting at step `t` sets `B = t` (the paper leaves the
    start open; averaging up from 0 would read "probability 1", no correction, for about `1 / alpha`
    steps). The estimate `1 / B` is clipped to at most 1 (an unseen id reads 1: no logQ correction).

    Not safe inside a `tf.data` pipeline (it updates variables). Under a distribution strategy each
    replica would update its own copy; call it on the global batch.

    Args:
        num_buckets: number of hash slots, an int in [1, inf). Collisions merge ids' counts.
        alpha: learning rate of the gap average, a float in (0, 1].
        name: layer name.

    Call arguments:
        ids: `[B]` string or integer candidate ids. Strings are hashed with
            `tf.strings.to_hash_bucket_fast`; integers are taken modulo `num_buckets`.
        training: when True, `call` updates the estimator first (like `update`); otherwise it only reads.

    Returns:
        `[B]` float32 sampling probabilities.

    Example:
    >>> est = FrequencyEstimator(num_buckets=1000, alpha=0.5)
    >>> for step in range(6):  # "a" in every batch, "b" and "c" in every other one
    ...     p = est.update(["a", "b"] if step % 2 else ["a", "c"])
    >>> [round(float(x), 4) for x in est.estimate(["a", "b", "c"])]
    [1.0, 0.5, 0.5714]
    """

    def __init__(
        self, num_buckets: int = 1_000_000, alpha: float = 0.01, name: str | None = None, **kwargs
    ) -> None:
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, (int, np.integer)) or num_buckets < 1:
            raise ValueError(
                f"The `num_buckets` parameter must be an int in [1, inf). Got {num_buckets!r} instead."
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not 0 < alpha <= 1:
            raise ValueError(f"The `alpha` parameter must be a float in (0, 1]. Got {alpha!r} instead.")
        super().__init__(name=name, **kwargs)
        self.num_buckets = int(num_buckets)
        self.alpha = float(alpha)
        self.last_step = self.add_weight(
            shape=(self.num_buckets,), initializer="zeros", dtype="int64", trainable=False, name="last_step"
        )  # A
        self.gap = self.add_weight(
            shape=(self.num_buckets,), initializer="zeros", dtype="float32", trainable=False, name="gap"
        )  # B
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="step"
        )
        self.built = True

    def buckets(self, ids) -> tf.Tensor:
        """The hash slot of each id, int64 `[B]`."""
        ids = tf.reshape(tf.convert_to_tensor(ids), [-1])
        if ids.dtype == tf.string:
            return tf.strings.to_hash_bucket_fast(ids, self.num_buckets)
        if not ids.dtype.is_integer:
            raise TypeError(f"`ids` must be strings or integers. Got dtype {ids.dtype.name}.")
        return tf.math.floormod(tf.cast(ids, tf.int64), self.num_buckets)

    def estimate(self, ids) -> tf.Tensor:
        """Current probability estimates for `ids`, without updating."""
        gap = tf.gather(self.gap, self.buckets(ids))
        return tf.where(gap > 1.0, 1.0 / tf.maximum(gap, 1.0), 1.0)

    def update(self, ids) -> tf.Tensor:
        """Advances one step with the batch `ids`; returns their updated probability estimates."""
        buckets = self.buckets(ids)
        step = self.step.assign_add(1)
        slots, _, counts = tf.unique_with_counts(buckets)
        last = tf.gather(self.last_step, slots)
        gaps = tf.cast(step - last, tf.float32)
        decay = tf.constant(1.0 - self.alpha, tf.float32)
        # A slot's first sighting starts its average at the observed gap (steps since the start) instead
        # of averaging up from 0, which would read "probability 1" for about 1/alpha steps.
        first = tf.where(last > 0, decay * tf.gather(self.gap, slots) + self.alpha * gaps, gaps)
        # Later sightings in the same step have gap 0: each multiplies B by (1 - alpha).
        new_gap = first * tf.pow(decay, tf.cast(counts - 1, tf.float32))
        self.gap.value.scatter_update(tf.IndexedSlices(new_gap, slots))
        self.last_step.value.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(slots), step), slots))
        return self.estimate(ids)

    def call(self, ids, training=None):
        if training:
            return self.update(ids)
        return self.estimate(ids)

    def compute_output_spec(self, ids, training=None):
        return keras.KerasTensor(ids.shape, dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_buckets": self.num_buckets, "alpha": self.alpha}
