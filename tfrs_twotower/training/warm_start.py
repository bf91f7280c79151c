"""Warm start: begin a run from a finished run's trained towers (and optimizer state) instead of random
weights, e.g. to continue training yesterday's model on today's data.

Every run saves its exported model's towers and its optimizer in job-dir/weights (`save_weights`: a
`tf.train.Checkpoint` of the variables by position). A run with `warm_start_from=OLD_JOB_DIR` restores
them after building its model (`warm_start`). New data is fine: an Id feature's vocabulary is rebuilt from
the new data and each id the old run knew keeps its row (new ids get fresh rows; hashed Ids keep their
`num_buckets` table), new candidates simply join the corpus; the logQ counts and the
corpus for mixed negatives are the new data's, while Numeric features keep the old run's normalisation
(the weights were trained with it). What must match is what shapes the weights: the schema's features
(names, types and their configs: num_buckets, vocab, embedding_dim, length, embedding_module),
`output_dim`, the hidden layers and `tower_projection`. A mismatch raises a `ConfigError` naming the
setting. The optimizer state (e.g. Adagrad's accumulators) is restored when the optimizer is the same
kind; its step count starts at 0 and the learning rate is the new run's.

Example:
>>> config = TrainingConfig(..., job_dir="runs/today", warm_start_from="runs/yesterday")  # doctest: +SKIP
>>> train(config)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfrs_twotower.errors import ConfigError
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.training.config import TrainingConfig
from tfrs_twotower.training.job_dir import JobDir

_PREFIX = "weights"  # job-dir/weights/weights.index, weights.data-*
# The settings that shape the towers' weights, and the flag to name when they differ.
_SHAPING = ("output_dim", "num_hidden_layers", "tower_projection")


def _variables(model, with_optimizer: bool) -> dict[str, Any]:
    """The towers' variables (and the optimizer's state) by position: variable paths carry the model's
    auto-numbered name (`two_tower_model_1/...`), positions are fixed by the schema and the settings."""
    found = {f"query_{i}": v for i, v in enumerate(model.query_tower.weights)}
    found.update({f"candidate_{i}": v for i, v in enumerate(model.candidate_tower.weights)})
    if with_optimizer:
        # [iterations, learning_rate, slots...]: the slots follow the trainable variables' order.
        found.update({f"optimizer_{i}": v for i, v in enumerate(model.optimizer.variables[2:])})
    return found


def weights_prefix(job_dir: str) -> str:
    return os.path.join(JobDir(job_dir).path("weights"), _PREFIX)


def save_weights(model, job_dir: str) -> str:
    """Writes `model`'s towers and optimizer state to job_dir/weights, for a later `warm_start_from`."""
    prefix = weights_prefix(job_dir)
    with_optimizer = model.optimizer.built
    tf.train.Checkpoint(**_variables(model, with_optimizer)).write(prefix)
    info = {
        "checkpoint": _PREFIX,
        "optimizer": type(model.optimizer).__name__ if with_optimizer else None,
        "optimizer_variables": len(model.optimizer.variables) if with_optimizer else 0,
    }
    with tf.io.gfile.GFile(os.path.join(os.path.dirname(prefix), "weights.json"), "w") as f:
        json.dump(info, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(os.path.dirname(prefix), "vocabularies.json"), "w") as f:
        json.dump({key: vocabulary for key, (_, vocabulary) in _id_tables(model).items()}, f)
    return os.path.dirname(prefix)


def _id_tables(model) -> dict[str, tuple[Any, list[str]]]:
    """`{variable key: (table variable, vocabulary)}` of the Id features that have a vocabulary (row
    `i + 1` is `vocabulary[i]`, row 0 the unknown ids')."""
    keys = {id(v): k for k, v in _variables(model, False).items()}
    tables = {}
    for tower in (model.query_tower, model.candidate_tower):
        encoders = list((getattr(getattr(tower, "feature_encoder", None), "encoders", {}) or {}).values())
        bias = getattr(tower, "bias", None)  # `--candidate_bias`: a 1-wide Id table, remapped alike
        encoders += [bias.ids] if hasattr(bias, "ids") else []
        for encoder in encoders:
            vocabulary = getattr(encoder, "vocabulary", None)
            if vocabulary is None or not hasattr(encoder, "embedding"):
                continue
            for variable in encoder.embedding.weights:
                if id(variable) in keys:
                    tables[keys[id(variable)]] = (variable, vocabulary)
    return tables


