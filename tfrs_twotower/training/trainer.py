"""`train(config)`: scan the data, build the two-tower model, fit it, evaluate it and export it.

This is what `tfrs-twotower train` runs; notebooks and scripts call it directly.

Example:
>>> from tfrs_twotower import TrainingConfig, train
>>> result = train(TrainingConfig(training_data_path="sample/train.jsonl",
...                               input_schema_path="sample/schema.json", job_dir="out"))  # doctest: +SKIP
>>> result.metrics["val_factorized_top_k/top_10_categorical_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfrs_twotower.data import make_dataset
from tfrs_twotower.export import encode_batches, encoder_function, export_encoder, write_embeddings
from tfrs_twotower.metrics import InBatchAUC, InBatchPrecisionAt1, InBatchTopKAccuracy
from tfrs_twotower.models import TwoTowerModel
from tfrs_twotower.optimizers import RowSparseAdagrad
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.serving.retrieval_export import export_retrieval_models
from tfrs_twotower.tasks import CandidateFrequencies, CorpusSampler, Retrieval
from tfrs_twotower.towers import build_towers
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.corpus_evaluation import CorpusEvaluation
from tfrs_twotower.training.custom_loop import train_with_custom_loop
from tfrs_twotower.training.devices import configure_gpu_memory
from tfrs_twotower.training.distribution import Distribution
from tfrs_twotower.training.inputs import prepare_inputs
from tfrs_twotower.training.job_dir import JobDir
from tfrs_twotower.training.report import top_candidates
from tfrs_twotower.training.sharded_inputs import train_dataset_args


@dataclasses.dataclass
class TrainingResult:
    """What `train` returns: the trained model, its metrics and where the outputs went.

    Attributes: `model` (the `TwoTowerModel`), `config`, `schema`, `metrics` (the last epoch's logs,
    e.g. `val_recall_at_10`), `history` (one dict per epoch), `record_counts` (as `record_counts.json`),
    `paths` (output name -> path in job-dir), `candidate_ids` and `candidate_embeddings` (the corpus, in
    the same order), `example` (a query with its top candidates, as the CLI prints it).

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


def candidate_id_feature(schema: InputSchema, configured: str | None) -> str | None:
    """The candidate feature identifying a candidate: `configured`, else the first candidate Id feature."""
    if configured is not None:
        spec = schema.feature("candidate", configured)
        if spec.feature_type != "Id":
            raise ValueError(
                f"The `candidate_id_feature` parameter must name an Id feature of the candidate side; "
                f"`{configured}` is {spec.feature_type}."
            )
        return configured
    return next((s.name for s in schema.candidate if s.feature_type == "Id"), None)


def make_batch_metrics(names: Sequence[str]) -> list[keras.metrics.Metric]:
    """The Vertex in-batch metrics by name: auc, top_k_categorical_accuracy, precision_at_1."""
    factories = {
        "auc": InBatchAUC,
        "top_k_categorical_accuracy": InBatchTopKAccuracy,
        "precision_at_1": InBatchPrecisionAt1,
    }
    return [factories[name]() for name in names]


def make_optimizer(config: TrainingConfig) -> keras.optimizers.Optimizer:
    """The Keras optimizer named by `config.optimizer`, with its learning rate (and momentum).

    "adagrad" is `RowSparseAdagrad`: Adagrad updating only an embedding's looked-up rows (Keras 2's
    arithmetic: a row repeated in a batch gets its summed gradient squared).
    """
    settings: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.momentum is not None:
        settings["momentum"] = config.momentum
    try:
        if config.optimizer.lower() == "adagrad":
            return RowSparseAdagrad(**settings)
        return keras.optimizers.get({"class_name": config.optimizer, "config": settings})
    except (ValueError, TypeError) as e:
        hint = " (`momentum` applies to sgd and rmsprop only)" if config.momentum is not None else ""
        raise ValueError(
            f"The `optimizer` parameter must name a Keras optimizer (adagrad, adam, sgd, rmsprop, ...) that "
            f"accepts the given settings{hint}. Got {config.optimizer!r}: {e}"
        ) from e


