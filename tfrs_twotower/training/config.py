"""`TrainingConfig`: the one source of truth for a training run. The CLI flags map onto its fields one to one,
with the Vertex AI Two-Tower built-in algorithm's names and defaults; fields after `gpu_memory_alloc` are
ours.

Example:
>>> config = TrainingConfig(training_data_path="train.jsonl", input_schema_path="schema.json", job_dir="out")
>>> config.hidden_units
[]
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tfrs_twotower.errors import ConfigError
from tfrs_twotower.training.validation import Boolean, Interval, OneOf, Text, check_parameter

MAX_HIDDEN_LAYERS = 20
VERTEX_METRICS = ("auc", "top_k_categorical_accuracy", "precision_at_1")
DISTRIBUTIONS = ("auto", "default", "mirrored", "multi_worker")


def _field(default: Any, help: str, **metadata: Any) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass
class TrainingConfig:
    """Everything a training run needs; `validate()` checks it and names the field and the rule broken.

    Example:
    >>> config = TrainingConfig(training_data_path="sample/train.jsonl",
    ...                         input_schema_path="sample/schema.json",
    ...                         job_dir="runs/sample", num_epochs=5, sampling_bias_correction="counts")
    >>> config.validate().train_batch_size
    100
    """

    # --- Vertex AI Two-Tower flags (same names and defaults) ---
    training_data_path: str = _field(None, "Training pairs: a file, directory, glob or comma-separated list.")
    input_schema_path: str = _field(None, "The input schema JSON (see schemas/).")
    job_dir: str = _field(None, "Where outputs go: encoders, TensorBoard logs, metrics, embeddings.")
    eval_data_path: str | None = _field(
        None, "Evaluation pairs; when absent, `eval_split` of the training data."
    )
    candidate_data_path: str | None = _field(
        None, "Candidate documents for the metrics' corpus; default: the unique candidates of all pairs."
    )
    input_file_format: str = _field("jsonl", "Format of the data files: jsonl or tfrecord.")
    train_batch_size: int = _field(100, "Training batch size (in-batch negatives come from the same batch).")
    eval_batch_size: int = _field(100, "Evaluation batch size.")
    eval_split: float = _field(
        0.2, "Fraction of the training data held out for evaluation (no eval_data_path)."
    )
    metrics: str = _field(
        "auc", "In-batch metrics, comma-separated: auc, top_k_categorical_accuracy, precision_at_1."
    )
    optimizer: str = _field("adagrad", "Any Keras optimizer name (adagrad, adam, sgd, rmsprop, ...).")
    learning_rate: float = _field(0.1, "The optimizer's learning rate.")
    momentum: float | None = _field(None, "Momentum, for the optimizers that take one (sgd, rmsprop).")
    num_epochs: int = _field(10, "Number of training epochs.")
    num_hidden_layers: int = _field(0, "Number of hidden Dense layers in each tower (0-20).")
    num_nodes_hidden_layer1: int = _field(128, "Units of hidden layer 1 (used when num_hidden_layers >= 1).")
    num_nodes_hidden_layer2: int = _field(128, "Units of hidden layer 2 (used when num_hidden_layers >= 2).")
    num_nodes_hidden_layer3: int = _field(128, "Units of hidden layer 3 (used when num_hidden_layers >= 3).")
    num_nodes_hidden_layer4: int = _field(128, "Units of hidden layer 4 (used when num_hidden_layers >= 4).")
    num_nodes_hidden_layer5: int = _field(128, "Units of hidden layer 5 (used when num_hidden_layers >= 5).")
    num_nodes_hidden_layer6: int = _field(128, "Units of hidden layer 6 (used when num_hidden_layers >= 6).")
    num_nodes_hidden_layer7: int = _field(128, "Units of hidden layer 7 (used when num_hidden_layers >= 7).")
    num_nodes_hidden_layer8: int = _field(128, "Units of hidden layer 8 (used when num_hidden_layers >= 8).")
    num_nodes_hidden_layer9: int = _field(128, "Units of hidden layer 9 (used when num_hidden_layers >= 9).")
    num_nodes_hidden_layer10: int = _field(
        128, "Units of hidden layer 10 (used when num_hidden_layers >= 10)."
    )
    num_nodes_hidden_layer11: int = _field(
        128, "Units of hidden layer 11 (used when num_hidden_layers >= 11)."
    )
    num_nodes_hidden_layer12: int = _field(
        128, "Units of hidden layer 12 (used when num_hidden_layers >= 12)."
    )
    num_nodes_hidden_layer13: int = _field(
        128, "Units of hidden layer 13 (used when num_hidden_layers >= 13)."
    )
    num_nodes_hidden_layer14: int = _field(
        128, "Units of hidden layer 14 (used when num_hidden_layers >= 14)."
    )
    num_nodes_hidden_layer15: int = _field(
        128, "Units of hidden layer 15 (used when num_hidden_layers >= 15)."
    )
    num_nodes_hidden_layer16: int = _field(
        128, "Units of hidden layer 16 (used when num_hidden_layers >= 16)."
    )
    num_nodes_hidden_layer17: int = _field(
        128, "Units of hidden layer 17 (used when num_hidden_layers >= 17)."
    )
    num_nodes_hidden_layer18: int = _field(
        128, "Units of hidden layer 18 (used when num_hidden_layers >= 18)."
    )
    num_nodes_hidden_layer19: int = _field(
        128, "Units of hidden layer 19 (used when num_hidden_layers >= 19)."
    )
    num_nodes_hidden_layer20: int = _field(
        128, "Units of hidden layer 20 (used when num_hidden_layers >= 20)."
    )
    output_dim: int = _field(64, "Width of the query and candidate embeddings.")
    cache_input: bool = _field(False, "Cache the parsed input in memory after the first epoch.")
    training_steps_per_epoch: int | None = _field(
        None, "Steps per training epoch (default: one pass over the data)."
    )
    eval_steps_per_epoch: int | None = _field(
        None, "Steps per evaluation (default: the whole evaluation set)."
    )
    gpu_memory_alloc: int | None = _field(None, "GPU memory per GPU in MB (default: grow as needed).")

    # --- Ours ---
    max_bad_records: int = _field(
        0, "Bad records a run may skip (each counted and reported); more fail the run."
    )
    seed: int = _field(42, "Seed for shuffling and initialisation.")
    shuffle_buffer: int = _field(10_000, "Records in the shuffle buffer.")
    allow_extra_features: bool = _field(
        False, "Ignore features (and record keys) the schema does not name, instead of rejecting the record."
    )
    candidate_id_feature: str | None = _field(
        None,
        "Candidate feature identifying a candidate (default: the first Id feature of the candidate side).",
    )
    prepared_data_path: str | None = _field(None, "Train from a `tfrs-twotower prepare` output (no scan).")
    eval_top_k: str = _field("1,5,10,50,100", "The K of the full-corpus Recall@K metrics, comma-separated.")
    id_min_count: int = _field(
        2,
        "Id values seen at least this often in the training data get their own embedding; rarer and unseen "
        "ones share one learned 'unknown' embedding. 0: hash every Id into num_buckets (Vertex AI).",
    )
    l2_normalize: bool = _field(
        True,
        "L2-normalise both towers' outputs (cosine similarity; best with temperature 0.2 on MovieLens).",
    )
    candidate_bias: str = _field("auto", "Per-candidate learned score; default auto: with logQ.")
    tower_projection: bool = _field(
        True,
        "With no hidden layers, false uses the feature vector itself as the embedding (TFRS basic model).",
    )
    temperature: float | None = _field(
        0.2,
        "Divide the logits by this temperature; none with l2_normalize false.",
    )
    remove_accidental_hits: bool = _field(
        False, "Do not use a batch's duplicates of the positive candidate as its negatives."
    )
    sampling_bias_correction: str | None = _field(
        "auto",
        "logQ correction: auto (counts when candidates have an Id feature), counts (training frequencies), "
        "estimate (streaming, Yi et al. 2019), a candidate Numeric feature, or none. TFRS parity: none, "
        "with l2_normalize false and temperature none.",
    )
    logq_weight: float = _field(1.0, "Weight of the counts logQ correction.")
    num_hard_negatives: int | None = _field(None, "Keep only this many top-scoring negatives per query.")
    num_mixed_negatives: int = _field(
        0, "Candidates drawn uniformly from the corpus and added to every batch's negatives."
    )
    loss_reduction: str = _field("sum", "sum (TFRS's default) or mean over the batch.")
    overwrite: bool = _field(False, "Replace the outputs of a finished run in job_dir.")
    verbose: int = _field(1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.")
    distribution: str = _field(
        "auto",
        "tf.distribute strategy: auto (TF_CONFIG with several workers: multi_worker; several GPUs: "
        "mirrored; else default), default, mirrored or multi_worker.",
    )
    checkpoint_every_steps: int | None = _field(
        None,
        "Also checkpoint every N training steps (not only at each epoch's end); a killed run resumes "
        "from the step it reached.",
    )
    best_epoch_metric: str = _field(
        "auto",
        "Export the best epoch by this metric (none: the last).",
    )
    early_stopping_patience: int | None = _field(None, "Stop after N epochs without improvement.")
    warm_start_from: str | None = _field(None, "A finished run's job_dir whose weights to start from.")

    @property
    def hidden_units(self) -> list[int]:
        """Units of each hidden layer: `num_nodes_hidden_layer{i}` for i in 1..num_hidden_layers."""
        return [getattr(self, f"num_nodes_hidden_layer{i}") for i in range(1, self.num_hidden_layers + 1)]

    def use_candidate_bias(self, candidate_id_feature: str | None, correction: str | None) -> bool:
        """`candidate_bias` resolved: 'auto' is on when a logQ `correction` is on and there is an Id feature.

        Example:
        >>> config = TrainingConfig()
        >>> config.use_candidate_bias("movie_id", "counts"), config.use_candidate_bias("movie_id", None)
        (True, False)
        """
        if self.candidate_bias == "auto":
            return candidate_id_feature is not None and correction is not None
        return self.candidate_bias == "true"

    def bias_correction(self, candidate_id_feature: str | None) -> str | None:
        """`sampling_bias_correction` with 'auto' resolved: 'counts' when candidates have an Id feature.

        Example:
        >>> TrainingConfig().bias_correction("movie_id"), TrainingConfig().bias_correction(None)
        ('counts', None)
        """
        if self.sampling_bias_correction == "auto":
            return "counts" if candidate_id_feature is not None else None
        if self.sampling_bias_correction in (None, "none"):
            return None
        return self.sampling_bias_correction

    @property
    def metric_names(self) -> list[str]:
        return [m.strip() for m in self.metrics.split(",") if m.strip()]

    @property
    def top_ks(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.eval_top_k.split(","))

    def validate(self) -> "TrainingConfig":
        """Checks every field; raises ValueError naming the first bad one. Returns self."""
        for name in ("training_data_path", "input_schema_path", "job_dir"):
            if not getattr(self, name) and not (name == "training_data_path" and self.prepared_data_path):
                raise ConfigError(f"The `{name}` parameter is required. Set --{name}.")
        if self.prepared_data_path:  # prepared data holds the split and the corpus: no raw paths beside it
            raw = ("training_data_path", "eval_data_path", "candidate_data_path")
            given = [n for n in raw if getattr(self, n)]
            if given:
                raise ConfigError(
                    f"--prepared_data_path replaces --{given[0]}: drop it (prepare the data with it instead)."
                )
        check_parameter("input_file_format", self.input_file_format, OneOf(("jsonl", "tfrecord")))
        for name in ("train_batch_size", "eval_batch_size", "num_epochs", "output_dim", "shuffle_buffer"):
            check_parameter(name, getattr(self, name), Interval(int, 1, None))
        for name in (
            "training_steps_per_epoch",
            "eval_steps_per_epoch",
            "gpu_memory_alloc",
            "num_hard_negatives",
            "checkpoint_every_steps",
            "early_stopping_patience",
        ):
            check_parameter(name, getattr(self, name), Interval(int, 1, None), optional=True)
        for name in ("max_bad_records", "seed", "num_mixed_negatives"):
            check_parameter(name, getattr(self, name), Interval(int, 0, None))
        check_parameter("id_min_count", self.id_min_count, Interval(int, 0, None))
        check_parameter("eval_split", self.eval_split, Interval(float, 0.0, 1.0, closed="left"))
        check_parameter("learning_rate", self.learning_rate, Interval(float, 0.0, None, closed="neither"))
        check_parameter("momentum", self.momentum, Interval(float, 0.0, 1.0), optional=True)
        check_parameter(
            "temperature", self.temperature, Interval(float, 0.0, None, closed="neither"), optional=True
        )
        check_parameter("num_hidden_layers", self.num_hidden_layers, Interval(int, 0, MAX_HIDDEN_LAYERS))
        for i in range(1, MAX_HIDDEN_LAYERS + 1):
            check_parameter(
                f"num_nodes_hidden_layer{i}",
                getattr(self, f"num_nodes_hidden_layer{i}"),
                Interval(int, 1, None),
            )
        check_parameter("loss_reduction", self.loss_reduction, OneOf(("sum", "mean")))
        check_parameter("logq_weight", self.logq_weight, Interval(float, 0.0, None, closed="neither"))
        check_parameter("candidate_bias", self.candidate_bias, OneOf(("auto", "true", "false")))
        check_parameter("verbose", self.verbose, OneOf((0, 1, 2)))
        check_parameter("distribution", self.distribution, OneOf(DISTRIBUTIONS))
        for name in (
            "cache_input",
            "l2_normalize",
            "tower_projection",
            "remove_accidental_hits",
            "overwrite",
            "allow_extra_features",
        ):
            check_parameter(name, getattr(self, name), Boolean())
        check_parameter("sampling_bias_correction", self.sampling_bias_correction, Text(), optional=True)
        check_parameter("candidate_id_feature", self.candidate_id_feature, Text(), optional=True)
        check_parameter("best_epoch_metric", self.best_epoch_metric, Text())
        check_parameter("warm_start_from", self.warm_start_from, Text(), optional=True)
        if self.early_stopping_patience is not None and self.best_epoch_metric in ("none", "last"):
            raise ValueError(
                "The `early_stopping_patience` parameter needs a metric to watch: set --best_epoch_metric "
                "(e.g. auto) or drop --early_stopping_patience."
            )
        unknown = [m for m in self.metric_names if m not in VERTEX_METRICS]
        if unknown or not self.metric_names:
            raise ConfigError(
                f"The `metrics` parameter must list some of {', '.join(VERTEX_METRICS)}. "
                f"Got {self.metrics!r} instead."
            )
        try:
            ks = self.top_ks
        except ValueError:
            ks = ()
        if not ks or any(k < 1 for k in ks):
            raise ConfigError(
                "The `eval_top_k` parameter must be a comma-separated list of ints >= 1. "
                f"Got {self.eval_top_k!r} instead."
            )
        if self.eval_data_path is None and self.eval_split == 0.0:
            pass  # No evaluation: allowed, metrics.json then holds training metrics only.
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str) -> None:
        import tensorflow as tf  # here, not at the top: `tfrs-twotower --help` imports this module

        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(self.to_json(), f, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "TrainingConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"Unknown TrainingConfig field(s) {unknown}; see `tfrs-twotower train --help`.")
        return cls(**values)
