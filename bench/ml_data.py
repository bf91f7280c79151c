"""The data of the MovieLens comparison (bench/movielens.py): the pairs split 80/20 with seed 42, the
`basic` (ids only) and `full` schemas, and the JSONL files both sides train from.

Example:
>>> data = load_data("../shared/data/ml-100k")  # doctest: +SKIP
>>> paths = write_data(data, "/tmp/ml")  # doctest: +SKIP
>>> sorted(paths["full"])  # doctest: +SKIP
['movies', 'schema', 'test', 'train']
"""

from __future__ import annotations

import collections
import gzip
import json
import os


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
