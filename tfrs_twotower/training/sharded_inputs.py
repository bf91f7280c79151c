"""Per-worker input for distributed training: the train and eval datasets split across input pipelines.

Sharding, decided per dataset:
- **by file** when it has at least as many files as there are workers: worker w reads files w, w+W, ...;
- **by record** otherwise: every worker walks the same shuffled record order (same seed) and keeps its
  block of each global batch (`make_dataset(shard=...)`), so the global batch of step s holds the same
  records as a single-process run's batch s. Each pass drops its incomplete last global batch so all
  workers run the same number of steps.

Every dataset repeats; the custom loop takes `steps_per_epoch` batches per epoch from one iterator, so a
resumed run skips exactly the batches already trained on.

Example:
>>> fn = dataset_fn(train_dataset_args(config, inputs), global_batch=256, num_replicas=2)  # doctest: +SKIP
>>> strategy.distribute_datasets_from_function(fn)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Callable

import tensorflow as tf

from tfrs_twotower import data as data_lib
from tfrs_twotower.data.paths import resolve_paths
from tfrs_twotower.training.config import TrainingConfig


def train_dataset_args(config: TrainingConfig, inputs) -> dict[str, Any]:
    """`make_dataset` arguments of the training data, as `prepare_inputs` built them."""
    return dict(inputs.train_args)


def eval_dataset_args(config: TrainingConfig, inputs) -> dict[str, Any] | None:
    """`make_dataset` arguments of the evaluation data (None without evaluation)."""
    return None if inputs.eval_args is None else dict(inputs.eval_args)


def records_per_pass(config: TrainingConfig, inputs, training: bool) -> int:
    if training:
        scan = inputs.train_scan
        return scan.train_count + (scan.eval_count if inputs.eval_scan is not None else 0)
    return inputs.eval_scan.used_count if inputs.eval_scan is not None else inputs.train_scan.eval_count


def shards_by_file(paths: str, num_workers: int) -> bool:
    return num_workers > 1 and len(resolve_paths(paths)) >= num_workers


def steps_per_pass(records: int, global_batch: int, sharded: bool) -> int:
    """Batches in one pass: sharded passes drop their incomplete last global batch."""
    return records // global_batch if sharded else math.ceil(records / global_batch)


def dataset_fn(
    args: dict[str, Any], global_batch: int, num_replicas: int
) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """A `distribute_datasets_from_function` argument: per-replica batches of this input pipeline."""
    per_replica = global_batch // num_replicas

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        index, count = context.input_pipeline_id, context.num_input_pipelines
        settings = {**args, "repeat": True}
        if num_replicas == 1:
            return data_lib.make_dataset(**settings)
        if shards_by_file(args["paths"], count):
            files = resolve_paths(args["paths"])[index::count]
            return data_lib.make_dataset(**{**settings, "paths": files, "batch_size": per_replica})
        # By record: this pipeline's block of each global batch, then one batch per local replica.
        block = global_batch // count
        dataset = data_lib.make_dataset(**{**settings, "batch_size": block, "shard": (index, count)})
        return dataset.rebatch(per_replica) if block != per_replica else dataset

    return make
