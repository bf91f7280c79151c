"""The data side of a training run: scan the files once, then build the train, eval and corpus datasets.

Example:
>>> inputs = prepare_inputs(config, schema)  # doctest: +SKIP
>>> print(inputs.describe())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower import data as data_lib
from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.data.seen import corpus_remap
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.training.config import TrainingConfig

_LISTED_REJECTIONS = 1000  # rejected records listed by location in record_counts.json
_CONFIGURED: Any = object()  # `prepare_inputs`' default id_feature: the configured one


@dataclasses.dataclass
class TrainingInputs:
    """The datasets of a run and what the scans learned about the data."""

    train_scan: data_lib.ScanResult
    eval_scan: data_lib.ScanResult | None
    corpus_scan: data_lib.ScanResult | None
    corpus: data_lib.Corpus
    schema: InputSchema
    id_feature: str | None
    train_args: dict[str, Any]
    eval_args: dict[str, Any] | None
    train_dataset: tf.data.Dataset
    eval_dataset: tf.data.Dataset | None
    corpus_dataset: tf.data.Dataset
    corpus_keys: list[str]
    _seen_remap: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def numeric_stats(self) -> dict[str, dict[str, tuple[float, float]]]:
        """`{side: {name: (mean, variance)}}` from the training part."""
        return {
            side: {name: (s.mean, s.variance) for name, s in stats.items()}
            for side, stats in self.train_scan.numeric_stats.items()
        }

    def corpus_features(self) -> dict[str, np.ndarray]:
        """The whole corpus as one model-input batch `{name: array [N, ...]}` (for mixed negatives)."""
        return side_columns(self.schema.candidate, list(self.corpus.candidates))

    def positive_keys(self, batch: dict[str, Any]) -> np.ndarray:
        """The candidate keys of a batch's positives."""
        if self.id_feature is not None:
            ids = batch["candidate"][self.id_feature]
        else:
            ids = batch["candidate_key"]
        ids = ids.numpy() if hasattr(ids, "numpy") else np.asarray(ids)
        return ids.reshape(len(ids), -1)[:, 0]

    def seen_rows(self, batch: dict[str, Any]) -> list[np.ndarray]:
        """Each query's training positives as corpus rows (seen-item exclusion); needs `has_seen`."""
        seen = self.train_scan.seen
        ids = batch["query"][seen.feature]
        ids = ids.numpy() if hasattr(ids, "numpy") else np.asarray(ids)
        if self.corpus is self.train_scan.corpus:
            remap = None  # the same corpus (evaluation candidates appended after): the same indices
        else:
            if self._seen_remap is None:
                self._seen_remap = corpus_remap(self.train_scan.corpus.keys, self.corpus.index_of)
            remap = self._seen_remap
        return seen.rows_for(ids.reshape(len(ids), -1)[:, 0], remap)

    @property
    def has_seen(self) -> bool:
        """Whether the query side has an Id feature, so that seen-item exclusion applies."""
        return self.train_scan.seen is not None

    def positive_counts(self, subset: str) -> dict[str, int]:
        """How often each candidate key is the positive of a "train" or "eval" pair (from the scans)."""
        if self.eval_scan is not None:  # the training files are all training data
            scan = self.train_scan if subset == "train" else self.eval_scan
            return dict(scan.train_positive_counts + scan.eval_positive_counts)
        scan = self.train_scan
        return dict(scan.train_positive_counts if subset == "train" else scan.eval_positive_counts)

    def record_counts(self) -> dict[str, Any]:
        """Every record read, counted as used (train/eval) or rejected, per input."""
        counts: dict[str, Any] = {}
        for name, result in (
            ("training", self.train_scan),
            ("evaluation", self.eval_scan),
            ("candidates", self.corpus_scan),
        ):
            if result is None:
                continue
            counts[name] = {
                "files": list(result.files),
                "records_read": result.records_read,
                "train": result.train_count if result.kind == "pairs" else 0,
                "eval": result.eval_count if result.kind == "pairs" else 0,
                "candidate_documents": result.used_count if result.kind == "candidates" else 0,
                "rejected": result.rejected_count,
                "rejected_records": [str(e) for e in result.rejected[:_LISTED_REJECTIONS]],
            }
        counts["records_read"] = sum(c["records_read"] for c in counts.values() if isinstance(c, dict))
        counts["used_for_training"] = self.train_scan.train_count + (
            self.train_scan.eval_count if self.eval_scan is not None else 0
        )
        counts["used_for_evaluation"] = (
            self.eval_scan.used_count if self.eval_scan is not None else self.train_scan.eval_count
        )
        counts["rejected"] = sum(c["rejected"] for c in counts.values() if isinstance(c, dict))
        counts["corpus_size"] = len(self.corpus_keys)
        return counts

    def describe(self) -> str:
        lines = [self.train_scan.summary()]
        if self.eval_scan is not None:
            lines.append("Evaluation data: " + self.eval_scan.summary())
        if self.corpus_scan is not None:
            lines.append("Candidate corpus: " + self.corpus_scan.summary())
        return "\n".join(lines)


