"""`tfrs-twotower prepare` throughput (1 and 2 DirectRunner workers) and `train --prepared_data_path`
end to end (wall time, peak RSS) on synthetic Id-only pairs.

Data: `--files` JSONL files of (user_id, item_id) pairs, users uniform over `--users`, items Zipf-like
over `--items`, and `candidates.jsonl` listing every item: the corpus (`--candidate_data_path`) has the
same size at every scale, so peak RSS beyond the corpus is comparable.
Each `prepare` and `train` runs in a child process (`tfrs-twotower ...`); peak RSS is the child's
`ru_maxrss` (Beam's worker processes are children of the child, counted apart as `children_max_rss`).

Usage:
  python bench/prepare_throughput.py --phase prepare --pairs 400000 --out /tmp/beam/prepare.json
  python bench/prepare_throughput.py --phase train --pairs 1000000,5000000 --out /tmp/beam/train.json
  (`--num_epochs 1` for a quicker train run; compare sizes at equal epochs: the second epoch raised the
  1M peak by 38 MB, see docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

SCHEMA = {
    "query": {"user_id": {"feature_type": "Id", "config": {"num_buckets": 200_000}}},
    "candidate": {"item_id": {"feature_type": "Id", "config": {"num_buckets": 100_000}}},
}


def write_pairs(folder: str, pairs: int, files: int, users: int, items: int, seed: int = 0) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    per_file = -(-pairs // files)
    for f in range(files):
        n = min(per_file, pairs - f * per_file)
        u = rng.integers(0, users, n)
        i = np.minimum((rng.pareto(1.2, n) * items / 50).astype(np.int64), items - 1)
        path = os.path.join(folder, f"part-{f}.jsonl")
        with open(path, "w") as out:
            out.writelines(
                f'{{"query": {{"user_id": "u{a}"}}, "candidate": {{"item_id": "i{b}"}}}}\n'
                for a, b in zip(u.tolist(), i.tolist(), strict=True)
            )
        paths.append(path)
    write_candidates(folder, items)
    with open(os.path.join(folder, "schema.json"), "w") as out:
        json.dump(SCHEMA, out)
    return paths


def write_candidates(folder: str, items: int) -> None:
    with open(os.path.join(folder, "candidates.jsonl"), "w") as out:
        out.writelines(f'{{"item_id": "i{k}"}}\n' for k in range(items))


def run_child(command: list[str], log: str) -> dict:
    """Runs `command`, returns wall seconds and the child's peak RSS (MB) from wait4's rusage."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfrs_twotower.cli", *args]


def prepare(data: str, out: str, workers: int, log: str, candidates: str | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    candidates = candidates or os.path.join(data, "candidates.jsonl")
    command = cli(
        "prepare",
        "--training_data_path",
        os.path.join(data, "part-*.jsonl"),
        "--input_schema_path",
        os.path.join(data, "schema.json"),
        "--output_dir",
        out,
        "--eval_split",
        "0.01",
        "--candidate_data_path",
        candidates,
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
    )
    return run_child(command, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", choices=("prepare", "train"), required=True)
    parser.add_argument("--pairs", default="400000", help="comma-separated pair counts")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--num_epochs", type=int, default=2, help="train's --num_epochs")
    parser.add_argument("--work", default="/tmp/beam/bench")
    parser.add_argument("--out", default="/tmp/beam/prepare_throughput.json")
    args = parser.parse_args()
    results = {"phase": args.phase, "load": os.getloadavg(), "cpus": os.cpu_count(), "runs": []}
    for pairs in [int(p) for p in args.pairs.split(",")]:
        data = os.path.join(args.work, f"data-{pairs}")
        if not os.path.exists(os.path.join(data, "schema.json")):
            write_pairs(data, pairs, args.files, args.users, args.items)
        if not os.path.exists(os.path.join(data, "candidates.jsonl")):
            write_candidates(data, args.items)
        prepared = os.path.join(args.work, f"prepared-{pairs}")
        if args.phase == "prepare":
            for workers in (1, 2):
                run = prepare(data, prepared + f"-w{workers}", workers, f"{prepared}-w{workers}.log")
                run.update(pairs=pairs, workers=workers, records_per_s=round(pairs / run["seconds"]))
                print(json.dumps(run), flush=True)
                results["runs"].append(run)
            continue
        if not os.path.exists(os.path.join(prepared, "manifest.json")):
            run = prepare(data, prepared, 2, prepared + ".log")
            run.update(pairs=pairs, step="prepare", workers=2, records_per_s=round(pairs / run["seconds"]))
            print(json.dumps(run), flush=True)
            results["runs"].append(run)
        job = os.path.join(args.work, f"job-{pairs}-e{args.num_epochs}")
        command = cli(
            "train",
            "--prepared_data_path",
            prepared,
            "--input_schema_path",
            os.path.join(data, "schema.json"),
            "--job-dir",
            job,
            "--overwrite",
            "--eval_split",
            "0.01",
            "--train_batch_size",
            "8192",
            "--eval_batch_size",
            "8192",
            "--num_epochs",
            str(args.num_epochs),
            "--learning_rate",
            "0.05",
            "--verbose",
            "2",
        )
        run = run_child(command, job + ".log")
        metrics = json.load(open(os.path.join(job, "metrics.json")))
        run.update(
            pairs=pairs,
            step="train",
            epochs=args.num_epochs,
            train_seconds=round(metrics.get("train_seconds", 0), 1),
            val_recall_at_100=metrics.get("final", {}).get("val_recall_at_100"),
        )
        print(json.dumps(run), flush=True)
        results["runs"].append(run)
    results["load_after"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
