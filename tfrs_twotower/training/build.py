"""Stage 2 of a training run: the compiled two-tower model, from a config or explicit settings.

`build_model` is what `train` uses; scripts and benchmarks call it too, so every run builds the model
one way. Settings come from a `TrainingConfig`, from keyword arguments named like its fields (they
override the config), or both; what the data tells the model (numeric means and variances, candidate
frequencies, the corpus) comes from the training data's `scan` (or `prepare_inputs`' `TrainingInputs`).

Example:
>>> import tfrs_twotower as tt
>>> schema = tt.load_schema("schemas/sample.json")  # doctest: +SKIP
>>> scan = tt.scan("train.jsonl", schema)  # doctest: +SKIP
>>> model = build_model(schema=schema, scan=scan, output_dim=32, temperature=0.2,
...                     sampling_bias_correction="counts", hidden_units=[64])  # doctest: +SKIP
>>> model.fit(my_dataset, epochs=3)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import keras

from tfrs_twotower.data import id_counts
from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.errors import ConfigError
from tfrs_twotower.feature_types import NUMERIC, TEXT, feature_type_of
from tfrs_twotower.metrics import InBatchAUC, InBatchPrecisionAt1, InBatchTopKAccuracy
from tfrs_twotower.models import TwoTowerModel
from tfrs_twotower.optimizers import RowSparseAdagrad
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.tasks import CandidateFrequencies, CorpusSampler, Retrieval
from tfrs_twotower.towers import build_towers
from tfrs_twotower.training.config import TrainingConfig


def candidate_id_feature(schema: InputSchema, configured: str | None) -> str | None:
    """The candidate feature identifying a candidate: `configured`, else the first candidate Id feature."""
    if configured is not None:
        spec = schema.feature("candidate", configured)
        if not feature_type_of(spec).identifies:
            raise ValueError(
                f"The `candidate_id_feature` parameter must name an Id feature of the candidate side; "
                f"`{configured}` is {spec.feature_type}."
            )
        return configured
    return next((s.name for s in schema.candidate if feature_type_of(s).identifies), None)


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
    config: TrainingConfig | None = None,
    schema: InputSchema | str | dict | None = None,
    numeric_stats: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    corpus_features: Mapping[str, Any] | None = None,
    candidate_counts: Mapping[str, int] | None = None,
    *,
    scan=None,
    inputs=None,
    hidden_units: Sequence[int] | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    fused: bool | None = None,
    id_vocabularies: Mapping[str, Mapping[str, Sequence[str] | None]] | None = None,
    **settings: Any,
) -> TwoTowerModel:
    """The compiled two-tower model (towers, task, options) that `train` fits.

    Args:
      config: a `TrainingConfig` (default: its defaults); only its model settings are used.
      schema: the input schema (an `InputSchema`, a path or a dict; default: `config.input_schema_path`).
      numeric_stats: `{side: {name: (mean, variance)}}` for Numeric features (default: from `scan`).
      corpus_features: the corpus as model inputs `{name: array [N, ...]}`; needed for
        `num_mixed_negatives` (default: `scan`'s corpus).
      candidate_counts: `{candidate id: count in the training data}`; needed for
        `sampling_bias_correction="counts"` (default: from `scan`); with the default "auto", a build without
        counts trains without logQ correction.
      scan: the training data's `tfrs_twotower.scan(...)` result, to take the three above from.
      inputs: a `prepare_inputs` result (`TrainingInputs`), the same as passing its training scan.
      hidden_units: units of each hidden layer (overrides the config's `num_nodes_hidden_layer{i}`).
      optimizer: a Keras optimizer to use instead of the config's `optimizer` / `learning_rate`.
      fused: `Retrieval`'s compute path (None: the fused C kernel when the options allow it).
      id_vocabularies: `{side: {Id feature: vocabulary or None}}` (see `IdEncoder`); default: from
        `scan`'s Id value counts with `id_min_count` (without a scan, Ids hash into `num_buckets`).
      **settings: any `TrainingConfig` field (`output_dim=32, temperature=0.2, ...`), overriding `config`.

    Returns:
      A compiled `TwoTowerModel`; its weights are created by its first call (`model(batch)`) or `fit`.

    Raises:
      ValueError: a setting the schema or the data cannot satisfy (the message names it and the fix).

    Example:
    >>> config = TrainingConfig(training_data_path="t.jsonl", input_schema_path="s.json", job_dir="out",
    ...                         num_hidden_layers=1, temperature=0.1, l2_normalize=True)
    >>> model = build_model(config, load_schema("schemas/sample.json"))  # doctest: +SKIP
    >>> adam = keras.optimizers.Adam(0.01)
    >>> model = build_model(schema="s.json", output_dim=32, optimizer=adam)  # doctest: +SKIP
    """
    config = dataclasses.replace(config if config is not None else TrainingConfig(), **settings)
    if schema is None:
        if not config.input_schema_path:
            raise ValueError("`build_model` needs a `schema` (or a config with `input_schema_path`).")
        schema = config.input_schema_path
    if not isinstance(schema, InputSchema):
        schema = load_schema(schema)
    if inputs is not None:
        scan = inputs.train_scan
    if scan is not None:
        numeric_stats = numeric_stats if numeric_stats is not None else _stats_of(scan)
        if candidate_counts is None:
            candidate_counts = scan.train_positive_counts
        if corpus_features is None and config.num_mixed_negatives:
            corpus = inputs.corpus if inputs is not None else scan.corpus
            corpus_features = side_columns(schema.candidate, list(corpus.candidates))
        if id_vocabularies is None:
            id_vocabularies = id_counts.id_vocabularies(scan.id_counts, config.id_min_count)
    id_feature = candidate_id_feature(schema, config.candidate_id_feature)
    correction = config.bias_correction(id_feature)  # 'auto' resolved; 'none' -> None
    if config.sampling_bias_correction == "auto" and not candidate_counts:
        correction = None  # 'auto' without the training data's counts (a bare Python-API build): no logQ
    bias = config.use_candidate_bias(id_feature, correction)
    if bias and id_feature is None:
        raise ValueError(
            "`candidate_bias` needs a candidate Id feature: add one to the candidate side, set "
            "--candidate_id_feature, or set --candidate_bias false."
        )
    query_tower, candidate_tower = build_towers(
        schema,
        candidate_bias=id_feature if bias else None,
        hidden_units=config.hidden_units if hidden_units is None else list(hidden_units),
        output_dim=config.output_dim,
        numeric_stats=numeric_stats,
        l2_normalize=config.l2_normalize,
        projection=config.tower_projection,
        id_vocabularies=id_vocabularies,
    )
    task = Retrieval(
        batch_metrics=make_batch_metrics(config.metric_names),
        temperature=config.temperature,
        remove_accidental_hits=config.remove_accidental_hits,
        num_hard_negatives=config.num_hard_negatives,
        loss_reduction=config.loss_reduction,
        fused=fused,
    )
    if config.remove_accidental_hits and id_feature is None:
        raise ValueError(
            "`remove_accidental_hits` needs a candidate id: add an Id feature to the candidate side or set "
            "--candidate_id_feature."
        )
    estimator = None
    if correction == "counts":
        if not candidate_counts:
            raise ValueError(
                "`sampling_bias_correction='counts'` needs the training data's `candidate_counts` (pass "
                "`candidate_counts=` or the training data's `scan=`)."
            )
        estimator = CandidateFrequencies(
            list(candidate_counts),
            list(candidate_counts.values()),
            batch_size=config.train_batch_size,
            weight=config.logq_weight,
        )
    elif correction not in (None, "estimate"):
        spec = schema.feature("candidate", correction)
        if feature_type_of(spec) is not NUMERIC:
            raise ValueError(
                "The `sampling_bias_correction` parameter must be 'counts', 'estimate' or a Numeric "
                f"candidate feature holding the probability; `{spec.name}` is {spec.feature_type}."
            )
    sampler = None
    if config.num_mixed_negatives:
        if corpus_features is None:
            raise ValueError(
                "`num_mixed_negatives` needs the corpus' features to draw from (pass `corpus_features=` or "
                "the training data's `scan=`)."
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
    model.compile(optimizer=optimizer or make_optimizer(config), jit_compile=False)
    return model


def _stats_of(scan) -> dict[str, dict[str, tuple[float, float]]]:
    """A scan's `{side: {name: NumericStats}}` as `{side: {name: (mean, variance)}}`."""
    return {
        side: {name: (s.mean, s.variance) for name, s in stats.items()}
        for side, stats in scan.numeric_stats.items()
    }


def check_trainable(model: TwoTowerModel, config: TrainingConfig | None = None) -> None:
    """Raises a ValueError naming the settings when `model` (its weights built) has nothing to train.

    A tower trains through its projection, its hidden layers and its features' embeddings; with
    `tower_projection=False`, no hidden layers and only frozen features (pretrained text encoders,
    numeric values, vectors), gradient descent has nothing to update.
    """
    # The candidate bias alone (`--candidate_bias`) learns popularity, not a match: it does not count.
    biases = [getattr(t, "bias", None) for t in (model.query_tower, model.candidate_tower)]
    bias_variables = {id(v) for b in biases if b is not None for v in b.trainable_variables}
    if not model.built or any(id(v) not in bias_variables for v in model.trainable_variables):
        return
    sides = []
    for side, tower in (("query", model.query_tower), ("candidate", model.candidate_tower)):
        encoder = getattr(tower, "feature_encoder", None)
        encoders = getattr(encoder, "encoders", {}) or {}
        described = (
            ", ".join(f"`{name}` ({_feature_kind(encoder, name)})" for name in encoders)
            or "no encoded features"
        )
        sides.append(f"{side}: {described}")
    projection = (
        config.tower_projection if config is not None else getattr(model.query_tower, "projection", None)
    )
    hidden = (
        config.num_hidden_layers
        if config is not None
        else len(getattr(model.query_tower, "hidden_units", []) or [])
    )
    raise ConfigError(
        "The model has no trainable variables, so training cannot change it: with "
        f"--tower_projection {str(projection).lower()} and --num_hidden_layers {hidden}, each tower's "
        f"embedding is its features' vector, and no feature has trainable weights ({'; '.join(sides)}). "
        "Set --tower_projection true (the default), or --num_hidden_layers 1 or more, or add an Id or "
        "Categorical feature (a trainable embedding)."
    )


def _feature_kind(encoder, name: str) -> str:
    spec = next((s for s in encoder.specs if s.name == name), None)
    if spec is None:
        return "frozen"
    if feature_type_of(spec) is TEXT and spec.embedding_module:
        return f"Text, frozen encoder {spec.embedding_module}"
    return f"{spec.feature_type}, frozen"
