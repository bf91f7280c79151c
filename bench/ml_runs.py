"""One model run of the MovieLens benchmarks, scored with and without seen-item exclusion.

- `fit_stages(flags, ...)`: the package's stages (`prepare_inputs` -> `build_model` -> `build_weights` ->
  `fit`) in this process, as `train` runs them, without the exports; the trained towers encode.
- `run_ours(flags, ...)`: a whole `tfrs_twotower.train` (what `tfrs-twotower train` runs) with the
  required flags plus `flags`, in its own process; the test queries are encoded by the exported query
  SavedModel and the corpus embeddings are the ones the run exported.
- `run_tfrs(settings, ...)`: bench/reference_tfrs.py (TFRS, Keras 2) in its own process.
- `run_baselines(split, movies)`: most-popular, implicit ALS and, when the pairs have `history`, history
  co-occurrence (bench/baselines.py).
Every model is scored by `score`: `tfrs_twotower.metrics.evaluate_retrieval` over the whole corpus,
once as is (`all`) and once with each test user's training movies removed from its ranking (`excluded`).

Example:
>>> schema = "schemas/movielens-100k.json"
>>> result = run_ours({"num_epochs": 3}, paths, schema, split, movies, "/tmp/r")  # doctest: +SKIP
>>> result["metrics"]["excluded"]["recall_at_10"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import baselines  # noqa: E402
import ml_protocols  # noqa: E402

KS = (10, 50, 100)
KEEP = ("recall_at_10", "recall_at_50", "recall_at_100", "ndcg_at_10")


def score(queries: np.ndarray, candidates: np.ndarray, split: dict, movies: list) -> dict[str, dict]:
    """`{"all": metrics, "excluded": metrics}` of the test pairs against the whole corpus."""
    from tfrs_twotower.metrics import evaluate_retrieval

    positives = ml_protocols.positives(split["test"], movies)
    out = {}
    for name, exclude in (("all", None), ("excluded", split["seen"])):
        result = evaluate_retrieval(queries, positives, candidates, ks=KS, exclude=exclude)
        out[name] = {k: result[k] for k in KEEP}
    return out


def run_process(script: str, spec: dict, out: str, legacy: bool = False) -> dict:
    """Runs `script spec.json` in a fresh Python; returns the `result.json` it wrote into `out`."""
    os.makedirs(out, exist_ok=True)
    spec_path = os.path.join(out, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if legacy:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run([sys.executable, script, spec_path], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{script} {spec_path} failed:\n{done.stderr[-4000:]}")
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


def run_ours(flags: dict, paths: dict, schema: str, split: dict, movies: list, out: str) -> dict:
    """Trains with `TrainingConfig(required flags, **flags)` in a subprocess and scores it."""
    spec = {"kind": "ours", "flags": flags, "paths": paths, "schema": schema, "out": out}
    result = run_process(os.path.abspath(__file__), spec, out)
    queries = np.load(os.path.join(out, "query_embeddings.npy"))
    candidates = np.load(os.path.join(out, "candidate_embeddings.npy"))
    result["metrics"] = score(queries, candidates, split, movies)
    return result


def fit_stages(flags: dict, paths: dict, schema_path: str, split: dict, movies: list) -> dict:
    """In this process, the package's stages as `train` runs them (`prepare_inputs` -> `build_model` ->
    `build_weights` -> text features adapted -> `fit`, with its per-epoch corpus evaluation) without the
    exports; then the test
    queries and the corpus encoded and scored."""
    import tempfile

    import keras

    keras.backend.clear_session()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ml_stages_") as job_dir:
        config = _config(flags, paths, schema_path, job_dir=job_dir)
        result = _stages(config)
        embeddings = _encode(result, paths, movies)
    return {
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": result["train_seconds"],
        "per_epoch": [{k: v for k, v in e.items() if k.startswith("val_recall")} for e in result["history"]],
        "metrics": score(*embeddings, split, movies),
    }


def _config(flags: dict, paths: dict, schema_path: str, job_dir: str | None):
    import tfrs_twotower as tt

    return tt.TrainingConfig(
        training_data_path=paths["train"],
        # `paths["eval"]`: what best-epoch export selects on (bench/movielens_protocols.py `--select`):
        # None (the last epoch is exported) unless a run asks for the test pairs, as Rounds 1-3 did.
        eval_data_path=paths.get("eval"),
        candidate_data_path=paths["movies"],
        input_schema_path=schema_path,
        job_dir=job_dir or "unused",
        eval_batch_size=4096,  # evaluation only: no effect on the model
        cache_input=True,  # speed only
        overwrite=True,
        verbose=0,
        **flags,
    ).validate()


def _stages(config) -> dict:
    """prepare inputs -> build -> fit: `tfrs_twotower.training`'s stages, as `train` calls them."""
    import keras

    from tfrs_twotower.features.text import adapt_text_features, candidate_documents
    from tfrs_twotower.training import build_model, build_weights, fit, prepare_inputs

    keras.utils.set_random_seed(config.seed)
    inputs = prepare_inputs(config)
    model = build_model(config, inputs.schema, inputs=inputs)
    build_weights(model, config, inputs)
    adapt_text_features(model, candidate_documents(inputs.schema, inputs.corpus.candidates))
    started = time.perf_counter()
    history = fit(model, inputs, config)
    return {
        "model": model,
        "schema": inputs.schema,
        "inputs": inputs,
        "config": config,
        "history": history,
        "train_seconds": time.perf_counter() - started,
    }


