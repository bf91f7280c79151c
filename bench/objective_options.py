"""Objective options of the retrieval task on MovieLens 100K: plain in-batch softmax against each option
switched on alone, and together.

Usage:
    python bench/objective_options.py [--data DIR]
    python bench/objective_options.py --data DIR --smoke      # 400 ratings, 1 epoch, 1 seed: seconds

Data as bench/movielens.py: every rating of `u.data` is a pair, random 80/20 split with seed 42, all 1,682
movies are the candidates; Recall@10/@100 and NDCG@10 of the test pairs against the whole corpus
(`evaluate_retrieval`). Every row trains the same model (`BASE`: all the MovieLens features, no hidden
layer, 32-d output, batch 1024, Adagrad 0.1, 3 epochs) from the same in-memory pipeline, once per seed;
only the task's options change (the last row changes the batch too: the `best` settings of
bench/movielens.py). The table gives the mean over the seeds and the change against plain.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import movielens as harness  # noqa: E402  (bench/movielens.py)

BASE = {
    "features": "full",
    "epochs": 3,
    "batch_size": 1024,
    "optimizer": "adagrad",
    "learning_rate": 0.1,
    "hidden": [],
    "output_dim": 32,
    "projection": True,
}
ROWS = {
    "plain in-batch softmax": {},
    "temperature 0.2 + l2_normalize": {"l2_normalize": True, "temperature": 0.2},
    "remove_accidental_hits": {"remove_accidental_hits": True},
    "sampling_bias_correction=counts": {"sampling_bias_correction": "counts"},
    "sampling_bias_correction=estimate": {"sampling_bias_correction": "estimate"},
    "num_mixed_negatives=256": {"num_mixed_negatives": 256},
    "num_hard_negatives=100": {"num_hard_negatives": 100},
    "counts + temperature 0.2 + l2_normalize": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
    },
    "counts + temperature 0.2 + l2_normalize + mixed 256": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
        "num_mixed_negatives": 256,
    },
    "all: the above + accidental hits + hard 100": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
        "num_mixed_negatives": 256,
        "remove_accidental_hits": True,
        "num_hard_negatives": 100,
    },
    # The `best` row of bench/movielens.py: the same options with 4x the steps (3 epochs at batch 256).
    "counts + temperature 0.2 + l2_normalize, batch 256": {
        "sampling_bias_correction": "counts",
        "l2_normalize": True,
        "temperature": 0.2,
        "batch_size": 256,
    },
}
METRICS = ("recall_at_10", "recall_at_100", "ndcg_at_10")


def markdown_table(summary: dict) -> str:
    plain = summary["plain in-batch softmax"]
    lines = [
        "| options | Recall@10 | Recall@100 | NDCG@10 | Δ Recall@10 | Δ Recall@100 | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        spread = lambda k, row=row: f"{row[k]:.4f}" + (  # noqa: E731
            f" ± {row[k + '_std']:.4f}" if row.get(k + "_std") else ""
        )
        lines.append(
            f"| {name} | {spread('recall_at_10')} | {spread('recall_at_100')} | {row['ndcg_at_10']:.4f} | "
            f"{row['recall_at_10'] - plain['recall_at_10']:+.4f} | "
            f"{row['recall_at_100'] - plain['recall_at_100']:+.4f} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="the ml-100k folder (default: movielens.movielens_dir)")
    parser.add_argument(
        "--out", default=None, help="JSON to write (default bench/results/objective_options.json)"
    )
    parser.add_argument("--seeds", default="42,43")
    parser.add_argument("--rows", default=None, help="row names to run, separated by ';' (default: all)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="400 ratings, 1 epoch, 1 seed, batch 64")
    args = parser.parse_args(argv)
    if not args.data:
        from tfrs_twotower.movielens import movielens_dir

        args.data = movielens_dir("ml-100k")  # a local copy, else downloaded from GroupLens
    seeds = [int(s) for s in args.seeds.split(",") if s]
    base = dict(BASE)
    rows = {name: ROWS[name] for name in (args.rows.split(";") if args.rows else ROWS)}
    if args.smoke:
        seeds = seeds[:1]
        base.update(epochs=1, batch_size=64)
        for options in rows.values():
            options.pop("batch_size", None)
            if "num_mixed_negatives" in options:
                options["num_mixed_negatives"] = 16
            if "num_hard_negatives" in options:
                options["num_hard_negatives"] = 8

    data = harness.ml_data.load_data(args.data, smoke=args.smoke)
    workdir = args.workdir or tempfile.mkdtemp(prefix="objective_options_")
    paths = harness.ml_data.write_data(data, workdir)["full"]
    train, test, movies = (harness.ml_data.read_jsonl(paths[k]) for k in ("train", "test", "movies"))
    load = [os.getloadavg()]
    runs: dict[str, list] = {}
    summary: dict[str, dict] = {}
    for name, options in rows.items():
        runs[name] = []
        for seed in seeds:
            settings = {**base, **options, "seed": seed}
            result = harness.ml_fit.fit_ours(settings, paths, train, test, movies)
            runs[name].append(
                {"seed": seed, "metrics": result["metrics"], "train_seconds": result["train_seconds"]}
            )
            print(
                f"  {name} seed {seed}: R@10 {result['metrics']['recall_at_10']:.4f} "
                f"R@100 {result['metrics']['recall_at_100']:.4f} ({result['train_seconds']:.0f} s)",
                flush=True,
            )
        summary[name] = {k: float(np.mean([r["metrics"][k] for r in runs[name]])) for k in METRICS}
        if len(seeds) > 1:
            summary[name].update(
                {f"{k}_std": float(np.std([r["metrics"][k] for r in runs[name]])) for k in METRICS}
            )
        summary[name]["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs[name]]))
        load.append(os.getloadavg())
    table = markdown_table(summary) if "plain in-batch softmax" in summary else ""
    print(table)
    report = {
        "command": " ".join(
            ["python", "bench/objective_options.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": harness.ml_report.machine(),
        "versions": harness.ml_report.versions(),
        "load_average": load,
        "base": base,
        "seeds": seeds,
        "data": {
            "name": data["name"],
            "train_pairs": len(train),
            "test_pairs": len(test),
            "movies": len(movies),
        },
        "rows": rows,
        "summary": summary,
        "runs": runs,
        "table": table,
    }
    out = args.out or os.path.join(
        harness.BENCH, "results", f"objective_options{'-smoke' if args.smoke else ''}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"{time.perf_counter() - started:.0f} s")
