"""The job directory: its layout, and what re-running into a used one does (resume or refuse).

A run writes `run_state.json` first (`"status": "running"` with the resolved config) and marks it
`"complete"` at the end (`"interrupted"` after a SIGTERM, see `preemption.py`). Re-running with:
- the same config after an interrupted run: resumes from the last checkpoint (also with `overwrite`, so a
  restarted job with identical arguments resumes);
- a finished run in job_dir: refuses, unless `overwrite` (then the old outputs are removed);
- a different config: refuses, naming the fields that differ.

Example:
>>> layout = JobDir("gs://bucket/run1")
>>> layout.query_model
'gs://bucket/run1/query_model'
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from tfrs_twotower.errors import JobDirError
from tfrs_twotower.training.links import check_links

# Fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"overwrite", "verbose"}
_OUTPUTS = (
    "query_model",
    "candidate_model",
    "candidate_embeddings",
    "index",
    "tensorboard",
    "checkpoints",
    "metrics.json",
    "config.json",
    "record_counts.json",
    "run_state.json",
    "schema.json",
)


class JobDir:
    """Paths inside a job directory (local or any `tf.io.gfile` URI)."""

    def __init__(self, root: str):
        self.root = root

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    query_model = property(lambda self: self.path("query_model"))
    candidate_model = property(lambda self: self.path("candidate_model"))
    embeddings = property(lambda self: self.path("candidate_embeddings"))
    tensorboard = property(lambda self: self.path("tensorboard"))
    checkpoints = property(lambda self: self.path("checkpoints"))
    metrics = property(lambda self: self.path("metrics.json"))
    config = property(lambda self: self.path("config.json"))
    record_counts = property(lambda self: self.path("record_counts.json"))
    run_state = property(lambda self: self.path("run_state.json"))
    schema = property(lambda self: self.path("schema.json"))

    def read_state(self) -> dict[str, Any] | None:
        if not tf.io.gfile.exists(self.run_state):
            return None
        with tf.io.gfile.GFile(self.run_state) as f:
            return json.load(f)

    def write_state(self, status: str, config: dict[str, Any], **extra: Any) -> None:
        """Writes run_state.json: `status` ("running", "interrupted", "complete"), the config, `extra`."""
        check_links(self.root, ["run_state.json"], "write")
        self._makedirs()
        try:
            with tf.io.gfile.GFile(self.run_state, "w") as f:
                json.dump({"status": status, "config": config, **extra}, f, indent=2, sort_keys=True)
        except (tf.errors.OpError, OSError) as e:
            raise self._not_writable(e) from e

    def _makedirs(self) -> None:
        try:
            tf.io.gfile.makedirs(self.root)
        except (tf.errors.OpError, OSError) as e:
            raise self._not_writable(e) from e

    def _not_writable(self, error: BaseException) -> JobDirError:
        return JobDirError(
            f"job-dir {self.root} is not writable ({type(error).__name__}: {_first_line(error)}). Choose "
            "a --job-dir this user may write, or fix its permissions."
        )

    def check_usable(self) -> None:
        """Raises `JobDirError` when job-dir is a file or holds a link leading out of it."""
        if tf.io.gfile.exists(self.root) and not tf.io.gfile.isdir(self.root):
            raise JobDirError(
                f"job-dir {self.root} is an existing file, not a directory. Pass a directory path to "
                "--job-dir (it is created if missing)."
            )
        check_links(self.root, _OUTPUTS, "write or delete")

    def prepare(self, config: dict[str, Any], overwrite: bool) -> bool:
        """Makes job_dir ready for a run of `config`. Returns True when the run resumes an interrupted one.

        Raises:
          JobDirError: when job_dir holds a finished run (without `overwrite`) or a different run.
        """
        self.check_usable()
        state = self.read_state()
        if state is None:
            if (
                tf.io.gfile.exists(self.root)
                and any(name.rstrip("/") in _OUTPUTS for name in tf.io.gfile.listdir(self.root))
                and not overwrite
            ):
                raise JobDirError(
                    f"job_dir {self.root} holds outputs of an unknown run (no run_state.json). "
                    "Use a new --job-dir, or pass --overwrite to replace them."
                )
            if overwrite:
                self.clear()
            self._makedirs()
            return False
        previous = state.get("config", {})
        changed = sorted(
            key
            for key in set(previous) | set(config)
            if key not in _RESUMABLE_CHANGES and previous.get(key) != config.get(key)
        )
        if state.get("status") != "complete" and not changed:
            # The same job started again (a restart after a crash or preemption, with the same arguments,
            # --overwrite included): resume it rather than start over.
            return True
        if overwrite:
            self.clear()
            self._makedirs()
            return False
        if state.get("status") == "complete":
            differ = f" Its settings differ from this run's in: {', '.join(changed)}." if changed else ""
            raise JobDirError(
                f"job_dir {self.root} holds a finished run.{differ} Use a new --job-dir, or pass --overwrite "
                "to replace its outputs."
            )
        if changed:
            raise JobDirError(
                f"job_dir {self.root} holds an interrupted run with other settings ({', '.join(changed)} "
                "differ), so it cannot be resumed. Re-run with the same arguments to resume it, use a new "
                "--job-dir, or pass --overwrite to start over."
            )
        return True

    def clear(self) -> None:
        """Deletes the run's outputs (never through a link leading out of job-dir: `UnsafeLinkError`)."""
        if not tf.io.gfile.exists(self.root):
            return
        names = [name.rstrip("/") for name in tf.io.gfile.listdir(self.root)]
        check_links(self.root, [name for name in names if name in _OUTPUTS], "delete")
        for name in names:
            if name in _OUTPUTS:
                target = self.path(name)
                if tf.io.gfile.isdir(target):
                    tf.io.gfile.rmtree(target)
                else:
                    tf.io.gfile.remove(target)


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
