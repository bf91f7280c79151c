"""Cold-start retrieval with text on MovieLens 100K: the offline text presets against a trainable baseline.

Usage:
    python bench/text_encoders.py [--data DIR] --out bench/results/text_encoders.json
    python bench/text_encoders.py --data DIR --out OUT.json --small      # seconds: CI smoke

Data: every rating >= 4 of `u.data` is a (user, movie) positive pair. About 20% of the movies (grouped by
their full title, so a movie listed twice under two ids is on one side only; seed 42) are *new*: their
pairs are the test pairs and they are never seen in training. Each test pair's positive is ranked among
all test movies (the cold-start corpus), Recall@10/@100.

Towers: query = user_id (Id) + age + gender + occupation; candidate = genres (Categorical) + the title
encoded by each variant. `movie_id` is an Id with `num_buckets: 1`: every movie hashes to the same bucket,
so it carries no information into the tower (a constant input), but it keys the corpus and the metrics and
lets `sampling_bias_correction="estimate"` count candidates. Variants: `genres-only` (floor),
`bag-of-words` (title words as a multi-valued Categorical; vocabulary from training titles only, so new
words are out-of-vocabulary; trainable), each offline preset as the title's `embedding_module`, and
`title-only:<bag-of-words or preset>` (the title without genres: the text's own signal). Every variant
trains with `tfrs_twotower.train` on the same settings, once per seed (docs/benchmarks.md's figures:
`--sampling-bias-correction estimate`, the other settings at their defaults here).

Recall is computed from the trained towers with ties broken at random (the expectation): movies with the
same features get the same embedding (e.g. the same genres in `genres-only`, or titles of out-of-vocabulary
words only in `bag-of-words`), and the product's metrics count ties in the positive's favour
(docs: metrics/corpus_evaluation.py), which would flatter the weaker variants. The product's own
`val_recall_at_K` is kept in the JSON. Two references: random (K/N) and an *oracle* popularity that ranks
test movies by their number of test pairs (it reads the test labels: an upper reference, not a method; a
popularity baseline is not applicable to cold start, new movies have no history at training time).

Throughput: strings per second of wall time and of process CPU time (the steadier figure on a shared
machine) of each preset's encoder (a `tf.function` over `[None]` strings) on 10,000 MovieLens titles (the
1,682 titles of u.item, cycled) in batches of 1024, after a warm-up; best of 3 passes.
`--throughput-only` measures the encoders and trains nothing.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfrs_twotower as tt  # noqa: E402
from tfrs_twotower import movielens  # noqa: E402
from tfrs_twotower.text import get_text_encoder, offline_presets  # noqa: E402

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]
OCCUPATIONS = ["administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
               "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
               "retired", "salesman", "scientist", "student", "technician", "writer"]
BASELINES = ["genres-only", "bag-of-words"]
TITLE_ONLY = "title-only:"
KS = (10, 100)
_NON_WORD = re.compile(r"[\W_]+")  # as HashedNgramEncoder: anything but letters and digits separates words


def title_words(title: str) -> list[str]:
    return [w for w in _NON_WORD.split(title.lower()) if w]


def cold_start_split(path: str, min_rating: float, test_fraction: float, seed: int):
    """`(train_pairs, test_pairs, test_movies)`: movies grouped by raw title, a `test_fraction` drawn."""
    movies = movielens.movielens_100k_candidates(path)
    raw_titles = {}
    with open(os.path.join(path, "u.item"), encoding="latin-1") as f:
        for line in f:
            if line.strip():
                fields = line.split("|")
                raw_titles[fields[0]] = fields[1]
    groups = sorted(set(raw_titles.values()))
    order = np.random.default_rng(seed).permutation(len(groups))
    test_titles = {groups[i] for i in order[: int(round(len(groups) * test_fraction))]}
    test_ids = {m for m, t in raw_titles.items() if t in test_titles}
    pairs = movielens.load_movielens_100k(path, min_rating=min_rating)
    train = [p for p in pairs if p["candidate"]["movie_id"] not in test_ids]
    test = [p for p in pairs if p["candidate"]["movie_id"] in test_ids]
    return train, test, [m for m in movies if m["movie_id"] in test_ids]


def schema_for(variant: str, vocab: list[str]) -> dict:
    """The schema of `variant`: `genres-only`, `bag-of-words` or a preset, the last two optionally
    prefixed with `title-only:` (no genres)."""
    title_only = variant.startswith(TITLE_ONLY)
    title = variant.removeprefix(TITLE_ONLY)
    candidate = {"movie_id": {"feature_type": "Id", "config": {"num_buckets": 1}}}  # a key: see the top
    if not title_only:
        candidate["genres"] = {"feature_type": "Categorical", "config": {"vocab": GENRES}}
    if title == "bag-of-words":
        candidate["title_words"] = {"feature_type": "Categorical", "config": {"vocab": vocab}}
    elif title.startswith("@"):
        candidate["title"] = {"feature_type": "Text", "config": {"embedding_module": title}}
    elif title != "genres-only" or title_only:
        raise ValueError(
            f"Unknown variant {variant!r}: use genres-only, bag-of-words or an `@` preset, the last two "
            f"optionally prefixed with {TITLE_ONLY!r}."
        )
    return {
        "query": {
            "user_id": {"feature_type": "Id", "config": {"num_buckets": 2000}},
            "age": {"feature_type": "Numeric"},
            "gender": {"feature_type": "Categorical", "config": {"vocab": ["F", "M"]}},
            "occupation": {"feature_type": "Categorical", "config": {"vocab": OCCUPATIONS}},
        },
        "candidate": candidate,
    }


def candidate_doc(movie: dict, names) -> dict:
    """The candidate features `names` of a movie document of `movielens_100k_candidates`."""
    doc = {"movie_id": movie["movie_id"], "genres": movie["genres"], "title": movie["title"],
           "title_words": [w for t in movie["title"] for w in title_words(t)]}
    return {n: doc[n] for n in names}


def write_variant(folder: str, schema: dict, train, test, test_movies) -> dict:
    """Writes the schema, pairs and test-movie documents of one variant; returns their paths."""
    names = list(schema["candidate"])
    docs: dict[str, dict] = {}  # one dict per movie, shared by its pairs (written once per movie)

    def pair(p):
        mid = p["candidate"]["movie_id"]
        if mid not in docs:
            docs[mid] = candidate_doc(p["candidate"], names)
        return {"query": {n: p["query"][n] for n in schema["query"]}, "candidate": docs[mid]}

    paths = {name: os.path.join(folder, f"{name}.jsonl") for name in ("train", "test", "test_movies")}
    movielens.write_pairs_jsonl([pair(p) for p in train], paths["train"])
    movielens.write_pairs_jsonl([pair(p) for p in test], paths["test"])
    movielens.write_pairs_jsonl([candidate_doc(m, names) for m in test_movies], paths["test_movies"])
    paths["schema"] = os.path.join(folder, "schema.json")
    with open(paths["schema"], "w") as f:
        json.dump(schema, f)
    return paths


def expected_recall(scores: np.ndarray, positives: np.ndarray, ks=KS) -> dict[str, float]:
    """Recall@K with ties broken uniformly at random (its expectation): `scores` `[Q, N]`."""
    own = scores[np.arange(len(positives)), positives][:, None]
    tol = 1e-5 * np.maximum(np.abs(own), 1e-6)
    above = (scores > own + tol).sum(1)
    tied = (np.abs(scores - own) <= tol).sum(1) - 1  # other candidates tied with the positive
    return {f"recall_at_{k}": float(np.mean(np.clip((k - above) / (tied + 1), 0.0, 1.0))) for k in ks}


def evaluate(result, test_path: str, schema: dict) -> dict[str, float]:
    """Tie-aware Recall@K of the trained towers on the test pairs against the test-movie corpus."""
    row_of = {key: i for i, key in enumerate(result.candidate_ids)}
    dataset = tt.data.make_dataset(test_path, schema, subset="all", eval_split=0.0, batch_size=2048,
                                   shuffle_buffer=0)
    queries, rows = [], []
    for batch in dataset:
        queries.append(result.model.query_tower(batch["query"], training=False).numpy())
        rows += [row_of[k.decode()] for k in batch["candidate"]["movie_id"].numpy()]
    scores = np.concatenate(queries) @ result.candidate_embeddings.T
    return expected_recall(scores, np.asarray(rows))


def run_variant(variant, paths, schema, args, seed, job_dir) -> dict:
    """Trains one variant with `tfrs_twotower.train` and evaluates it (tie-aware and the product's way)."""
    config = tt.TrainingConfig(
        training_data_path=paths["train"], eval_data_path=paths["test"],
        candidate_data_path=paths["test_movies"], input_schema_path=paths["schema"], job_dir=job_dir,
        num_epochs=args.epochs, train_batch_size=args.batch_size, eval_batch_size=1024,
        learning_rate=args.learning_rate, optimizer="adagrad", output_dim=64,
        num_hidden_layers=len(args.hidden), **{f"num_nodes_hidden_layer{i + 1}": u for i, u in
                                                enumerate(args.hidden)},
        sampling_bias_correction=args.sampling_bias_correction, l2_normalize=args.l2_normalize,
        temperature=args.temperature, eval_top_k="10,100", seed=seed,
        cache_input=True, overwrite=True, verbose=0,
    )
    started = time.perf_counter()
    result = tt.train(config)
    seconds = time.perf_counter() - started
    metrics = evaluate(result, paths["test"], schema)
    product = {k: result.metrics.get(f"val_recall_at_{k}") for k in KS}
    print(f"  {variant:28s} seed {seed}: R@10 {metrics['recall_at_10']:.4f} R@100 "
          f"{metrics['recall_at_100']:.4f} (product, ties favoured: {product[10]:.4f} / {product[100]:.4f}) "
          f"{seconds:.0f} s", flush=True)
    return {**metrics, "product_val_recall_at_10": product[10], "product_val_recall_at_100": product[100],
            "train_seconds": seconds, "corpus_size": len(result.candidate_ids)}


def references(test, test_movies) -> dict[str, dict[str, float]]:
    """Random (K/N) and oracle popularity (test movies ranked by their test pair counts)."""
    ids = [m["movie_id"] for m in test_movies]
    row_of = {m: i for i, m in enumerate(ids)}
    positives = np.array([row_of[p["candidate"]["movie_id"]] for p in test])
    counts = collections.Counter(p["candidate"]["movie_id"] for p in test)
    popularity = np.array([counts[m] for m in ids], np.float64)
    n = len(ids)
    return {
        "random": {f"recall_at_{k}": min(1.0, k / n) for k in KS},
        "oracle popularity (test labels)": expected_recall(
            np.broadcast_to(popularity, (len(positives), n)), positives),
    }


def throughput(preset: str, titles: list[str], batch_size: int, repeats: int = 3) -> tuple[float, float]:
    """Strings per second of wall time and per second of process CPU time of the preset's encoder (a
    `tf.function` over `[None]` strings), each the best of `repeats` passes over `titles`."""
    encoder = get_text_encoder(preset)
    encode = tf.function(encoder.call, input_signature=[tf.TensorSpec([None], tf.string)])
    batches = [tf.constant(titles[i: i + batch_size]) for i in range(0, len(titles), batch_size)]
    for batch in batches[:2]:
        encode(batch).numpy()  # warm-up: tracing, table initialisation
    wall = cpu = float("inf")
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        for batch in batches:
            encode(batch).numpy()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return len(titles) / wall, len(titles) / cpu


def markdown_table(summary: dict, throughputs: dict) -> str:
    """Mean ± standard deviation over the seeds (± left out for one seed and for the references);
    throughput as strings per wall second (per CPU second)."""

    def cell(row: dict, key: str) -> str:
        spread = row.get(key + "_std")
        return f"{row[key]:.4f}" + (f" ± {spread:.4f}" if spread else "")

    lines = ["| variant | Recall@10 | Recall@100 | train s / run | encode strings/s (per CPU-s) |",
             "|---|---|---|---|---|"]
    rows = {**summary, **{preset: {} for preset in throughputs if preset not in summary}}
    for name, row in rows.items():
        seconds = f"{row['train_seconds']:.0f}" if "train_seconds" in row else "-"
        rate = f"{throughputs[name][0]:,.0f} ({throughputs[name][1]:,.0f})" if name in throughputs else "-"
        recall = f"{cell(row, 'recall_at_10')} | {cell(row, 'recall_at_100')}" if row else "- | -"
        lines.append(f"| {name} | {recall} | {seconds} | {rate} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=None, help="the ml-100k folder (u.data, ...; default: movielens.movielens_dir)"
    )
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--small", action="store_true", help="a few hundred pairs, 1 epoch, 1 seed: seconds")
    titled = ["bag-of-words", *offline_presets()]
    parser.add_argument(
        "--variants", default=",".join(BASELINES + offline_presets() + [TITLE_ONLY + v for v in titled]),
        help="comma-separated: genres-only, bag-of-words, `@` presets, title-only:<one of the last two>",
    )
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--hidden", default="", help="hidden layer units, comma-separated (default: none)")
    parser.add_argument("--sampling-bias-correction", default=None, help="e.g. estimate (default: none)")
    parser.add_argument("--l2-normalize", action="store_true", help="cosine similarity (default: dot)")
    parser.add_argument("--temperature", type=float, default=None, help="divide the logits by it")
    parser.add_argument("--min-rating", type=float, default=4.0)
    parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--throughput-only", action="store_true", help="measure the encoders, train nothing")
    args = parser.parse_args(argv)
    if not args.data:
        args.data = movielens.movielens_dir("ml-100k")  # a local copy, else downloaded from GroupLens
    args.hidden = [int(u) for u in args.hidden.split(",") if u]
    variants = [v for v in args.variants.split(",") if v]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.small:
        args.epochs, seeds = 1, seeds[:1]

    train, test, test_movies = cold_start_split(args.data, args.min_rating, test_fraction=0.2, seed=42)
    if args.small:
        train, test = train[:400], test[:100]
    vocab = sorted({w for p in train for t in p["candidate"]["title"] for w in title_words(t)})
    test_words = [w for m in test_movies for t in m["title"] for w in title_words(t)]
    unseen = np.mean([w not in set(vocab) for w in test_words])
    print(f"{len(train)} training pairs, {len(test)} test pairs, {len(test_movies)} test movies (corpus); "
          f"bag-of-words vocabulary {len(vocab)} words, {unseen:.0%} of test-title words out of it",
          flush=True)

    workdir = args.workdir or tempfile.mkdtemp(prefix="text_encoders_")
    runs: dict[str, list[dict]] = {}
    for variant in [] if args.throughput_only else variants:
        schema = schema_for(variant, vocab)
        folder = os.path.join(workdir, re.sub(r"[^\w-]+", "_", variant))
        paths = write_variant(folder, schema, train, test, test_movies)
        runs[variant] = [run_variant(variant, paths, schema, args, seed, os.path.join(folder, f"run{seed}"))
                         for seed in seeds]

    summary: dict[str, dict] = {}
    for variant, rows in runs.items():
        summary[variant] = {}
        for key in ("recall_at_10", "recall_at_100", "train_seconds"):
            values = [r[key] for r in rows]
            summary[variant][key] = float(np.mean(values))
            summary[variant][key + "_std"] = float(np.std(values))
    summary.update(references(test, test_movies))

    command = " ".join(["python", "bench/text_encoders.py", *(sys.argv[1:] if argv is None else argv)])
    measured = measure_throughputs(args, variants, command)
    if args.throughput_only and os.path.exists(args.out):
        with open(args.out) as f:
            report = json.load(f)  # keep the training results; replace the throughput
    else:
        report = {
            "command": command,
            "date": datetime.date.today().isoformat(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "versions": {"tensorflow": tf.__version__, "keras": __import__("keras").__version__,
                         "numpy": np.__version__, "python": platform.python_version(),
                         "wordllama": _version("wordllama")},
            "settings": {
                "min_rating": args.min_rating, "test_fraction": 0.2, "split_seed": 42, "seeds": seeds,
                "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adagrad",
                "learning_rate": args.learning_rate, "hidden_units": args.hidden, "output_dim": 64,
                "sampling_bias_correction": args.sampling_bias_correction, "l2_normalize": args.l2_normalize,
                "temperature": args.temperature, "small": args.small,
            },
            "data": {"train_pairs": len(train), "test_pairs": len(test), "test_movies": len(test_movies),
                     "bag_of_words_vocab": len(vocab)},
            "summary": summary, "runs": runs,
        }
    report.update(measured)
    report["table"] = markdown_table(report["summary"], report["throughput"]["rates"])
    print(report["table"])
    folder = os.path.dirname(args.out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    return report


def measure_throughputs(args, variants: list[str], command: str) -> dict:
    """`{"throughput": {...}, "encode_strings_per_second": ..., "encode_strings_per_cpu_second": ...}`."""
    titles = [m["title"][0] for m in movielens.movielens_100k_candidates(args.data)]
    count = 1024 * 2 if args.small else 10_000
    titles = (titles * (count // len(titles) + 1))[:count]
    load_before = os.getloadavg()
    presets = [p for p in dict.fromkeys(v.removeprefix(TITLE_ONLY) for v in variants) if p.startswith("@")]
    rates = {p: throughput(p, titles, 1024, repeats=1 if args.small else 3) for p in presets}
    return {
        "throughput": {"command": command, "date": datetime.date.today().isoformat(), "strings": count,
                       "batch_size": 1024, "load_average_before": load_before,
                       "load_average_after": os.getloadavg(), "rates": rates},
        "encode_strings_per_second": {p: rate[0] for p, rate in rates.items()},
        "encode_strings_per_cpu_second": {p: rate[1] for p, rate in rates.items()},
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
