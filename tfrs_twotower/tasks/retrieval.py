"""`Retrieval`: the in-batch softmax retrieval task (TFRS contract) with logQ correction, accidental-hit
removal, mixed negative sampling, explicit negatives and hard-negative mining."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfrs_twotower.metrics.in_batch import MASK_VALUE
from tfrs_twotower.tasks import fused_softmax

_MAX_LOGIT = float(np.finfo(np.float32).max / 100.0)
_REDUCTIONS = {"sum": "sum", "mean": "sum_over_batch_size"}


def _check_positive_int(name: str, value) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
    ):
        raise ValueError(f"The `{name}` parameter must be an int in [1, inf) or None. Got {value!r} instead.")


def _as_list(name: str, value) -> list:
    if value is None:
        return []
    if not isinstance(value, Sequence):
        value = [value]
    for metric in value:
        if not isinstance(metric, keras.metrics.Metric):
            raise TypeError(
                f"`{name}` must hold Keras 3 metrics (keras.metrics.Metric). Got {type(metric).__name__}."
            )
    return list(value)


class LossInputs(NamedTuple):
    """One `Retrieval` call's tensors that the loss reads (the call arguments of the same names)."""

    query_embeddings: Any
    candidate_embeddings: Any
    sample_weight: Any
    candidate_sampling_probability: Any
    candidate_ids: Any
    extra_negative_embeddings: Any
    extra_negative_ids: Any
    extra_negative_sampling_probability: Any
    negative_embeddings: Any
    negative_mask: Any


def _log_q(probability):
    """The logQ correction of each column, `-log(p)`, with `p` clipped to [1e-6, 1] as in TFRS."""
    return -tf.math.log(tf.clip_by_value(tf.reshape(tf.cast(probability, tf.float32), [-1]), 1e-6, 1.0))


def string_id_keys(ids):
    """String ids as 64-bit int fingerprints (other dtypes unchanged): what collectives and the fused
    kernel can compare."""
    if ids.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(ids, 2**63 - 1)
    return ids


