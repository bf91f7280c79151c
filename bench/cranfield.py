"""The Cranfield collection for text retrieval: reading it, the query split, and the lexical baselines.

`load(folder)` reads `cran.all.1400`, `cran.qry` and `cranqrel` (see ../shared/data/SOURCES.md): 1,400
documents (title + abstract), 225 queries, and each query's relevant documents (relevance codes 1-4; the
225 lines coded -1, "no relevance", are dropped). Queries are numbered 1..225 in file order, as `cranqrel`
numbers them (the `.I` ids of `cran.qry` skip numbers).

Split: `split_queries(queries, "odd")` trains on the odd-numbered queries and tests on the even ones;
"even" is the swapped split. Baselines: BM25 (k1=1.2, b=0.75, Lucene's idf `log(1 + (N - df + 0.5) /
(df + 0.5))`), TF-IDF cosine (sublinear tf, smooth idf, l2-normalised) and document popularity (the number of
training queries each document is relevant to), all on `tokens()`: lowercase, runs of letters or digits.

Example:
>>> docs, queries, qrels = load("../shared/data/cranfield")  # doctest: +SKIP
>>> train, test = split_queries(sorted(queries), "odd")  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import math
import os
import re

import numpy as np

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lowercase runs of letters or digits: the baselines' tokenisation."""
    return _TOKEN.findall(text.lower())


def _records(path: str) -> list[dict[str, str]]:
    """The `.I`-separated records of a SMART-format file: `{"I": id, "T": ..., "W": ...}`."""
    records: list[dict[str, str]] = []
    field = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(".I"):
                records.append({"I": line[2:].strip()})
                field = None
            elif len(line) >= 2 and line[0] == "." and line[1] in "TAWB" and line[2:].strip() == "":
                field = line[1]
                records[-1][field] = ""
            elif field is not None:
                records[-1][field] += line
    return records


def load(folder: str) -> tuple[dict[str, dict[str, str]], dict[int, str], dict[int, set[str]]]:
    """`(documents {id: {"title", "abstract"}}, queries {1..225: text}, qrels {query: {doc ids}})`."""
    for name in ("cran.all.1400", "cran.qry", "cranqrel"):
        if not os.path.exists(os.path.join(folder, name)):
            raise FileNotFoundError(
                f"Cranfield file not found: {os.path.join(folder, name)}. Pass --data_dir, the folder that "
                "holds cranfield/ (see ../shared/data/SOURCES.md)."
            )
    documents = {
        r["I"]: {"title": " ".join(r.get("T", "").split()), "abstract": " ".join(r.get("W", "").split())}
        for r in _records(os.path.join(folder, "cran.all.1400"))
    }
    queries = {
        number: " ".join(r.get("W", "").split())
        for number, r in enumerate(_records(os.path.join(folder, "cran.qry")), start=1)
    }
    qrels: dict[int, set[str]] = collections.defaultdict(set)
    with open(os.path.join(folder, "cranqrel"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and int(parts[2]) > 0:
                qrels[int(parts[0])].add(parts[1])
    return documents, queries, dict(qrels)


def split_queries(numbers: list[int], train: str) -> tuple[list[int], list[int]]:
    """`(train, test)` query numbers: "odd" trains on the odd numbers, "even" on the even ones."""
    if (
        train == "dev"
    ):  # within the odd queries only: train on 3 mod 4, test on 1 mod 4 (for choosing options)
        return [n for n in numbers if n % 4 == 3], [n for n in numbers if n % 4 == 1]
    if train not in ("odd", "even"):
        raise ValueError(f"The `train` half must be 'odd', 'even' or 'dev'. Got {train!r} instead.")
    parity = 1 if train == "odd" else 0
    return [n for n in numbers if n % 2 == parity], [n for n in numbers if n % 2 != parity]


def ranking_metrics(scores: np.ndarray, relevant: list[set[int]], ks=(10, 100)) -> dict[str, float]:
    """Recall@K (fraction of a query's relevant documents in its top K, averaged over queries) and nDCG@10
    (binary gains) of `scores` `[Q, N]` against `relevant` (column indices per query). Ties are broken by
    column order (a stable sort on the negated scores)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall_at_{k}"] = float(
            np.mean([len(set(order[i, :k].tolist()) & rel) / len(rel) for i, rel in enumerate(relevant)])
        )
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg = []
    for i, rel in enumerate(relevant):
        gains = np.array([1.0 if d in rel else 0.0 for d in order[i, :10].tolist()])
        ideal = discounts[: min(len(rel), 10)].sum()
        ndcg.append(float((gains * discounts[: len(gains)]).sum() / ideal))
    out["ndcg_at_10"] = float(np.mean(ndcg))
    return out


def bm25_scores(query_texts: list[str], doc_texts: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 scores `[Q, N]`; a query term counts once per occurrence in the query."""
    docs = [collections.Counter(tokens(t)) for t in doc_texts]
    lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
    average = lengths.mean()
    df = collections.Counter(term for d in docs for term in d)
    n = len(docs)
    postings: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for j, d in enumerate(docs):
        for term, tf in d.items():
            postings[term].append((j, tf))
    scores = np.zeros((len(query_texts), n))
    for i, text in enumerate(query_texts):
        for term in tokens(text):
            if term not in df:
                continue
            idf = math.log(1.0 + (n - df[term] + 0.5) / (df[term] + 0.5))
            for j, tf in postings[term]:
                scores[i, j] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[j] / average))
    return scores


def tfidf_scores(query_texts: list[str], doc_texts: list[str]) -> np.ndarray:
    """TF-IDF cosine `[Q, N]`: weights `(1 + log tf) * (log((1 + N) / (1 + df)) + 1)`, l2-normalised."""
    docs = [collections.Counter(tokens(t)) for t in doc_texts]
    df = collections.Counter(term for d in docs for term in d)
    vocab = {term: i for i, term in enumerate(sorted(df))}
    idf = np.zeros(len(vocab))
    for term, i in vocab.items():
        idf[i] = math.log((1 + len(docs)) / (1 + df[term])) + 1

    def matrix(counters):
        m = np.zeros((len(counters), len(vocab)))
        for row, counter in enumerate(counters):
            for term, tf in counter.items():
                if term in vocab:
                    m[row, vocab[term]] = (1 + math.log(tf)) * idf[vocab[term]]
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.maximum(norms, 1e-12)

    return matrix([collections.Counter(tokens(t)) for t in query_texts]) @ matrix(docs).T


def popularity_scores(train_relevant: list[set[int]], num_queries: int, num_docs: int) -> np.ndarray:
    """The same scores for every query: each document's number of training queries it is relevant to."""
    counts = np.zeros(num_docs)
    for rel in train_relevant:
        for j in rel:
            counts[j] += 1
    return np.tile(counts, (num_queries, 1))
