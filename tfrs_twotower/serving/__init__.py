"""Serving a trained job-dir: retrieval SavedModels, batch encoding, queries, TF Serving requests.

- `export_retrieval_models(job_dir)`: `job-dir/index/{brute_force,scann}/`, SavedModels mapping the query
  side's raw features to top-k candidate `ids` and `scores` (`tfrs-twotower export-index`).
- `encode_documents(...)`: documents -> embeddings with the exported encoders (`tfrs-twotower encode`).
- `Retriever(job_dir)`: top-k candidates for query documents (`tfrs-twotower query`).
- `instances_to_tensors` / `rest_request_to_tensors`: JSON instances -> the encoders' input tensors,
  padded like training batches, or exactly as TF Serving's REST API converts them.
"""

import importlib as _importlib

_EXPORTS = {
    "Document": "documents",
    "read_documents": "documents",
    "EncodeResult": "encode",
    "encode_documents": "encode",
    "SavedModelEncoder": "encoder",
    "load_encoder": "encoder",
    "instances_to_tensors": "instances",
    "rest_request_to_tensors": "instances",
    "Retriever": "query",
    "FLAVOURS": "retrieval_export",
    "RetrievalModule": "retrieval_export",
    "build_index": "retrieval_export",
    "export_retrieval_models": "retrieval_export",
}


def __getattr__(name: str):
    # Imported on first use: the `tfrs-twotower` command registers its serving subcommands (from
    # `serving.commands`) without importing TensorFlow.
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f"tfrs_twotower.serving.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfrs_twotower.serving' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
