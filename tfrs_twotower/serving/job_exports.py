"""What a job-dir has exported, and what to re-run when something `query` needs is missing.

A job-dir can be half-exported (training interrupted during export, a file deleted by hand). `query`
serves `index/<flavour>` when it is there, and otherwise builds the index from `query_model/` and
`candidate_embeddings/`; `check_servable` says which of those is missing and which command writes it.

Example:
>>> import tempfile
>>> check_servable(tempfile.mkdtemp(), "brute_force", k=10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tfrs_twotower.errors.ExportError: job-dir ... cannot serve queries: schema.json, ... are missing...
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tfrs_twotower.errors import ExportError

_EMBEDDINGS = ("candidate_embeddings/embeddings.npy", "candidate_embeddings/ids.txt")


def _exists(job_dir: str, name: str) -> bool:
    return tf.io.gfile.exists(os.path.join(job_dir, name))


def _state(job_dir: str) -> str | None:
    path = os.path.join(job_dir, "run_state.json")
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f).get("status")
    except (ValueError, tf.errors.OpError):
        return None


def has_embeddings(job_dir: str) -> bool:
    return all(_exists(job_dir, name) for name in _EMBEDDINGS)


def indexed_candidates(job_dir: str, flavour: str) -> int | None:
    """The corpus size recorded for `index/<flavour>` in `index/index.json`, or None."""
    path = os.path.join(job_dir, "index", "index.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f).get(flavour, {}).get("num_candidates")


def check_servable(job_dir: str, flavour: str, k: int, exported_k: int | None = None) -> None:
    """Raises `ExportError` naming what is missing when `job_dir` cannot serve `flavour` top-`k` queries.

    `exported_k`: the k of the exported `index/<flavour>` (None when there is none).
    """
    missing = [name for name in ("schema.json",) if not _exists(job_dir, name)]
    if exported_k is None or exported_k < k:
        missing += [
            name for name in ("query_model/saved_model.pb", *_EMBEDDINGS) if not _exists(job_dir, name)
        ]
    if not missing:
        return
    status = _state(job_dir)
    if status in ("running", "interrupted"):
        fix = (
            f"its training run is {status} (run_state.json): re-run the same `tfrs-twotower train` command "
            "to finish it (it resumes from its checkpoint and exports everything)."
        )
    elif any(name.startswith("candidate_embeddings") or name.startswith("query_model") for name in missing):
        fix = (
            "re-run `tfrs-twotower train --overwrite` with the run's arguments (config.json holds them) to "
            "export it again"
        )
        if exported_k is not None:
            fix += f", or ask for at most --k {exported_k} (what index/{flavour} returns)"
        fix += "."
    else:
        fix = "pass a job-dir written by `tfrs-twotower train`."
    raise ExportError(
        f"job-dir {job_dir} cannot serve queries: {', '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} missing, and "
        + (
            f"index/{flavour} returns only {exported_k} results"
            if exported_k
            else f"there is no index/{flavour}"
        )
        + f"; {fix}"
    )
