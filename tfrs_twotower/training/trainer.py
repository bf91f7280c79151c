"""`train(config)`: a training run, top to bottom. This is what `tfrs-twotower train` runs.

A run is five stages, each a function you can call on its own (scripts and benchmarks do):

1. inputs  `prepare_inputs(config)`: scan the files (counting every record), build the datasets and corpus;
2. model   `build_model(config, schema, inputs=inputs)` then `build_weights(model, config, inputs)`;
3. fit     `fit(model, inputs, config)`: Keras `fit` or the tf.distribute loop, resumable, evaluated
           against the whole corpus after each epoch;
4. export  `export_job(model, inputs, job_dir)`: the encoders, the corpus embeddings, the index;
5. report  `write_report(job_dir, history, ...)`: metrics.json and record_counts.json.

`train` adds the job directory's bookkeeping (refuse, resume or overwrite; run_state.json) and the
distribution strategy around them.

Example:
>>> from tfrs_twotower import TrainingConfig, train
>>> result = train(TrainingConfig(training_data_path="sample/train.jsonl",
...                               input_schema_path="sample/schema.json", job_dir="out"))  # doctest: +SKIP
>>> result.metrics["val_factorized_top_k/top_10_categorical_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import keras
import numpy as np

from tfrs_twotower.features.text import adapt_text_features, candidate_documents
from tfrs_twotower.metrics.baselines import recall_baselines
from tfrs_twotower.models import TwoTowerModel
from tfrs_twotower.optimizers import RowSparseAdagrad  # noqa: F401  (re-exported: tests patch it here)
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.training.build import (  # noqa: F401  (make_optimizer & co. are re-exported)
    build_model,
    candidate_id_feature,
    make_batch_metrics,
    make_optimizer,
)
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.devices import configure_gpu_memory
from tfrs_twotower.training.distribution import Distribution
from tfrs_twotower.training.fitting import build_weights, fit
from tfrs_twotower.training.inputs import prepare_inputs
from tfrs_twotower.training.job_dir import JobDir
from tfrs_twotower.training.memory_check import check_table_memory
from tfrs_twotower.training.outputs import export_job, write_report
from tfrs_twotower.training.preemption import PreemptionGuard
from tfrs_twotower.training.report import example_query


@dataclasses.dataclass
class TrainingResult:
    """What `train` returns: the trained model, its metrics and where the outputs went.

    Attributes: `model` (the `TwoTowerModel`), `config`, `schema`, `metrics` (the last epoch's logs,
    e.g. `val_recall_at_10`), `history` (one dict per epoch), `record_counts` (as `record_counts.json`),
    `paths` (output name -> path in job-dir), `candidate_ids` and `candidate_embeddings` (the corpus, in
    the same order), `example` (a query with its top candidates, as the CLI prints it), `baselines`
    (Recall@K of a random and of the most-popular ranking on the same evaluation pairs, see
    `metrics.baselines`).

    Example:
    >>> result = train(config)  # doctest: +SKIP
    >>> result.paths["query_model"], result.candidate_embeddings.shape  # doctest: +SKIP
    ('runs/sample/query_model', (398, 64))
    """

    model: TwoTowerModel
    config: TrainingConfig
    schema: InputSchema
    metrics: dict[str, float]
    history: list[dict[str, float]]
    record_counts: dict[str, Any]
    paths: dict[str, str]
    candidate_ids: list[str]
    candidate_embeddings: np.ndarray
    example: dict[str, Any] | None = None
    baselines: dict[str, dict[int, float]] | None = None


def train(
    config: TrainingConfig | dict, callbacks: Sequence[keras.callbacks.Callback] = ()
) -> TrainingResult:
    """Runs a whole training job as `config` describes (what `tfrs-twotower train` runs).

    Scans the data (counting every record as used or rejected), builds the towers and the task, fits
    (Keras `fit`, or a `tf.distribute` loop with several replicas), evaluates against the whole candidate
    corpus after each epoch, and exports the encoders, the candidate embeddings and the retrieval index
    into `config.job_dir`.

    Args:
      config: a `TrainingConfig` (or a dict of its fields).
      callbacks: extra Keras callbacks for the fit.

    Returns:
      A `TrainingResult`.

    Raises:
      ValueError: a bad setting, schema or record (the message names the field, or the file, line and
        feature); `JobDirError` when job_dir holds another run.

    Example:
    >>> from tfrs_twotower.sample_data import generate_sample
    >>> files = generate_sample("sample")  # doctest: +SKIP
    >>> result = train(TrainingConfig(training_data_path=files.train_jsonl, input_schema_path=files.schema,
    ...                               job_dir="runs/sample", num_epochs=5, overwrite=True))  # doctest: +SKIP
    >>> round(result.metrics["val_recall_at_10"], 2)  # doctest: +SKIP
    0.22
    """
    if isinstance(config, dict):
        config = TrainingConfig.from_json(config)
    config.validate()
    configure_gpu_memory(config.gpu_memory_alloc)  # before anything initialises the devices
    distribution = Distribution(config.distribution)
    try:
        with PreemptionGuard(JobDir(distribution.output_dir(config.job_dir)), config.to_json()) as guard:
            return _train(config, [*callbacks, guard.callback()], distribution)  # SIGTERM: see preemption
    finally:
        distribution.cleanup()


def _train(
    config: TrainingConfig, callbacks: Sequence[keras.callbacks.Callback], distribution: Distribution
) -> TrainingResult:
    log = _printer(config.verbose)
    schema = load_schema(config.input_schema_path)
    # Only the chief writes job-dir; other workers write the same outputs to a temporary directory.
    job = JobDir(distribution.output_dir(config.job_dir))
    check_table_memory(schema, config.optimizer)  # before the scan: fail at once, with the arithmetic
    resumed = start_job(job, config, schema)
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()

    # 1. Inputs: every record scanned and counted; the datasets and the candidate corpus.
    inputs = prepare_inputs(config, schema)
    log(inputs.describe())
    distribution.barrier()  # the chief has prepared job-dir (and its checkpoints) for everyone

    # 2. Model: towers, task and optimizer, with its weights made (checkpoints restore into them).
    with distribution.scope():
        model = build_model(config, schema, inputs=inputs)
        build_weights(model, config, inputs)
        # The default text encoders start from the candidate corpus' TF-IDF LSA (features/text.py).
        adapt_text_features(model, candidate_documents(schema, inputs.corpus.candidates))

    # 3. Fit: resumes from job-dir/checkpoints when an interrupted run left some.
    if resumed:
        log(f"Resuming the interrupted run in {config.job_dir} from its last checkpoint.")
    history = fit(model, inputs, config, distribution, callbacks, job_dir=config.job_dir)
    train_seconds = time.perf_counter() - started

    # 4. Export: encoders, corpus embeddings and the retrieval index.
    paths, embeddings = export_job(model, inputs, job.root)

    # 5. Report: metrics.json, record_counts.json; the run is marked complete.
    counts = inputs.record_counts()
    final = write_report(job.root, history, counts, train_seconds, int(model.optimizer.iterations.numpy()))
    paths.update(
        {
            "metrics": job.metrics,
            "record_counts": job.record_counts,
            "config": job.config,
            "tensorboard": job.tensorboard,
            "schema": job.schema,
        }
    )
    job.write_state("complete", config.to_json())
    return TrainingResult(
        model=model,
        config=config,
        schema=schema,
        metrics=final,
        history=[{"epoch": i + 1, **logs} for i, logs in enumerate(history)],
        record_counts=counts,
        paths=paths,
        candidate_ids=list(inputs.corpus_keys),
        candidate_embeddings=embeddings,
        example=example_query(model, inputs, embeddings),
        baselines=_baselines(inputs, config),
    )


def _baselines(inputs, config: TrainingConfig) -> dict[str, dict[int, float]] | None:
    evaluated = inputs.positive_counts("eval")
    if not evaluated or not inputs.corpus_keys:
        return None
    return recall_baselines(
        inputs.positive_counts("train"), evaluated, len(inputs.corpus_keys), config.top_ks
    )


def start_job(job: JobDir, config: TrainingConfig, schema: InputSchema) -> bool:
    """Makes job-dir ready (refusing a used one unless resuming or overwriting), marks the run as
    running and writes its schema and config. Returns True when the run resumes an interrupted one."""
    resumed = job.prepare(config.to_json(), overwrite=config.overwrite)
    job.write_state("running", config.to_json())
    schema.save(job.schema)
    config.save(job.config)
    return resumed


def _printer(verbose: int):
    def log(message: str) -> None:
        if verbose:
            print(message, flush=True)

    return log
