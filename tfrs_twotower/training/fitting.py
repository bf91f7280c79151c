"""Stage 3 of a training run: fit the model, resumably, with the corpus evaluation after each epoch.

Two drivers train the same model the same way: Keras `fit` (one replica) and the `tf.distribute` custom
loop of `custom_loop.py` (several replicas or workers, or step-level checkpoints). Both checkpoint in
job-dir/checkpoints, so a run started again with the same arguments resumes, and both write TensorBoard
logs to job-dir/tensorboard.

Example:
>>> inputs = prepare_inputs(config, schema)  # doctest: +SKIP
>>> model = build_model(config, schema, inputs=inputs)  # doctest: +SKIP
>>> build_weights(model, config, inputs)  # doctest: +SKIP
>>> history = fit(model, inputs, config)  # doctest: +SKIP
>>> history[-1]["val_recall_at_10"]  # doctest: +SKIP
0.21
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from tfrs_twotower.data import make_dataset
from tfrs_twotower.training.checkpoints import EpochHistory, SafeBackupAndRestore
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.corpus_evaluation import CorpusEvaluation
from tfrs_twotower.training.custom_loop import train_with_custom_loop
from tfrs_twotower.training.distribution import Distribution
from tfrs_twotower.training.job_dir import JobDir
from tfrs_twotower.training.sharded_inputs import train_dataset_args


def build_weights(model: keras.Model, config: TrainingConfig, inputs) -> None:
    """Creates `model`'s weights with one small training batch (checkpoints can only restore existing
    weights). Call it under the strategy's scope, as `build_model`.

    The batch comes from a dataset of its own: iterating `inputs.train_dataset` would use up its first
    shuffle, and the training order would then depend on the driver.
    """
    args = {**train_dataset_args(config, inputs), "batch_size": 8, "shuffle_buffer": 0}
    model(next(iter(make_dataset(**args).take(1))))


def corpus_evaluation(config: TrainingConfig, inputs) -> CorpusEvaluation | None:
    """The callback ranking each evaluation query's positive among the whole corpus after each epoch
    (`val_recall_at_K`, ...); None without evaluation data."""
    if inputs.eval_dataset is None:
        return None
    return CorpusEvaluation(
        inputs.schema,
        inputs.eval_dataset,
        inputs.corpus_dataset,
        inputs.corpus_keys,
        inputs.positive_keys,
        ks=config.top_ks,
        max_batches=config.eval_steps_per_epoch,
        seen_rows=inputs.seen_rows if inputs.has_seen else None,  # also `val_<metric>_seen_excluded`
    )


def fit(
    model: keras.Model,
    inputs,
    config: TrainingConfig,
    distribution: Distribution | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    job_dir: str | None = None,
) -> list[dict[str, float]]:
    """Trains `model` on `inputs` for `config.num_epochs`; returns each epoch's logs (oldest first).

    Args:
      model: a compiled model with its weights built (`build_model`, then `build_weights`), made under
        `distribution.scope()`.
      inputs: the `prepare_inputs` result (datasets, corpus, scans).
      config: the run's settings (epochs, steps, batch sizes, checkpointing).
      distribution: the run's `Distribution` (default: one replica, Keras `fit`).
      callbacks: extra Keras callbacks; they see the corpus metrics in each epoch's logs.
      job_dir: where checkpoints and TensorBoard logs go (default: `config.job_dir`). A run whose
        job_dir/checkpoints holds an interrupted run's checkpoint resumes from it; they are removed at
        the end.

    Returns:
      The logs of the epochs this call trained (`loss`, `val_recall_at_10`, ...).
    """
    distribution = distribution or Distribution("default")
    job_dir = job_dir or config.job_dir
    job = JobDir(distribution.output_dir(job_dir))  # only the chief writes job_dir
    evaluation = corpus_evaluation(config, inputs) if distribution.is_chief else None
    before = [c for c in (evaluation,) if c is not None] + [keras.callbacks.TensorBoard(job.tensorboard)]
    if distribution.uses_custom_loop or config.checkpoint_every_steps is not None:
        # Multi-worker runs, and step-level checkpoints, need the custom loop (see custom_loop.py).
        logs = train_with_custom_loop(
            config,
            model,
            inputs,
            distribution,
            job.checkpoints,
            JobDir(job_dir).checkpoints,
            callbacks=[*before, *callbacks],
        )
        distribution.barrier()  # every worker is done with the chief's checkpoints
        if tf.io.gfile.exists(job.checkpoints):
            tf.io.gfile.rmtree(job.checkpoints)  # as BackupAndRestore does when training ends
        return logs
    # Every epoch's logs survive a resume; a damaged latest checkpoint falls back to the previous one.
    recorder = EpochHistory(job.checkpoints)
    backup = SafeBackupAndRestore(job.checkpoints, log=print if config.verbose else lambda message: None)
    history = model.fit(
        inputs.train_dataset,
        epochs=config.num_epochs,
        steps_per_epoch=config.training_steps_per_epoch,
        validation_data=inputs.eval_dataset,
        validation_steps=config.eval_steps_per_epoch,
        callbacks=[*before, recorder, backup, *callbacks],
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    resumed = recorder.history(config.num_epochs)
    return resumed if len(resumed) >= len(history.epoch) else _epoch_logs(history)


def _epoch_logs(history: keras.callbacks.History) -> list[dict[str, Any]]:
    return [
        {k: float(v[i]) for k, v in history.history.items() if i < len(v)} for i in range(len(history.epoch))
    ]
