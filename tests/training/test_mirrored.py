"""MirroredStrategy over two logical CPU devices in one process (custom loop) vs one replica (Keras `fit`).

Same model, same global batch and seed: the exported encoders must match within float round-off
(atol 2e-4, rtol 2e-3 after 10 Adagrad steps), as the replicas score their queries against the
all-gathered global batch and their gradients sum to the single-replica ones.
"""

import json

import numpy as np
import pytest

from tfrs_twotower.data import make_dataset
from tfrs_twotower.sample_data import generate_sample

from .processes import PYTHON, child_env, encode, start, stop, wait_all
from .test_multi_worker import SCRIPT, _config

MEAN = {"loss_reduction": "mean"}  # the multi-worker test covers "sum"


@pytest.mark.slow
def test_mirrored_two_cpu_replicas_match_one_replica(tmp_path):
    sample = generate_sample(str(tmp_path / "sample"), num_pairs=2000)
    runs = {
        "mirrored": (_config(sample, tmp_path / "mirrored", distribution="mirrored", **MEAN), ["2"]),
        "single": (_config(sample, tmp_path / "single", distribution="default", **MEAN), []),
    }
    processes = []
    try:
        for name, (config, extra) in runs.items():
            log = tmp_path / f"{name}.log"
            process = start(
                [PYTHON, SCRIPT, json.dumps(config), str(tmp_path / f"{name}.npz"), *extra], child_env(), log
            )
            processes.append(process)
            wait_all([process], timeout=300, logs=[log])
    finally:
        for process in processes:
            stop(process)
    report = json.loads((tmp_path / "mirrored.log").read_text().strip().splitlines()[-1])
    assert report["replicas"] == 1  # train() leaves no strategy behind; the run itself had two replicas
    batch = next(iter(make_dataset(sample.train_jsonl, sample.schema, subset="all", batch_size=64)))
    for side in ("query", "candidate"):
        features = dict(batch[side])
        mirrored = encode(tmp_path / "mirrored" / f"{side}_model", features)
        single = encode(tmp_path / "single" / f"{side}_model", features)
        np.testing.assert_allclose(mirrored, single, atol=2e-4, rtol=2e-3, err_msg=side)
