"""Scaling: training examples/second with 1 process vs 2 worker processes on this machine.

Each run trains the sample data (no evaluation) with the same global batch; throughput is measured over
the epochs after the first (tracing and collective setup excluded): steps * global batch / seconds.
The 2-worker run is two local processes under MultiWorkerMirroredStrategy on 127.0.0.1 (custom loop,
global-batch negatives); the 1-process runs are the default strategy, with Keras `fit` and with the custom
loop (`--checkpoint_every_steps`), so the driver's and the collectives' costs show separately.

Usage: python bench/scaling.py [--pairs 20000] [--batch 512] [--steps 30] [--epochs 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
import keras
config = json.loads(sys.argv[1])
import tfrs_twotower as tt

class Clock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__(); self.times = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)

clock = Clock()
tt.train(tt.TrainingConfig(**config), callbacks=[clock])
print("EPOCH_SECONDS " + json.dumps(clock.times), flush=True)
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(configs: list[dict], tf_configs: list[dict | None], timeout: float) -> list[float]:
    processes = []
    try:
        for config, tf_config in zip(configs, tf_configs, strict=True):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
            env.pop("TF_CONFIG", None)
            if tf_config:
                env["TF_CONFIG"] = json.dumps(tf_config)
            processes.append(subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(config)], env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
            ))
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, out in zip(processes, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(out[-3000:])
    line = next(x for x in outputs[0].splitlines() if x.startswith("EPOCH_SECONDS "))
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench/results/scaling.json")
    args = parser.parse_args()
    from tfrs_twotower.sample_data import generate_sample

    work = tempfile.mkdtemp(prefix="scaling_")
    sample = generate_sample(os.path.join(work, "sample"), num_pairs=args.pairs)
    base = dict(
        training_data_path=sample.train_jsonl, input_schema_path=sample.schema, eval_split=0.0,
        train_batch_size=args.batch, training_steps_per_epoch=args.steps, num_epochs=args.epochs,
        num_hidden_layers=1, verbose=0, overwrite=True,
    )
    results = {"pairs": args.pairs, "global_batch": args.batch, "steps_per_epoch": args.steps,
               "cpus": os.cpu_count(), "runs": {}}
    runs = {
        "1 process, fit": ([{**base, "job_dir": f"{work}/fit", "distribution": "default"}], [None]),
        "1 process, custom loop": (
            [{**base, "job_dir": f"{work}/loop", "distribution": "default", "checkpoint_every_steps": 10**6}],
            [None],
        ),
    }
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    runs["2 workers, MultiWorkerMirrored"] = (
        [{**base, "job_dir": f"{work}/mw"}] * 2,
        [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)],
    )
    for name, (configs, tf_configs) in runs.items():
        started = time.perf_counter()
        seconds = _run(configs, tf_configs, timeout=1200)
        steady = seconds[1:] or seconds
        rate = args.steps * args.batch * len(steady) / sum(steady)
        results["runs"][name] = {"epoch_seconds": [round(s, 2) for s in seconds],
                                 "examples_per_second": round(rate, 1),
                                 "wall_seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: {rate:.0f} examples/s (epochs {[round(s, 2) for s in seconds]})", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
