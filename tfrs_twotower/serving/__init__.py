"""Serving a trained job-dir: retrieval SavedModels, batch encoding, queries, TF Serving requests.

- `export_retrieval_models(job_dir)`: `job-dir/index/{brute_force,scann}/`, SavedModels mapping the query
  side's raw features to top-k candidate `ids` and `scores` (`tfrs-twotower export-index`).
- `encode_documents(...)`: documents -> embeddings with the exported encoders (`tfrs-twotower encode`).
- `Retriever(job_dir)`: top-k candidates for query documents (`tfrs-twotower query`).
- `instances_to_tensors` / `rest_request_to_tensors`: JSON instances -> the encoders' input tensors,
  padded like training batches, or exactly as TF Serving's REST API converts them.
"""

from tfrs_twotower.serving.documents import Document, read_documents
from tfrs_twotower.serving.encode import EncodeResult, encode_documents
from tfrs_twotower.serving.encoder import SavedModelEncoder, load_encoder
from tfrs_twotower.serving.instances import instances_to_tensors, rest_request_to_tensors
from tfrs_twotower.serving.query import Retriever
from tfrs_twotower.serving.retrieval_export import (
    FLAVOURS,
    RetrievalModule,
    build_index,
    export_retrieval_models,
)

__all__ = [
    "FLAVOURS",
    "Document",
    "EncodeResult",
    "RetrievalModule",
    "Retriever",
    "SavedModelEncoder",
    "build_index",
    "encode_documents",
    "export_retrieval_models",
    "instances_to_tensors",
    "load_encoder",
    "read_documents",
    "rest_request_to_tensors",
]
