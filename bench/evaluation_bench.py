"""Benchmark of full-corpus evaluation (`tfrs_twotower.metrics.evaluate_retrieval`) on synthetic data.

Usage:
    python bench/evaluation_bench.py OUT.json                # 100K queries x 1M candidates x 64-d
    python bench/evaluation_bench.py OUT.json --small        # 10K x 100K x 64-d
    python bench/evaluation_bench.py OUT.json --queries 20000 --candidates 200000 --candidate-block 4096
    python bench/evaluation_bench.py OUT.json --small --path tf   # force the TensorFlow path

Prints the path that ran (the C kernel of `metrics.fast_ranks` and its code path, or TF), the wall time,
the process CPU time and the matmul throughput, and writes them with the metrics to OUT.json. The
machine's load is recorded too: the figure is only meaningful on an otherwise idle host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfrs_twotower.metrics import evaluate_retrieval, fast_ranks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", help="path of the JSON file to write")
    parser.add_argument("--small", action="store_true", help="10K queries x 100K candidates")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--query-block", type=int, default=None)
    parser.add_argument("--candidate-block", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--path", choices=("auto", "tf"), default="auto", help="auto: the C kernel when built; tf: TF only"
    )
    args = parser.parse_args()
    if args.path == "tf":
        os.environ[fast_ranks.DISABLE_ENV] = "1"
    path = f"c-kernel ({fast_ranks.kernel_isa()})" if fast_ranks.available() else "tf"
    num_queries = args.queries or (10_000 if args.small else 100_000)
    num_candidates = args.candidates or (100_000 if args.small else 1_000_000)

    rng = np.random.default_rng(args.seed)
    candidates = rng.standard_normal((num_candidates, args.dim), dtype=np.float32)
    positives = rng.integers(0, num_candidates, num_queries)
    # Queries near their positive, so the ranks spread over the whole range instead of all being ~N/2.
    noise = rng.standard_normal((num_queries, args.dim), dtype=np.float32)
    queries = candidates[positives] * rng.uniform(0.0, 0.5, (num_queries, 1)).astype(np.float32) + noise

    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = evaluate_retrieval(
        queries, positives, candidates, query_block=args.query_block, candidate_block=args.candidate_block
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    flops = 2.0 * num_queries * num_candidates * args.dim
    report = {
        "num_queries": num_queries,
        "num_candidates": num_candidates,
        "dim": args.dim,
        "query_block": args.query_block,
        "candidate_block": args.candidate_block,
        "path": path,
        "threads": fast_ranks.default_threads(),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "matmul_gflops_per_s": flops / wall / 1e9,
        "scores_per_s": num_queries * num_candidates / wall,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "platform": platform.platform(),
        "metrics": metrics,
    }
    print(
        f"[{path}] {num_queries} queries x {num_candidates} candidates x {args.dim}-d: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU, {report['matmul_gflops_per_s']:.0f} GFLOP/s (load {load_before[0]:.1f})"
    )
    print(json.dumps(metrics, indent=1))
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
