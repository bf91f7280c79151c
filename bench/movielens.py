"""MovieLens: our two-tower model against the TensorFlow Recommenders reference, side by side in one run.

Usage:
    python bench/movielens.py                              # ml-100k: a local copy, else downloaded
    python bench/movielens.py --data ../shared/data/ml-1m-cs100-subset --epochs 10 --runs 1
    python bench/movielens.py --data DIR --smoke          # a few hundred pairs, one epoch: CI smoke

Data (GroupLens files, read where they are; nothing is copied into the repository):
- `ml-100k`: every rating is a pair (the TFRS tutorial), random 80/20 split with seed 42, all 1,682 movies
  are the candidates.
- `ml-1m-cs100-subset` (users 1..2999 of ML-1M, with `ml-1m/movies.dat` and `users.dat`): ratings >= 4 are
  the positive pairs, random 80/20 split with seed 42; the candidates are the 3,615 movies the subset rates.

Two comparisons, each a row for ours and a row for TFRS (bench/reference_tfrs.py, in its own process with
TF_USE_LEGACY_KERAS=1), trained `--runs` times (seeds 42, 43, ...):
- `same`: the TFRS basic_retrieval tutorial: user-id and movie-id embeddings (32-d) as the towers
  (`tower_projection=False`), in-batch softmax summed over the batch, Adagrad 0.1, batch 8192, 3 epochs.
  Our Id features hash into `num_buckets` = 100x the distinct ids (TFRS: StringLookup, no collisions):
  at 10x about 10% of the movies share a bucket, at 100x about 1%; the collisions are counted in the JSON.
- `best`: every feature each side supports (user age/gender/occupation/zip, movie title/genres/year) and
  our best objective options (`BEST`), the same epochs; TFRS gets the same features (its own
  preprocessing layers), hidden layers, optimizer and batch, with its plain in-batch softmax.

Both sides feed the model from the same in-memory `tf.data` pipeline (the tutorial's: shuffle once, batch,
cache), so training throughput compares the models (examples/s over the epochs after the first, which
traces; median of the runs). Our model is the one `tfrs-twotower train` builds (`build_model` of the
settings' `TrainingConfig`; every objective option the comparison does not name is TFRS's plain
softmax, whatever the package's defaults). `ours train()` is one end-to-end run of `tfrs_twotower.train`
(JSONL parsing, scan, per-epoch corpus evaluation, exports) on the same data, reported separately.

Every model is scored by the same code (`tfrs_twotower.metrics.evaluate_retrieval`) on the test pairs
against the whole movie corpus: Recall@10/@50/@100 (= TFRS's top-K categorical accuracy) and NDCG@10.
TFRS's own FactorizedTopK figures are kept in the JSON. Baselines on the same split: most-popular and
implicit-feedback ALS (`implicit`), also scored with each user's training movies excluded
(`seen_excluded`). Evaluation time: ours encodes the test queries and the corpus and runs
`evaluate_retrieval`; TFRS runs `model.evaluate` with its FactorizedTopK (as in its tutorials).
Peak RSS is each model process's own `ru_maxrss`.

Modules: ml_data.py (data, schemas, JSONL), ml_fit.py (our model: `TrainingConfig` -> the package's
`build_model`, the in-memory fit, `train` end to end), reference_tfrs.py (TFRS), ml_runs.py (processes,
baselines, seen-item exclusion), ml_report.py (summary, table, machine). The protocol benchmark
(random splits over several seeds, leave-last-out, seen items excluded) is bench/movielens_protocols.py.

Writes `--out` (JSON: every run, the summary, the markdown table, machine and versions) and prints the
table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import ml_data  # noqa: E402
import ml_fit  # noqa: E402
import ml_protocols  # noqa: E402
import ml_report  # noqa: E402
import ml_runs  # noqa: E402

SAME = {
    "features": "basic",
    "batch_size": 8192,
    "optimizer": "adagrad",
    "learning_rate": 0.1,
    "hidden": [],
    "output_dim": 32,
    "projection": False,
}
# The best options found by bench/objective_options.py on ML-100K (docs/benchmarks.md).
BEST = {
    "features": "full",
    "batch_size": 256,
    "optimizer": "adagrad",
    "learning_rate": 0.1,
    "hidden": [],
    "output_dim": 32,
    "projection": True,
    "l2_normalize": True,
    "temperature": 0.2,
    "sampling_bias_correction": "counts",
}
ROW_NAMES = {
    "ours": "ours",
    "tfrs": "TFRS",
    "ours-tf-loss": "ours, loss by TF ops (`fused=False`)",
    "ours-keras-adagrad": "ours, Keras 3 Adagrad (dense table updates)",
}
# Rows of ours with one speed-up of the package turned off (`--ablations`).
ABLATIONS = {"ours-tf-loss": {"tf_loss": True}, "ours-keras-adagrad": {"keras_adagrad": True}}
TFRS_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "seed", "hidden", "output_dim")


def tfrs_available() -> str | None:
    """None when TFRS runs here (Keras 2 in a subprocess), else the reason it does not."""
    import subprocess

    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow_recommenders"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
    )
    if probe.returncode:
        return (
            "tensorflow_recommenders is not importable with TF_USE_LEGACY_KERAS=1 (pip install "
            "tensorflow-recommenders tf-keras): " + probe.stderr.strip().splitlines()[-1]
        )
    return None


def run_model(side: str, settings: dict, paths: dict, out: str, data: dict, smoke: bool) -> dict:
    """Trains one model (`ours`, an ablation or `tfrs`); scores its embeddings with our evaluation.

    Each runs in its own process (peak RSS of its own), except ours in `--smoke` runs (seconds matter).
    """
    settings = {**settings, **ABLATIONS.get(side, {})}
    if side.startswith("ours") and smoke:
        train, test, movies = (ml_data.read_jsonl(paths[k]) for k in ("train", "test", "movies"))
        result = ml_fit.fit_ours(settings, paths, train, test, movies)
        result.pop("query_embeddings"), result.pop("candidate_embeddings")
        result["peak_rss_mb"] = None
        return result
    if side.startswith("ours"):
        spec = {"kind": "memory", "settings": settings, "paths": paths, "out": out}
        result = ml_runs.run_process(os.path.join(BENCH, "ml_fit.py"), spec, out)
    else:
        spec = {
            "model": settings["features"],
            **{k: paths[k] for k in ("train", "test", "movies")},
            "out": out,
            "embedding_dim": 32,
            **{k: settings[k] for k in TFRS_KEYS},
        }
        result = ml_runs.run_process(os.path.join(BENCH, "reference_tfrs.py"), spec, out, legacy=True)
    queries = np.load(os.path.join(out, "query_embeddings.npy"))
    candidates = np.load(os.path.join(out, "candidate_embeddings.npy"))
    result["metrics"] = ml_fit.evaluate(queries, candidates, data["test"], data["movies"])
    return result


def run_baselines(data: dict) -> dict[str, dict]:
    """Most-popular and ALS on the comparison's split; `seen_excluded`: each user's training movies out."""
    split = {"train": data["train"], "test": data["test"]}
    split["seen"] = ml_protocols.seen_rows(data["train"], data["test"], data["movies"])
    rows = ml_runs.run_baselines(split, data["movies"])
    return {
        name: {
            **row["metrics"]["all"],
            "seen_excluded": row["metrics"]["excluded"],
            "train_seconds": row.get("train_seconds"),
        }
        for name, row in rows.items()
    }


def sides_of(settings: dict, args) -> tuple[str, ...]:
    sides = ("ours",) if args.skip_tfrs else ("ours", "tfrs")
    if args.ablations:
        sides += ("ours-tf-loss",) + (("ours-keras-adagrad",) if settings["optimizer"] == "adagrad" else ())
    return sides


def run_comparison(name: str, settings: dict, paths: dict, data: dict, args, load: list) -> tuple[dict, dict]:
    """`(runs, summary rows)` of one comparison: every side `--runs` times, interleaved (same load)."""
    sides = sides_of(settings, args)
    runs: dict = {"settings": settings, **{side: [] for side in sides}}
    for i in range(args.runs):
        for side in sides:
            load.append(os.getloadavg())
            out = os.path.join(args.workdir, "runs", f"{name}-{side}-{i}")
            result = run_model(side, {**settings, "seed": 42 + i}, paths, out, data, args.smoke)
            result["load_average_before"] = load[-1]
            runs[side].append(result)
            print(
                f"  {name} {side} run {i}: R@100 {result['metrics']['recall_at_100']:.4f}, "
                f"{ml_report._fmt(result.get('examples_per_second'), comma=True)} examples/s, "
                f"train {result['train_seconds']:.1f} s, eval {result['eval_seconds']:.2f} s, "
                f"load {load[-1][0]:.2f}",
                flush=True,
            )
    summary = {ROW_NAMES[side]: ml_report.summarize(runs[side]) for side in sides}
    if "TFRS" in summary:
        for side in sides:
            if side != "tfrs":
                summary[ROW_NAMES[side]]["ratio"] = ml_report.ratio(summary[ROW_NAMES[side]], summary["TFRS"])
        summary["TFRS"]["tfrs_own_factorized_top_k"] = {
            k: float(np.mean([r["tfrs_metrics"][k] for r in runs["tfrs"]]))
            for k in runs["tfrs"][0]["tfrs_metrics"]
        }
    # The smoke run keeps one end-to-end run (the exports of the `best` towers take seconds).
    if not args.no_end_to_end and not (args.smoke and name != "same"):
        load.append(os.getloadavg())
        out = os.path.join(args.workdir, "runs", f"{name}-end-to-end")
        spec = {"kind": "end-to-end", "settings": {**settings, "seed": 42}, "paths": paths, "out": out}
        if args.smoke:
            result = ml_fit.train_end_to_end(spec["settings"], paths, os.path.join(out, "job"))
        else:
            result = ml_runs.run_process(os.path.join(BENCH, "ml_fit.py"), spec, out)
        result["load_average_before"] = load[-1]
        runs["end-to-end"] = [result]
        row = ml_report.summarize([result])
        row["train_seconds"] = result["wall_seconds"]  # scan + fit + per-epoch evaluation + exports
        summary["ours train() end-to-end"] = row
    return runs, summary


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default=None,
        help="the ml-100k folder (default: movielens.movielens_dir), or the ml-1m-cs100-subset folder",
    )
    parser.add_argument(
        "--movies",
        default=None,
        help="the ml-1m folder (movies.dat, users.dat) for the subset (default: ml-1m next to --data)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON to write (default bench/results/movielens-NAME.json)"
    )
    parser.add_argument("--comparisons", default="same,best", help="same, best, or both (comma-separated)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per model (seeds 42, 43, ...)")
    parser.add_argument("--no-tfrs", action="store_true", help="skip the TFRS reference")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the `tfrs_twotower.train` run")
    parser.add_argument(
        "--best", default=None, help="JSON overriding the `best` settings, e.g. '{\"epochs\": 10}'"
    )
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="add rows of ours without each speed-up: the loss by TF ops instead of the fused kernel, and "
        "Keras 3's Adagrad (dense updates of the whole table) instead of `RowSparseAdagrad`",
    )
    parser.add_argument(
        "--workdir", default=None, help="where data and runs go (default: a temporary folder)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="400 ratings, 1 epoch, 1 run, small batches: seconds"
    )
    args = parser.parse_args(argv)
    if not args.data:
        from tfrs_twotower.movielens import movielens_dir

        args.data = movielens_dir("ml-100k")  # a local copy, else downloaded from GroupLens
    if args.smoke:
        args.epochs, args.runs = 1, 1
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="movielens_bench_")
    args.skip_tfrs = "--no-tfrs" if args.no_tfrs else tfrs_available()
    return args


def describe_data(data: dict, paths: dict) -> dict:
    """The data's sizes, split and Id hashing (how many ids share a bucket) for the report."""
    with open(paths["basic"]["schema"]) as f:
        basic = json.load(f)
    buckets = {
        "user_id": basic["query"]["user_id"]["config"]["num_buckets"],
        "movie_id": basic["candidate"]["movie_id"]["config"]["num_buckets"],
    }
    users = [r["query"]["user_id"] for r in data["train"] + data["test"]]
    collisions = {
        "user_id": ml_data.hash_collisions(users, buckets["user_id"]),
        "movie_id": ml_data.hash_collisions([m["movie_id"] for m in data["movies"]], buckets["movie_id"]),
    }
    return {
        "name": data["name"],
        "train_pairs": len(data["train"]),
        "test_pairs": len(data["test"]),
        "movies": len(data["movies"]),
        "split": "random 80/20, seed 42",
        "hash_collisions": collisions,
        "num_buckets": buckets,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    load = [os.getloadavg()]
    data = ml_data.load_data(args.data, args.movies, smoke=args.smoke)
    paths = ml_data.write_data(data, args.workdir)
    described = describe_data(data, paths)
    print(
        f"{data['name']}: {len(data['train'])} training pairs, {len(data['test'])} test pairs, "
        f"{len(data['movies'])} movies; ids sharing a hash bucket: {described['hash_collisions']}",
        flush=True,
    )
    if args.skip_tfrs:
        print(f"TFRS reference skipped: {args.skip_tfrs}", flush=True)
    comparisons = {"same": dict(SAME), "best": {**BEST, **(json.loads(args.best) if args.best else {})}}
    report_runs, summary = {}, {}
    for name in [c for c in args.comparisons.split(",") if c]:
        settings = {"epochs": args.epochs, **comparisons[name]}
        if args.smoke:
            settings["batch_size"] = min(settings["batch_size"], 64)
        report_runs[name], summary[name] = run_comparison(
            name, settings, paths[settings["features"]], data, args, load
        )
    load.append(os.getloadavg())
    summary["baselines"] = run_baselines(data)
    table = ml_report.markdown_table(summary)
    print(table)
    report = {
        "command": " ".join(["python", "bench/movielens.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": ml_report.machine(),
        "versions": ml_report.versions(),
        "load_average": load,
        "data": described,
        "tfrs_skipped": args.skip_tfrs,
        "summary": summary,
        "runs": report_runs,
        "table": table,
    }
    out = args.out or os.path.join(
        BENCH, "results", f"movielens-{data['name']}{'-smoke' if args.smoke else ''}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1, default=float)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
