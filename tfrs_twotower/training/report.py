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
    return {
        "query": {name: _plain(value.numpy()[0]) for name, value in first.items()},
        "positive": positive.decode() if isinstance(positive, bytes) else str(positive),
        "top": top_candidates(query_embedding, embeddings, inputs.corpus_keys, k=k),
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
