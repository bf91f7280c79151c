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
traces; median of the runs). `ours train()` is one end-to-end run of `tfrs_twotower.train` (JSONL parsing,
scan, per-epoch corpus evaluation, exports) on the same data, reported separately.

Every model is scored by the same code (`tfrs_twotower.metrics.evaluate_retrieval`) on the test pairs
against the whole movie corpus: Recall@10/@50/@100 (= TFRS's top-K categorical accuracy) and NDCG@10.
TFRS's own FactorizedTopK figures are kept in the JSON. Baselines on the same split: most-popular and
implicit-feedback ALS (`implicit`). Evaluation time: ours encodes the test queries and the corpus and
runs `evaluate_retrieval`; TFRS runs `model.evaluate` with its FactorizedTopK (as in its tutorials).
Peak RSS is each model process's own `ru_maxrss`.

Writes `--out` (JSON: every run, the summary, the markdown table, machine and versions) and prints the
table.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import baselines  # noqa: E402

KS = (10, 50, 100)
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
OPTIONS = (
    "l2_normalize",
    "temperature",
    "remove_accidental_hits",
    "sampling_bias_correction",
    "num_mixed_negatives",
    "num_hard_negatives",
)


# ----------------------------------------------------------------------------------------------- data
def load_data(data: str, movies_dir: str | None = None, smoke: bool = False) -> dict:
    """`{"name", "train", "test", "movies"}`: pair records split 80/20 (seed 42) and the corpus."""
    from tfrs_twotower import movielens

    if os.path.exists(os.path.join(data, "u.data")):
        name = "ml-100k"
        records = movielens.load_movielens_100k(data)
        movies = movielens.movielens_100k_candidates(data)
    else:
        name = "ml-1m-cs100-subset"
        ratings = os.path.join(data, "ratings.dat.gz")
        movies_dir = movies_dir or os.path.join(os.path.dirname(os.path.abspath(data)), "ml-1m")
        records = movielens.load_movielens_1m_subset(ratings, movies_dir, min_rating=4)
        with gzip.open(ratings, "rt", encoding="latin-1") as f:
            rated = {line.split("::")[1] for line in f if line.strip()}
        movies = [m for m in movielens.movielens_1m_candidates(movies_dir) if m["movie_id"] in rated]
    if smoke:
        records = records[:400]
    train, test = movielens.split_random(records, test_fraction=0.2, seed=42)
    return {"name": name, "train": train, "test": test, "movies": movies}


def schemas(data: dict, bucket_factor: int = 100) -> dict[str, dict]:
    """The `basic` (ids only) and `full` schemas; Id features get `bucket_factor` x distinct ids buckets."""
    records = data["train"] + data["test"]
    distinct = lambda side, name: len({r[side][name] for r in records})  # noqa: E731
    vocab = lambda side, name: sorted({v for r in records for v in r[side][name]})  # noqa: E731
    user = {
        "feature_type": "Id",
        "config": {"num_buckets": bucket_factor * distinct("query", "user_id"), "embedding_dim": 32},
    }
    movie = {
        "feature_type": "Id",
        "config": {"num_buckets": bucket_factor * len(data["movies"]), "embedding_dim": 32},
    }
    full = {
        "query": {
            "user_id": user,
            "age": {"feature_type": "Numeric"},
            "gender": {"feature_type": "Categorical", "config": {"vocab": vocab("query", "gender")}},
            "occupation": {"feature_type": "Categorical", "config": {"vocab": vocab("query", "occupation")}},
            "zip": {
                "feature_type": "Id",
                "config": {"num_buckets": bucket_factor * distinct("query", "zip"), "embedding_dim": 16},
            },
        },
        "candidate": {
            "movie_id": movie,
            "title": {"feature_type": "Text"},
            "genres": {
                "feature_type": "Categorical",
                "config": {"vocab": sorted({g for m in data["movies"] for g in m["genres"]})},
            },
            "year": {"feature_type": "Numeric"},
        },
    }
    return {"basic": {"query": {"user_id": user}, "candidate": {"movie_id": movie}}, "full": full}


def hash_collisions(ids, num_buckets: int) -> int:
    """How many ids share their hash bucket with another id (Keras `Hashing` = to_hash_bucket_fast)."""
    import tensorflow as tf

    buckets = tf.strings.to_hash_bucket_fast(sorted(set(ids)), num_buckets).numpy()
    counts = collections.Counter(buckets.tolist())
    return sum(c for c in counts.values() if c > 1)


def write_data(data: dict, workdir: str) -> dict[str, dict[str, str]]:
    """Writes, per feature set, the schema, train/test pairs and movie documents; returns their paths."""
    from tfrs_twotower import movielens

    paths = {}
    for features, schema in schemas(data).items():
        folder = os.path.join(workdir, features)
        os.makedirs(folder, exist_ok=True)
        q_names, c_names = list(schema["query"]), list(schema["candidate"])
        cache: dict[int, dict] = {}
        keep = lambda doc, names, cache=cache: _kept(doc, names, cache)  # noqa: E731

        paths[features] = {"schema": os.path.join(folder, "schema.json")}
        with open(paths[features]["schema"], "w") as f:
            json.dump(schema, f, indent=1)
        for part in ("train", "test"):
            paths[features][part] = os.path.join(folder, f"{part}.jsonl")
            movielens.write_pairs_jsonl(
                [
                    {"query": keep(r["query"], q_names), "candidate": keep(r["candidate"], c_names)}
                    for r in data[part]
                ],
                paths[features][part],
            )
        paths[features]["movies"] = os.path.join(folder, "movies.jsonl")
        movielens.write_pairs_jsonl(
            [{n: m[n] for n in c_names} for m in data["movies"]], paths[features]["movies"]
        )
    return paths


def _kept(doc: dict, names: list[str], cache: dict[int, dict]) -> dict:
    """`doc` restricted to `names`, one dict per source dict (the loaders share one per user and movie)."""
    if id(doc) not in cache:
        cache[id(doc)] = {n: doc[n] for n in names}
    return cache[id(doc)]


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------------------- our model
def build_ours(settings: dict, schema, train_candidates: list[dict], corpus: list[dict], numeric_stats):
    """Our two-tower model for `settings` from the public building blocks (as `tt.build_model` does)."""
    import keras

    import tfrs_twotower as tt
    from tfrs_twotower.data.batching import side_columns
    from tfrs_twotower.tasks import CandidateFrequencies, CorpusSampler
    from tfrs_twotower.training.trainer import make_optimizer

    query_tower, candidate_tower = tt.build_towers(
        schema,
        hidden_units=settings.get("hidden", []),
        output_dim=settings["output_dim"],
        numeric_stats=numeric_stats,
        l2_normalize=settings.get("l2_normalize", False),
        projection=settings.get("projection", True),
    )
    task = tt.Retrieval(
        temperature=settings.get("temperature"),
        remove_accidental_hits=settings.get("remove_accidental_hits", False),
        num_hard_negatives=settings.get("num_hard_negatives"),
        loss_reduction=settings.get("loss_reduction", "sum"),
        fused=False if settings.get("tf_loss") else None,
    )
    correction = settings.get("sampling_bias_correction")
    estimator = None
    if correction == "counts":
        counts = collections.Counter(c["movie_id"] for c in train_candidates)
        estimator = CandidateFrequencies(
            list(counts), list(counts.values()), batch_size=settings["batch_size"]
        )
    sampler = None
    if settings.get("num_mixed_negatives"):
        sampler = CorpusSampler(
            side_columns(schema.candidate, corpus), settings["num_mixed_negatives"], seed=settings["seed"]
        )
    model = tt.TwoTowerModel(
        query_tower,
        candidate_tower,
        task,
        candidate_id_feature="movie_id",
        sampling_probability=correction,
        frequency_estimator=estimator,
        negative_sampler=sampler,
    )
    config = tt.TrainingConfig(optimizer=settings["optimizer"], learning_rate=settings["learning_rate"])
    optimizer = make_optimizer(config)
    if settings.get("keras_adagrad"):
        optimizer = keras.optimizers.Adagrad(learning_rate=settings["learning_rate"])
    model.compile(optimizer=optimizer, jit_compile=False)
    return model


def _numeric_stats(schema, columns: dict, side: str) -> dict:
    stats = {}
    for spec in schema.side(side):
        if spec.feature_type == "Numeric":
            column = columns[spec.name]
            present = ~np.isnan(column)
            values = np.where(present, column, 0.0).sum(1)[present.any(1)] / present.sum(1)[present.any(1)]
            stats[spec.name] = (float(values.mean()), float(values.var()))
    return stats


def fit_ours(settings: dict, schema_path: str, train: list, test: list, movies: list) -> dict:
    """Trains our model from an in-memory tf.data pipeline and evaluates it on the whole corpus."""
    import keras
    import tensorflow as tf

    import tfrs_twotower as tt
    from tfrs_twotower.data.batching import side_columns

    keras.utils.set_random_seed(settings["seed"])
    schema = tt.load_schema(schema_path)
    q_cols = side_columns(schema.query, [r["query"] for r in train])
    c_cols = side_columns(schema.candidate, [r["candidate"] for r in train])
    stats = {
        "query": _numeric_stats(schema, q_cols, "query"),
        "candidate": _numeric_stats(schema, c_cols, "candidate"),
    }
    model = build_ours(settings, schema, [r["candidate"] for r in train], movies, stats)
    dataset = tf.data.Dataset.from_tensor_slices({"query": q_cols, "candidate": c_cols})
    dataset = dataset.shuffle(len(train), seed=settings["seed"]).batch(settings["batch_size"]).cache()
    timer = EpochTimer()
    started = time.perf_counter()
    model.fit(dataset, epochs=settings["epochs"], callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    query_cols = side_columns(schema.query, [r["query"] for r in test])
    encode_q = tf.function(lambda x: model.query_tower(x, training=False), reduce_retracing=True)
    encode_c = tf.function(lambda x: model.candidate_tower(x, training=False), reduce_retracing=True)
    queries = np.concatenate(
        [encode_q(b).numpy() for b in tf.data.Dataset.from_tensor_slices(query_cols).batch(4096)]
    )
    candidates = np.concatenate(
        [
            encode_c(b).numpy()
            for b in tf.data.Dataset.from_tensor_slices(side_columns(schema.candidate, movies)).batch(4096)
        ]
    )
    metrics = evaluate(queries, candidates, test, movies)
    eval_seconds = time.perf_counter() - started
    later = timer.seconds[1:]
    return {
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "examples_per_second": len(train) * len(later) / sum(later) if later else None,
        "examples_per_second_all_epochs": len(train) * len(timer.seconds) / sum(timer.seconds),
        "eval_seconds": eval_seconds,
        "metrics": metrics,
        "query_embeddings": queries,
        "candidate_embeddings": candidates,
    }


def evaluate(queries: np.ndarray, candidates: np.ndarray, test: list, movies: list) -> dict[str, float]:
    """Recall@10/50/100, NDCG@10 (and the rest of `evaluate_retrieval`) of the test pairs' positives."""
    from tfrs_twotower.metrics import evaluate_retrieval

    row = {m["movie_id"]: i for i, m in enumerate(movies)}
    positives = np.array([row[r["candidate"]["movie_id"]] for r in test])
    result = evaluate_retrieval(queries, positives, candidates, ks=KS)
    return {k: v for k, v in result.items() if not k.startswith("factorized_top_k")}


class EpochTimer:
    """A Keras callback (duck-typed for Keras 3) recording each epoch's wall time."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started)

        return _Timer()


def train_end_to_end(settings: dict, paths: dict, job_dir: str) -> dict:
    """One `tfrs_twotower.train` run on the JSONL files (what `tfrs-twotower train` does)."""
    import tfrs_twotower as tt

    flags = {k: settings[k] for k in OPTIONS if settings.get(k) is not None}
    hidden = settings.get("hidden", [])
    config = tt.TrainingConfig(
        training_data_path=paths["train"],
        eval_data_path=paths["test"],
        candidate_data_path=paths["movies"],
        input_schema_path=paths["schema"],
        job_dir=job_dir,
        input_file_format="jsonl",
        train_batch_size=settings["batch_size"],
        eval_batch_size=4096,
        num_epochs=settings["epochs"],
        optimizer=settings["optimizer"],
        learning_rate=settings["learning_rate"],
        num_hidden_layers=len(hidden),
        **{f"num_nodes_hidden_layer{i + 1}": u for i, u in enumerate(hidden)},
        output_dim=settings["output_dim"],
        tower_projection=settings.get("projection", True),
        shuffle_buffer=100_000,
        cache_input=True,
        eval_top_k=",".join(map(str, KS)),
        seed=settings["seed"],
        overwrite=True,
        verbose=0,
        **flags,
    )
    started = time.perf_counter()
    result = tt.train(config)
    wall = time.perf_counter() - started
    metrics = {f"recall_at_{k}": result.metrics.get(f"val_recall_at_{k}") for k in KS}
    metrics["ndcg_at_10"] = result.metrics.get("val_ndcg_at_10")
    with open(result.paths["metrics"]) as f:
        train_seconds = json.load(f)["train_seconds"]
    return {"wall_seconds": wall, "train_seconds": train_seconds, "metrics": metrics}


def worker(spec_path: str) -> None:
    """Runs one of our models (`kind`: memory or end-to-end) in this process; writes result.json."""
    with open(spec_path) as f:
        spec = json.load(f)
    if spec["kind"] == "end-to-end":
        result = train_end_to_end(spec["settings"], spec["paths"], os.path.join(spec["out"], "job"))
    else:
        paths = spec["paths"]
        result = fit_ours(
            spec["settings"],
            paths["schema"],
            read_jsonl(paths["train"]),
            read_jsonl(paths["test"]),
            read_jsonl(paths["movies"]),
        )
        for side in ("query", "candidate"):
            np.save(os.path.join(spec["out"], f"{side}_embeddings.npy"), result.pop(f"{side}_embeddings"))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.path.join(spec["out"], "result.json"), "w") as f:
        json.dump(result, f, indent=1)


# ------------------------------------------------------------------------------------------ the parent
def tfrs_available() -> str | None:
    """None when TFRS runs here (Keras 2 in a subprocess), else the reason it does not."""
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


def run_process(script_args: list[str], spec: dict, out: str, legacy: bool) -> dict:
    os.makedirs(out, exist_ok=True)
    spec_path = os.path.join(out, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if legacy:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run([sys.executable, *script_args, spec_path], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(script_args)} {spec_path} failed:\n{done.stderr[-4000:]}")
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


def run_model(side: str, settings: dict, paths: dict, out: str, data: dict, smoke: bool) -> dict:
    """Trains one model (`ours` or `tfrs`) in its own process; scores its embeddings with our evaluation."""
    if side.startswith("ours") and smoke:  # in this process: seconds matter more than an isolated RSS here
        settings = {**settings, **ABLATIONS.get(side, {})}
        result = fit_ours(
            settings,
            paths["schema"],
            read_jsonl(paths["train"]),
            read_jsonl(paths["test"]),
            read_jsonl(paths["movies"]),
        )
        result.pop("query_embeddings"), result.pop("candidate_embeddings")
        result["peak_rss_mb"] = None
        return result
    if side in ABLATIONS:
        settings, side = {**settings, **ABLATIONS[side]}, "ours"
    if side == "ours":
        result = run_process(
            [os.path.join(BENCH, "movielens.py"), "--worker"],
            {"kind": "memory", "settings": settings, "paths": paths, "out": out},
            out,
            False,
        )
    else:
        spec = {
            "model": settings["features"],
            "train": paths["train"],
            "test": paths["test"],
            "movies": paths["movies"],
            "out": out,
            "embedding_dim": 32,
            **{
                k: settings[k]
                for k in (
                    "epochs",
                    "batch_size",
                    "optimizer",
                    "learning_rate",
                    "seed",
                    "hidden",
                    "output_dim",
                )
            },
        }
        result = run_process([os.path.join(BENCH, "reference_tfrs.py")], spec, out, True)
    queries = np.load(os.path.join(out, "query_embeddings.npy"))
    candidates = np.load(os.path.join(out, "candidate_embeddings.npy"))
    result["metrics"] = evaluate(queries, candidates, data["test"], data["movies"])
    return result


def summarize(runs: list[dict]) -> dict:
    """Means of the metrics and the median of the timings over the runs."""
    out = {k: float(np.mean([r["metrics"][k] for r in runs])) for k in runs[0]["metrics"]}
    if len(runs) > 1:
        out.update({f"{k}_std": float(np.std([r["metrics"][k] for r in runs])) for k in ("recall_at_100",)})
    for key in (
        "examples_per_second",
        "examples_per_second_all_epochs",
        "train_seconds",
        "eval_seconds",
        "peak_rss_mb",
        "wall_seconds",
    ):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["runs"] = len(runs)
    return out


def run_baselines(data: dict, als_settings: dict) -> dict[str, dict]:
    train_users = [r["query"]["user_id"] for r in data["train"]]
    train_movies = [r["candidate"]["movie_id"] for r in data["train"]]
    corpus = [m["movie_id"] for m in data["movies"]]
    test_users = [r["query"]["user_id"] for r in data["test"]]
    out = {}
    started = time.perf_counter()
    queries, candidates = baselines.popularity(train_movies, corpus, len(test_users))
    fit = time.perf_counter() - started
    started = time.perf_counter()
    out["most-popular"] = {
        "metrics": evaluate(queries, candidates, data["test"], data["movies"]),
        "train_seconds": fit,
        "eval_seconds": time.perf_counter() - started,
    }
    queries, candidates, fit = baselines.als(train_users, train_movies, corpus, test_users, **als_settings)
    started = time.perf_counter()
    out["ALS (implicit)"] = {
        "metrics": evaluate(queries, candidates, data["test"], data["movies"]),
        "train_seconds": fit,
        "eval_seconds": time.perf_counter() - started,
    }
    return out


def _fmt(value, digits=4, comma=False):
    if value is None:
        return "-"
    return f"{value:,.0f}" if comma else f"{value:.{digits}f}"


def markdown_table(summary: dict) -> str:
    lines = [
        "| comparison | model | Recall@10 | Recall@50 | Recall@100 | NDCG@10 | train examples/s (epochs 2+) "
        "| train s | eval s | peak RSS MB | ours / TFRS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for comparison, rows in summary.items():
        for name, row in rows.items():
            ratio = row.get("ratio")
            ratio_text = (
                "-"
                if not ratio
                else (
                    f"R@100 {ratio['recall_at_100']:.3f}x (Δ {ratio['recall_at_100_delta']:+.4f}), "
                    f"speed {_fmt(ratio['examples_per_second'], 2)}x, "
                    f"eval time {_fmt(ratio['eval_seconds'], 2)}x"
                )
            )
            std = f" ± {row['recall_at_100_std']:.4f}" if row.get("recall_at_100_std") is not None else ""
            lines.append(
                f"| {comparison} | {name} | {_fmt(row['recall_at_10'])} | {_fmt(row['recall_at_50'])} | "
                f"{_fmt(row['recall_at_100'])}{std} | {_fmt(row['ndcg_at_10'])} | "
                f"{_fmt(row.get('examples_per_second'), comma=True)} | {_fmt(row.get('train_seconds'), 1)} | "
                f"{_fmt(row.get('eval_seconds'), 2)} | {_fmt(row.get('peak_rss_mb'), 0)} | {ratio_text} |"
            )
    return "\n".join(lines)


def _ratio(ours: dict, tfrs: dict) -> dict:
    div = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    return {
        "recall_at_100": div(ours["recall_at_100"], tfrs["recall_at_100"]),
        "recall_at_100_delta": ours["recall_at_100"] - tfrs["recall_at_100"],
        "examples_per_second": div(ours["examples_per_second"], tfrs["examples_per_second"]),
        "eval_seconds": div(ours["eval_seconds"], tfrs["eval_seconds"]),
    }


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in (
        "tensorflow",
        "keras",
        "tf-keras",
        "tensorflow-recommenders",
        "implicit",
        "numpy",
        "scipy",
        "tfrs_twotower",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    memory = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(int(memory) / 2**20, 1),
        "platform": platform.platform(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="the ml-100k folder, or the ml-1m-cs100-subset folder")
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
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return {}
    if not args.data:
        from tfrs_twotower.movielens import movielens_dir

        args.data = movielens_dir("ml-100k")  # a local copy, else downloaded from GroupLens
    if args.smoke:
        args.epochs, args.runs = 1, 1
    load = [os.getloadavg()]
    data = load_data(args.data, args.movies, smoke=args.smoke)
    workdir = args.workdir or tempfile.mkdtemp(prefix="movielens_bench_")
    paths = write_data(data, workdir)
    with open(paths["basic"]["schema"]) as f:
        basic_schema = json.load(f)
    collisions = {
        "user_id": hash_collisions(
            [r["query"]["user_id"] for r in data["train"] + data["test"]],
            basic_schema["query"]["user_id"]["config"]["num_buckets"],
        ),
        "movie_id": hash_collisions(
            [m["movie_id"] for m in data["movies"]],
            basic_schema["candidate"]["movie_id"]["config"]["num_buckets"],
        ),
    }
    print(
        f"{data['name']}: {len(data['train'])} training pairs, {len(data['test'])} test pairs, "
        f"{len(data['movies'])} movies; ids sharing a hash bucket: {collisions}",
        flush=True,
    )
    skip_tfrs = "--no-tfrs" if args.no_tfrs else tfrs_available()
    if skip_tfrs:
        print(f"TFRS reference skipped: {skip_tfrs}", flush=True)

    comparisons = {"same": dict(SAME), "best": dict(BEST)}
    comparisons["best"].update(json.loads(args.best) if args.best else {})
    report_runs: dict[str, dict[str, list]] = {}
    summary: dict[str, dict[str, dict]] = {}
    for comparison in [c for c in args.comparisons.split(",") if c]:
        settings = {"epochs": args.epochs, **comparisons[comparison]}
        if args.smoke:
            settings["batch_size"] = min(settings["batch_size"], 64)
        feature_paths = paths[settings["features"]]
        report_runs[comparison] = {"settings": settings}
        summary[comparison] = {}
        sides = ("ours",) if skip_tfrs else ("ours", "tfrs")
        if args.ablations:
            sides += ("ours-tf-loss",)
            if settings["optimizer"] == "adagrad":
                sides += ("ours-keras-adagrad",)
        for side in sides:
            report_runs[comparison][side] = []
        for i in range(args.runs):  # interleaved, so that both sides see the same load
            for side in sides:
                run_settings = {**settings, "seed": 42 + i}
                load.append(os.getloadavg())
                result = run_model(
                    side,
                    run_settings,
                    feature_paths,
                    os.path.join(workdir, "runs", f"{comparison}-{side}-{i}"),
                    data,
                    args.smoke,
                )
                result["load_average_before"] = load[-1]
                report_runs[comparison][side].append(result)
                print(
                    f"  {comparison} {side} run {i}: R@100 {result['metrics']['recall_at_100']:.4f}, "
                    f"{_fmt(result.get('examples_per_second'), comma=True)} examples/s, "
                    f"train {result['train_seconds']:.1f} s, eval {result['eval_seconds']:.2f} s, "
                    f"load {load[-1][0]:.2f}",
                    flush=True,
                )
        for side in sides:
            summary[comparison][ROW_NAMES[side]] = summarize(report_runs[comparison][side])
        for side in ABLATIONS:
            if side in sides and "tfrs" in sides:
                row = summary[comparison][ROW_NAMES[side]]
                row["ratio"] = _ratio(row, summary[comparison]["TFRS"])
        if "TFRS" in summary[comparison]:
            summary[comparison]["ours"]["ratio"] = _ratio(
                summary[comparison]["ours"], summary[comparison]["TFRS"]
            )
            summary[comparison]["TFRS"]["tfrs_own_factorized_top_k"] = {
                k: float(np.mean([r["tfrs_metrics"][k] for r in report_runs[comparison]["tfrs"]]))
                for k in report_runs[comparison]["tfrs"][0]["tfrs_metrics"]
            }
        # The smoke run keeps one end-to-end run (the exports of the `best` towers take seconds).
        if not args.no_end_to_end and not (args.smoke and comparison != "same"):
            load.append(os.getloadavg())
            out = os.path.join(workdir, "runs", f"{comparison}-end-to-end")
            spec = {
                "kind": "end-to-end",
                "settings": {**settings, "seed": 42},
                "paths": feature_paths,
                "out": out,
            }
            if args.smoke:
                result = train_end_to_end(spec["settings"], feature_paths, os.path.join(out, "job"))
            else:
                result = run_process([os.path.join(BENCH, "movielens.py"), "--worker"], spec, out, False)
            result["load_average_before"] = load[-1]
            report_runs[comparison]["end-to-end"] = [result]
            row = summarize([result])
            row["train_seconds"] = result["wall_seconds"]  # scan + fit + per-epoch evaluation + exports
            summary[comparison]["ours train() end-to-end"] = row
    load.append(os.getloadavg())
    summary["baselines"] = run_baselines(data, {"factors": 64, "regularization": 0.05, "iterations": 15})
    summary["baselines"] = {
        k: {**v["metrics"], "train_seconds": v["train_seconds"], "eval_seconds": v["eval_seconds"]}
        for k, v in summary["baselines"].items()
    }
    table = markdown_table(summary)
    print(table)
    report = {
        "command": " ".join(["python", "bench/movielens.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": machine(),
        "versions": versions(),
        "load_average": load,
        "data": {
            "name": data["name"],
            "train_pairs": len(data["train"]),
            "test_pairs": len(data["test"]),
            "movies": len(data["movies"]),
            "split": "random 80/20, seed 42",
            "hash_collisions": collisions,
            "num_buckets": {
                "user_id": basic_schema["query"]["user_id"]["config"]["num_buckets"],
                "movie_id": basic_schema["candidate"]["movie_id"]["config"]["num_buckets"],
            },
        },
        "tfrs_skipped": skip_tfrs,
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
