"""`encode_documents`: batch-encode query or candidate documents with a job-dir's exported encoders.

Reads documents (see `documents`: plain `{name: value}` lines, Vertex instances `{"data", "key"}`, or
TFRecord, which `native_documents` reads through `tf.data` with the Python reader's verdicts), encodes
them with the SavedModel `<job-dir>/<side>_model` (not with in-memory code), and writes:

- `PREFIX.jsonl`: `{"id": ..., "embedding": [...]}` per plain document (the Vertex AI Vector Search /
  Matching Engine input format), `{"key": ..., "encoding": [...]}` per Vertex instance (the form of
  Vertex's prediction output);
- `PREFIX.npy`: float32 `[N, output_dim]`, the rows in input order;
- `PREFIX.ids.txt`: the ids (instance keys), one a line, in the same order.

A plain document's id is the value of `id_feature` (default: for candidates the job's candidate id
feature, else the side's first Id feature). With no Id feature, a candidate's id is the corpus key of
training (a fingerprint of its features) and a query's id is its 1-based position in the input.

Example:
>>> result = encode_documents("job-dir", "candidate", "candidates.jsonl", "out/items")  # doctest: +SKIP
>>> result.paths["npy"], result.num_documents  # doctest: +SKIP
('out/items.npy', 400)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from tfrs_twotower import progress
from tfrs_twotower.data.batching import side_columns
from tfrs_twotower.data.corpus import CandidateKey
from tfrs_twotower.data.dataset import native_enabled
from tfrs_twotower.data.records import RecordParser
from tfrs_twotower.feature_types import feature_type_of
from tfrs_twotower.schema import InputSchema, load_schema
from tfrs_twotower.serving.documents import Document, read_documents
from tfrs_twotower.serving.encoder import SavedModelEncoder, check_side, load_encoder
from tfrs_twotower.serving.instances import columns_to_tensors
from tfrs_twotower.serving.native_documents import NativeBatch


@dataclasses.dataclass(frozen=True)
class EncodeResult:
    """What `encode_documents` wrote: `paths` ("jsonl", "npy", "ids"), the counts and the width."""

    paths: dict[str, str]
    num_documents: int
    num_instances: int
    dim: int


def job_schema(job_dir: str) -> InputSchema:
    path = os.path.join(job_dir, "schema.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing. Pass a job-dir written by `tfrs-twotower train`.")
    return load_schema(path)


class DocumentIds:
    """`(document, position) -> id` of plain documents, per the rule in the module docstring; `batch`
    gives the ids of a `NativeBatch` (`needs_rows`: whether it needs the rows' features)."""

    def __init__(self, job_dir: str, schema: InputSchema, side: str, id_feature: str | None):
        id_features = [s.name for s in schema.side(side) if feature_type_of(s).identifies]
        if id_feature is not None and id_feature not in id_features:
            raise ValueError(
                f"The `id_feature` parameter must name an Id feature of the {side} side "
                f"({', '.join(id_features) or 'it has none; leave it unset'}). Got {id_feature!r} instead."
            )
        self.key = None
        if side == "candidate":
            self.key = CandidateKey(schema, id_feature or _configured_candidate_id(job_dir))
            self.name = self.key.feature
        else:
            self.name = id_feature or (id_features[0] if id_features else None)
        self.needs_rows = self.name is None and self.key is not None

    def __call__(self, doc: Document, position: int) -> str:
        if self.key is not None:
            return self.key(doc.features)
        return doc.features[self.name] if self.name is not None else str(position + 1)

    def batch(self, batch: NativeBatch, start: int) -> list[str]:
        """The ids of a native batch whose first row is at `position` `start`."""
        if self.name is not None:
            return [b.decode("utf-8") for b in batch.tensors[self.name].numpy()]
        if self.key is not None:
            return [self.key(row) for row in batch.rows]
        return [str(start + i + 1) for i in range(len(batch))]


def encode_documents(
    job_dir: str,
    side: str,
    input_path: str,
    output_prefix: str,
    file_format: str = "jsonl",
    id_feature: str | None = None,
    batch_size: int = 1024,
) -> EncodeResult:
    """Encodes the `side` documents of `input_path` and writes PREFIX.jsonl/.npy/.ids.txt.

    Args:
        job_dir: a job-dir written by `tfrs-twotower train` (schema.json, `<side>_model/`).
        side: "query" or "candidate".
        input_path: a path spec (file, directory, glob, comma-separated list) of documents.
        output_prefix: where to write; the folder is created.
        file_format: "jsonl" or "tfrecord".
        id_feature: the Id feature whose value is a plain document's id.
        batch_size: documents per encoder call.

    Raises:
        BadRecordError: for a document that does not match the schema (file, line, side, feature).
    """
    check_side(side)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"The `batch_size` parameter must be an int in [1, inf). Got {batch_size!r} instead."
        )
    schema = job_schema(job_dir)
    encoder = load_encoder(job_dir, side)
    document_id = DocumentIds(job_dir, schema, side, id_feature)
    batches = _document_batches(input_path, RecordParser(schema), side, file_format, batch_size, document_id)
    paths = {
        "jsonl": f"{output_prefix}.jsonl",
        "npy": f"{output_prefix}.npy",
        "ids": f"{output_prefix}.ids.txt",
    }
    parent = os.path.dirname(output_prefix)
    if parent:
        tf.io.gfile.makedirs(parent)
    parts, ids, instances = [], [], 0
    started = time.perf_counter()
    with tf.io.gfile.GFile(paths["jsonl"], "w") as out:
        for number, batch in enumerate(batches):
            if number % 100 == 99:  # a sign of life on big inputs
                progress.log(f"  encoded {len(ids)} documents in {time.perf_counter() - started:.0f} s")
            if isinstance(batch, NativeBatch):  # TFRecord read natively: plain documents
                embeddings = encoder(batch.tensors).numpy().astype(np.float32)
                keys, is_instance = document_id.batch(batch, len(ids)), [False] * len(embeddings)
            else:
                embeddings = encode_batch(encoder, schema, side, [doc.features for doc in batch])
                keys = [
                    doc.key if doc.instance and doc.key is not None else document_id(doc, len(ids) + i)
                    for i, doc in enumerate(batch)
                ]
                is_instance = [doc.instance for doc in batch]
            for key, instance, row in zip(keys, is_instance, embeddings, strict=True):
                vector = [round(float(x), 7) for x in row]
                line = {"key": key, "encoding": vector} if instance else {"id": key, "embedding": vector}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            instances += sum(is_instance)
            ids.extend(keys)
            parts.append(embeddings)
    embeddings = np.concatenate(parts) if parts else np.zeros((0, encoder.output_dim), np.float32)
    with tf.io.gfile.GFile(paths["npy"], "wb") as f:
        np.save(f, embeddings)
    with tf.io.gfile.GFile(paths["ids"], "w") as f:
        f.write("".join(f"{i}\n" for i in ids))
    return EncodeResult(paths, len(ids), instances, int(embeddings.shape[1]))


def encode_batch(encoder: SavedModelEncoder, schema: InputSchema, side: str, docs: list[dict]) -> np.ndarray:
    """float32 `[len(docs), dim]` for normalised documents, padded as training batches are."""
    tensors = columns_to_tensors(schema, side, side_columns(schema.side(side), docs))
    return encoder(tensors).numpy().astype(np.float32)


def _document_batches(
    input_path: str, parser: RecordParser, side: str, file_format: str, size: int, document_id: DocumentIds
) -> Iterator[list[Document] | NativeBatch]:
    """Batches of `size` documents: TFRecord through `tf.data` (`native_documents`) unless the native
    path is off (`dataset.NATIVE_TFRECORD = False` or TFRS_TWOTOWER_PYTHON_INPUT=1), else Python."""
    if native_enabled(file_format):
        from tfrs_twotower.serving.native_documents import document_batches

        return document_batches(input_path, parser, side, size, with_rows=document_id.needs_rows)
    return _batches(read_documents(input_path, parser, side, file_format), size)


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _configured_candidate_id(job_dir: str) -> str | None:
    path = os.path.join(job_dir, "config.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f).get("candidate_id_feature")