def _keys(ids):
    """int64 keys of candidate ids (strings hash to 64 bits) for the fused kernel's accidental hits."""
    return tf.cast(string_id_keys(tf.reshape(ids, [-1])), tf.int64)


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class Retrieval(keras.layers.Layer):
    """A factorized retrieval task: softmax over in-batch (and extra) negatives; TFRS's `tasks.Retrieval`.

    Row `i` of the query batch is paired with row `i` of the candidate batch (its positive); the other
    candidate rows are its negatives. Logits `q @ c^T` are, in this order: divided by `temperature`;
    logQ-corrected by subtracting `log(candidate_sampling_probability)` from each candidate's column
    (Yi et al., RecSys 2019; probabilities clipped to [1e-6, 1] as in TFRS); cleared of accidental hits
    (columns holding the row's positive id other than the positive itself are set to `MASK_VALUE`);
    extended with mixed negatives (Yang et al., WWW 2020) shared by all rows and with per-row explicit
    negatives; reduced by hard-negative mining to the positive plus the `num_hard_negatives` highest
    negatives. The loss is softmax cross-entropy with the positive as label, weighted by `sample_weight`.

    Args:
        loss: a Keras loss called as `loss(y_true, y_pred, sample_weight)` on one-hot labels and logits.
            Default: `CategoricalCrossentropy(from_logits=True)` reduced by `loss_reduction`.
        metrics: factorized metrics (e.g. `metrics.FactorizedTopK`) updated with
            `(query_embeddings, candidate_embeddings[:B], candidate_ids, sample_weight)`.
        batch_metrics: Keras metrics updated with `(labels, logits, sample_weight)`, the same labels and
            logits the loss sees (e.g. `metrics.InBatchAUC`).
        temperature: softmax temperature, a float in (0, inf), or None.
        remove_accidental_hits: remove negatives that have the positive's id (needs `candidate_ids`).
        num_hard_negatives: keep only this many highest-scoring negatives per row (int >= 1) or None.
        loss_reduction: "sum" over the batch (TFRS's default) or "mean" (the sum divided by the batch
            size, Keras's "sum_over_batch_size"). Only for the default loss.
        fused: compute the default loss and its gradients with the fused CPU kernel
            (`tasks.fused_softmax`: the `[B, N]` logits stay in the CPU's caches; ~6x faster at batch
            8192) instead of TensorFlow ops. None (default): when the kernel is built, the CPU has
            AVX-512 or AVX2 + FMA, and no GPU is visible. True: whenever built. False: never. Either way
            only for calls it covers: not with a custom `loss`, hard negatives, per-row
            `negative_embeddings` or `batch_metrics` without an `update_from_ranks` method (those use
            the TF ops; the metrics of `metrics.in_batch` have it). Same results to float32 rounding.
        name: layer name.

    Call arguments:
        query_embeddings: `[B, D]`. candidate_embeddings: `[N, D]` with `N >= B`; rows past `B` are
            extra negatives for every row, as in TFRS.
        sample_weight: `[B]`. candidate_sampling_probability: `[N]`. candidate_ids: `[N]` strings or ints.
        compute_metrics, compute_batch_metrics: whether to update `metrics` / `batch_metrics`.
        extra_negative_embeddings: `[M, D]` negatives shared by all rows (mixed negative sampling), with
            optional `extra_negative_ids` `[M]` and `extra_negative_sampling_probability` `[M]`.
        negative_embeddings: `[B, K, D]` negatives of each row only, with optional boolean
            `negative_mask` `[B, K]` (False = padding).

    Returns:
        The scalar loss.

    Example:
    >>> import numpy as np
    >>> task = Retrieval(temperature=0.5)
    >>> loss = task(np.eye(3, dtype="float32"), np.eye(3, dtype="float32"))
    >>> round(float(loss), 4)  # 3 * log(1 + 2 * exp(-2)), summed over the batch
    0.7186
    """

    def __init__(
        self,
        loss=None,
        metrics=None,
        batch_metrics=None,
        temperature: float | None = None,
        remove_accidental_hits: bool = False,
        num_hard_negatives: int | None = None,
        loss_reduction: str = "sum",
        fused: bool | None = None,
        name: str | None = None,
        **kwargs,
    ) -> None:
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float, np.number))
            or not 0 < float(temperature) < float("inf")
        ):
            raise ValueError(
                f"The `temperature` parameter must be a float in (0, inf). Got {temperature!r} instead."
            )
        if not isinstance(remove_accidental_hits, (bool, np.bool_)):
            raise TypeError(
                f"The `remove_accidental_hits` parameter must be a bool. Got "
                f"{remove_accidental_hits!r} instead."
            )
        _check_positive_int("num_hard_negatives", num_hard_negatives)
        if loss_reduction not in _REDUCTIONS:
            raise ValueError(
                f"The `loss_reduction` parameter must be a str among {sorted(_REDUCTIONS)}. Got "
                f"{loss_reduction!r} instead."
            )
        if fused is not None and not isinstance(fused, (bool, np.bool_)):
            raise TypeError(f"The `fused` parameter must be a bool or None. Got {fused!r} instead.")
        if fused and not fused_softmax.built():
            raise ValueError(
                "`fused=True` needs the `tfrs_twotower.tasks._softmax_kernel` extension: reinstall with a C "
                f"compiler available (`pip install -e .`) and unset {fused_softmax.DISABLE_ENV}, or use "
                "`fused=None` (the kernel where it runs, TF ops elsewhere)."
            )
        if fused and (loss is not None or num_hard_negatives is not None):
            raise ValueError("`fused=True` covers the default loss without hard negatives only.")
        super().__init__(name=name, **kwargs)
        self.fused = None if fused is None else bool(fused)
        if self.fused or (self.fused is None and fused_softmax.use_by_default()):
            self.supports_jit = False  # the kernel is a tf.numpy_function
        self.temperature = None if temperature is None else float(temperature)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.num_hard_negatives = None if num_hard_negatives is None else int(num_hard_negatives)
        self.loss_reduction = loss_reduction
        self._custom_loss = loss
        self._loss = (
            loss
            if loss is not None
            else keras.losses.CategoricalCrossentropy(from_logits=True, reduction=_REDUCTIONS[loss_reduction])
        )
        self._factorized_metrics = _as_list("metrics", metrics)
        self._batch_metrics = _as_list("batch_metrics", batch_metrics)

    @property
    def factorized_metrics(self) -> list:
        return self._factorized_metrics

    @property
    def batch_metrics(self) -> list:
        return self._batch_metrics

    def _scale(self, logits):
        return logits / self.temperature if self.temperature is not None else logits

    @staticmethod
    def _log_q_correct(logits, probability):
        return logits + ops.reshape(_log_q(probability), (1, -1))

    @staticmethod
    def _remove_hits(logits, positive_ids, column_ids, keep=None):
        hits = ops.equal(ops.expand_dims(positive_ids, 1), ops.expand_dims(column_ids, 0))
        if keep is not None:
            hits = ops.logical_and(hits, ops.logical_not(keep))
        return ops.where(hits, MASK_VALUE, logits)

    def call(
        self,
        query_embeddings,
        candidate_embeddings,
        sample_weight=None,
        candidate_sampling_probability=None,
        candidate_ids=None,
        compute_metrics=True,
        compute_batch_metrics=True,
        extra_negative_embeddings=None,
        extra_negative_ids=None,
        extra_negative_sampling_probability=None,
        negative_embeddings=None,
        negative_mask=None,
    ):
        if self.remove_accidental_hits and candidate_ids is None:
            raise ValueError("When `remove_accidental_hits=True`, `candidate_ids` must be supplied.")
        if (
            self.remove_accidental_hits
            and extra_negative_embeddings is not None
            and extra_negative_ids is None
        ):
            raise ValueError(
                "When `remove_accidental_hits=True` and `extra_negative_embeddings` are given, "
                "`extra_negative_ids` must be supplied too."
            )
        if extra_negative_embeddings is None and (
            extra_negative_ids is not None or extra_negative_sampling_probability is not None
        ):
            raise ValueError(
                "`extra_negative_ids` and `extra_negative_sampling_probability` need "
                "`extra_negative_embeddings`."
            )
        if negative_embeddings is None and negative_mask is not None:
            raise ValueError("`negative_mask` needs `negative_embeddings`.")
        if len(query_embeddings.shape) != 2 or len(candidate_embeddings.shape) != 2:
            raise ValueError(
                f"`query_embeddings` and `candidate_embeddings` must be [batch, dim]. Got shapes "
                f"{query_embeddings.shape} and {candidate_embeddings.shape}."
            )

        num_queries = ops.shape(query_embeddings)[0]
        inputs = LossInputs(
            query_embeddings,
            candidate_embeddings,
            sample_weight,
            candidate_sampling_probability,
            candidate_ids,
            extra_negative_embeddings,
            extra_negative_ids,
            extra_negative_sampling_probability,
            negative_embeddings,
            negative_mask,
        )
        fused = self._fuses(compute_batch_metrics, negative_embeddings)
        if fused:
            loss, outscoring, num_negatives = self._fused_loss(inputs)
        else:
            loss, labels, logits = self._loss_from_logits(inputs)

        if compute_metrics:
            for metric in self._factorized_metrics:
                metric.update_state(
                    query_embeddings,
                    candidate_embeddings[:num_queries],
                    true_candidate_ids=None
                    if candidate_ids is None
                    else ops.reshape(candidate_ids, (-1,))[:num_queries],
                    sample_weight=sample_weight,
                )
        if compute_batch_metrics:
            for metric in self._batch_metrics:
                if fused:
                    metric.update_from_ranks(outscoring, num_negatives, sample_weight=sample_weight)
                else:
                    metric.update_state(labels, logits, sample_weight=sample_weight)
        return loss

    def _fuses(self, compute_batch_metrics, negative_embeddings) -> bool:
        if (
            self.fused is False
            or self._custom_loss is not None
            or self.num_hard_negatives is not None
            or negative_embeddings is not None
            or (
                compute_batch_metrics
                and not all(hasattr(m, "update_from_ranks") for m in self._batch_metrics)
            )
        ):
            return False
        return bool(self.fused) or fused_softmax.use_by_default()

    def _loss_from_logits(self, inputs: LossInputs):
        """The loss with TF ops on the materialised logits; returns (loss, labels, logits)."""
        queries = ops.cast(inputs.query_embeddings, "float32")
        logits = self._scale(
            ops.matmul(queries, ops.transpose(ops.cast(inputs.candidate_embeddings, "float32")))
        )
        num_queries, num_candidates = ops.shape(logits)[0], ops.shape(logits)[1]
        # `tf.eye` takes a dynamic number of columns (an unknown batch size in a traced `fit`).
        labels = tf.eye(num_queries, num_candidates, dtype="float32")
        if inputs.candidate_sampling_probability is not None:
            logits = self._log_q_correct(logits, inputs.candidate_sampling_probability)
        if self.remove_accidental_hits:
            column_ids = ops.reshape(inputs.candidate_ids, (-1,))
            positive_ids = column_ids[:num_queries]
            logits = self._remove_hits(logits, positive_ids, column_ids, keep=ops.cast(labels, "bool"))

        blocks = [logits]
        if inputs.extra_negative_embeddings is not None:
            extra = self._scale(
                ops.matmul(queries, ops.transpose(ops.cast(inputs.extra_negative_embeddings, "float32")))
            )
            if inputs.extra_negative_sampling_probability is not None:
                extra = self._log_q_correct(extra, inputs.extra_negative_sampling_probability)
            if self.remove_accidental_hits:
                extra = self._remove_hits(extra, positive_ids, ops.reshape(inputs.extra_negative_ids, (-1,)))
            blocks.append(extra)
        if inputs.negative_embeddings is not None:
            if len(inputs.negative_embeddings.shape) != 3:
                raise ValueError(
                    f"`negative_embeddings` must be [batch, num_negatives, dim]. Got shape "
                    f"{inputs.negative_embeddings.shape}."
                )
            explicit = self._scale(
                ops.einsum("bd,bkd->bk", queries, ops.cast(inputs.negative_embeddings, "float32"))
            )
            if inputs.negative_mask is not None:
                explicit = ops.where(ops.cast(inputs.negative_mask, "bool"), explicit, MASK_VALUE)
            blocks.append(explicit)
        if len(blocks) > 1:
            logits = ops.concatenate(blocks, axis=1)
            labels = ops.pad(labels, [[0, 0], [0, ops.shape(logits)[1] - num_candidates]])

        if self.num_hard_negatives is not None:
            logits, labels = self._mine_hard_negatives(logits, labels)

        return self._loss(labels, logits, sample_weight=inputs.sample_weight), labels, logits

    def _fused_loss(self, inputs: LossInputs):
        """The default loss through `fused_softmax.loss_and_ranks`: the options become a column bias,
        column keys and row weights. Returns (loss, outscoring, num_negatives)."""
        queries = tf.cast(inputs.query_embeddings, tf.float32)
        candidates = tf.cast(inputs.candidate_embeddings, tf.float32)
        num_queries, num_candidates = tf.shape(queries)[0], tf.shape(candidates)[0]
        bias = (
            None
            if inputs.candidate_sampling_probability is None
            else _log_q(inputs.candidate_sampling_probability)
        )
        row_keys = col_keys = None
        if self.remove_accidental_hits:
            col_keys = _keys(inputs.candidate_ids)
            row_keys = col_keys[:num_queries]
        if inputs.extra_negative_embeddings is not None:
            extra = tf.cast(inputs.extra_negative_embeddings, tf.float32)
            if bias is not None or inputs.extra_negative_sampling_probability is not None:
                extra_bias = (
                    tf.zeros(tf.shape(extra)[:1])
                    if inputs.extra_negative_sampling_probability is None
                    else _log_q(inputs.extra_negative_sampling_probability)
                )
                bias = tf.concat([tf.zeros([num_candidates]) if bias is None else bias, extra_bias], axis=0)
            if self.remove_accidental_hits:
                col_keys = tf.concat([col_keys, _keys(inputs.extra_negative_ids)], axis=0)
            candidates = tf.concat([candidates, extra], axis=0)
        weights = tf.ones([num_queries])
        if inputs.sample_weight is not None:
            weights = weights * tf.reshape(tf.cast(inputs.sample_weight, tf.float32), [-1])
        if self.loss_reduction == "mean":
            weights = weights / tf.cast(num_queries, tf.float32)
        scale = 1.0 if self.temperature is None else 1.0 / self.temperature
        loss, outscoring, num_negatives = fused_softmax.loss_and_ranks(
            queries, candidates, weights, bias, row_keys, col_keys, scale=scale
        )
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if self.loss_reduction == "mean" and replicas > 1:
            loss = loss / replicas  # as Keras's "sum_over_batch_size" reduction does
        return loss, outscoring, num_negatives

    def _mine_hard_negatives(self, logits, labels):
        # The positive is lifted above everything so top_k keeps it plus the k highest negatives.
        num_kept = (
            min(self.num_hard_negatives + 1, logits.shape[1])
            if logits.shape[1] is not None
            else ops.minimum(self.num_hard_negatives + 1, ops.shape(logits)[1])
        )
        _, columns = ops.top_k(logits + labels * _MAX_LOGIT, k=num_kept, sorted=False)
        return ops.take_along_axis(logits, columns, axis=1), ops.take_along_axis(labels, columns, axis=1)

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "loss": None if self._custom_loss is None else serialize(self._custom_loss),
            "metrics": [serialize(m) for m in self._factorized_metrics],
            "batch_metrics": [serialize(m) for m in self._batch_metrics],
            "temperature": self.temperature,
            "remove_accidental_hits": self.remove_accidental_hits,
            "num_hard_negatives": self.num_hard_negatives,
            "loss_reduction": self.loss_reduction,
            "fused": self.fused,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Retrieval":
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        if config.get("loss") is not None:
            config["loss"] = deserialize(config["loss"])
        config["metrics"] = [deserialize(m) for m in config.get("metrics") or []]
        config["batch_metrics"] = [deserialize(m) for m in config.get("batch_metrics") or []]
        return cls(**config)
