"""Models in the TensorFlow Recommenders style: a Keras model whose subclasses define `compute_loss`."""

from __future__ import annotations

from typing import Any, Mapping

import keras
import tensorflow as tf

from tfrs_twotower.tasks.retrieval import string_id_keys


def _replica_context():
    """The replica context when several replicas train in sync (inside `strategy.run`), else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _global_batch_candidates(context, candidates: dict[str, Any]) -> dict[str, Any]:
    """All-gathers `{name: [b, ...]}` across replicas, this replica's rows first.

    The replicas' rows are in replica order otherwise, so row i of the result is this replica's row i
    and the rest are the other replicas' candidates: the global batch's in-batch negatives. The gather
    is differentiable: each replica's candidate gradients come back summed over all replicas' losses.
    """
    local = tf.shape(next(iter(candidates.values())))[0]
    sizes = context.all_gather(tf.reshape(local, [1]), axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    end = start + local
    out = {}
    for name, value in candidates.items():
        gathered = context.all_gather(value, axis=0)
        # Slices, not tf.gather: all_gather's gradient all-reduces, which needs dense (not sparse) gradients.
        out[name] = tf.concat([gathered[start:end], gathered[:start], gathered[end:]], axis=0)
    return out


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class Model(keras.Model):
    """A Keras 3 model trained by `compute_loss(inputs, training)`, as `tfrs.Model` is.

    Subclasses implement `compute_loss`; `fit` and `evaluate` then work on a `tf.data` dataset of
    inputs (no labels). Logs hold `loss` (the epoch mean of `compute_loss`), `regularization_loss`,
    `total_loss` and every metric of the model's layers (e.g. a task's metrics).

    Unlike Keras's own `Model.compute_loss(x, y, y_pred, sample_weight)`, this one has TFRS's signature,
    so TFRS models port unchanged.

    Example:
    >>> class Linear(Model):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.dense = keras.layers.Dense(1)
    ...     def compute_loss(self, inputs, training=False):
    ...         return tf.reduce_mean(tf.square(self.dense(inputs["x"]) - inputs["y"]))
    >>> model = Linear()
    >>> model.compile(optimizer="sgd")
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_mean = keras.metrics.Mean(name="loss")
        self.regularization_loss_mean = keras.metrics.Mean(name="regularization_loss")
        self.total_loss_mean = keras.metrics.Mean(name="total_loss")

    def compute_loss(self, inputs, training: bool = False):  # noqa: D401 - TFRS signature
        """The loss of a batch of `inputs`; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement `compute_loss(inputs, training)`.")

    def _loss_terms(self, inputs, training: bool):
        loss = self.compute_loss(inputs, training=training)
        regularization = (
            tf.add_n([tf.cast(v, loss.dtype) for v in self.losses]) if self.losses else tf.zeros_like(loss)
        )
        context = _replica_context()
        if context is not None:
            # Under tf.distribute, `compute_loss` returns this replica's share of the global batch's loss
            # (the shares sum to it) and the optimizer sums the replicas' gradients; each replica holds
            # the whole regularization loss, so its share is 1/num_replicas.
            regularization = regularization / context.num_replicas_in_sync
        return loss, regularization, loss + regularization

    def _update_loss_metrics(self, loss, regularization, total) -> None:
        context = _replica_context()
        if context is not None:
            # The loss metrics average over replicas: scaled so they report the global batch's loss.
            replicas = float(context.num_replicas_in_sync)
            loss, regularization, total = loss * replicas, regularization * replicas, total * replicas
        self.loss_mean.update_state(loss)
        self.regularization_loss_mean.update_state(regularization)
        self.total_loss_mean.update_state(total)

    def _train_terms(self, data):
        with tf.GradientTape() as tape:
            loss, regularization, total = self._loss_terms(data, training=True)
        variables = self.trainable_variables
        gradients = tape.gradient(total, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        )
        return loss, regularization, total

    def train_step(self, data):
        self._update_loss_metrics(*self._train_terms(data))
        return self.get_metrics_result()

    def test_step(self, data):
        self._update_loss_metrics(*self._loss_terms(data, training=False))
        return self.get_metrics_result()

    def distributed_step(self, data, training: bool = True) -> None:
        """`train_step` (or `test_step`) without the logs, for custom loops under `strategy.run`.

        Reading metrics is a cross-replica reduction, so a custom loop reads them once per epoch instead.
        """
        terms = self._train_terms(data) if training else self._loss_terms(data, training=False)
        self._update_loss_metrics(*terms)

    def get_metrics_result(self):
        results = {}
        for metric in self.metrics:
            if metric is getattr(self, "_loss_tracker", None):
                continue  # Keras's own tracker: unused, `loss` is ours.
            value = metric.result()
            if isinstance(value, dict):
                results.update(value)
            else:
                results[metric.name] = value
        return results


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class TwoTowerModel(Model):
    """A query tower and a candidate tower trained jointly by a `Retrieval` task.

    Args:
      query_tower: maps the query side's feature dict to `[B, D]` embeddings (any Keras layer or model).
      candidate_tower: maps the candidate side's feature dict to `[B, D]` embeddings.
      task: a `tfrs_twotower.tasks.Retrieval` (or any layer called as
        `task(query_embeddings, candidate_embeddings, **options) -> loss`).
      candidate_id_feature: the candidate feature whose value identifies a candidate; passed to the task
        as `candidate_ids` (needed by accidental-hit removal and sampling-probability estimation).
      sampling_probability: the candidates' sampling probabilities for logQ correction (Yi et al. 2019):
        None (no correction); "estimate" (streamed by `frequency_estimator`, default a
        `tasks.FrequencyEstimator`); "counts" (looked up by `frequency_estimator`, a
        `tasks.CandidateFrequencies` counted on the training data); or the name of a candidate Numeric
        feature holding it.
      frequency_estimator: the layer mapping candidate ids to probabilities for "estimate" and "counts".
      negative_sampler: a `tasks.CorpusSampler` whose draws join every batch's negatives (mixed negative
        sampling); its candidates are encoded by the candidate tower at each step.

    Call arguments (`compute_loss`):
      inputs: `{"query": {...}, "candidate": {...}}`, optionally `"weight"` `[B]`, and explicit negatives
        `"negatives": {name: [B, K, ...]}` with `"negative_mask"` `[B, K]` (as `data.make_dataset` gives).

    Example:
    >>> from tfrs_twotower.towers import build_towers
    >>> from tfrs_twotower.tasks import Retrieval
    >>> schema = {"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
    ...           "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}}
    >>> query_tower, candidate_tower = build_towers(schema, output_dim=8)
    >>> model = TwoTowerModel(query_tower, candidate_tower, Retrieval())
    >>> model.compile(optimizer="adagrad")
    """

    def __init__(
        self,
        query_tower: keras.layers.Layer,
        candidate_tower: keras.layers.Layer,
        task: keras.layers.Layer,
        candidate_id_feature: str | None = None,
        sampling_probability: str | None = None,
        frequency_estimator: keras.layers.Layer | None = None,
        negative_sampler: keras.layers.Layer | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = task
        self.candidate_id_feature = candidate_id_feature
        self.sampling_probability = sampling_probability
        if sampling_probability in ("estimate", "counts"):
            if candidate_id_feature is None:
                raise ValueError(
                    f"`sampling_probability='{sampling_probability}'` needs `candidate_id_feature`: the "
                    "probabilities are kept per candidate id."
                )
            if frequency_estimator is None and sampling_probability == "counts":
                raise ValueError(
                    "`sampling_probability='counts'` needs "
                    "`frequency_estimator=tasks.CandidateFrequencies(ids, "
                    "counts, batch_size)` with the training data's candidate counts."
                )
            if frequency_estimator is None:
                from tfrs_twotower.tasks import FrequencyEstimator

                frequency_estimator = FrequencyEstimator()
        self.frequency_estimator = frequency_estimator
        self.negative_sampler = negative_sampler

    def build(self, input_shape=None):
        # `input_shape`: `{"query": {name: shape}, "candidate": {...}}` when the model was called; the
        # towers otherwise build on their first call (in `compute_loss`), each with its own shapes.
        shapes = input_shape if isinstance(input_shape, Mapping) else {}
        for side, tower in (("query", self.query_tower), ("candidate", self.candidate_tower)):
            if side in shapes and not tower.built and type(tower).build is not keras.layers.Layer.build:
                tower.build(shapes[side])

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "query_tower": serialize(self.query_tower),
            "candidate_tower": serialize(self.candidate_tower),
            "task": serialize(self.task),
            "candidate_id_feature": self.candidate_id_feature,
            "sampling_probability": self.sampling_probability,
            "frequency_estimator": serialize(self.frequency_estimator),
            "negative_sampler": serialize(self.negative_sampler),
        }

    @classmethod
    def from_config(cls, config: dict) -> "TwoTowerModel":
        config = dict(config)
        for key in ("query_tower", "candidate_tower", "task", "frequency_estimator", "negative_sampler"):
            config[key] = keras.saving.deserialize_keras_object(config.get(key))
        model = cls(**config)
        if model.query_tower.built and model.candidate_tower.built:
            # Each tower rebuilt from its own build config: the model is built, so `compile_from_config`
            # makes the optimizer's variables and a saved optimizer state loads into them.
            model.build()
        return model

    def call(self, inputs, training=False):
        """`{"query": [B, D], "candidate": [B, D]}` embeddings of the sides present in `inputs`."""
        outputs = {}
        if "query" in inputs:
            outputs["query"] = self.query_tower(inputs["query"], training=training)
        if "candidate" in inputs:
            outputs["candidate"] = self.candidate_tower(inputs["candidate"], training=training)
        return outputs

    def candidate_ids(self, candidate_features):
        if self.candidate_id_feature is None:
            return None
        ids = candidate_features[self.candidate_id_feature]
        return ids if ids.shape.rank == 1 else ids[:, 0]

    def compute_loss(self, inputs, training: bool = False):
        """The task's loss; inside `strategy.run` with several replicas, this replica's share of it.

        With several replicas in sync, each replica scores its queries against the candidates of the
        whole global batch (all-gathered), so the negatives are those of a single-process run with the
        same global batch, and the returned share makes the replicas' summed gradients equal that run's.
        """
        query_embeddings = self.query_tower(inputs["query"], training=training)
        candidate_embeddings = self.candidate_tower(inputs["candidate"], training=training)
        ids = self.candidate_ids(inputs["candidate"])
        options: dict[str, Any] = {}
        if ids is not None:
            options["candidate_ids"] = ids
        if "weight" in inputs:
            options["sample_weight"] = inputs["weight"]
        if self.sampling_probability in ("estimate", "counts"):
            options["candidate_sampling_probability"] = self.frequency_estimator(ids, training=training)
        elif self.sampling_probability:
            probability = tf.cast(inputs["candidate"][self.sampling_probability], tf.float32)
            options["candidate_sampling_probability"] = tf.reshape(probability, [-1])
        context = _replica_context()
        if context is not None:
            candidate_embeddings, options = self._gather_global_batch(context, candidate_embeddings, options)
        if "negatives" in inputs:
            options.update(self._explicit_negatives(inputs, training))
        if self.negative_sampler is not None and training:
            options.update(self._mixed_negatives(options, training))
        loss = self.task(query_embeddings, candidate_embeddings, **options)
        if context is not None and getattr(self.task, "loss_reduction", "sum") == "mean":
            # The task averaged over this replica's rows, and Keras's mean reduction already divided that
            # by the number of replicas (assuming equal local batches). The global mean weighs each
            # replica's mean by its rows instead: local / global.
            local = tf.cast(tf.shape(query_embeddings)[0], loss.dtype)
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
            loss = tf.math.divide_no_nan(loss * context.num_replicas_in_sync * local, total)
        return loss

    def _gather_global_batch(self, context, candidate_embeddings, options):
        if self.negative_sampler is not None or self.sampling_probability == "estimate":
            raise ValueError(
                "`num_mixed_negatives` and `sampling_bias_correction='estimate'` keep per-replica state and "
                "are not supported with several replicas; use one replica (--distribution default) or "
                "`sampling_bias_correction='counts'`."
            )
        gathered = {"embeddings": candidate_embeddings}
        if "candidate_ids" in options:
            # Collectives carry numbers only: string ids travel as 64-bit fingerprints.
            gathered["ids"] = string_id_keys(options["candidate_ids"])
        if "candidate_sampling_probability" in options:
            gathered["probability"] = options["candidate_sampling_probability"]
        gathered = _global_batch_candidates(context, gathered)
        options = dict(options)
        if "ids" in gathered:
            options["candidate_ids"] = gathered["ids"]
        if "probability" in gathered:
            options["candidate_sampling_probability"] = gathered["probability"]
        return gathered["embeddings"], options

    def _explicit_negatives(self, inputs, training):
        """Encodes `[B, K]` explicit negatives as one `[B * K]` candidate batch, reshaped to `[B, K, D]`."""
        negatives = inputs["negatives"]
        mask = inputs["negative_mask"]
        batch, width = tf.shape(mask)[0], tf.shape(mask)[1]
        flat = {
            name: tf.reshape(value, tf.concat([[batch * width], tf.shape(value)[2:]], axis=0))
            for name, value in negatives.items()
        }
        encoded = self.candidate_tower(flat, training=training)
        return {
            "negative_embeddings": tf.reshape(encoded, [batch, width, -1]),
            "negative_mask": mask,
        }

    def _mixed_negatives(self, options, training):
        features, _ = self.negative_sampler.sample()
        extra = {"extra_negative_embeddings": self.candidate_tower(features, training=training)}
        if self.candidate_id_feature is not None:
            extra["extra_negative_ids"] = self.candidate_ids(features)
        if "candidate_sampling_probability" in options:
            # Uniform draws: each candidate has the same chance of being drawn.
            size = self.negative_sampler.num_samples
            # Scaled and weighted as the in-batch probabilities are (`CandidateFrequencies`).
            scale = getattr(self.frequency_estimator, "scale", 1.0)
            weight = getattr(self.frequency_estimator, "weight", 1.0)
            probability = min(1.0, self.negative_sampler.sampling_probability * scale) ** weight
            extra["extra_negative_sampling_probability"] = tf.fill(
                [size], tf.constant(probability, tf.float32)
            )
        return extra
