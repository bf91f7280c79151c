"""Stage 4a of a training run: choose the epoch to export (the best by a metric), and stop early.

More epochs do not always help retrieval: on MovieLens, Recall@K often peaks a few epochs before the
last. `EpochSelection` is a Keras callback (it works in `fit` and in the custom loop) that records every
epoch's logs, keeps the weights of the best epoch by `metric` in `directory`, optionally stops training
after `patience` epochs without improvement, and puts the best weights back into the model when
training ends, so that what is exported is the best epoch. Its state lives in `directory` (under
job-dir/checkpoints), so an interrupted and resumed run still exports the best epoch of the whole run.

Example:
>>> selection = EpochSelection("job/checkpoints/best_epoch", metric="val_recall_at_100", patience=3)
>>> model.fit(train, validation_data=evaluation, epochs=20,
...           callbacks=[corpus_evaluation, selection])  # doctest: +SKIP
>>> selection.summary()["epoch"]  # doctest: +SKIP
7
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import keras
import tensorflow as tf

from tfrs_twotower.errors import ConfigError

_STATE = "selection.json"
LAST_EPOCH = ("none", "last")


def selection_metric(
    best_epoch_metric: str, top_ks: Sequence[int], corpus_size: int | None = None
) -> str | None:
    """The metric `--best_epoch_metric` names: "auto" is `val_recall_at_K` for the largest K of `top_ks`
    below the corpus size (Recall@K of a corpus of K or fewer candidates is always 1); "none" and
    "last" are None (export the last epoch).

    >>> selection_metric("auto", (1, 10, 100)), selection_metric("auto", (1, 10, 100), corpus_size=60)
    ('val_recall_at_100', 'val_recall_at_10')
    >>> selection_metric("last", (10,)) is None
    True
    """
    if best_epoch_metric in LAST_EPOCH:
        return None
    if best_epoch_metric == "auto":
        below = [k for k in top_ks if corpus_size is None or k < corpus_size]
        return f"val_recall_at_{max(below) if below else min(top_ks)}"
    return best_epoch_metric


class EpochSelection(keras.callbacks.Callback):
    """Keeps the best epoch's weights by `metric`; stops after `patience` epochs without improvement.

    Place it after the callbacks that add to an epoch's logs (the corpus evaluation) and before
    `BackupAndRestore` (which deletes job-dir/checkpoints when training ends).

    Args:
      directory: where the best weights and the selection state go (created when needed).
      metric: the log to select by (`val_recall_at_100`, `val_loss`, ...); names ending in "loss" are
        minimised, others maximised; of equal values the later epoch wins. None: keep the last epoch
        (and no early stopping).
      patience: stop after this many epochs without improvement (None: never stop early).
      write: whether this process writes `directory` (only the chief does with several workers).
      last_reason: why the last epoch is exported when there is no metric (for metrics.json).
    """

    def __init__(
        self,
        directory: str,
        metric: str | None = None,
        patience: int | None = None,
        write: bool = True,
        last_reason: str = "the last epoch",
    ):
        super().__init__()
        self.directory = directory
        self.metric = metric
        self.mode = "min" if metric is not None and metric.endswith("loss") else "max"
        self.patience = patience
        self.write = write
        self.last_reason = last_reason
        self.state: dict[str, Any] = _new_state()

    # --- what the trainer reads after training ---
    @property
    def history(self) -> list[dict[str, float]]:
        """Every epoch's logs, resumed epochs included, each with its 1-based `epoch`."""
        return [{"epoch": int(n), **logs} for n, logs in sorted(self.state["epochs"].items(), key=_number)]

    @property
    def exported_epoch(self) -> int | None:
        """The epoch whose weights the model holds after training (None: no epoch ran)."""
        epochs = self.state["epochs"]
        if not epochs:
            return None
        return self.state["best_epoch"] or max(int(n) for n in epochs)

    def summary(self) -> dict[str, Any]:
        """Which epoch was exported and why: metrics.json's `exported_epoch`."""
        last = max((int(n) for n in self.state["epochs"]), default=None)
        summary: dict[str, Any] = {"epoch": self.exported_epoch, "last_epoch": last}
        if self.state["best_epoch"] is None:
            summary["reason"] = self.last_reason
            return summary
        summary.update(
            metric=self.metric,
            mode=self.mode,
            value=self.state["best_value"],
            values=[logs.get(self.metric) for logs in self.history],
            reason=f"the best {self.metric} ({'lowest' if self.mode == 'min' else 'highest'})",
        )
        if self.state.get("stopped_early"):
            summary["stopped_early"] = True
            summary["reason"] += f"; stopped after {self.patience} epochs without improvement"
        return summary

    # --- Keras callback ---
    def on_train_begin(self, logs=None):
        self.state = self._read_state() or _new_state()

    def on_epoch_begin(self, epoch, logs=None):
        # A resumed run redoes the epochs after its checkpoint: forget what they logged before.
        epochs = self.state["epochs"]
        for n in [n for n in epochs if int(n) > epoch]:
            del epochs[n]

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        logs = {name: float(value) for name, value in (logs or {}).items()}
        self.state["epochs"][str(number)] = logs
        if self.metric is not None and self.write:
            if self.metric not in logs:
                raise ConfigError(
                    f"The `best_epoch_metric` parameter names `{self.metric}`, which epoch {number} did not "
                    f"log. Choose one of {sorted(logs)} (val_ metrics need evaluation data), or 'none'."
                )
            value = logs[self.metric]
            best = self.state["best_value"]
            # A tie counts as better: a later epoch that scores the same has trained more.
            if best is None or (value <= best if self.mode == "min" else value >= best):
                self._save_best(number, value)
            elif self.patience is not None and number - self.state["best_epoch"] >= self.patience:
                self.model.stop_training = True
                self.state["stopped_early"] = True
        self._write_state()

    def on_train_end(self, logs=None):
        best, path = self.state["best_epoch"], self.state.get("weights")
        last = max((int(n) for n in self.state["epochs"]), default=None)
        if best is not None and best != last and path is not None:
            optimizer = getattr(self.model, "optimizer", None)
            steps = int(optimizer.iterations.numpy()) if optimizer is not None else None
            tf.train.Checkpoint(model=self.model).read(path).assert_existing_objects_matched()
            if steps is not None:  # the model tracks its optimizer: keep the count of steps trained
                optimizer.iterations.assign(steps)

    # --- state in `directory` ---
    def _save_best(self, number: int, value: float) -> None:
        previous = self.state.get("weights")
        path = os.path.join(self.directory, f"epoch-{number}")
        tf.train.Checkpoint(model=self.model).write(path)
        self.state.update(best_epoch=number, best_value=value, weights=path, stopped_early=False)
        self._write_state()  # before the old weights go: the state never names missing weights
        if previous is not None and previous != path:
            for name in tf.io.gfile.glob(previous + ".*"):
                tf.io.gfile.remove(name)

    def _read_state(self) -> dict[str, Any] | None:
        path = os.path.join(self.directory, _STATE)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            state = json.load(f)
        return state if state.get("metric") == self.metric else None

    def _write_state(self) -> None:
        if not self.write:
            return
        tf.io.gfile.makedirs(self.directory)
        path = os.path.join(self.directory, _STATE)
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            json.dump({**self.state, "metric": self.metric}, f)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _new_state() -> dict[str, Any]:
    return {"epochs": {}, "best_epoch": None, "best_value": None, "weights": None}