def _remapped(old: np.ndarray, current: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`current` with row r taken from `old[rows[r]]` where `rows[r] >= 0`."""
    value = current.copy()
    kept = rows >= 0
    value[kept] = old[rows[kept]]
    return value


def check_compatible(source: str, config: TrainingConfig, schema: InputSchema) -> dict[str, Any]:
    """Raises a `ConfigError` naming the first setting in which `source`'s run and this one differ in a
    way that changes the towers' weights. Returns what `source/weights/weights.json` says."""
    job = JobDir(source)
    where = f"--warm_start_from {source}"
    info_path = os.path.join(job.path("weights"), "weights.json")
    if not tf.io.gfile.exists(info_path) or not tf.io.gfile.exists(job.config):
        state = job.read_state() if tf.io.gfile.exists(job.run_state) else None
        status = (state or {}).get("status", "no run_state.json")
        raise ConfigError(
            f"`{where}` holds no finished run's weights (job-dir/weights/ and config.json; run status: "
            f"{status}). Point it at the job-dir of a run that completed."
        )
    if os.path.normpath(source) == os.path.normpath(config.job_dir):
        raise ConfigError(
            f"`{where}` is this run's own --job-dir, whose outputs the new run replaces. Write the new run "
            "to a new --job-dir."
        )
    with tf.io.gfile.GFile(job.config) as f:
        old = json.load(f)
    for name in _SHAPING:
        if old.get(name) != getattr(config, name):
            raise ConfigError(
                f"`{where}`: that run has {name}={old.get(name)!r}, this one {getattr(config, name)!r}. A "
                f"warm start keeps the towers' weights, so --{name} must match: set --{name} {old.get(name)}."
            )
    for i in range(1, config.num_hidden_layers + 1):
        name = f"num_nodes_hidden_layer{i}"
        if old.get(name) != getattr(config, name):
            raise ConfigError(
                f"`{where}`: hidden layer {i} has {old.get(name)} units there and {getattr(config, name)} "
                f"here; set --{name} {old.get(name)}."
            )
    if (old.get("id_min_count", 0) == 0) != (config.id_min_count == 0):
        raise ConfigError(
            f"`{where}`: that run has id_min_count={old.get('id_min_count', 0)}, this one "
            f"{config.id_min_count}: one hashes Ids into num_buckets (0), the other keeps a vocabulary. "
            f"Set --id_min_count {old.get('id_min_count', 0)}."
        )
    old_schema = load_schema(job.schema)
    for side in ("query", "candidate"):
        old_specs = {s.name: s for s in old_schema.side(side)}
        new_specs = {s.name: s for s in schema.side(side)}
        for name in sorted(set(old_specs) | set(new_specs)):
            before, now = old_specs.get(name), new_specs.get(name)
            if before is None or now is None:
                present = "this run's schema only" if before is None else f"{source}'s schema only"
                raise ConfigError(
                    f"`{where}`: the {side} feature `{name}` is in {present}. A warm start needs the same "
                    "schema features (names and types); use that run's schema.json, or train from scratch."
                )
            for key in (
                "feature_type",
                "num_buckets",
                "vocab",
                "embedding_dim",
                "length",
                "embedding_module",
            ):
                if getattr(before, key) != getattr(now, key):
                    raise ConfigError(
                        f"`{where}`: the {side} feature `{name}` has {key}={_short(getattr(before, key))} "
                        f"there and {_short(getattr(now, key))} here. A warm start keeps the feature's "
                        f"weights, so its {key} must match."
                    )
    with tf.io.gfile.GFile(info_path) as f:
        return json.load(f)


def warm_start(model, config: TrainingConfig, schema: InputSchema, log=print) -> None:
    """Loads `config.warm_start_from`'s towers (and optimizer state when the optimizer is the same kind)
    into `model`, built (`build_weights`) under the run's strategy scope."""
    source = config.warm_start_from
    info = check_compatible(source, config, schema)
    prefix = os.path.join(JobDir(source).path("weights"), info.get("checkpoint", _PREFIX))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    same_optimizer = info.get("optimizer") == type(model.optimizer).__name__ and info.get(
        "optimizer_variables"
    ) == len(model.optimizer.variables)
    variables = _variables(model, same_optimizer)
    saved = dict(tf.train.list_variables(prefix))
    remap = _vocabulary_rows(model, source, variables)  # Id rows move with their ids
    reader = tf.train.load_checkpoint(prefix) if remap else None
    for key, rows in remap.items():
        variable = variables.pop(key)
        old = reader.get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")
        variable.assign(_remapped(old, variable.numpy(), rows))
    for key, variable in variables.items():
        shape = saved.get(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")
        if shape is None or list(shape) != list(variable.shape):
            raise ConfigError(
                f"`--warm_start_from {source}`: its weights do not fit this model (`{_name(variable)}`: "
                f"{shape} there, {list(variable.shape)} here). Use the same schema, --output_dim and hidden "
                "layers as that run."
            )
    status = tf.train.Checkpoint(**variables).read(prefix)
    status.expect_partial()  # another optimizer's state stays unread
    if same_optimizer:
        model.optimizer.iterations.assign(0)  # steps and epochs count from this run's start
        model.optimizer.learning_rate = config.learning_rate
    kept = "and optimizer state " if same_optimizer else ""
    log(
        f"Warm start: the towers' weights {kept}of {source}"
        + ("" if same_optimizer else f" (its optimizer was {info.get('optimizer')}: state not reused)")
        + "."
    )


def _vocabulary_rows(model, source: str, variables: dict[str, Any]) -> dict[str, np.ndarray]:
    """For each Id table (and its optimizer slots) built from a vocabulary: `{key: old row of each new
    row, -1 for ids the old run did not have}`; the unknown-id row 0 maps to the old row 0."""
    path = os.path.join(JobDir(source).path("weights"), "vocabularies.json")
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        old_vocabularies = json.load(f)
    remap = {}
    for key, (variable, vocabulary) in _id_tables(model).items():
        old = old_vocabularies.get(key)
        if old is None:
            continue
        old_row = {value: i + 1 for i, value in enumerate(old)}
        rows = np.array([0] + [old_row.get(value, -1) for value in vocabulary])
        remap[key] = rows
        slot_name = getattr(variable, "path", variable.name).split("/", 1)[-1].replace("/", "_")
        for slot_key, slot in variables.items():
            if slot_key.startswith("optimizer_") and getattr(slot, "path", slot.name).endswith(
                tuple(f"{slot_name}_{suffix}" for suffix in ("accumulator", "momentum", "velocity"))
            ):
                remap[slot_key] = rows
    return remap


def _name(variable) -> str:
    """A variable's path without the auto-numbered model name."""
    path = getattr(variable, "path", variable.name)
    return path.split("/", 1)[1] if path.startswith("two_tower_model") and "/" in path else path


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
