"""The in-batch softmax loss and its gradients: `Retrieval` with the fused CPU kernel vs with TF ops.

Usage:
    python bench/fused_loss.py --out bench/results/fused_loss.json
    python bench/fused_loss.py --small --out OUT.json   # CI smoke: tests/bench/test_fused_loss_smoke.py
    python bench/fused_loss.py --batches 4096 --dims 64 --xla --out OUT.json  # + TF ops under XLA

For each batch size B and embedding width D: random `[B, D]` query and candidate embeddings (as variables),
one `tf.function` computing `Retrieval(...)(queries, candidates)` and its gradient with respect to both,
timed as the median of `--repeats` calls after one warm-up call (tracing). Variants: the plain loss
(the TFRS tutorial's) and the loss with temperature, logQ correction and accidental-hit removal (what
`train` uses with those options); `--xla` adds the TF ops compiled by XLA (`jit_compile=True`: the
alternative to the kernel weighed in docs/architecture.md, "Decision: loss compute paths"). Also checks
that both paths give the same loss (relative difference).
Then the kernel alone (`fused_softmax.softmax_cross_entropy`, NumPy in and out) on each fast code path
this CPU runs (AVX-512, AVX2; the portable C reference is far slower than TF and not timed), at B = 8192.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import tensorflow as tf

from tfrs_twotower.tasks import Retrieval, fused_softmax


def time_step(
    task: Retrieval, batch: int, dim: int, options: bool, repeats: int, xla: bool = False
) -> tuple[float, float]:
    """(median seconds per loss + gradient call, loss value)."""
    rng = np.random.default_rng(0)
    queries = tf.Variable(rng.standard_normal((batch, dim)).astype("float32") * 0.3)
    candidates = tf.Variable(rng.standard_normal((batch, dim)).astype("float32") * 0.3)
    extra = {}
    if options:
        ids = rng.integers(0, max(2, batch // 5), batch)
        extra = {
            "candidate_ids": tf.constant(ids),
            "candidate_sampling_probability": tf.constant(np.bincount(ids)[ids].astype("float32") / batch),
        }

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            loss = task(queries, candidates, **extra)
        return loss, tape.gradient(loss, [queries, candidates])

    loss, _ = step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), float(loss)


def time_kernel(isa: str, batch: int, dim: int, repeats: int) -> float:
    """Median seconds of one kernel call (loss and gradients, no TF) on code path `isa`."""
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((batch, dim)).astype("float32") * 0.3
    candidates = rng.standard_normal((batch, dim)).astype("float32") * 0.3
    weights = np.ones(batch, "float32")
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        fused_softmax.softmax_cross_entropy(queries, candidates, weights, isa=isa)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", default="1024,4096,8192,16384")
    parser.add_argument("--dims", default="32,64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--xla", action="store_true", help="also time the TF ops compiled by XLA")
    parser.add_argument("--small", action="store_true", help="CI smoke: B = 256, D = 16, 2 repeats")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.small:
        args.batches, args.dims, args.repeats = "256", "16", 2
    if not fused_softmax.built():
        raise SystemExit("The fused kernel is not built (`pip install -e .` with a C compiler).")

    rows = []
    xla_column = " TF ops + XLA ms |" if args.xla else ""
    header = f"| B | D | loss | TF ops ms |{xla_column} fused ms | speed-up | relative loss difference |"
    print(header + "\n|---|---|---|---|---|---|---|" + ("---|" if args.xla else ""))
    for batch in (int(b) for b in args.batches.split(",")):
        for dim in (int(d) for d in args.dims.split(",")):
            for options in (False, True):
                settings = {"temperature": 0.2, "remove_accidental_hits": True} if options else {}
                tf_seconds, tf_loss = time_step(
                    Retrieval(fused=False, **settings), batch, dim, options, args.repeats
                )
                fused_seconds, fused_loss = time_step(
                    Retrieval(fused=True, **settings), batch, dim, options, args.repeats
                )
                if args.xla:
                    xla_seconds, _ = time_step(
                        Retrieval(fused=False, **settings), batch, dim, options, args.repeats, xla=True
                    )
                row = {
                    "batch": batch,
                    "dim": dim,
                    "loss": "temperature + logQ + hits" if options else "plain",
                    "tf_ops_ms": 1000 * tf_seconds,
                    "fused_ms": 1000 * fused_seconds,
                    "speedup": tf_seconds / fused_seconds,
                    "relative_loss_difference": abs(fused_loss - tf_loss) / abs(tf_loss),
                }
                if args.xla:
                    row["tf_ops_xla_ms"] = 1000 * xla_seconds
                rows.append(row)
                print(
                    f"| {batch} | {dim} | {row['loss']} | {row['tf_ops_ms']:.1f} |"
                    + (f" {row['tf_ops_xla_ms']:.1f} |" if args.xla else "")
                    + f" {row['fused_ms']:.1f} | "
                    f"{row['speedup']:.2f}x | {row['relative_loss_difference']:.1e} |",
                    flush=True,
                )
    code_paths = []
    batch = min(8192, max(int(b) for b in args.batches.split(",")))
    print("\n| code path | B | D | kernel ms |\n|---|---|---|---|")
    for isa in [i for i in fused_softmax.supported_isas() if i != "portable"]:
        for dim in (int(d) for d in args.dims.split(",")):
            seconds = time_kernel(isa, batch, dim, args.repeats)
            code_paths.append({"isa": isa, "batch": batch, "dim": dim, "kernel_ms": 1000 * seconds})
            print(f"| {isa} | {batch} | {dim} | {1000 * seconds:.1f} |", flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "isa": "avx512" if fused_softmax.available() else "portable",
        "tensorflow": tf.__version__,
        "load_average": os.getloadavg(),
        "rows": rows,
        "code_paths": code_paths,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
