"""Stage 3 of a training run: fit the model, resumably, with the corpus evaluation after each epoch.

Two drivers train the same model the same way: Keras `fit` (one replica) and the `tf.distribute` custom
loop of `custom_loop.py` (several replicas or workers, or step-level checkpoints). Both checkpoint in
job-dir/checkpoints, so a run started again with the same arguments resumes, and both write TensorBoard
logs to job-dir/tensorboard. An `EpochSelection` (stage 4a, `epoch_selection.py`) rides along: when
training ends the model holds the best epoch's weights, and it may stop training early.

Example:
>>> inputs = prepare_inputs(config, schema)  # doctest: +SKIP
>>> model = build_model(config, schema, inputs=inputs)  # doctest: +SKIP
>>> build_weights(model, config, inputs)  # doctest: +SKIP
>>> history = fit(model, inputs, config)  # doctest: +SKIP
>>> history[-1]["val_recall_at_10"]  # doctest: +SKIP
0.21
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfrs_twotower.data import make_dataset
from tfrs_twotower.features.text import adapt_text_features, candidate_documents
from tfrs_twotower.training.build import check_trainable
from tfrs_twotower.training.checkpoints import EpochHistory, SafeBackupAndRestore
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.corpus_evaluation import CorpusEvaluation
from tfrs_twotower.training.custom_loop import train_with_custom_loop
from tfrs_twotower.training.distribution import Distribution
from tfrs_twotower.training.epoch_selection import EpochSelection, epoch_selection
from tfrs_twotower.training.job_dir import JobDir
from tfrs_twotower.training.sharded_inputs import train_dataset_args


def build_weights(model: keras.Model, config: TrainingConfig, inputs) -> None:
    """Creates `model`'s weights with one small training batch (checkpoints can only restore existing
    weights) and starts the default text encoders from the corpus. Call it under the strategy's scope,
    as `build_model`.

    The batch comes from a dataset of its own: iterating `inputs.train_dataset` would use up its first
    shuffle, and the training order would then depend on the driver.
    """
    args = {**train_dataset_args(config, inputs), "batch_size": 8, "shuffle_buffer": 0}
    model(next(iter(make_dataset(**args).take(1))))
    # The default text encoders start from the candidate corpus' TF-IDF LSA (features/text.py).
    adapt_text_features(model, candidate_documents(inputs.schema, inputs.corpus.candidates))


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
    selection: EpochSelection | None = None,
) -> list[dict[str, float]]:
    """Trains `model` on `inputs` for `config.num_epochs`; returns every epoch's logs (oldest first).

    When it returns, `model` holds the weights of the epoch `config.best_epoch_metric` selects (the
    last one without evaluation data or with "none"), and training may have stopped early
    (`config.early_stopping_patience`).

    Args:
      model: a compiled model with its weights built (`build_model`, then `build_weights`), made under
        `distribution.scope()`.
      inputs: the `prepare_inputs` result (datasets, corpus, scans).
      config: the run's settings (epochs, steps, batch sizes, checkpointing).
      distribution: the run's `Distribution` (default: one replica, Keras `fit`).
      callbacks: extra Keras callbacks; they see the corpus metrics in each epoch's logs, and what they
        add to the logs can be selected by (`best_epoch_metric`).
      job_dir: where checkpoints and TensorBoard logs go (default: `config.job_dir`). A run whose
        job_dir/checkpoints holds an interrupted run's checkpoint resumes from it; they are removed at
        the end.
      selection: the `EpochSelection` to use (default: `epoch_selection(config, inputs, ...)`); pass
        your own to read its `summary()` (which epoch the model holds, and why) afterwards.

    Returns:
      Every epoch's logs, those of an interrupted run's epochs included: `{"epoch": 1, "loss": ...,
      "val_recall_at_10": ...}`.
    """
    distribution = distribution or Distribution("default")
    job_dir = job_dir or config.job_dir
    job = JobDir(distribution.output_dir(job_dir))  # only the chief writes job_dir
    if not model.built:
        build_weights(model, config, inputs)
    check_trainable(model, config)
    if selection is None:
        selection = epoch_selection(config, inputs, distribution, job_dir)
    evaluation = corpus_evaluation(config, inputs) if distribution.is_chief else None
    # The selection comes after the callbacks that add to an epoch's logs (the corpus metrics, the
    # caller's), and before BackupAndRestore, which deletes job-dir/checkpoints (the best weights too).
    before = [c for c in (evaluation,) if c is not None] + [
        *callbacks,
        keras.callbacks.TensorBoard(job.tensorboard),
        selection,
    ]
    if distribution.uses_custom_loop or config.checkpoint_every_steps is not None:
        # Multi-worker runs, and step-level checkpoints, need the custom loop (see custom_loop.py).
        train_with_custom_loop(
            config,
            model,
            inputs,
            distribution,
            job.checkpoints,
            JobDir(job_dir).checkpoints,
            callbacks=before,
        )
        distribution.barrier()  # every worker is done with the chief's checkpoints
        if tf.io.gfile.exists(job.checkpoints):
            tf.io.gfile.rmtree(job.checkpoints)  # as BackupAndRestore does when training ends
        return selection.history
    # A damaged latest checkpoint falls back to the previous one; each epoch's logs are on disk before
    # its checkpoint (checkpoints/epoch_logs.json).
    recorder = EpochHistory(job.checkpoints)
    backup = SafeBackupAndRestore(job.checkpoints, log=print if config.verbose else lambda message: None)
    model.fit(
        inputs.train_dataset,
        epochs=config.num_epochs,
        steps_per_epoch=config.training_steps_per_epoch,
        validation_data=inputs.eval_dataset,
        validation_steps=config.eval_steps_per_epoch,
        callbacks=[*before, recorder, backup],
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    return selection.history  # every epoch's, also across a resume (Keras' History holds only this call's)
