"""MovieLens evaluation protocols for the benchmarks: which ratings train, which test, and what each user saw.

- `random`: every pair of ML-100K (all ratings), shuffled with a split seed, 80/20.
- `last`: leave-last-out by time: each user's latest pair (largest timestamp, then file order) is the
  test pair, the rest train.
Data sets: `ml-100k` (every rating a pair, 1,682 movies as the corpus) and `ml-1m-subset` (users 1-2999
of ML-1M, ratings >= 4 as pairs, the 3,615 movies the subset rates as the corpus). The pair records are
`tfrs_twotower.movielens`'s; this module adds the timestamps, the splits, and each pair's `history` (its
user's earlier training movies, `movielens.add_history`: the repository's schemas declare it).

Example:
>>> data = load("ml-100k", "../shared/data")  # doctest: +SKIP
>>> split = make_split(data, "random", seed=43)  # doctest: +SKIP
>>> len(split["train"]), len(split["test"]), len(split["seen"][0])  # doctest: +SKIP
(80000, 20000, 51)
"""

from __future__ import annotations

import gzip
import os

import numpy as np

DATASETS = ("ml-100k", "ml-1m-subset")
PROTOCOLS = ("random", "last")


def _ratings(path: str, sep: str, min_rating: float | None) -> list[tuple[str, str, int]]:
    """`(user, movie, timestamp)` of each rating kept, in file order (as the package's loaders keep them)."""
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="latin-1") as f:
        for line in f:
            if not line.strip():
                continue
            user, movie, rating, stamp = line.strip().split(sep)[:4]
            if min_rating is None or float(rating) >= min_rating:
                out.append((user, movie, int(stamp)))
    return out


def load(name: str, data_dir: str, smoke: bool = False) -> dict:
    """`{"name", "records", "stamps", "movies"}` of a data set of `DATASETS` under `data_dir`.

    `data_dir` holds `ml-100k/` (or is it), or `ml-1m-cs100-subset/` and `ml-1m/`. `smoke` keeps 400
    ratings.
    """
    from tfrs_twotower import movielens

    if name == "ml-100k":
        folder = (
            data_dir
            if os.path.exists(os.path.join(data_dir, "u.data"))
            else os.path.join(data_dir, "ml-100k")
        )
        records = movielens.load_movielens_100k(folder)
        movies = movielens.movielens_100k_candidates(folder)
        ratings = _ratings(os.path.join(folder, "u.data"), "\t", None)
    elif name == "ml-1m-subset":
        path = os.path.join(data_dir, "ml-1m-cs100-subset", "ratings.dat.gz")
        movies_dir = os.path.join(data_dir, "ml-1m")
        records = movielens.load_movielens_1m_subset(path, movies_dir, min_rating=4)
        ratings = _ratings(path, "::", 4)
        rated = {m for _, m, _ in _ratings(path, "::", None)}
        movies = [m for m in movielens.movielens_1m_candidates(movies_dir) if m["movie_id"] in rated]
    else:
        raise ValueError(f"Unknown data set {name!r}; choose one of {DATASETS}.")
    for record, (user, movie, _) in zip(records, ratings, strict=True):
        if (record["query"]["user_id"], record["candidate"]["movie_id"]) != (user, movie):
            raise ValueError(f"{name}: the ratings file and the package's loader disagree on the order.")
    if smoke:
        records, ratings = records[:400], ratings[:400]
    return {"name": name, "records": records, "stamps": [s for _, _, s in ratings], "movies": movies}


def make_split(data: dict, protocol: str, seed: int = 42, history: int | None = None) -> dict:
    """`{"train", "test", "seen", "protocol", "seed"}`; `seen[i]`: corpus rows of test pair i's user's
    training movies (what seen-item exclusion removes from its ranking; its positive is never in it).
    Every pair's query gets `history` from the training pairs (`history`: its max_length, default the
    package's)."""
    records = data["records"]
    if protocol == "random":
        order = np.random.default_rng(seed).permutation(len(records))
        num_test = int(round(len(records) * 0.2))
        test_rows, train_rows = order[:num_test], order[num_test:]
    elif protocol == "last":
        last: dict[str, int] = {}
        for i, record in enumerate(records):
            user = record["query"]["user_id"]
            if user not in last or data["stamps"][i] >= data["stamps"][last[user]]:
                last[user] = i
        test_rows = np.array(sorted(last.values()))
        train_rows = np.setdiff1d(np.arange(len(records)), test_rows)
    else:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")
    from tfrs_twotower import movielens

    train = [records[i] for i in train_rows]
    test = [records[i] for i in test_rows]
    train, test = movielens.add_history(train, test, **({"max_length": history} if history else {}))
    return {
        "train": train,
        "test": test,
        "seen": seen_rows(train, test, data["movies"]),
        "protocol": protocol,
        "seed": seed if protocol == "random" else None,
    }


def seen_rows(train: list, test: list, movies: list) -> list[np.ndarray]:
    """Per test pair, the corpus rows of its user's training movies, minus the test positive itself."""
    row = {m["movie_id"]: i for i, m in enumerate(movies)}
    by_user: dict[str, set[int]] = {}
    for r in train:
        by_user.setdefault(r["query"]["user_id"], set()).add(row[r["candidate"]["movie_id"]])
    out = []
    for r in test:
        rows = by_user.get(r["query"]["user_id"], set()) - {row[r["candidate"]["movie_id"]]}
        out.append(np.array(sorted(rows), np.int64))
    return out


def positives(test: list, movies: list) -> np.ndarray:
    """The corpus row of each test pair's movie."""
    row = {m["movie_id"]: i for i, m in enumerate(movies)}
    return np.array([row[r["candidate"]["movie_id"]] for r in test], np.int64)


def write_split(split: dict, movies: list, folder: str) -> dict[str, str]:
    """Writes train/test pairs and the corpus as JSONL (every feature); returns their paths."""
    from tfrs_twotower import movielens

    os.makedirs(folder, exist_ok=True)
    paths = {part: os.path.join(folder, f"{part}.jsonl") for part in ("train", "test", "movies")}
    movielens.write_pairs_jsonl(split["train"], paths["train"])
    movielens.write_pairs_jsonl(split["test"], paths["test"])
    movielens.write_pairs_jsonl(movies, paths["movies"])
    return paths


def read_jsonl(path: str) -> list[dict]:
    import json

    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
