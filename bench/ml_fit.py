"""Our side of the MovieLens comparison (bench/movielens.py): a settings dict turned into a
`TrainingConfig`, the model built by the package's `build_model`, fitted from an in-memory `tf.data`
pipeline (the same one TFRS gets), and `train_end_to_end`, one whole `tfrs_twotower.train` run.

Settings: `features` (basic|full), `batch_size`, `optimizer`, `learning_rate`, `hidden` (units),
`output_dim`, `projection`, `epochs`, `seed` and the objective flags of `OPTIONS`; `tf_loss` and
`keras_adagrad` turn a speed-up off (the ablation rows).

Example:
>>> settings = {"features": "full", "epochs": 1, "batch_size": 256, "seed": 42, "optimizer": "adagrad",
...             "learning_rate": 0.1, "output_dim": 32}
>>> result = fit_ours(settings, paths, train, test, movies)  # doctest: +SKIP
>>> result["metrics"]["recall_at_100"]  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import json
import os
import time

import numpy as np

KS = (10, 50, 100)
OPTIONS = (
    "l2_normalize",
    "temperature",
    "remove_accidental_hits",
    "sampling_bias_correction",
    "num_mixed_negatives",
    "num_hard_negatives",
    "loss_reduction",
    "candidate_bias",
)
# What the comparison's settings leave out means TFRS's plain softmax, whatever the package's defaults.
PLAIN = {
    "sampling_bias_correction": None,
    "l2_normalize": False,
    "temperature": None,
    "candidate_bias": "false",
}


def settings_config(settings: dict, paths: dict, job_dir: str = "unused"):
    """The `TrainingConfig` of `settings` on the comparison's JSONL files."""
    import tfrs_twotower as tt

    hidden = settings.get("hidden", [])
    flags = {**PLAIN, **{k: settings[k] for k in OPTIONS if settings.get(k) is not None}}
    return tt.TrainingConfig(
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
    ).validate()


def numeric_stats(schema, train: list) -> dict[str, dict[str, tuple[float, float]]]:
    """`{side: {name: (mean, variance)}}` of the Numeric features, by `tfrs_twotower.data.stats`."""
    from tfrs_twotower.data.stats import NumericStatsAccumulator

    out: dict[str, dict] = {}
    for side in ("query", "candidate"):
        out[side] = {}
        for spec in schema.side(side):
            if spec.feature_type == "Numeric":
                acc = NumericStatsAccumulator()
                for record in train:
                    acc.add(record[side].get(spec.name, []))
                result = acc.result()
                out[side][spec.name] = (result.mean, result.variance)
    return out


def build(settings: dict, paths: dict, schema, train: list, movies: list):
    """`build_model(TrainingConfig)` with the training data's statistics; ablations applied."""
    import keras

    from tfrs_twotower.data.batching import side_columns
    from tfrs_twotower.training import build_model

    config = settings_config(settings, paths)
    counts = collections.Counter(r["candidate"]["movie_id"] for r in train)
    corpus = side_columns(schema.candidate, movies) if settings.get("num_mixed_negatives") else None
    optimizer = None
    if settings.get("keras_adagrad"):
        optimizer = keras.optimizers.Adagrad(learning_rate=settings["learning_rate"])
    return build_model(
        config,
        schema,
        numeric_stats(schema, train),
        corpus,
        dict(counts),
        optimizer=optimizer,
        fused=False if settings.get("tf_loss") else None,
    )


