"""Benchmark of the retrieval indexes: build time and memory, exact vs ScaNN queries/second, recall@k.

Usage:
    python bench/index_bench.py --sizes 100000,1000000 --dim 64 --out bench/results/index.json
    python bench/index_bench.py --small            # CI smoke: 20K candidates, a few queries

Candidates and queries are synthetic with clustered structure (Gaussian clusters around random
centres), streamed to `index_from_dataset` by a `tf.data` generator so that the RSS delta is the index's
own memory. Each (size, index) runs in a fresh child process: memory figures are not polluted by the
previous run. The exact (BruteForce) child saves its top-k, which the ScaNN child scores recall against.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

BATCH = 10_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Samples the RSS every 20 ms in a thread; `peak` is the highest seen."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def centres(dim: int, clusters: int) -> np.ndarray:
    return np.random.default_rng(12345).standard_normal((clusters, dim)).astype(np.float32)


def clustered_batch(c: np.ndarray, rows: int, seed: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, len(c), rows)]
    x += noise * rng.standard_normal(x.shape, dtype=np.float32)
    return x


def candidate_dataset(n: int, dim: int, clusters: int, noise: float):
    import tensorflow as tf

    c = centres(dim, clusters)

    def gen():
        for start in range(0, n, BATCH):
            rows = min(BATCH, n - start)
            yield np.arange(start, start + rows, dtype=np.int64), clustered_batch(c, rows, start, noise)

    spec = (tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, dim], tf.float32))
    dataset = tf.data.Dataset.from_generator(gen, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-n // BATCH)))


def timed(fn, *args, repeats: int) -> float:
    """Best seconds per call over `repeats` calls (after one warm-up call)."""
    fn(*args)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def run_child(args) -> dict:
    """Builds one index over `args.n` candidates and measures it."""
    import tensorflow as tf

    from tfrs_twotower.index import BruteForce, ScaNN

    queries = clustered_batch(
        centres(args.dim, args.clusters), args.queries, seed=-1 % 2**32, noise=args.noise
    )
    dataset = candidate_dataset(args.n, args.dim, args.clusters, args.noise)
    if args.kind == "exact":
        layer = BruteForce(k=args.k)
    else:
        layer = ScaNN(
            k=args.k,
            num_leaves=args.num_leaves,
            num_leaves_to_search=args.num_leaves_to_search,
            num_reordering_candidates=args.num_reordering_candidates,
        )
    # Warm up TensorFlow (tf.data, first ops) so that the RSS delta is the index's, not the runtime's.
    type(layer)(k=1).index_from_dataset(candidate_dataset(100, args.dim, args.clusters, args.noise))
    rss0 = rss_mb()
    with PeakRss() as peak:
        t = time.perf_counter()
        layer.index_from_dataset(dataset)
        build_s = time.perf_counter() - t
    # Give freed heap memory (ScaNN's training scratch) back to the OS: the delta is then what is held.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    result = {
        "kind": args.kind,
        "n": args.n,
        "dim": args.dim,
        "build_s": round(build_s, 2),
        "rss_delta_mb": round(rss_mb() - rss0, 1),
        "peak_rss_delta_mb": round(peak.peak - rss0, 1),
        "index_mb": round(layer.index_bytes / 2**20, 1),
        "embeddings_mb": round(args.n * args.dim * 4 / 2**20, 1),
    }
    if args.kind == "scann":
        result["params"] = layer.params.to_dict()

    batch_fn = tf.function(lambda q: layer(q), input_signature=[tf.TensorSpec([None, args.dim], tf.float32)])
    single_fn = tf.function(lambda q: layer(q), input_signature=[tf.TensorSpec([args.dim], tf.float32)])
    # The exact search's [batch, n] score matrix is bounded by searching 100 queries per call.
    chunk = args.queries if args.kind == "scann" else min(args.queries, 100)
    q_batches = [tf.constant(queries[i : i + chunk]) for i in range(0, len(queries), chunk)]

    def search_all():
        return [batch_fn(q)[1].numpy() for q in q_batches]

    ids = np.concatenate(search_all())
    batch_s = timed(search_all, repeats=args.repeats)
    singles = [tf.constant(q) for q in queries[: args.single_queries]]

    def search_singles():
        for q in singles:
            single_fn(q)[1].numpy()

    single_s = timed(search_singles, repeats=args.repeats) / len(singles)
    result.update(
        batch_qps=round(len(queries) / batch_s, 1),
        single_qps=round(1 / single_s, 1),
        batch_size=chunk,
        single_ms=round(single_s * 1000, 3),
    )
    if args.kind == "exact":
        np.save(args.exact_ids, ids)
    else:
        exact = np.load(args.exact_ids)
        result["recall_at_k"] = round(
            float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact, strict=True)])), 4
        )
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--out", default="bench/results/index.json")
    parser.add_argument("--small", action="store_true", help="CI smoke: 20K candidates, 200 queries")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=1000, help="batch of queries (and recall sample)")
    parser.add_argument("--single-queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=0, help="clusters (0: n / 500)")
    parser.add_argument("--noise", type=float, default=0.5, help="std of the noise around centres (unit)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-leaves", type=int, default=None)
    parser.add_argument("--num-leaves-to-search", type=int, default=None)
    parser.add_argument("--num-reordering-candidates", type=int, default=None)
    parser.add_argument("--kinds", default="exact,scann")
    # Internal: one measurement in a child process.
    parser.add_argument("--child", choices=["exact", "scann"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--exact-ids", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        args.kind = args.child
        print("RESULT " + json.dumps(run_child(args)), flush=True)
        return
    if args.small:
        args.sizes, args.queries, args.single_queries, args.repeats = "20000", 200, 50, 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            clusters = args.clusters or max(n // 500, 10)
            for kind in args.kinds.split(","):
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    kind,
                    "--n",
                    str(n),
                    "--exact-ids",
                    os.path.join(tmp, f"exact_{n}.npy"),
                    "--clusters",
                    str(clusters),
                ]
                for name in (
                    "dim",
                    "k",
                    "queries",
                    "single_queries",
                    "noise",
                    "repeats",
                    "num_leaves",
                    "num_leaves_to_search",
                    "num_reordering_candidates",
                ):
                    if getattr(args, name) is not None:
                        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
                if out.returncode != 0 or not lines:
                    raise SystemExit(f"The {kind} run at n={n} failed:\n{out.stderr[-4000:]}")
                result = json.loads(lines[-1][len("RESULT ") :])
                result["clusters"] = clusters
                print(json.dumps(result), flush=True)
                results.append(result)
    for r in results:
        if r["kind"] == "scann":
            exact = next(e for e in results if e["kind"] == "exact" and e["n"] == r["n"])
            r["speedup_batch"] = round(r["batch_qps"] / exact["batch_qps"], 1)
            r["speedup_single"] = round(r["single_qps"] / exact["single_qps"], 1)
            print(
                f"n={r['n']}: recall@{args.k}={r['recall_at_k']} speedup batch x{r['speedup_batch']} "
                f"single x{r['speedup_single']}"
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count()}, "args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