def _encode(result: dict, paths: dict, movies: list) -> tuple[np.ndarray, np.ndarray]:
    """(test query embeddings in file order, corpus embeddings in `movies` order)."""
    import tensorflow as tf

    from tfrs_twotower.data.batching import side_columns
    from tfrs_twotower.export import encode_batches, encoder_function

    model, schema, inputs = result["model"], result["schema"], result["inputs"]
    test = ml_protocols.read_jsonl(paths["test"])
    columns = side_columns(schema.query, [r["query"] for r in test])
    encode = tf.function(lambda x: model.query_tower(x, training=False), reduce_retracing=True)
    queries = np.concatenate(
        [encode(b).numpy() for b in tf.data.Dataset.from_tensor_slices(columns).batch(4096)]
    )
    corpus = encode_batches(
        encoder_function(model.candidate_tower, schema, "candidate"), inputs.corpus_dataset
    )
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in inputs.corpus_keys]
    row = {i: n for n, i in enumerate(ids)}
    return queries, corpus[[row[m["movie_id"]] for m in movies]]


def run_tfrs(settings: dict, paths: dict, split: dict, movies: list, out: str) -> dict:
    """bench/reference_tfrs.py with `settings` (model, epochs, batch_size, ...) in a Keras 2 process."""
    spec = {"embedding_dim": 32, **settings, **{k: v for k, v in paths.items() if k != "eval"}, "out": out}
    result = run_process(os.path.join(BENCH, "reference_tfrs.py"), spec, out, legacy=True)
    queries = np.load(os.path.join(out, "query_embeddings.npy"))
    candidates = np.load(os.path.join(out, "candidate_embeddings.npy"))
    result["metrics"] = score(queries, candidates, split, movies)
    return result


def run_baselines(split: dict, movies: list, als_settings: dict | None = None) -> dict[str, dict]:
    """Most-popular and implicit ALS fitted on the split's training pairs and scored like the models."""
    train_users = [r["query"]["user_id"] for r in split["train"]]
    train_movies = [r["candidate"]["movie_id"] for r in split["train"]]
    corpus = [m["movie_id"] for m in movies]
    test_users = [r["query"]["user_id"] for r in split["test"]]
    queries, candidates = baselines.popularity(train_movies, corpus, len(test_users))
    out = {"most-popular": {"metrics": score(queries, candidates, split, movies)}}
    settings = als_settings or {"factors": 64, "regularization": 0.05, "iterations": 15}
    queries, candidates, seconds = baselines.als(train_users, train_movies, corpus, test_users, **settings)
    out["ALS (implicit)"] = {"metrics": score(queries, candidates, split, movies), "train_seconds": seconds}
    if all("history" in r["query"] for r in split["train"] + split["test"]):
        queries, candidates = baselines.history_cooccurrence(
            [r["query"]["history"] for r in split["train"]],
            train_movies,
            [r["query"]["history"] for r in split["test"]],
            corpus,
        )
        out["history co-occurrence"] = {"metrics": score(queries, candidates, split, movies)}
    return out


def _train_ours(spec: dict) -> dict:
    """The worker: one `tfrs_twotower.train` run, then the test queries' and the corpus' embeddings."""
    import tensorflow as tf

    import tfrs_twotower as tt
    from tfrs_twotower.data.batching import side_columns

    paths = spec["paths"]
    config = _config(spec["flags"], paths, spec["schema"], os.path.join(spec["out"], "job"))
    started = time.perf_counter()
    result = tt.train(config)
    wall = time.perf_counter() - started
    test = ml_protocols.read_jsonl(paths["test"])
    movies = ml_protocols.read_jsonl(paths["movies"])
    # The test queries through the exported query SavedModel (what serving runs), the corpus as exported.
    encoder = tf.saved_model.load(result.paths["query_model"]).signatures["serving_default"]
    columns = side_columns(result.schema.query, [r["query"] for r in test])
    queries = np.concatenate(
        [encoder(**b)["encoding"].numpy() for b in tf.data.Dataset.from_tensor_slices(columns).batch(4096)]
    )
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in result.candidate_ids]
    row = {i: n for n, i in enumerate(ids)}
    candidates = result.candidate_embeddings[[row[m["movie_id"]] for m in movies]]
    np.save(os.path.join(spec["out"], "query_embeddings.npy"), queries)
    np.save(os.path.join(spec["out"], "candidate_embeddings.npy"), candidates)
    with open(result.paths["metrics"]) as f:
        metrics = json.load(f)
    return {
        "wall_seconds": wall,
        "train_seconds": metrics.get("train_seconds"),
        "per_epoch": [
            {k: v for k, v in e.items() if k == "epoch" or k.startswith("val_recall")} for e in result.history
        ],
        "exported_epoch": metrics.get("exported_epoch", metrics.get("best_epoch")),
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        worker_spec = json.load(f)
    worker_result = _train_ours(worker_spec)
    worker_result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.path.join(worker_spec["out"], "result.json"), "w") as f:
        json.dump(worker_result, f, indent=1)
