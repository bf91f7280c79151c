"""Text retrieval on Cranfield: two-tower text models trained with `tfrs_twotower.train` against BM25.

Usage:
    python bench/text_retrieval.py                                   # both splits, defaults + presets
    python bench/text_retrieval.py --variants default --num_epochs 10 --output /tmp/text/cran.json
    python bench/text_retrieval.py --throughput_only                 # encoder speed, 2 threads and 1

Data (`--data_dir`, default `tfrs_twotower.movielens.default_data_dir()`, its `cranfield/` folder; see
bench/cranfield.py): 1,400 documents, 225 queries numbered 1..225 in file order, relevance codes 1-4.
Protocol: split "odd" trains on the odd-numbered queries' (query text, relevant document) pairs and tests
on the even-numbered queries; split "even" is the swap. Every test query is ranked against ALL 1,400
documents; Recall@10/@100 (fraction of the query's relevant documents in its top K, averaged over queries)
and nDCG@10 (binary gains).

Schema (text only): query `query` (Text); candidate `doc_id` (Id, key-only: `embedding_dim` 0, so it keys
the corpus and carries no signal), `title` (Text), `abstract` (Text); every Text feature with the variant's
`embedding_module` (the default variant: none). Training: `train(TrainingConfig(training_data_path,
input_schema_path, job_dir, num_epochs))`, every other setting at its default (Vertex's: adagrad 0.1,
batch 100, output_dim 64, no hidden layer, eval_split 0.2 of the training pairs); variant `default+corpus`
also passes `candidate_data_path` (all 1,400 documents, unlabeled: what the default text encoder's LSA
is fitted on; without it, on the training pairs' documents only). `zero-shot` is the default encoder
fitted on all documents and not trained (its dot product = LSA-64 cosine).

Baselines on the same splits: BM25 (k1=1.2, b=0.75), TF-IDF cosine and document popularity
(bench/cranfield.py).

Throughput: documents per second of wall time and of process CPU time (steadier on a shared machine) of
the default text encoder (`LexicalTextEncoder` in a `tf.function`, batches of 1024) on 20,000 Cranfield
abstracts (the 1,400 cycled), best of 3 passes, with TensorFlow's default threads and with one intra-op
and inter-op thread (each in a subprocess), next to `os.getloadavg()` and the CPU count.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cranfield  # noqa: E402
import numpy as np  # noqa: E402

SPLITS = ("odd", "even")
VARIANTS = ("zero-shot", "default", "default+corpus", "@hashed-ngrams")


def schema_for(embedding_module: str | None) -> dict:
    text = {"feature_type": "Text"}
    if embedding_module is not None:
        text["config"] = {"embedding_module": embedding_module}
    return {
        "query": {"query": text},
        "candidate": {
            "doc_id": {"feature_type": "Id", "config": {"num_buckets": 1, "embedding_dim": 0}},
            "title": text,
            "abstract": text,
        },
    }


def candidate(doc_id: str, document: dict) -> dict:
    return {"doc_id": doc_id, "title": document["title"], "abstract": document["abstract"]}


def write_jsonl(path: str, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


def run_model(variant: str, data, split: str, args, folder: str) -> dict:
    """Trains one variant on the split's training half and ranks the test queries against all documents."""
    import tensorflow as tf

    import tfrs_twotower as tt

    documents, queries, qrels, doc_ids = data
    train_q, test_q = cranfield.split_queries(sorted(qrels), split)
    module = None if variant.startswith("default") or variant == "zero-shot" else variant
    schema_path = os.path.join(folder, "schema.json")
    with open(schema_path, "w") as f:
        json.dump(schema_for(module), f)
    pairs = [
        {"query": {"query": queries[q]}, "candidate": candidate(d, documents[d])}
        for q in train_q
        for d in sorted(qrels[q], key=int)
    ]
    corpus = [candidate(d, documents[d]) for d in doc_ids]
    started = time.perf_counter()
    if variant == "zero-shot":
        from tfrs_twotower.features.text import adapt_text_features, candidate_documents
        from tfrs_twotower.schema import load_schema
        from tfrs_twotower.towers import build_towers

        towers = build_towers(schema_path, output_dim=64)
        adapt_text_features(list(towers), candidate_documents(load_schema(schema_path), corpus))
        query_tower, candidate_tower = towers
        extra = {}
    else:
        config = tt.TrainingConfig(
            training_data_path=write_jsonl(os.path.join(folder, "train.jsonl"), pairs),
            input_schema_path=schema_path,
            job_dir=os.path.join(folder, "job"),
            num_epochs=args.num_epochs,
            verbose=0,
            overwrite=True,
        )
        if variant == "default+corpus":
            config.candidate_data_path = write_jsonl(os.path.join(folder, "docs.jsonl"), corpus)
        result = tt.train(config)
        query_tower, candidate_tower = result.model.query_tower, result.model.candidate_tower
        extra = {
            "train_pairs": result.record_counts["training"]["train"],
            "val_recall_at_100": result.metrics.get("val_recall_at_100"),
        }
    seconds = time.perf_counter() - started
    doc_features = {
        "doc_id": tf.constant(doc_ids),
        "title": tf.constant([[documents[d]["title"]] for d in doc_ids]),
        "abstract": tf.constant([[documents[d]["abstract"]] for d in doc_ids]),
    }
    doc_embeddings = candidate_tower(doc_features).numpy()
    query_embeddings = query_tower({"query": tf.constant([[queries[q]] for q in test_q])}).numpy()
    index = {d: i for i, d in enumerate(doc_ids)}
    relevant = [{index[d] for d in qrels[q]} for q in test_q]
    metrics = cranfield.ranking_metrics(query_embeddings @ doc_embeddings.T, relevant)
    return {**metrics, "seconds": round(seconds, 1), **extra}


