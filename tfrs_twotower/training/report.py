"""The end-of-training summary the CLI prints: record counts, metrics, outputs, and an example query."""

from __future__ import annotations

from typing import Any

import numpy as np


def top_candidates(query_embedding: np.ndarray, candidate_embeddings: np.ndarray, ids, k: int = 5):
    """The `k` best (id, score) pairs for one query embedding by dot product.

    Example:
    >>> top_candidates(np.array([1.0, 0.0]), np.eye(2), ["a", "b"], k=1)
    [('a', 1.0)]
    """
    scores = candidate_embeddings @ query_embedding
    best = np.argsort(-scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in best]


def example_query(model, inputs, embeddings: np.ndarray, k: int = 5) -> dict[str, Any] | None:
    """The first evaluation (else training) query of `inputs`, its positive and its top-k candidates
    among `embeddings` (the corpus, in `inputs.corpus_keys` order)."""
    dataset = inputs.eval_dataset if inputs.eval_dataset is not None else inputs.train_dataset
    batch = next(iter(dataset.take(1)), None)
    if batch is None or len(embeddings) == 0:
        return None
    first = {name: value[:1] for name, value in batch["query"].items()}
    query_embedding = model.query_tower(first, training=False).numpy()[0]
    positive = inputs.positive_keys(batch)[0]
    positive = positive.decode() if isinstance(positive, bytes) else str(positive)
    scores = embeddings @ query_embedding
    keys = list(inputs.corpus_keys)
    rank = int(np.sum(scores > scores[keys.index(positive)])) + 1 if positive in keys else None
    return {
        "query": {name: _plain(value.numpy()[0]) for name, value in first.items()},
        "positive": positive,
        "rank": rank,  # the positive's rank among all candidates (ties count in its favour)
        "num_candidates": len(keys),
        "top": top_candidates(query_embedding, embeddings, keys, k=k),
    }


def _plain(value: Any) -> Any:
    """A feature value as plain JSON-friendly Python, padding dropped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        items = [_plain(v) for v in value.tolist()]
        return [v for v in items if v != "" and not (isinstance(v, float) and np.isnan(v))]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)  # float32 values printed as float64 show spurious digits
    return value.item() if isinstance(value, np.generic) else value


def format_metrics(metrics: dict[str, float]) -> str:
    width = max((len(name) for name in metrics), default=0)
    return "\n".join(f"  {name:<{width}}  {value:.4f}" for name, value in sorted(metrics.items()))


def print_report(result) -> None:
    counts = result.record_counts
    print("\nRecords:", ", ".join(f"{k}={v}" for k, v in counts.items() if not isinstance(v, (list, dict))))
    for bad in counts.get("rejected_examples", [])[:10]:
        print(f"  skipped: {bad}")
    print("\nFinal metrics:")
    print(format_metrics(result.metrics))
    print(reading_the_metrics(result))
    print("\nOutputs:")
    for name, path in result.paths.items():
        print(f"  {name}: {path}")
    example = getattr(result, "example", None)
    if example:
        print(f"\nExample query: {example['query']}")
        print(f"  its positive candidate: {example['positive']}")
        for rank, (cid, score) in enumerate(example["top"], 1):
            mark = "  <- positive" if cid == example["positive"] else ""
            print(f"  {rank}. {cid}  score={score:.4f}{mark}")
        shown = [cid for cid, _ in example["top"]]
        if example.get("rank") and example["positive"] not in shown:
            print(
                f"  ... the positive {example['positive']} is at rank {example['rank']} of "
                f"{example['num_candidates']}"
            )


def reading_the_metrics(result) -> str:
    """What the final metrics mean: Recall@K next to the random and most-popular rankings, and the loss."""
    metrics, config, lines = result.metrics, result.config, ["", "Reading the metrics:"]
    baselines = getattr(result, "baselines", None)
    ks = [k for k in config.top_ks if f"val_recall_at_{k}" in metrics]
    if baselines and ks:
        corpus = len(result.candidate_ids)
        lines.append(
            "  val_recall_at_K: the share of evaluation pairs whose positive is in the top K of all "
            f"{corpus} candidates. Rankings that ignore the query, on the same pairs:"
        )
        rows = [("this model", {k: metrics[f"val_recall_at_{k}"] for k in ks})]
        rows += [("most popular", baselines["most_popular"]), ("random", baselines["random"])]
        lines.append("    " + f"{'recall@K':<13}" + "".join(f"{k:>8}" for k in ks))
        lines += ["    " + f"{name:<13}" + "".join(f"{row[k]:8.4f}" for k in ks) for name, row in rows]
    if "loss" in metrics:
        batch = config.train_batch_size
        if config.loss_reduction == "sum":
            per_example = metrics["loss"] / batch
            lines.append(
                f"  loss: the softmax cross-entropy summed over each batch of {batch} pairs, averaged over "
                f"the batches: {metrics['loss']:.1f} is about {per_example:.2f} per pair"
            )
        else:
            per_example = metrics["loss"]
            lines.append(f"  loss: the softmax cross-entropy per pair (mean over each batch of {batch})")
        lines.append(
            "    (a model that cannot tell a batch's candidates apart scores "
            f"ln({batch}) = {np.log(batch):.2f} per pair)."
        )
        if "val_loss" in metrics:
            size = config.eval_batch_size
            value = metrics["val_loss"] / size if config.loss_reduction == "sum" else metrics["val_loss"]
            lines.append(
                f"  val_loss: the same on evaluation batches of {size}: about {value:.2f} per pair "
                f"(ln({size}) = {np.log(size):.2f})."
            )
    return "\n".join(lines) if len(lines) > 2 else ""