def build_model(
    config: TrainingConfig,
    schema: InputSchema,
    numeric_stats=None,
    corpus_features=None,
    candidate_counts: dict[str, int] | None = None,
) -> TwoTowerModel:
    """The two-tower model `config` describes (towers, task, options), compiled: what `train` fits.

    Example:
    >>> config = TrainingConfig(training_data_path="t.jsonl", input_schema_path="s.json", job_dir="out",
    ...                         num_hidden_layers=1, temperature=0.1, l2_normalize=True)
    >>> model = build_model(config, load_schema("schemas/sample.json"))  # doctest: +SKIP
    >>> model.fit(my_dataset, epochs=3)  # doctest: +SKIP

    `corpus_features` (`{name: array [N, ...]}`, the corpus as model inputs) is needed for
    `num_mixed_negatives`; `candidate_counts` (`{candidate id: count in the training data}`) for
    `sampling_bias_correction="counts"`.
    """
    query_tower, candidate_tower = build_towers(
        schema,
        hidden_units=config.hidden_units,
        output_dim=config.output_dim,
        numeric_stats=numeric_stats,
        l2_normalize=config.l2_normalize,
        projection=config.tower_projection,
    )
    task = Retrieval(
        batch_metrics=make_batch_metrics(config.metric_names),
        temperature=config.temperature,
        remove_accidental_hits=config.remove_accidental_hits,
        num_hard_negatives=config.num_hard_negatives,
        loss_reduction=config.loss_reduction,
    )
    id_feature = candidate_id_feature(schema, config.candidate_id_feature)
    if config.remove_accidental_hits and id_feature is None:
        raise ValueError(
            "`remove_accidental_hits` needs a candidate id: add an Id feature to the candidate side or set "
            "--candidate_id_feature."
        )
    correction = config.bias_correction(id_feature)
    estimator = None
    if correction == "counts":
        if not candidate_counts:
            raise ValueError(
                "`sampling_bias_correction='counts'` needs the training data's `candidate_counts`."
            )
        estimator = CandidateFrequencies(
            list(candidate_counts), list(candidate_counts.values()), batch_size=config.train_batch_size
        )
    elif correction not in (None, "estimate"):
        spec = schema.feature("candidate", correction)
        if spec.feature_type != "Numeric":
            raise ValueError(
                "The `sampling_bias_correction` parameter must be 'counts', 'estimate' or a Numeric "
                f"candidate feature holding the probability; `{spec.name}` is {spec.feature_type}."
            )
    sampler = None
    if config.num_mixed_negatives:
        if corpus_features is None:
            raise ValueError(
                "`num_mixed_negatives` needs the corpus' features to draw from (`corpus_features`)."
            )
        sampler = CorpusSampler(corpus_features, config.num_mixed_negatives, seed=config.seed)
    model = TwoTowerModel(
        query_tower,
        candidate_tower,
        task,
        candidate_id_feature=id_feature,
        sampling_probability=correction,
        frequency_estimator=estimator,
        negative_sampler=sampler,
    )
    model.compile(optimizer=make_optimizer(config), jit_compile=False)
    return model


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
        return _train(config, callbacks, distribution)
    finally:
        distribution.cleanup()