def run_baselines(data, split: str) -> dict[str, dict]:
    documents, queries, qrels, doc_ids = data
    train_q, test_q = cranfield.split_queries(sorted(qrels), split)
    texts = [documents[d]["title"] + " " + documents[d]["abstract"] for d in doc_ids]
    index = {d: i for i, d in enumerate(doc_ids)}
    relevant = [{index[d] for d in qrels[q]} for q in test_q]
    query_texts = [queries[q] for q in test_q]
    train_relevant = [{index[d] for d in qrels[q]} for q in train_q]
    scores = {
        "BM25": cranfield.bm25_scores(query_texts, texts),
        "TF-IDF cosine": cranfield.tfidf_scores(query_texts, texts),
        "popularity": cranfield.popularity_scores(train_relevant, len(test_q), len(doc_ids)),
    }
    return {name: cranfield.ranking_metrics(s, relevant) for name, s in scores.items()}


def throughput(data_dir: str, threads: int | None, num_docs: int = 20_000, batch_size: int = 1024):
    """`(wall, cpu)`: documents per second of wall time and per second of process CPU time of the default
    text encoder on abstracts (best of 3 passes each)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from tfrs_twotower.text import get_text_encoder

    documents, _, _ = cranfield.load(os.path.join(data_dir, "cranfield"))
    abstracts = [d["abstract"] for d in documents.values()]
    texts = [abstracts[i % len(abstracts)] for i in range(num_docs)]
    batches = [tf.constant(texts[i : i + batch_size]) for i in range(0, num_docs, batch_size)]
    encoder = get_text_encoder(None)
    encode = tf.function(encoder.call, input_signature=[tf.TensorSpec([None], tf.string)])
    encode(batches[0])
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        started, started_cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            encode(batch).numpy()
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - started_cpu)
    return num_docs / best, num_docs / best_cpu


def measure_throughput(data_dir: str) -> dict:
    out = {"load_before": list(os.getloadavg()), "mean_abstract_words": None}
    for label, threads in (("default_threads", 0), ("one_thread", 1)):
        command = [sys.executable, __file__, "--data_dir", data_dir, "--_throughput_threads", str(threads)]
        line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()
        wall, cpu = json.loads(line[-1])
        out[f"docs_per_second_{label}"] = round(wall, 1)
        out[f"docs_per_cpu_second_{label}"] = round(cpu, 1)
    out["load_after"] = list(os.getloadavg())
    out["cpu_count"] = os.cpu_count()
    documents, _, _ = cranfield.load(os.path.join(data_dir, "cranfield"))
    out["mean_abstract_words"] = round(
        float(np.mean([len(cranfield.tokens(d["abstract"])) for d in documents.values()])), 1
    )
    return out


def markdown(results: dict) -> str:
    lines = ["| method | split | R@10 | R@100 | nDCG@10 |", "|---|---|---|---|---|"]
    for split, rows in results["splits"].items():
        for name, m in rows.items():
            lines.append(
                f"| {name} | train {split} / test {'even' if split == 'odd' else 'odd'} | "
                f"{m['recall_at_10']:.3f} | {m['recall_at_100']:.3f} | {m['ndcg_at_10']:.3f} |"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    from tfrs_twotower.movielens import default_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=default_data_dir(), help="folder holding cranfield/")
    parser.add_argument(
        "--output", default=None, help="JSON output (default bench/results/text_retrieval.json)"
    )
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated of {VARIANTS} or presets"
    )
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--throughput_only", action="store_true")
    parser.add_argument("--no_throughput", action="store_true")
    parser.add_argument("--_throughput_threads", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args._throughput_threads is not None:
        print(json.dumps(throughput(args.data_dir, args._throughput_threads)))
        return {}
    output = args.output or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "text_retrieval.json"
    )
    results: dict = {
        "command": "python bench/text_retrieval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "num_epochs": args.num_epochs,
        "splits": {},
    }
    if not args.throughput_only:
        documents, queries, qrels = cranfield.load(os.path.join(args.data_dir, "cranfield"))
        data = (documents, queries, qrels, sorted(documents, key=int))
        for split in args.splits.split(","):
            rows = run_baselines(data, split)
            for variant in [v for v in args.variants.split(",") if v]:
                with tempfile.TemporaryDirectory() as folder:
                    rows[variant] = run_model(variant, data, split, args, folder)
                print(
                    split,
                    variant,
                    {k: round(v, 3) if isinstance(v, float) else v for k, v in rows[variant].items()},
                    flush=True,
                )
            results["splits"][split] = rows
        print(markdown(results))
    if not args.no_throughput:
        results["throughput"] = measure_throughput(args.data_dir)
        print("throughput", results["throughput"])
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
