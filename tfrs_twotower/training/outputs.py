"""Stages 4 and 5 of a training run: export the trained model and write the run's report into job-dir.

`export_job` writes the query and candidate encoders (SavedModels), the corpus' embeddings and the
retrieval index; `write_report` writes metrics.json (every epoch's logs) and record_counts.json.

Example:
>>> paths, embeddings = export_job(model, inputs, "runs/sample")  # doctest: +SKIP
>>> final = write_report("runs/sample", history, inputs.record_counts(), train_seconds=12.5,
...                      train_steps=80)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfrs_twotower import progress
from tfrs_twotower.export import encode_batches, encoder_function, export_encoder, write_embeddings
from tfrs_twotower.serving.retrieval_export import export_retrieval_models
from tfrs_twotower.training.job_dir import JobDir


def export_job(model, inputs, job_dir: str) -> tuple[dict[str, str], np.ndarray]:
    """Exports `model` (a trained `TwoTowerModel`) for serving into `job_dir`.

    Writes job_dir/query_model and job_dir/candidate_model (SavedModels taking the schema's features),
    job_dir/candidate_embeddings (every corpus candidate of `inputs`, encoded) and job_dir/index (the
    retrieval SavedModels).

    Returns:
      `(paths, embeddings)`: output name -> path, and the corpus' embeddings `[N, output_dim]` in
      `inputs.corpus_keys` order.
    """
    job = JobDir(job_dir)
    schema = inputs.schema
    paths = {
        "query_model": export_encoder(model.query_tower, schema, "query", job.query_model),
        "candidate_model": export_encoder(model.candidate_tower, schema, "candidate", job.candidate_model),
    }
    with progress.step("Encoding the candidate corpus") as done:
        embeddings = encode_batches(
            encoder_function(model.candidate_tower, schema, "candidate"),
            inputs.corpus_dataset,
            getattr(model.candidate_tower, "output_dim", 0),
        )
        done(f"{len(embeddings)} candidates")
    paths.update(write_embeddings(job.embeddings, inputs.corpus_keys, embeddings))
    paths.update(export_retrieval_models(job.root, model.query_tower, schema=schema))  # job-dir/index/
    return paths, embeddings


def write_report(
    job_dir: str,
    history: Sequence[dict[str, float]],
    record_counts: dict[str, Any],
    train_seconds: float,
    train_steps: int,
) -> dict[str, float]:
    """Writes job_dir/metrics.json (`final`, `per_epoch`, time and steps) and job_dir/record_counts.json.

    Returns the `final` metrics: the last epoch's logs.
    """
    job = JobDir(job_dir)
    per_epoch = [{"epoch": i + 1, **epoch_logs} for i, epoch_logs in enumerate(history)]
    final = {k: v for k, v in per_epoch[-1].items() if k != "epoch"} if per_epoch else {}
    write_json(
        job.metrics,
        {
            "final": final,
            "per_epoch": per_epoch,
            "train_seconds": round(train_seconds, 3),
            "train_steps": int(train_steps),
        },
    )
    write_json(job.record_counts, record_counts)
    return final


def write_json(path: str, value: Any) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
