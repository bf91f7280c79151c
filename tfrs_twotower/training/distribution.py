"""Which `tf.distribute` strategy a run uses, which worker this process is, and where it may write.

`distribution="auto"` reads the environment: `TF_CONFIG` naming several workers (chief/worker, as Vertex
AI sets it on every replica) -> `MultiWorkerMirroredStrategy`; several local GPUs -> `MirroredStrategy`;
else TensorFlow's default strategy. "default", "mirrored" and "multi_worker" force one ("mirrored" on a
machine without GPUs mirrors over its logical CPU devices, which is how the tests run it).

Only the chief writes to job-dir; the other workers run the same program into a temporary directory
(collective ops need every worker to take part in checkpoint and export writes) that `cleanup` removes.

Example:
>>> cluster_from_tf_config('{"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, '
...                        '"task": {"type": "worker", "index": 0}}')
Cluster(num_workers=2, worker_index=1, is_chief=False)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Iterator

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from tfrs_twotower.training.config import DISTRIBUTIONS


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among the workers: `worker_index` 0 is the chief."""

    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True


def cluster_from_resolver(resolver: tf.distribute.cluster_resolver.ClusterResolver) -> Cluster:
    """This process's `Cluster` from a TensorFlow cluster resolver (its cluster spec and task).

    The chief is the `chief` task, or `worker` 0 when the cluster has no `chief` (TensorFlow's rule);
    worker indices put the chief first, then the workers in order.
    """
    jobs = resolver.cluster_spec().as_dict()
    chiefs, workers = len(jobs.get("chief", [])), len(jobs.get("worker", []))
    if chiefs + workers == 0:
        return Cluster()
    task_type, index = resolver.task_type, resolver.task_id or 0
    if task_type not in ("chief", "worker"):
        raise ValueError(
            f"`TF_CONFIG` task type must be 'chief' or 'worker' for training; got {task_type!r} (evaluator "
            "and parameter-server tasks are not supported)."
        )
    worker_index = index if task_type == "chief" else chiefs + index
    return Cluster(num_workers=chiefs + workers, worker_index=worker_index, is_chief=worker_index == 0)


def cluster_from_tf_config(tf_config: str | None) -> Cluster:
    """Reads a `TF_CONFIG` value (None or empty: one worker) with TensorFlow's `TFConfigClusterResolver`."""
    if not tf_config:
        return Cluster()
    try:
        value = json.loads(tf_config)
        if not isinstance(value, dict) or not isinstance(value.get("task", {}), dict):
            raise TypeError(type(value).__name__)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f'`TF_CONFIG` must be JSON like {{"cluster": {{"worker": ["host:port", ...]}}, '
            f'"task": {{"type": "worker", "index": 0}}}}. Got {tf_config!r}.'
        ) from e
    # The resolver reads the environment variable whenever asked: set it to `tf_config` meanwhile.
    previous = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = tf_config
    try:
        return cluster_from_resolver(tf.distribute.cluster_resolver.TFConfigClusterResolver())
    finally:
        if previous is None:
            del os.environ["TF_CONFIG"]
        else:
            os.environ["TF_CONFIG"] = previous


def choose_distribution(requested: str, cluster: Cluster, num_gpus: int) -> str:
    """The strategy kind for `requested` ("auto" resolves by the cluster and the GPUs)."""
    if requested not in DISTRIBUTIONS:
        raise ValueError(
            f"The `distribution` parameter must be a str among {list(DISTRIBUTIONS)}. "
            f"Got {requested!r} instead."
        )
    if requested != "auto":
        if requested != "multi_worker" and cluster.num_workers > 1:
            raise ValueError(
                f"`TF_CONFIG` names {cluster.num_workers} workers but --distribution={requested} trains on "
                "one; "
                "use --distribution multi_worker (or auto), or unset TF_CONFIG."
            )
        return requested
    if cluster.num_workers > 1:
        return "multi_worker"
    return "mirrored" if num_gpus > 1 else "default"


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` of `kind`; call it before TensorFlow initialises its devices."""
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only: CPU replicas reduce through one device.
        return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


_COLLECTIVE_DTYPES = (tf.bool, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def _local_if_not_collective(next_creator, **kwargs):
    dtype = kwargs.get("dtype")
    if dtype is not None and tf.as_dtype(dtype) not in _COLLECTIVE_DTYPES and not kwargs.get("trainable"):
        local = {k: v for k, v in kwargs.items() if k in ("initial_value", "dtype", "name", "shape")}
        # The class itself, not `tf.Variable`: that would re-enter the creator scopes (this one included).
        return resource_variable_ops.ResourceVariable(trainable=False, **local)
    return next_creator(**kwargs)


class Distribution:
    """A run's strategy and this process's role in it.

    Args:
      requested: the `distribution` setting ("auto", "default", "mirrored", "multi_worker").
      tf_config: the `TF_CONFIG` value (default: the environment's).
    """

    def __init__(self, requested: str = "auto", tf_config: str | None = None):
        if tf_config is None:
            tf_config = os.environ.get("TF_CONFIG")
        self.cluster = cluster_from_tf_config(tf_config)
        self.kind = choose_distribution(requested, self.cluster, len(tf.config.list_physical_devices("GPU")))
        self.strategy = make_strategy(self.kind)
        self._scratch: str | None = None

    @property
    def is_chief(self) -> bool:
        return self.cluster.is_chief

    @property
    def num_workers(self) -> int:
        return self.cluster.num_workers

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def uses_custom_loop(self) -> bool:
        """Whether training runs in `custom_loop` rather than Keras `fit`: with several replicas.

        Keras 3 `fit` does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585), and under
        MirroredStrategy it fails on our string features when it splits the batches; the custom loop
        feeds each replica its own per-replica batches instead.
        """
        # Also "mirrored" with one device (a CPU machine): Keras `fit` under a MirroredStrategy reuses one
        # iterator across epochs, so every epoch after the first ran out of data ("input ran out of data").
        return self.kind in ("multi_worker", "mirrored") or self.num_replicas > 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """`strategy.scope()`, where the model and its optimizer are made.

        Collective broadcasts (how MultiWorkerMirroredStrategy gives every worker the chief's initial
        values) carry bool, int32/64 and float types only. Frozen variables of other dtypes (the hashed
        n-gram text encoder's uint8 sign table) are made as ordinary per-worker variables instead: they
        are built from a seed, so every worker's copy is the same.
        """
        with self.strategy.scope():
            if self.kind != "multi_worker":
                yield
                return
            with tf.variable_creator_scope(_local_if_not_collective):
                yield

    def output_dir(self, job_dir: str) -> str:
        """Where this process writes: job_dir on the chief, a temporary directory elsewhere."""
        if self.is_chief:
            return job_dir
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix=f"tfrs_twotower_worker{self.cluster.worker_index}_")
        return self._scratch

    def barrier(self) -> None:
        """Waits until every worker gets here (a collective all-reduce); a no-op with one worker."""
        if self.num_workers > 1:
            ones = self.strategy.run(lambda: tf.constant(1.0))
            self.strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()

    def check_batch_size(self, name: str, global_batch: int) -> int:
        """The per-replica batch size of `global_batch`; raises unless the replicas divide it."""
        if global_batch % self.num_replicas:
            raise ValueError(
                f"The `{name}` parameter ({global_batch}) is the global batch and must be divisible by the "
                f"{self.num_replicas} replicas in sync. Use a multiple of {self.num_replicas}."
            )
        return global_batch // self.num_replicas

    def cleanup(self) -> None:
        """Removes a non-chief worker's temporary outputs."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
