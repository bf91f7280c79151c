"""With TFRecord inputs, `prepare_inputs` reads training, evaluation (`eval_data_path`) and the candidate
file through the native path: the Python record generator never runs, and the batches are the Python
path's."""

import json

import numpy as np
import tensorflow as tf

from tests.data.conftest import SCHEMA, candidate, pair
from tfrs_twotower.data import dataset as dataset_lib
from tfrs_twotower.data import write_tfrecord
from tfrs_twotower.training import TrainingConfig
from tfrs_twotower.training.inputs import prepare_inputs


def _config(tmp_path, **overrides):
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    write_tfrecord([pair(i) for i in range(90)], str(tmp_path / "train.tfrecord"), SCHEMA)
    write_tfrecord([pair(i) for i in range(90, 130)], str(tmp_path / "eval.tfrecord.gz"), SCHEMA)
    docs = [candidate(i) for i in range(20)]
    write_tfrecord(docs, str(tmp_path / "items.tfrecord"), SCHEMA, kind="candidates")
    values = dict(
        training_data_path=str(tmp_path / "train.tfrecord"),
        eval_data_path=str(tmp_path / "eval.tfrecord.gz"),
        candidate_data_path=str(tmp_path / "items.tfrecord"),
        input_schema_path=str(tmp_path / "schema.json"),
        input_file_format="tfrecord",
        job_dir=str(tmp_path / "job"),
        train_batch_size=16,
        eval_batch_size=16,
        seed=0,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def _batches(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_train_eval_and_corpus_take_the_native_path(tmp_path, monkeypatch):
    cfg = _config(tmp_path, shuffle_buffer=0)
    monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", False)
    python = prepare_inputs(cfg)
    python_eval = _batches(python.eval_dataset)
    monkeypatch.setattr(dataset_lib, "NATIVE_TFRECORD", True)

    def no_generator(self):
        raise AssertionError("the Python record generator ran")

    monkeypatch.setattr(dataset_lib._PairBatches, "__call__", no_generator)
    inputs = prepare_inputs(cfg)
    native_eval = _batches(inputs.eval_dataset)
    assert sum(len(b["weight"]) for b in _batches(inputs.train_dataset)) == 90
    assert sum(len(b["weight"]) for b in native_eval) == 40 == inputs.eval_scan.used_count
    assert inputs.corpus_keys == [f"m{i}" for i in range(7)]
    assert len(_batches(inputs.corpus_dataset)[0]["movie_id"]) == 7
    assert len(python_eval) == len(native_eval)
    for got, want in zip(native_eval, python_eval, strict=True):
        tf.nest.assert_same_structure(got, want)
        for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(want), strict=True):
            np.testing.assert_array_equal(a, b)
