"""The end-of-training summary the CLI prints: record counts, metrics, outputs, and an example query."""

from __future__ import annotations

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