def _train(
    config: TrainingConfig, callbacks: Sequence[keras.callbacks.Callback], distribution: Distribution
) -> TrainingResult:
    schema = load_schema(config.input_schema_path)
    # Only the chief writes job-dir; other workers write the same outputs to a temporary directory.
    job = JobDir(distribution.output_dir(config.job_dir))
    resumed = job.prepare(config.to_json(), overwrite=config.overwrite)
    job.write_state("running", config.to_json())
    schema.save(job.schema)
    config.save(job.config)
    keras.utils.set_random_seed(config.seed)
    log = _printer(config.verbose)

    started = time.perf_counter()
    inputs = prepare_inputs(config, schema, candidate_id_feature(schema, config.candidate_id_feature))
    log(inputs.describe())
    corpus_features = inputs.corpus_features() if config.num_mixed_negatives else None
    distribution.barrier()  # the chief has prepared job-dir (and its checkpoints) for everyone
    with distribution.scope():
        model = build_model(
            config, schema, inputs.numeric_stats, corpus_features, inputs.train_scan.train_positive_counts
        )
        model(_first_batch(config, inputs))  # builds the weights (checkpoints need them)

    evaluation = None
    if inputs.eval_dataset is not None and distribution.is_chief:
        evaluation = CorpusEvaluation(
            schema,
            inputs.eval_dataset,
            inputs.corpus_dataset,
            inputs.corpus_keys,
            inputs.positive_keys,
            ks=config.top_ks,
            max_batches=config.eval_steps_per_epoch,
        )
    if resumed:
        log(f"Resuming the interrupted run in {config.job_dir} from its last checkpoint.")
    if distribution.uses_custom_loop or config.checkpoint_every_steps is not None:
        # Multi-worker runs, and step-level checkpoints, need the custom loop (see custom_loop.py).
        logs = train_with_custom_loop(
            config,
            model,
            inputs,
            distribution,
            job.checkpoints,
            JobDir(config.job_dir).checkpoints,
            callbacks=[c for c in (evaluation,) if c is not None]
            + [keras.callbacks.TensorBoard(job.tensorboard), *callbacks],
        )
        distribution.barrier()  # every worker is done with the chief's checkpoints
        if tf.io.gfile.exists(job.checkpoints):
            tf.io.gfile.rmtree(job.checkpoints)  # as BackupAndRestore does when training ends
    else:
        fit_callbacks = [c for c in (evaluation,) if c is not None] + [
            keras.callbacks.TensorBoard(job.tensorboard),
            keras.callbacks.BackupAndRestore(job.checkpoints),
            *callbacks,
        ]
        history = model.fit(
            inputs.train_dataset,
            epochs=config.num_epochs,
            steps_per_epoch=config.training_steps_per_epoch,
            validation_data=inputs.eval_dataset,
            validation_steps=config.eval_steps_per_epoch,
            callbacks=fit_callbacks,
            verbose=config.verbose,
            shuffle=False,  # the dataset shuffles itself
        )
        logs = [
            {k: float(v[i]) for k, v in history.history.items() if i < len(v)}
            for i in range(len(history.epoch))
        ]
    train_seconds = time.perf_counter() - started

    paths = {
        "query_model": export_encoder(model.query_tower, schema, "query", job.query_model),
        "candidate_model": export_encoder(model.candidate_tower, schema, "candidate", job.candidate_model),
    }
    embeddings = encode_batches(
        encoder_function(model.candidate_tower, schema, "candidate"), inputs.corpus_dataset, config.output_dim
    )
    paths.update(write_embeddings(job.embeddings, inputs.corpus_keys, embeddings))
    paths.update(export_retrieval_models(job.root, model.query_tower, schema=schema))  # job-dir/index/

    per_epoch = [{"epoch": i + 1, **epoch_logs} for i, epoch_logs in enumerate(logs)]
    final = {k: v for k, v in per_epoch[-1].items() if k != "epoch"} if per_epoch else {}
    counts = inputs.record_counts()
    _write_json(
        job.metrics,
        {
            "final": final,
            "per_epoch": per_epoch,
            "train_seconds": round(train_seconds, 3),
            "train_steps": int(model.optimizer.iterations.numpy()),
        },
    )
    _write_json(job.record_counts, counts)
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
    example = _example_query(model, inputs, embeddings)
    return TrainingResult(
        model=model,
        config=config,
        schema=schema,
        metrics=final,
        history=per_epoch,
        record_counts=counts,
        paths=paths,
        candidate_ids=list(inputs.corpus_keys),
        candidate_embeddings=embeddings,
        example=example,
    )


def _first_batch(config: TrainingConfig, inputs) -> dict[str, Any]:
    """A small training batch read from a dataset of its own: iterating `inputs.train_dataset` would use
    up its first shuffle, and the training order would then depend on the driver."""
    args = {**train_dataset_args(config, inputs), "batch_size": 8, "shuffle_buffer": 0}
    return next(iter(make_dataset(**args).take(1)))


def _example_query(model: TwoTowerModel, inputs, embeddings: np.ndarray, k: int = 5) -> dict[str, Any] | None:
    """The first evaluation (else training) query, its positive and its top-k candidates."""
    dataset = inputs.eval_dataset if inputs.eval_dataset is not None else inputs.train_dataset
    batch = next(iter(dataset.take(1)), None)
    if batch is None or len(embeddings) == 0:
        return None
    first = {name: value[:1] for name, value in batch["query"].items()}
    query_embedding = model.query_tower(first, training=False).numpy()[0]
    positive = inputs.positive_keys(batch)[0]
    return {
        "query": {name: _plain(value.numpy()[0]) for name, value in first.items()},
        "positive": positive.decode() if isinstance(positive, bytes) else str(positive),
        "top": top_candidates(query_embedding, embeddings, inputs.corpus_keys, k=k),
    }


def _plain(value: Any) -> Any:
    """A feature value as plain JSON-friendly Python, padding dropped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        items = [_plain(v) for v in value.tolist()]
        return [v for v in items if v != "" and not (isinstance(v, float) and np.isnan(v))]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)  # float32 values printed as float64 show spurious digits
    return value.item() if isinstance(value, np.generic) else value


def _write_json(path: str, value: Any) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)


def _printer(verbose: int):
    def log(message: str) -> None:
        if verbose:
            print(message, flush=True)

    return log
