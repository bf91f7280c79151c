"""`Retriever`: top-k candidates of a job-dir for query documents (what `tfrs-twotower query` runs).

It serves `job-dir/index/<flavour>` (the exported retrieval SavedModel) when that holds at least k
results; otherwise (no index exported, or a larger k) it builds the index in memory from the exported
query encoder and `candidate_embeddings/`, with the same code that exports it.

Example:
>>> retriever = Retriever("job-dir", flavour="brute_force", k=5)  # doctest: +SKIP
>>> doc = {"user_id": "u1", "age": 31, "country": "US", "interests": "yoga", "taste": [0.0] * 8}
>>> retriever([doc])  # doctest: +SKIP
[[('item_00191', 2.2767), ...]]
>>> retriever([doc], exclude=[["item_00191"]])  # or doc["exclude"] = ["item_00191"]  # doctest: +SKIP
[[('item_00077', 2.1893), ...]]
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, NamedTuple, Sequence

import tensorflow as tf

from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.data.jsonl import decode_line
from tfrs_twotower.data.records import Location, RecordParser
from tfrs_twotower.export import EMBEDDINGS_DIR, read_embeddings, side_signature
from tfrs_twotower.index.top_k import check_k
from tfrs_twotower.serving.documents import Document, parse_document
from tfrs_twotower.serving.encode import job_schema
from tfrs_twotower.serving.encoder import load_encoder
from tfrs_twotower.serving.exclusions import SIGNATURE, exclusion_matrix, exclusion_name, split_exclusions
from tfrs_twotower.serving.instances import columns_to_tensors
from tfrs_twotower.serving.job_exports import check_servable, has_embeddings, indexed_candidates
from tfrs_twotower.serving.retrieval_export import FLAVOURS, RetrievalModule, build_index, index_path


class Retriever:
    """The top-k candidates of `job_dir` for query documents.

    Args:
        job_dir: a job-dir written by `tfrs-twotower train`.
        flavour: "brute_force" (exact) or "scann" (approximate).
        k: the number of results per query.

    Call arguments:
        documents: query documents `{name: value}` (training value forms), `Document`s, or `Query`s.
            A dict may list candidate ids to leave out under the reserved key `exclude_name`
            (`"exclude"` unless a query feature has that name; see `serving.exclusions`).
        exclude: optional, one list of candidate ids per document to leave out of its results (added
            to the document's own).

    Returns:
        One list of `(candidate id, score)` per document, best first: k of them, or fewer when
        exclusions leave fewer than k candidates. Excluded ids are never returned.

    Attributes:
        source: the exported SavedModel's path, or "in-memory" when the index was built here.
        exclude_name: the reserved key of exclusions in a query document.
    """

    def __init__(self, job_dir: str, flavour: str = "brute_force", k: int = 10):
        if flavour not in FLAVOURS:
            raise ValueError(
                f"The `flavour` parameter must be one of {', '.join(FLAVOURS)}. Got {flavour!r} instead."
            )
        self.flavour = flavour
        self.k = check_k(k)
        self.job_dir = job_dir
        check_servable(job_dir, flavour, 1, exported_k=1)  # schema.json
        self.schema = job_schema(job_dir)
        self.parser = RecordParser(self.schema)
        self.exclude_name = exclusion_name(self.schema)
        path = index_path(job_dir, self.flavour)
        self._serve = self._serve_exclude = None
        exported_k = None
        if tf.saved_model.contains_saved_model(path):
            if self.flavour == "scann":
                import scann  # noqa: F401  (registers the ScaNN ops the SavedModel uses)
            signatures = tf.saved_model.load(path).signatures
            serve = signatures["serving_default"]
            exported_k = serve.structured_outputs["ids"].shape[-1]
            num_candidates = indexed_candidates(job_dir, flavour)  # the index serves without embeddings
            if num_candidates is None and has_embeddings(job_dir):
                num_candidates = len(read_embeddings(os.path.join(job_dir, EMBEDDINGS_DIR))[0])
            if exported_k is not None and exported_k >= min(self.k, num_candidates or self.k):
                self._serve, self.source = (lambda features: serve(**features)), path
                if SIGNATURE in signatures:  # exports before exclusions existed lack it
                    excluding = signatures[SIGNATURE]
                    self._serve_exclude = lambda features: excluding(**features)
        if self._serve is None:
            check_servable(job_dir, flavour, self.k, exported_k)  # says what to re-run
            module = self._in_memory()
            self._serve, self._serve_exclude = module.serve, module.serve_exclude
            self.source = "in-memory"

    def _in_memory(self) -> RetrievalModule:
        ids, embeddings = read_embeddings(os.path.join(self.job_dir, EMBEDDINGS_DIR))
        index = build_index(self.flavour, load_encoder(self.job_dir, "query"), ids, embeddings, self.k)
        return RetrievalModule(index, side_signature(self.schema, "query"), self.exclude_name)

    def __call__(
        self,
        documents: Sequence[dict[str, Any] | Document | Query],
        exclude: Sequence[Sequence[str]] | None = None,
    ) -> list[list[tuple[str, float]]]:
        if exclude is not None and len(exclude) != len(documents):
            raise ValueError(
                f"`exclude` must have one list of candidate ids per document ({len(documents)}). "
                f"Got {len(exclude)}."
            )
        queries = [self._query(d, i) for i, d in enumerate(documents)]
        if not queries:
            return []
        rows = [
            list(q.exclude) + list(exclude[i] if exclude is not None else []) for i, q in enumerate(queries)
        ]
        docs = [q.document.features for q in queries]
        features = columns_to_tensors(self.schema, "query", side_columns(self.schema.query, docs))
        if any(rows):
            if self._serve_exclude is None:
                self._serve_exclude = self._in_memory().serve_exclude
            out = self._serve_exclude({**features, self.exclude_name: tf.constant(exclusion_matrix(rows))})
        else:
            out = self._serve(features)
        ids, scores = out["ids"].numpy()[:, : self.k], out["scores"].numpy()[:, : self.k]
        return [
            [(i.decode("utf-8"), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i != b""]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def _query(self, document: dict[str, Any] | Document | Query, index: int) -> Query:
        if isinstance(document, Query):
            return document
        if isinstance(document, Document):
            return Query(document, [])
        location = Location("<query>", index)
        features, excluded = split_exclusions(document, self.exclude_name, location)
        return Query(parse_document(features, location, self.parser, "query"), excluded)


class Query(NamedTuple):
    """A query document and the candidate ids to leave out of its results."""

    document: Document
    exclude: list[str]


def parse_queries(
    text: str, parser: RecordParser, source: str, exclude_name: str = "exclude"
) -> Iterator[Query]:
    """Query documents from text: one JSON document, a JSON list of them, or JSON Lines.

    Each document is plain (`{name: value}`) or a Vertex instance (`{"data": ..., "key": ...}`); either
    may hold candidate ids to leave out under `exclude_name` (`{"user_id": "u1", "exclude": ["m1"]}`).
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError(f'{source}: no query document; pass one as JSON, e.g. \'{{"user_id": "u1", ...}}\'.')
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:  # not one JSON value: JSON Lines
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        for index, (n, line) in enumerate(lines):
            location = Location(source, index, n)
            yield _parse_query(decode_line(line.encode("utf-8"), location), location, parser, exclude_name)
        return
    objs = whole if isinstance(whole, list) else [whole]
    for index, obj in enumerate(objs):
        location = Location(source, index, None if isinstance(whole, list) else 1)
        yield _parse_query(obj, location, parser, exclude_name)


def _parse_query(obj: Any, location: Location, parser: RecordParser, exclude_name: str) -> Query:
    obj, excluded = split_exclusions(obj, exclude_name, location)
    return Query(parse_document(obj, location, parser, "query"), excluded)