def dataset_args(
    config: TrainingConfig,
    schema: InputSchema,
    train_scan: data_lib.ScanResult,
    eval_scan: data_lib.ScanResult | None,
    id_feature: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """`make_dataset` arguments of the training and the evaluation data (None without evaluation): the
    one place both drivers (Keras `fit`, the distributed loop) take them from."""
    separate_eval = eval_scan is not None
    common = dict(
        schema=schema, file_format=config.input_file_format, allow_extra_features=config.allow_extra_features
    )
    train = dict(
        paths=config.training_data_path,
        subset="all" if separate_eval else "train",
        eval_split=0.0 if separate_eval else config.eval_split,
        batch_size=config.train_batch_size,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
        skip=train_scan.skip,
        cache=config.cache_input,
        negatives=train_scan.has_negatives,
        **common,
    )
    evaluation = dict(batch_size=config.eval_batch_size, shuffle_buffer=0, cache=config.cache_input, **common)
    if id_feature is None:
        evaluation["with_keys"] = True  # evaluation batches carry each positive's key (a fingerprint)
    if separate_eval:
        evaluation.update(
            paths=config.eval_data_path,
            subset="all",
            eval_split=0.0,
            skip=eval_scan.skip,
            negatives=eval_scan.has_negatives,
        )
    elif config.eval_split > 0 and train_scan.eval_count > 0:
        evaluation.update(
            paths=config.training_data_path,
            subset="eval",
            eval_split=config.eval_split,
            skip=train_scan.skip,
            negatives=train_scan.has_negatives,
        )
    else:
        evaluation = None
    return train, evaluation


def prepare_inputs(
    config: TrainingConfig, schema: InputSchema | None = None, id_feature: str | None = _CONFIGURED
) -> TrainingInputs:
    """Stage 1 of a training run: scans the training (and evaluation, candidate) files, counting every
    record, and builds the datasets and the candidate corpus `config` asks for.

    `schema` defaults to `config.input_schema_path`'s; `id_feature` (the candidate feature identifying a
    candidate, None for none) to `config.candidate_id_feature` or the first candidate Id feature.

    Example:
    >>> inputs = prepare_inputs(config)  # doctest: +SKIP
    >>> print(inputs.describe())  # doctest: +SKIP
    >>> model = build_model(config, inputs.schema, inputs=inputs)  # doctest: +SKIP
    """
    if schema is None:
        schema = load_schema(config.input_schema_path)
    if id_feature is _CONFIGURED:
        from tfrs_twotower.training.build import candidate_id_feature

        id_feature = candidate_id_feature(schema, config.candidate_id_feature)
    if config.prepared_data_path:  # a `tfrs-twotower prepare` output: its statistics, no scan
        from tfrs_twotower.training.prepared_inputs import prepared_inputs

        return prepared_inputs(config, schema, id_feature)
    fmt = config.input_file_format
    separate_eval = config.eval_data_path is not None
    train_split = 0.0 if separate_eval else config.eval_split
    common = {
        "file_format": fmt,
        "max_bad_records": config.max_bad_records,
        "candidate_key_feature": id_feature,
        "allow_extra_features": config.allow_extra_features,
    }
    train_scan = data_lib.scan(config.training_data_path, schema, eval_split=train_split, **common)
    eval_scan = (
        data_lib.scan(config.eval_data_path, schema, eval_split=0.0, **common) if separate_eval else None
    )

    corpus_scan = None
    if config.candidate_data_path is not None:
        corpus_scan = data_lib.scan_candidates(config.candidate_data_path, schema, **common)
        corpus = corpus_scan.corpus
    else:
        corpus = train_scan.corpus
        if eval_scan is not None:
            for _, candidate in eval_scan.corpus:
                corpus.add(candidate)

    train_args, eval_args = dataset_args(config, schema, train_scan, eval_scan, id_feature)
    train_dataset = data_lib.make_dataset(**train_args, repeat=config.training_steps_per_epoch is not None)
    if config.training_steps_per_epoch is None:
        train_dataset = with_batch_count(
            train_dataset,
            train_scan.train_count + (train_scan.eval_count if separate_eval else 0),
            config.train_batch_size,
        )
    eval_dataset = data_lib.make_dataset(**eval_args) if eval_args is not None else None
    if eval_dataset is not None:
        eval_records = eval_scan.used_count if separate_eval else train_scan.eval_count
        eval_dataset = with_batch_count(eval_dataset, eval_records, config.eval_batch_size)
    corpus_dataset, corpus_keys = data_lib.make_candidate_dataset(corpus, schema, batch_size=1024)
    if config.cache_input:
        corpus_dataset = corpus_dataset.cache()
    if train_scan.train_count + (train_scan.eval_count if separate_eval else 0) == 0:
        raise ValueError(
            f"No training records in {config.training_data_path}: every record was rejected or held out "
            f"for evaluation (eval_split={config.eval_split}). Check the data or lower --eval_split."
        )
    return TrainingInputs(
        train_scan=train_scan,
        eval_scan=eval_scan,
        corpus_scan=corpus_scan,
        corpus=corpus,
        schema=schema,
        id_feature=id_feature,
        train_args=train_args,
        eval_args=eval_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        corpus_dataset=corpus_dataset,
        corpus_keys=corpus_keys,
    )


def with_batch_count(dataset: tf.data.Dataset, records: int, batch_size: int) -> tf.data.Dataset:
    """States the dataset's batch count (known from the scan), so Keras shows progress and plans epochs."""
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-records // batch_size)))
