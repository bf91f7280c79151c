"""SIGTERM (a preempted VM, a Kubernetes eviction): stop cleanly, keep a checkpoint, say how to resume.

`PreemptionGuard` installs a SIGTERM handler for the run. While the model trains (`deferred()`), the
signal only sets a flag: the guard's callback stops training at the next batch boundary by raising
`Interrupted`, after the step in progress has finished, so no checkpoint is cut half-way. The custom loop
then saves a checkpoint at that step (it resumes mid-epoch, exactly); Keras `fit` keeps the checkpoint of
the last finished epoch (the interrupted epoch is trained again from its start, exactly). Outside
training (scanning, exporting) the signal raises `Interrupted` at once. The trainer marks
run_state.json "interrupted" and the CLI exits with `errors.EXIT_PREEMPTED` (143 = 128 + SIGTERM).

Example:
>>> with PreemptionGuard(JobDir("job"), config.to_json()) as guard:  # doctest: +SKIP
...     model.fit(data, callbacks=[guard.callback()])  # SIGTERM: stops at a batch boundary
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

import keras

from tfrs_twotower.errors import Interrupted

_MESSAGE = (
    'SIGTERM received (preemption or eviction): {where}. run_state.json says "interrupted"; re-run the '
    "same command to resume from the checkpoint in job-dir/checkpoints."
)


class PreemptionGuard:
    """Turns SIGTERM into `Interrupted` (at once, or at the next batch boundary while training) and
    marks the run "interrupted" in run_state.json when `Interrupted` leaves the `with` block.

    Args:
      job: the run's `JobDir` (None: no run_state.json to update).
      config: the run's config (as JSON), written with the state.
    """

    def __init__(self, job=None, config: dict | None = None):
        self.job, self.config = job, config
        self.requested = False
        self._deferring = False
        self._previous = None

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        if isinstance(error, Interrupted) and self.job is not None:
            state = self.job.read_state() or {}
            if state.get("status") == "running":  # this run's state (not a finished run's)
                self.job.write_state("interrupted", state.get("config", self.config or {}))

    def _handle(self, signum, frame) -> None:
        self.requested = True
        if not self._deferring:
            raise Interrupted(_MESSAGE.format(where="stopped before training finished"))

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """While training: SIGTERM stops at the next batch boundary (see `callback`)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def callback(self) -> keras.callbacks.Callback:
        """The Keras callback that defers SIGTERM while training and raises `Interrupted` at the next
        batch or epoch boundary."""
        return _StopWhenRequested(self)


class _StopWhenRequested(keras.callbacks.Callback):
    def __init__(self, guard: PreemptionGuard):
        super().__init__()
        self.guard = guard
        self.epoch = 0

    def on_train_begin(self, logs=None):
        self.guard._deferring = True

    def on_train_end(self, logs=None):
        self.guard._deferring = False

    def _check(self, where: str) -> None:
        if self.guard.requested:
            raise Interrupted(_MESSAGE.format(where=where))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._check(f"stopped before epoch {epoch + 1}")

    def on_train_batch_end(self, batch, logs=None):
        self._check(f"stopped after batch {batch + 1} of epoch {self.epoch + 1}")
