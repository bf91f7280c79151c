"""Checkpoints that survive damage, and epoch logs that survive a resume.

- `restore_intact` (the custom loop's `tf.train.Checkpoint`s): tries the newest checkpoint, then the older
  ones, and says which it used; a damaged file (a checksum mismatch, an empty `.index`) is skipped.
- `SafeBackupAndRestore` (Keras `fit`): `BackupAndRestore` keeping the previous checkpoint too, with a
  SHA-256 of each weights file (HDF5 has no checksums of its own), falling back to the previous one when
  the latest is damaged. With no intact checkpoint both start from the beginning, and say so.
- `EpochHistory` (Keras `fit`): each finished epoch's logs kept next to the checkpoints, so a resumed
  run's metrics.json lists every epoch, numbered from 1.

Example:
>>> callbacks = [EpochHistory("job/checkpoints"), SafeBackupAndRestore("job/checkpoints")]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

import keras
import tensorflow as tf

_HISTORY = "epoch_logs.json"


def restore_intact(
    checkpoint: tf.train.Checkpoint, directory: str, log: Callable[[str], None] = print
) -> str | None:
    """Restores the newest intact checkpoint of `directory` into `checkpoint`; returns its path or None."""
    state = tf.train.get_checkpoint_state(directory)
    paths = list(reversed(state.all_model_checkpoint_paths)) if state is not None else []
    if state is not None and state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.insert(0, state.model_checkpoint_path)
    damaged = []
    for path in paths:
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            damaged.append(f"{os.path.basename(path)} ({type(e).__name__}: {_first_line(e)})")
            continue
        if damaged:
            log(
                f"Damaged checkpoint(s) skipped: {'; '.join(damaged)}. Resumed from the newest intact "
                f"one, {path}."
            )
        return path
    if damaged:
        log(
            f"No intact checkpoint in {directory} ({'; '.join(damaged)}): training starts from the beginning."
        )
    return None


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps the previous checkpoint and falls back to it when the latest is
    damaged (its SHA-256 does not match, or it does not load)."""

    def __init__(self, backup_dir: str, log: Callable[[str], None] = print):
        super().__init__(backup_dir, double_checkpoint=True)
        self._log = log
        self._digest_path = f"{self._weights_path}.sha256"

    def _save_model(self):
        if tf.io.gfile.exists(self._digest_path):
            tf.io.gfile.copy(self._digest_path, f"{self._digest_path}.bkp", overwrite=True)
        super()._save_model()
        with tf.io.gfile.GFile(self._digest_path, "w") as f:
            f.write(_sha256(self._weights_path))

    def on_train_begin(self, logs=None):
        damaged = []
        for suffix in ("", ".bkp"):
            weights, meta = self._weights_path + suffix, self._training_metadata_path + suffix
            if not tf.io.gfile.exists(weights):
                continue
            try:
                digest = self._digest_path + suffix
                if tf.io.gfile.exists(digest):
                    with tf.io.gfile.GFile(digest) as f:
                        if f.read().strip() != _sha256(weights):
                            raise ValueError("its SHA-256 does not match the one written with it")
                self._restore(weights, meta)
            except Exception as e:  # h5py, OSError, ValueError: a file that does not load is damaged
                damaged.append(f"{weights} ({type(e).__name__}: {_first_line(e)})")
                continue
            if damaged:
                self._log(
                    f"Damaged checkpoint skipped: {damaged[0]}. Resumed from the previous one, {weights}."
                )
            return
        if damaged:
            self._log(f"No intact checkpoint ({'; '.join(damaged)}): training starts from the first epoch.")
            self.model._initial_epoch = 0

    def _restore(self, weights: str, meta: str) -> None:
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        if not weights.endswith(".weights.h5"):  # Keras loads only files named *.weights.h5
            copy = os.path.join(self.backup_dir, "previous.weights.h5")
            tf.io.gfile.copy(weights, copy, overwrite=True)
            try:
                self.model.load_weights(copy)
            finally:
                tf.io.gfile.remove(copy)
        else:
            self.model.load_weights(weights)
        epoch = 0
        if tf.io.gfile.exists(meta):
            with tf.io.gfile.GFile(meta) as f:
                epoch = int(json.loads(f.read())["epoch"])
        self.model._initial_epoch = epoch


class EpochHistory(keras.callbacks.Callback):
    """Every finished epoch's logs (`history()`, oldest first), kept in `directory` across a resume.

    Place it after the callbacks that add logs (the corpus evaluation) and before `BackupAndRestore`,
    so an epoch's logs are on disk before its checkpoint.
    """

    def __init__(self, directory: str):
        super().__init__()
        self.path = os.path.join(directory, _HISTORY)
        self.logs: dict[int, dict[str, float]] = {}
        if tf.io.gfile.exists(self.path):
            with tf.io.gfile.GFile(self.path) as f:
                self.logs = {int(k): v for k, v in json.load(f).items()}

    def on_epoch_end(self, epoch, logs=None):
        self.logs[epoch] = {k: float(v) for k, v in (logs or {}).items()}
        tf.io.gfile.makedirs(os.path.dirname(self.path))
        with tf.io.gfile.GFile(self.path, "w") as f:
            json.dump({str(k): v for k, v in self.logs.items()}, f)

    def history(self, num_epochs: int | None = None) -> list[dict[str, Any]]:
        epochs = sorted(e for e in self.logs if num_epochs is None or e < num_epochs)
        return [self.logs[e] for e in epochs]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    text = (getattr(error, "message", None) or str(error)).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
