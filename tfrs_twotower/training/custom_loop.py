"""A `tf.distribute` custom training loop for the two-tower model, with step-level checkpoints.

Keras 3 `fit` does not run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so multi-worker
runs (and runs asked to checkpoint every N steps) train here: `strategy.run(model.distributed_step)` over
a distributed dataset, the same model, task and metrics as `fit`, and the same Keras callbacks
(TensorBoard, the corpus evaluation, progress), so the outputs are the same.

Fault tolerance: the model, the optimizer (its `iterations` is the global step) and the metrics'
running state are checkpointed in `checkpoint_dir` every `checkpoint_every_steps` steps and at the end of
each epoch, with the finished epochs' logs beside them. A run started again with the same arguments
restores the latest checkpoint, skips the batches already trained on (the input order is seeded, so
they are the same batches) and ends after the same number of steps as an uninterrupted run (Keras
`BackupAndRestore(save_freq=N)` semantics).

Example:
>>> loop = CustomLoop(model, strategy, "job/checkpoints", checkpoint_every_steps=100)  # doctest: +SKIP
>>> history = loop.fit(train_fn, epochs=3, steps_per_epoch=40, callbacks=[...])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from tfrs_twotower.errors import Interrupted
from tfrs_twotower.training.checkpoints import restore_intact

_HISTORY = "history.json"


class CustomLoop:
    """Trains `model` (built and compiled under `strategy.scope()`) with `strategy.run`.

    Args:
      model: a `tfrs_twotower.models.Model` (it provides `distributed_step`).
      strategy: the `tf.distribute.Strategy` the model was built under.
      checkpoint_dir: where this worker writes checkpoints (the chief: job-dir/checkpoints).
      restore_dir: where to restore from (the chief's directory; default: `checkpoint_dir`).
      checkpoint_every_steps: also checkpoint every N steps (None: at each epoch's end only).
      write_history: write the finished epochs' logs next to the checkpoints (the chief does).
    """

    def __init__(
        self,
        model: keras.Model,
        strategy: tf.distribute.Strategy,
        checkpoint_dir: str,
        restore_dir: str | None = None,
        checkpoint_every_steps: int | None = None,
        write_history: bool = True,
    ):
        self.model = model
        self.strategy = strategy
        self.checkpoint_dir = checkpoint_dir
        self.restore_dir = restore_dir or checkpoint_dir
        self.checkpoint_every_steps = checkpoint_every_steps
        self.write_history = write_history
        with strategy.scope():
            # Slots made now, not at the first step: a checkpoint can only restore variables that exist.
            model.optimizer.build(model.trainable_variables)
        metric_state = [v.value if hasattr(v, "value") else v for v in model.metrics_variables]
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, metrics=metric_state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=2)

        def train_step(iterator):
            strategy.run(model.distributed_step, args=(next(iterator),))

        def test_step(iterator):
            strategy.run(model.distributed_step, args=(next(iterator),), kwargs={"training": False})

        self._train_step = tf.function(train_step)
        self._test_step = tf.function(test_step)

    @property
    def step(self) -> int:
        """The global step: training steps taken so far, restored ones included."""
        return int(self.model.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Restores the latest checkpoint of `restore_dir`, if any. Returns the global step reached."""
        restore_intact(self.checkpoint, self.restore_dir)  # skips damaged checkpoints, and says so
        return self.step

    def fit(
        self,
        train_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset],
        epochs: int,
        steps_per_epoch: int,
        eval_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset] | None = None,
        eval_steps: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: int = 1,
    ) -> list[dict[str, float]]:
        """Trains to `epochs * steps_per_epoch` global steps (resuming); returns each epoch's logs.

        `train_fn` / `eval_fn` make one input pipeline's repeating dataset of per-replica batches.
        """
        start = self.restore()
        first_epoch, first_step = divmod(start, steps_per_epoch)
        if start and verbose:
            where = f"epoch {first_epoch + 1}, step {first_step}"
            print(f"Restored the checkpoint of step {start} ({where}).", flush=True)
        history = self._read_history()[:first_epoch]
        skip = start * self._batches_per_step()
        train = iter(self.strategy.distribute_datasets_from_function(lambda c: train_fn(c).skip(skip)))
        recorder = _EpochLogs()  # last, so it sees what the other callbacks add (the corpus metrics)
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, recorder],
            add_progbar=verbose != 0,
            model=self.model,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
        )
        callback_list.on_train_begin()
        try:
            for epoch in range(first_epoch, epochs):
                resumed_mid_epoch = epoch == first_epoch and first_step > 0
                if not resumed_mid_epoch:
                    self.model.reset_metrics()  # a mid-epoch checkpoint restored the epoch's running metrics
                callback_list.on_epoch_begin(epoch)
                for batch in range(first_step if resumed_mid_epoch else 0, steps_per_epoch):
                    callback_list.on_train_batch_begin(batch)
                    self._train_step(train)
                    callback_list.on_train_batch_end(batch)
                    if self.checkpoint_every_steps and self.step % self.checkpoint_every_steps == 0:
                        self.manager.save(checkpoint_number=self.step)
                logs = self._metric_logs()
                if eval_fn is not None and eval_steps:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(eval_fn, eval_steps).items()})
                callback_list.on_epoch_end(epoch, logs)
                history.append(recorder.logs)
                self.manager.save(checkpoint_number=self.step)
                self._write_history(history)
        except Interrupted:  # SIGTERM (see preemption.py): keep this step's state, then stop
            self.manager.save(checkpoint_number=self.step)
            self._write_history(history)
            raise
        callback_list.on_train_end()
        return history

    def evaluate(self, eval_fn, steps: int) -> dict[str, float]:
        """The test-step metrics over `steps` global evaluation batches."""
        self.model.reset_metrics()
        batches = iter(self.strategy.distribute_datasets_from_function(eval_fn))
        for _ in range(steps):
            self._test_step(batches)
        return self._metric_logs()

    def _metric_logs(self) -> dict[str, float]:
        # Reading on-read (per replica) metric variables is a collective: every worker does it.
        return {name: float(value) for name, value in self.model.get_metrics_result().items()}

    def _batches_per_step(self) -> int:
        # Each worker's pipeline feeds its local replicas one batch each per step.
        workers = getattr(self.strategy.extended, "_num_workers", 1) or 1
        return max(1, self.strategy.num_replicas_in_sync // workers)

    def _history_path(self) -> str:
        return os.path.join(self.restore_dir, _HISTORY)

    def _read_history(self) -> list[dict[str, float]]:
        path = self._history_path()
        if tf.train.latest_checkpoint(self.restore_dir) is None or not tf.io.gfile.exists(path):
            return []
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def _write_history(self, history: list[dict[str, Any]]) -> None:
        if self.write_history:
            with tf.io.gfile.GFile(os.path.join(self.checkpoint_dir, _HISTORY), "w") as f:
                json.dump(history, f)


class _EpochLogs(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.logs = {name: float(value) for name, value in (logs or {}).items()}


def train_with_custom_loop(
    config,
    model: keras.Model,
    inputs,
    distribution,
    checkpoint_dir: str,
    restore_dir: str,
    callbacks: Sequence[keras.callbacks.Callback],
) -> list[dict[str, float]]:
    """Runs `config`'s epochs through `CustomLoop` under `distribution`; returns each epoch's logs.

    Steps per epoch follow Vertex: `training_steps_per_epoch` / `eval_steps_per_epoch` when set (required
    with several workers, as on Vertex); otherwise one pass over the data (see `sharded_inputs`).
    """
    from tfrs_twotower.training import sharded_inputs as shards

    replicas = distribution.num_replicas
    sharded = replicas > 1
    train_batch = config.train_batch_size
    distribution.check_batch_size("train_batch_size", train_batch)
    steps = config.training_steps_per_epoch or _one_pass_steps(
        "training_steps_per_epoch",
        shards.records_per_pass(config, inputs, True),
        train_batch,
        sharded,
        distribution.num_workers,
    )
    eval_args = shards.eval_dataset_args(config, inputs)
    eval_fn, eval_steps = None, None
    if eval_args is not None:
        distribution.check_batch_size("eval_batch_size", config.eval_batch_size)
        eval_fn = shards.dataset_fn(eval_args, config.eval_batch_size, replicas)
        eval_steps = config.eval_steps_per_epoch or _one_pass_steps(
            "eval_steps_per_epoch",
            shards.records_per_pass(config, inputs, False),
            config.eval_batch_size,
            sharded,
            distribution.num_workers,
        )
    loop = CustomLoop(
        model,
        distribution.strategy,
        checkpoint_dir,
        restore_dir=restore_dir,
        checkpoint_every_steps=config.checkpoint_every_steps,
        write_history=distribution.is_chief,
    )
    return loop.fit(
        shards.dataset_fn(shards.train_dataset_args(config, inputs), train_batch, replicas),
        epochs=config.num_epochs,
        steps_per_epoch=steps,
        eval_fn=eval_fn,
        eval_steps=eval_steps,
        callbacks=callbacks,
        verbose=config.verbose,
    )


def _one_pass_steps(name: str, records: int, global_batch: int, sharded: bool, workers: int) -> int:
    from tfrs_twotower.training.sharded_inputs import steps_per_pass

    steps = steps_per_pass(records, global_batch, sharded)
    if workers > 1:
        raise ValueError(
            f"The `{name}` parameter is required with several workers (as on Vertex AI). One pass over the "
            f"{records} records in global batches of {global_batch} is {steps} steps: set "
            f"--{name} {max(steps, 1)}."
        )
    if steps == 0:
        raise ValueError(
            f"{records} records make no complete global batch of {global_batch}: lower the batch size or set "
            f"--{name}."
        )
    return steps
