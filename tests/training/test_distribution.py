"""Strategy choice, TF_CONFIG parsing, record sharding and restart semantics (fast, in-process)."""

import json
import subprocess

import pytest

from tfrs_twotower.data import make_dataset
from tfrs_twotower.sample_data import generate_sample
from tfrs_twotower.training import TrainingConfig
from tfrs_twotower.training.distribution import (
    Cluster,
    Distribution,
    choose_distribution,
    cluster_from_tf_config,
)
from tfrs_twotower.training.job_dir import JobDir

from .processes import PYTHON, ROOT, child_env


def _tf_config(task_type, index, chief=True, workers=2):
    cluster = {"worker": [f"127.0.0.1:{9000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:8999"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, Cluster(1, 0, True)),
        (_tf_config("chief", 0), Cluster(3, 0, True)),
        (_tf_config("worker", 1), Cluster(3, 2, False)),
        (_tf_config("worker", 0, chief=False), Cluster(2, 0, True)),
        (_tf_config("worker", 1, chief=False), Cluster(2, 1, False)),
    ],
)
def test_cluster_from_tf_config(value, expected):
    assert cluster_from_tf_config(value) == expected


def test_tf_config_errors_say_what_is_expected():
    with pytest.raises(ValueError, match="`TF_CONFIG` must be JSON"):
        cluster_from_tf_config("{not json")
    with pytest.raises(ValueError, match="task type must be 'chief' or 'worker'.*evaluator"):
        cluster_from_tf_config(_tf_config("evaluator", 0))


@pytest.mark.parametrize(
    "requested, workers, gpus, expected",
    [
        ("auto", 1, 0, "default"),
        ("auto", 1, 1, "default"),
        ("auto", 1, 2, "mirrored"),
        ("auto", 2, 0, "multi_worker"),
        ("auto", 3, 4, "multi_worker"),
        ("mirrored", 1, 0, "mirrored"),
        ("multi_worker", 1, 0, "multi_worker"),
        ("default", 1, 8, "default"),
    ],
)
def test_choose_distribution(requested, workers, gpus, expected):
    assert choose_distribution(requested, Cluster(workers, 0, True), gpus) == expected


def test_forcing_one_worker_strategy_under_a_cluster_refuses():
    with pytest.raises(ValueError, match="names 2 workers but --distribution=default"):
        choose_distribution("default", Cluster(2, 0, True), 0)


def test_config_validates_distribution_and_checkpoint_steps():
    base = dict(training_data_path="t", input_schema_path="s", job_dir="j")
    with pytest.raises(ValueError, match="The `distribution` parameter must be"):
        TrainingConfig(**base, distribution="tpu").validate()
    message = "The `checkpoint_every_steps` parameter must be an int in \\[1, inf\\)"
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**base, checkpoint_every_steps=0).validate()


def test_default_distribution_is_one_replica_and_checks_batch_divisibility():
    distribution = Distribution("default", tf_config="")
    assert (distribution.kind, distribution.num_replicas, distribution.is_chief) == ("default", 1, True)
    assert distribution.output_dir("job") == "job"
    assert distribution.check_batch_size("train_batch_size", 7) == 7


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(str(tmp_path_factory.mktemp("sample")), num_pairs=700)


def _rows(batch):
    return [s.decode() for s in batch["query"]["user_id"].numpy()]


@pytest.mark.parametrize("count", [2, 3])
def test_record_shards_are_the_blocks_of_the_unsharded_global_batches(sample, count):
    common = dict(paths=sample.train_jsonl, schema=sample.schema, subset="train", seed=3, shuffle_buffer=100)
    whole = [_rows(b) for b in make_dataset(batch_size=32 * count, **common)]
    shards = [
        [_rows(b) for b in make_dataset(batch_size=32, shard=(i, count), **common)] for i in range(count)
    ]
    full = [b for b in whole if len(b) == 32 * count]  # the incomplete last global batch is dropped
    assert all(len(s) == len(full) for s in shards)
    for step, global_batch in enumerate(full):
        assert sum((shard[step] for shard in shards), []) == global_batch


def test_shard_errors(sample):
    with pytest.raises(ValueError, match="The `shard` index must be in \\[0, 2\\)"):
        make_dataset(sample.train_jsonl, sample.schema, shard=(2, 2))
    with pytest.raises(ValueError, match="must be a pair"):
        make_dataset(sample.train_jsonl, sample.schema, shard=3)


def test_restart_with_same_arguments_resumes_even_with_overwrite(tmp_path):
    job = JobDir(str(tmp_path))
    job.write_state("running", {"num_epochs": 3, "overwrite": True})
    assert job.prepare({"num_epochs": 3, "overwrite": True}, overwrite=True) is True
    assert job.prepare({"num_epochs": 4, "overwrite": True}, overwrite=True) is False  # other settings: over


def test_importing_the_package_leaves_tensorflow_unconfigured():
    # Collective ops (multi-worker) and GPU memory limits can only be set before TensorFlow initialises.
    code = (
        "from tensorflow.python.eager import context\n"
        "import tfrs_twotower.cli, tfrs_twotower.training.trainer\n"
        "assert context.context()._context_handle is None, 'importing tfrs_twotower initialised TensorFlow'\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", code], env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_tf_config_is_read_by_tensorflows_resolver_and_the_environment_restored(monkeypatch):
    import os

    import tensorflow as tf

    from tfrs_twotower.training.distribution import cluster_from_resolver

    monkeypatch.setenv("TF_CONFIG", _tf_config("chief", 0, workers=1))
    assert cluster_from_tf_config(_tf_config("worker", 1, workers=3)) == Cluster(4, 2, False)
    assert os.environ["TF_CONFIG"] == _tf_config("chief", 0, workers=1)  # the caller's value is back
    monkeypatch.delenv("TF_CONFIG")
    assert cluster_from_tf_config(_tf_config("worker", 0)) == Cluster(3, 1, False)
    assert "TF_CONFIG" not in os.environ
    spec = tf.train.ClusterSpec({"worker": ["a:1", "b:2"]})
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type="worker", task_id=1)
    assert cluster_from_resolver(resolver) == Cluster(2, 1, False)
