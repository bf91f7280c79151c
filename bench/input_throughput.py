"""Input records/s without a model: JSONL (Python path), TFRecord before (Python) and after (native).

Writes `N` synthetic pairs (Id, Numeric, Categorical and Text features on both sides) as JSONL and as
TFRecord, then times one full pass of `make_dataset` over each (train subset, shuffled, batch 1024) and
of `scan`; with `--train`, times `tfrs-twotower train` end to end (Id-only model, batch 8192, 2 epochs)
from each format. The corpus and `encode` inputs are timed on `--candidates` distinct candidate
documents in TFRecord, Python reader against native: `scan_candidates` (the corpus of
`--candidate_data_path`) plus one pass of `make_candidate_dataset`, and `encode`'s input (documents ->
padded encoder tensors in batches of 1024, without the model). Prints a table and writes the figures as
JSON.

Usage:
  python bench/input_throughput.py --records 300000 --out /tmp/native/input_throughput.json [--train]
  python bench/input_throughput.py --corpus_only --candidates 200000 --out /tmp/native/corpus.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from tfrs_twotower.data import dataset as dataset_lib
from tfrs_twotower.data import (
    make_candidate_dataset,
    make_dataset,
    scan,
    scan_candidates,
    write_jsonl,
    write_tfrecord,
)

SCHEMA = {
    "query": {
        "user_id": {"feature_type": "Id", "config": {"num_buckets": 5000}},
        "age": {"feature_type": "Numeric"},
        "device": {"feature_type": "Categorical", "config": {"vocab": ["ios", "android", "web"]}},
        "query_text": {"feature_type": "Text"},
    },
    "candidate": {
        "item_id": {"feature_type": "Id", "config": {"num_buckets": 20000}},
        "price": {"feature_type": "Numeric"},
        "genres": {"feature_type": "Categorical", "config": {"vocab": ["a", "b", "c", "d", "e"]}},
        "title": {"feature_type": "Text"},
    },
}
ID_SCHEMA = {
    "query": {"user_id": SCHEMA["query"]["user_id"]},
    "candidate": {"item_id": SCHEMA["candidate"]["item_id"]},
}
WORDS = "red blue green small large fast slow old new bright".split()


def synthetic_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    users, items, ages = rng.integers(0, 4000, n), rng.zipf(1.3, n) % 15000, rng.integers(18, 80, n)
    words = rng.integers(0, len(WORDS), (n, 4))
    out = []
    for i in range(n):
        w = [WORDS[j] for j in words[i]]
        out.append(
            {
                "query": {
                    "user_id": f"u{users[i]}",
                    "age": float(ages[i]),
                    "device": ["ios", "web"][: 1 + i % 2],
                    "query_text": " ".join(w[:2]),
                },
                "candidate": {
                    "item_id": f"i{items[i]}",
                    "price": float(items[i] % 100) / 10,
                    "genres": ["a", "b", "c", "d", "e"][: 1 + i % 4],
                    "title": " ".join(w),
                },
            }
        )
    return out


def write_data(n: int, folder: str, schema: dict) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    paths = {"jsonl": os.path.join(folder, "pairs.jsonl"), "tfrecord": os.path.join(folder, "pairs.tfrecord")}
    if not all(os.path.exists(p) for p in paths.values()):
        records = [
            {side: {k: v for k, v in r[side].items() if k in schema[side]} for side in ("query", "candidate")}
            for r in synthetic_pairs(n)
        ]
        write_jsonl(records, paths["jsonl"])
        write_tfrecord(records, paths["tfrecord"], schema)
    with open(os.path.join(folder, "schema.json"), "w") as f:
        json.dump(schema, f)
    return paths


def records_per_second(path: str, file_format: str, native: bool, schema: dict) -> tuple[float, float, float]:
    """(dataset records/s for one full pass, the same after the first batch, scan records/s)."""
    dataset_lib.NATIVE_TFRECORD = native
    os.environ["TFRS_TWOTOWER_PYTHON_INPUT"] = "" if native else "1"
    started = time.perf_counter()
    result = scan(path, schema, file_format, eval_split=0.2)
    scan_rate = result.records_read / (time.perf_counter() - started)
    ds = make_dataset(
        path, schema, file_format, subset="train", eval_split=0.2, batch_size=1024, seed=0, skip=result.skip
    )
    started = time.perf_counter()
    batches = iter(ds)
    count = int(next(batches)["weight"].shape[0])
    first = time.perf_counter()
    count += sum(int(b["weight"].shape[0]) for b in batches)
    done = time.perf_counter()
    assert count == result.train_count, (count, result.train_count)
    return count / (done - started), (count - 1024) / (done - first), scan_rate


def write_candidates(n: int, folder: str) -> str:
    """`n` distinct candidate documents (the pairs' candidate features, item ids made unique)."""
    path = os.path.join(folder, f"candidates-{n}.tfrecord")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        docs = [dict(r["candidate"], item_id=f"i{i}") for i, r in enumerate(synthetic_pairs(n, seed=1))]
        write_tfrecord(docs, path, SCHEMA, kind="candidates")
    return path


def corpus_rates(path: str, native: bool) -> dict[str, float]:
    """Records/s of `scan_candidates` + `make_candidate_dataset`, and of `encode`'s input, on one path."""
    from tfrs_twotower.data.batching import side_columns
    from tfrs_twotower.data.records import RecordParser
    from tfrs_twotower.schema import load_schema
    from tfrs_twotower.serving.encode import _document_batches
    from tfrs_twotower.serving.instances import columns_to_tensors

    dataset_lib.NATIVE_TFRECORD = native
    os.environ["TFRS_TWOTOWER_PYTHON_INPUT"] = "" if native else "1"
    schema = load_schema(SCHEMA)
    started = time.perf_counter()
    result = scan_candidates(path, schema, "tfrecord")
    scanned = time.perf_counter()
    corpus_ds, _ = make_candidate_dataset(result.corpus, schema, batch_size=1024)
    count = sum(int(b["item_id"].shape[0]) for b in corpus_ds)
    done = time.perf_counter()
    assert count == result.records_read == len(result.corpus), (count, result.records_read)

    class Ids:  # item_id is the key: no row dicts needed
        needs_rows = False

    started_encode = time.perf_counter()
    documents = 0
    for batch in _document_batches(path, RecordParser(schema), "candidate", "tfrecord", 1024, Ids()):
        if isinstance(batch, list):  # the Python reader's documents: padded as `encode` pads them
            tensors = columns_to_tensors(
                schema, "candidate", side_columns(schema.candidate, [d.features for d in batch])
            )
        else:
            tensors = batch.tensors
        documents += int(tensors["item_id"].shape[0])
    encode_done = time.perf_counter()
    assert documents == count
    return {
        "scan_candidates_records_per_s": round(count / (scanned - started)),
        "corpus_dataset_records_per_s": round(count / (done - scanned)),
        "corpus_total_records_per_s": round(count / (done - started)),
        "encode_input_records_per_s": round(count / (encode_done - started_encode)),
    }


def train_seconds(path: str, file_format: str, folder: str, native: bool) -> float:
    env = dict(os.environ, TFRS_TWOTOWER_PYTHON_INPUT="" if native else "1")
    job_dir = os.path.join(folder, f"job-{file_format}-{native}")
    cmd = [
        sys.executable,
        "-m",
        "tfrs_twotower.cli",
        "train",
        f"--training_data_path={path}",
        f"--input_schema_path={os.path.join(folder, 'id_schema.json')}",
        f"--input_file_format={file_format}",
        f"--job-dir={job_dir}",
        "--train_batch_size=8192",
        "--num_epochs=2",
        "--eval_split=0.0",
    ]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--folder", default="/tmp/native/bench_data")
    parser.add_argument("--out", default="/tmp/native/input_throughput.json")
    parser.add_argument("--train", action="store_true", help="also time `train` end to end")
    parser.add_argument("--train_only", action="store_true", help="time `train` only")
    parser.add_argument("--candidates", type=int, default=200_000, help="candidate documents (0: none)")
    parser.add_argument("--corpus_only", action="store_true", help="time the corpus and encode input only")
    args = parser.parse_args()
    load = os.getloadavg()
    corpus = {}
    if args.candidates and not args.train_only:
        path = write_candidates(args.candidates, args.folder)
        for name, native in (("tfrecord_python", False), ("tfrecord_native", True)):
            corpus[name] = corpus_rates(path, native)
            print(f"corpus/encode {name:16s}", corpus[name], flush=True)
        corpus["ratios"] = {
            k: round(corpus["tfrecord_native"][k] / corpus["tfrecord_python"][k], 2)
            for k in corpus["tfrecord_native"]
        }
        print("corpus/encode native/python:", corpus["ratios"], flush=True)
    if args.corpus_only:
        result = {
            "candidates": args.candidates,
            "cpus": os.cpu_count(),
            "load_before": load,
            "corpus": corpus,
        }
        result["load_after"] = os.getloadavg()
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        print("written", args.out)
        return
    paths = write_data(args.records, args.folder, SCHEMA)
    rows = {}
    inputs = [
        ("jsonl", "jsonl", False),
        ("tfrecord_python", "tfrecord", False),
        ("tfrecord_native", "tfrecord", True),
    ]
    for name, fmt, native in [] if args.train_only else inputs:
        rate, steady, scan_rate = records_per_second(paths[fmt], fmt, native, SCHEMA)
        rows[name] = {
            "dataset_records_per_s": round(rate),
            "dataset_after_first_batch": round(steady),
            "scan_records_per_s": round(scan_rate),
        }
        print(
            f"{name:18s} dataset {rate:10,.0f} rec/s ({steady:10,.0f} after the first batch)   "
            f"scan {scan_rate:10,.0f} rec/s",
            flush=True,
        )
    native, python = rows.get("tfrecord_native"), rows.get("tfrecord_python")
    ratios = (
        {}
        if args.train_only
        else {
            "native_vs_tfrecord_python": native["dataset_records_per_s"] / python["dataset_records_per_s"],
            "native_vs_jsonl": native["dataset_records_per_s"] / rows["jsonl"]["dataset_records_per_s"],
            "native_scan_vs_python_scan": native["scan_records_per_s"] / python["scan_records_per_s"],
        }
    )
    print({k: round(v, 2) for k, v in ratios.items()})
    result = {
        "records": args.records,
        "cpus": os.cpu_count(),
        "load_before": load,
        "input": rows,
        "ratios": ratios,
        "corpus": corpus,
    }
    if args.train or args.train_only:
        id_folder = args.folder + "_id"
        id_paths = write_data(args.records, id_folder, ID_SCHEMA)
        os.replace(os.path.join(id_folder, "schema.json"), os.path.join(id_folder, "id_schema.json"))
        train = {
            "jsonl": train_seconds(id_paths["jsonl"], "jsonl", id_folder, False),
            "tfrecord_native": train_seconds(id_paths["tfrecord"], "tfrecord", id_folder, True),
        }
        train["speedup"] = train["jsonl"] / train["tfrecord_native"]
        print("train wall s:", {k: round(v, 1) for k, v in train.items()})
        result["train_seconds"] = train
    result["load_after"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("written", args.out)


if __name__ == "__main__":
    main()
