"""The TensorFlow Recommenders reference of bench/movielens.py, run in its own process (Keras 2).

Usage (bench/movielens.py runs it; TFRS needs Keras 2, hence the environment variable):
    TF_USE_LEGACY_KERAS=1 python bench/reference_tfrs.py SPEC.json

SPEC.json: `{"model": "basic" | "full", "train": JSONL, "test": JSONL, "movies": JSONL, "epochs",
"batch_size", "optimizer", "learning_rate", "seed", "hidden": [units], "output_dim", "out": folder}`,
the pair records and candidate documents written by bench/movielens.py.

- `basic` is the TFRS basic_retrieval tutorial: StringLookup + Embedding(32) of user_id and of movie_id,
  `tfrs.tasks.Retrieval()` with `FactorizedTopK` over all movies, Adagrad. One deviation: the corpus
  metric is skipped while training (`compute_metrics=not training`, as TFRS's later tutorials do); the
  tutorial computes it on every training batch, which measures the metric, not the model.
- `full` uses every MovieLens feature the way the TFRS featurization tutorials do: StringLookup +
  Embedding for user_id, gender, occupation, zip and movie_id; Normalization for age and year;
  TextVectorization + Embedding + mean pooling for the title; StringLookup + masked mean pooling of
  Embedding for the genres; concatenated, then `hidden` ReLU Dense layers and a Dense(output_dim).

Writes to `out`: `result.json` (epoch times, training throughput, TFRS's own FactorizedTopK metrics on
the test pairs and their wall time, peak RSS) and `query_embeddings.npy` (test pairs, in file order),
`candidate_embeddings.npy` (movies, in file order) for the parent to evaluate with its own code.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

QUERY = ("user_id", "age", "gender", "occupation", "zip")
CANDIDATE = ("movie_id", "title", "genres", "year")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _first(value, default=""):
    return value[0] if isinstance(value, list) and value else (default if isinstance(value, list) else value)


def columns(docs, names):
    """`{name: array}`: strings for ids/categoricals/text (genres padded with ""), floats (NaN: none)."""
    out = {}
    for name in names:
        values = [d[name] for d in docs]
        if name == "genres":
            width = max(map(len, values))
            out[name] = np.array([v + [""] * (width - len(v)) for v in values], dtype=object)
        elif name in ("age", "year"):
            out[name] = np.array([float(_first(v, np.nan)) for v in values], np.float32)
        else:
            out[name] = np.array([_first(v) for v in values], dtype=object)
    return out


def lookup_embedding(vocabulary, dim, mask=False):
    lookup = tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token="" if mask else None)
    return tf.keras.Sequential(
        [lookup, tf.keras.layers.Embedding(lookup.vocabulary_size(), dim, mask_zero=mask)]
    )


class FeatureTower(tf.keras.Model):
    """Encodes a dict of features (the `full` model's query or candidate side) into one embedding."""

    def __init__(self, train_columns, names, hidden, output_dim, dim):
        super().__init__()
        self.names = names
        self.encoders = {}
        for name in names:
            values = train_columns[name]
            if name in ("age", "year"):
                norm = tf.keras.layers.Normalization(axis=None)
                norm.adapt(values[~np.isnan(values)])
                self.encoders[name] = norm
            elif name == "title":
                text = tf.keras.layers.TextVectorization(max_tokens=10_000)
                text.adapt(values)
                self.encoders[name] = tf.keras.Sequential(
                    [
                        text,
                        tf.keras.layers.Embedding(10_000, dim, mask_zero=True),
                        tf.keras.layers.GlobalAveragePooling1D(),
                    ]
                )
            elif name == "genres":
                vocabulary = sorted({g for row in values for g in row if g})
                self.encoders[name] = lookup_embedding(vocabulary, 16, mask=True)
            else:
                width = dim if name in ("user_id", "movie_id") else 16
                self.encoders[name] = lookup_embedding(sorted(set(values)), width)
        self.dense = tf.keras.Sequential(
            [tf.keras.layers.Dense(u, activation="relu") for u in hidden]
            + [tf.keras.layers.Dense(output_dim)]
        )

    def call(self, features):
        parts = []
        for name in self.names:
            value = features[name]
            if name in ("age", "year"):
                filled = tf.where(tf.math.is_nan(value), self.encoders[name].mean, value)
                parts.append(tf.reshape(self.encoders[name](filled), [-1, 1]))
            elif name == "genres":
                embedded = self.encoders[name](value)  # [B, L, 16]
                mask = tf.cast(tf.not_equal(value, ""), tf.float32)[:, :, None]
                parts.append(tf.reduce_sum(embedded * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0))
            else:
                parts.append(self.encoders[name](value))
        return self.dense(tf.concat(parts, axis=1))


class RetrievalModel(tfrs.Model):
    def __init__(self, query_model, candidate_model, task):
        super().__init__()
        self.query_model, self.candidate_model, self.task = query_model, candidate_model, task

    def compute_loss(self, features, training=False):
        return self.task(
            self.query_model(features["query"]),
            self.candidate_model(features["candidate"]),
            compute_metrics=not training,
        )


class EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    tf.keras.utils.set_random_seed(spec["seed"])
    train, test, movies = (read_jsonl(spec[k]) for k in ("train", "test", "movies"))
    basic = spec["model"] == "basic"
    query_names = ("user_id",) if basic else QUERY
    candidate_names = ("movie_id",) if basic else CANDIDATE
    train_q = columns([r["query"] for r in train], query_names)
    train_c = columns([r["candidate"] for r in train], candidate_names)
    test_q = columns([r["query"] for r in test], query_names)
    test_c = columns([r["candidate"] for r in test], candidate_names)
    movie_c = columns(movies, candidate_names)
    dim = spec.get("embedding_dim", 32)
    if basic:  # the tutorial's towers
        query_model = lookup_embedding(sorted(set(train_q["user_id"])), dim)
        candidate_model = lookup_embedding(sorted(set(movie_c["movie_id"])), dim)
        query_input = lambda cols: cols["user_id"]  # noqa: E731
        candidate_input = lambda cols: cols["movie_id"]  # noqa: E731
    else:
        query_model = FeatureTower(train_q, query_names, spec["hidden"], spec["output_dim"], dim)
        candidate_model = FeatureTower(movie_c, candidate_names, spec["hidden"], spec["output_dim"], dim)
        query_input = candidate_input = lambda cols: cols  # noqa: E731
    movie_ds = tf.data.Dataset.from_tensor_slices(candidate_input(movie_c)).batch(1024)
    task = tfrs.tasks.Retrieval(
        metrics=tfrs.metrics.FactorizedTopK(candidates=movie_ds.map(candidate_model), ks=(10, 50, 100))
    )
    model = RetrievalModel(query_model, candidate_model, task)
    optimizer = {"adagrad": tf.keras.optimizers.Adagrad, "adam": tf.keras.optimizers.Adam}[spec["optimizer"]]
    model.compile(optimizer=optimizer(learning_rate=spec["learning_rate"]))

    # As the tutorial: shuffle once, batch, cache (every epoch then sees the same batches).
    train_ds = tf.data.Dataset.from_tensor_slices(
        {"query": query_input(train_q), "candidate": candidate_input(train_c)}
    )
    train_ds = train_ds.shuffle(len(train), seed=spec["seed"]).batch(spec["batch_size"]).cache()
    timer = EpochTimer()
    started = time.perf_counter()
    model.fit(train_ds, epochs=spec["epochs"], callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - started

    test_ds = tf.data.Dataset.from_tensor_slices(
        {"query": query_input(test_q), "candidate": candidate_input(test_c)}
    ).batch(4096)
    started = time.perf_counter()
    own = model.evaluate(test_ds, return_dict=True, verbose=0)
    eval_seconds = time.perf_counter() - started

    queries = np.concatenate([query_model(b["query"]).numpy() for b in test_ds])
    candidates = np.concatenate([candidate_model(b).numpy() for b in movie_ds])
    os.makedirs(spec["out"], exist_ok=True)
    np.save(os.path.join(spec["out"], "query_embeddings.npy"), queries)
    np.save(os.path.join(spec["out"], "candidate_embeddings.npy"), candidates)
    later = timer.seconds[1:]
    result = {
        "train_seconds": train_seconds,
        "epoch_seconds": timer.seconds,
        "examples_per_second": len(train) * len(later) / sum(later) if later else None,
        "examples_per_second_all_epochs": len(train) * len(timer.seconds) / sum(timer.seconds),
        "eval_seconds": eval_seconds,
        "tfrs_metrics": {k: float(v) for k, v in own.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {
            "tensorflow": tf.__version__,
            "tensorflow_recommenders": tfrs.__version__,
            "tf_keras": getattr(sys.modules.get("tf_keras"), "__version__", None),
        },
    }
    with open(os.path.join(spec["out"], "result.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
