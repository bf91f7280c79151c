"""Models in the TensorFlow Recommenders style: a Keras model whose subclasses define `compute_loss`."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


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
        regularization = tf.add_n([tf.cast(v, loss.dtype) for v in self.losses]) if self.losses else tf.zeros_like(loss)
        return loss, regularization, loss + regularization

    def _logs(self, loss, regularization, total):
        self.loss_mean.update_state(loss)
        self.regularization_loss_mean.update_state(regularization)
        self.total_loss_mean.update_state(total)
        return self.get_metrics_result()

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, regularization, total = self._loss_terms(data, training=True)
        variables = self.trainable_variables
        gradients = tape.gradient(total, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables) if g is not None]
        )
        return self._logs(loss, regularization, total)

    def test_step(self, data):
        return self._logs(*self._loss_terms(data, training=False))

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
                    "`sampling_probability='counts'` needs `frequency_estimator=tasks.CandidateFrequencies(ids, "
                    "counts, batch_size)` with the training data's candidate counts."
                )
            if frequency_estimator is None:
                from tfrs_twotower.tasks import FrequencyEstimator

                frequency_estimator = FrequencyEstimator()
        self.frequency_estimator = frequency_estimator
        self.negative_sampler = negative_sampler

    def build(self, input_shape=None):
        # The towers build on their first call: their inputs are feature dicts.
        self.built = True

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
        if "negatives" in inputs:
            options.update(self._explicit_negatives(inputs, training))
        if self.negative_sampler is not None and training:
            options.update(self._mixed_negatives(options, training))
        return self.task(query_embeddings, candidate_embeddings, **options)

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
            extra["extra_negative_sampling_probability"] = tf.fill(
                [size], tf.constant(self.negative_sampler.sampling_probability, tf.float32)
            )
        return extra
