"""Id vocabularies (`--id_min_count N`) against hashing (`--id_min_count 0`, Vertex AI) on MovieLens 100K.

Usage:
    python bench/id_vocabulary.py --data ../shared/data/ml-100k --min_counts 0,1,2,5 --work /tmp/id_vocabulary

Three protocols on ML-100K (every rating a pair; the 1,682 movies are the candidates):
- `random`: random 80/20 split of the ratings (seed 42);
- `last`: leave-last-out by time (each user's latest rating is the test pair);
- `cold_users`: 10% of the users (seed 7) held out entirely: their ids are never trained. For them, the
  recall is computed three times, with the test users' ids as they are and replaced by two sets of other
  unseen strings: with a vocabulary the three must be identical (an unseen id is the shared unknown row),
  with hashing they move (each string lands in some trained id's bucket).

Every run: `tfrs_twotower.train` with the movielens-100k schema (all features) and the documented best
objective options (batch 256, Adagrad 0.1, 32-d, l2-normalised, temperature 0.2, counts logQ), 3 epochs,
seed 42; recall is full-corpus, with and without each user's training movies excluded (`_seen_excluded`).
Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfrs_twotower.metrics import evaluate_retrieval  # noqa: E402
from tfrs_twotower.movielens import (  # noqa: E402
    add_history,
    load_movielens_100k,
    movielens_100k_candidates,
    split_random,
    write_pairs_jsonl,
)
from tfrs_twotower.schema import load_schema  # noqa: E402
from tfrs_twotower.serving import instances_to_tensors  # noqa: E402
from tfrs_twotower.training import TrainingConfig, train  # noqa: E402

SCHEMA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "movielens-100k.json"
)


def splits(data: str) -> dict:
    records = load_movielens_100k(data)
    with open(os.path.join(data, "u.data"), encoding="latin-1") as f:
        stamps = [int(line.split("\t")[3]) for line in f if line.strip()]
    out = {"random": split_random(records, 0.2, 42)}
    last: dict[str, int] = {}
    for i, record in enumerate(records):
        user = record["query"]["user_id"]
        if user not in last or (stamps[i], i) > (stamps[last[user]], last[user]):
            last[user] = i
    test = set(last.values())
    out["last"] = ([r for i, r in enumerate(records) if i not in test], [records[i] for i in sorted(test)])
    users = sorted({r["query"]["user_id"] for r in records})
    cold = set(np.random.default_rng(7).choice(users, size=len(users) // 10, replace=False))
    out["cold_users"] = (
        [r for r in records if r["query"]["user_id"] not in cold],
        [r for r in records if r["query"]["user_id"] in cold],
    )
    return {name: tuple(add_history(train, test)) for name, (train, test) in out.items()}


def renamed_recall(result, test, schema) -> dict[str, list[float]]:
    """Recall@10/@100 of the test pairs with the user ids as given and replaced by other unseen strings."""
    rows = np.array([result.candidate_ids.index(r["candidate"]["movie_id"]) for r in test])
    out = {}
    for tag in ("as_given", "renamed_1", "renamed_2"):
        docs = [
            dict(
                r["query"],
                user_id=r["query"]["user_id"] if tag == "as_given" else f"{tag}_{r['query']['user_id']}",
            )
            for r in test
        ]
        queries = np.concatenate(
            [
                result.model.query_tower(instances_to_tensors(schema, "query", docs[i : i + 4096])).numpy()
                for i in range(0, len(docs), 4096)
            ]
        )
        metrics = evaluate_retrieval(queries, rows, result.candidate_embeddings, ks=(10, 100))
        out[tag] = [metrics["recall_at_10"], metrics["recall_at_100"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ml-100k")
    parser.add_argument("--protocols", default="cold_users,last,random")
    parser.add_argument("--min_counts", default="0,1,2,5")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", default="/tmp/id_vocabulary")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    candidates = os.path.join(args.work, "candidates.jsonl")
    write_pairs_jsonl(movielens_100k_candidates(args.data), candidates)
    schema = load_schema(SCHEMA)
    data = splits(args.data)
    for protocol in args.protocols.split(","):
        train_records, test = data[protocol]
        paths = {part: os.path.join(args.work, f"{protocol}_{part}.jsonl") for part in ("train", "test")}
        write_pairs_jsonl(train_records, paths["train"])
        write_pairs_jsonl(test, paths["test"])
        for min_count in (int(n) for n in args.min_counts.split(",")):
            started = time.time()
            result = train(
                TrainingConfig(
                    training_data_path=paths["train"],
                    eval_data_path=paths["test"],
                    candidate_data_path=candidates,
                    input_schema_path=SCHEMA,
                    job_dir=os.path.join(args.work, f"{protocol}_{min_count}"),
                    num_epochs=args.epochs,
                    train_batch_size=256,
                    learning_rate=0.1,
                    output_dim=32,
                    l2_normalize=True,
                    temperature=0.2,
                    sampling_bias_correction="counts",
                    eval_top_k="10,50,100",
                    id_min_count=min_count,
                    overwrite=True,
                    verbose=0,
                    seed=42,
                )
            )
            encoders = result.model.query_tower.feature_encoder.encoders
            row = {
                "protocol": protocol,
                "id_min_count": min_count,
                "seconds": round(time.time() - started, 1),
                "user_vocabulary": None
                if encoders["user_id"].vocabulary is None
                else len(encoders["user_id"].vocabulary),
                **{
                    k[4:]: round(v, 4)
                    for k, v in result.metrics.items()
                    if k.startswith(("val_recall", "val_ndcg"))
                },
            }
            if protocol == "cold_users":
                row["renamed_ids_recall_at_10_100"] = renamed_recall(result, test, schema)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