def _number(item: tuple[str, Any]) -> int:
    return int(item[0])


def epoch_selection(config, inputs, distribution=None, job_dir: str | None = None) -> EpochSelection:
    """The `EpochSelection` that `config` asks for (`best_epoch_metric`, `early_stopping_patience`),
    keeping its state in job_dir/checkpoints/best_epoch.

    Without evaluation data there is nothing to select by: the last epoch is exported. With several
    workers the chief selects (only it evaluates); early stopping is refused there, since every worker
    would have to stop at the same epoch.

    Example:
    >>> selection = epoch_selection(config, inputs)  # doctest: +SKIP
    >>> history = fit(model, inputs, config, selection=selection)  # doctest: +SKIP
    >>> selection.summary()  # doctest: +SKIP
    {'epoch': 3, 'last_epoch': 5, 'metric': 'val_recall_at_100', 'value': 0.41, ...}
    """
    from tfrs_twotower.training.job_dir import JobDir

    is_chief = distribution is None or distribution.is_chief
    if (
        config.early_stopping_patience is not None
        and distribution is not None
        and distribution.num_workers > 1
    ):
        raise ConfigError(
            f"The `early_stopping_patience` parameter is not supported with several workers (here "
            f"{distribution.num_workers}): only the chief evaluates. Drop --early_stopping_patience (the "
            "best epoch is still exported) or train on one worker."
        )
    metric = selection_metric(config.best_epoch_metric, config.top_ks, len(inputs.corpus_keys))
    last_reason = "the last epoch (--best_epoch_metric none)"
    if metric is not None and inputs.eval_dataset is None:
        metric, last_reason = None, "the last epoch (no evaluation data to select by)"
    if not is_chief:
        metric = None
    root = distribution.output_dir(job_dir or config.job_dir) if distribution else (job_dir or config.job_dir)
    return EpochSelection(
        os.path.join(JobDir(root).checkpoints, "best_epoch"),
        metric=metric,
        patience=config.early_stopping_patience if metric is not None else None,
        write=is_chief,
        last_reason=last_reason,
    )