def epoch_timer():
    """A Keras callback recording each epoch's wall time in `.seconds`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochTimer()


def fit_ours(settings: dict, paths: dict, train: list, test: list, movies: list) -> dict:
    """Trains from the in-memory pipeline (shuffle once, batch, cache) and scores the whole corpus."""
    import keras
    import tensorflow as tf

    import tfrs_twotower as tt
    from tfrs_twotower.data.batching import side_columns
    from tfrs_twotower.features.text import adapt_text_features, candidate_documents

    keras.utils.set_random_seed(settings["seed"])
    schema = tt.load_schema(paths["schema"])
    model = build(settings, paths, schema, train, movies)
    q_cols = side_columns(schema.query, [r["query"] for r in train])
    c_cols = side_columns(schema.candidate, [r["candidate"] for r in train])
    # As `train`: weights built eagerly on 8 pairs (`build_weights`), text encoders adapted to the corpus.
    model(
        {"query": {k: v[:8] for k, v in q_cols.items()}, "candidate": {k: v[:8] for k, v in c_cols.items()}}
    )
    adapt_text_features(model, candidate_documents(schema, movies))
    dataset = tf.data.Dataset.from_tensor_slices({"query": q_cols, "candidate": c_cols})
    dataset = dataset.shuffle(len(train), seed=settings["seed"]).batch(settings["batch_size"]).cache()
    timer = epoch_timer()
    started = time.perf_counter()
    model.fit(dataset, epochs=settings["epochs"], callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    queries = encode(model.query_tower, side_columns(schema.query, [r["query"] for r in test]))
    candidates = encode(model.candidate_tower, side_columns(schema.candidate, movies))
    metrics = evaluate(queries, candidates, test, movies)
    later = timer.seconds[1:]
    return {
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "examples_per_second": len(train) * len(later) / sum(later) if later else None,
        "examples_per_second_all_epochs": len(train) * len(timer.seconds) / sum(timer.seconds),
        "eval_seconds": time.perf_counter() - started,
        "metrics": metrics,
        "query_embeddings": queries,
        "candidate_embeddings": candidates,
    }


def encode(tower, columns: dict) -> np.ndarray:
    """`tower` over feature columns, 4,096 rows at a time."""
    import tensorflow as tf

    call = tf.function(lambda x: tower(x, training=False), reduce_retracing=True)
    return np.concatenate([call(b).numpy() for b in tf.data.Dataset.from_tensor_slices(columns).batch(4096)])


def evaluate(queries: np.ndarray, candidates: np.ndarray, test: list, movies: list) -> dict[str, float]:
    """Recall@10/50/100, NDCG@10 (and the rest of `evaluate_retrieval`) of the test pairs' positives."""
    from tfrs_twotower.metrics import evaluate_retrieval

    row = {m["movie_id"]: i for i, m in enumerate(movies)}
    positives = np.array([row[r["candidate"]["movie_id"]] for r in test])
    result = evaluate_retrieval(queries, positives, candidates, ks=KS)
    return {k: v for k, v in result.items() if not k.startswith("factorized_top_k")}


def train_end_to_end(settings: dict, paths: dict, job_dir: str) -> dict:
    """One `tfrs_twotower.train` run on the JSONL files (what `tfrs-twotower train` does)."""
    import tfrs_twotower as tt

    started = time.perf_counter()
    result = tt.train(settings_config(settings, paths, job_dir))
    wall = time.perf_counter() - started
    metrics = {f"recall_at_{k}": result.metrics.get(f"val_recall_at_{k}") for k in KS}
    metrics["ndcg_at_10"] = result.metrics.get("val_ndcg_at_10")
    with open(result.paths["metrics"]) as f:
        train_seconds = json.load(f)["train_seconds"]
    return {"wall_seconds": wall, "train_seconds": train_seconds, "metrics": metrics}


def worker(spec: dict) -> dict:
    """Runs one of our models (`kind`: memory or end-to-end) in this process; saves the embeddings."""
    from ml_data import read_jsonl

    if spec["kind"] == "end-to-end":
        return train_end_to_end(spec["settings"], spec["paths"], os.path.join(spec["out"], "job"))
    paths = spec["paths"]
    train, test, movies = (read_jsonl(paths[k]) for k in ("train", "test", "movies"))
    result = fit_ours(spec["settings"], paths, train, test, movies)
    for side in ("query", "candidate"):
        np.save(os.path.join(spec["out"], f"{side}_embeddings.npy"), result.pop(f"{side}_embeddings"))
    return result


if __name__ == "__main__":  # the worker process of bench/movielens.py: `python bench/ml_fit.py SPEC.json`
    import resource
    import sys

    with open(sys.argv[1]) as f:
        worker_spec = json.load(f)
    worker_result = worker(worker_spec)
    worker_result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.path.join(worker_spec["out"], "result.json"), "w") as f:
        json.dump(worker_result, f, indent=1)
