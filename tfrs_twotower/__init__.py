"""tfrs_twotower: train two-tower retrieval models from a JSON input schema with Keras 3.

Three levels of API:
1. One call: `train(TrainingConfig(...))` -> a `TrainingResult` (model, metrics, export paths); what the
   `tfrs-twotower train` command runs. Its stages, callable alone: `prepare_inputs` -> `build_model` +
   `build_weights` -> `fit` -> `export_job` (see `tfrs_twotower/training/trainer.py`).
2. Building blocks: `load_schema`, `data.make_dataset`, `build_towers`, `TwoTowerModel`, `Retrieval`,
   `FactorizedTopK`, `BruteForce`, `ScaNN` for your own `model.fit`.
3. TFRS names: `Model` (with `compute_loss`), `tasks.Retrieval`, `metrics.FactorizedTopK`,
   `index.BruteForce` / `index.ScaNN` keep TensorFlow Recommenders' contracts.

Example:
>>> import tfrs_twotower as tt
>>> schema = tt.load_schema({"query": {"user": {"feature_type": "Id", "config": {"num_buckets": 10}}},
...                          "candidate": {"item": {"feature_type": "Id", "config": {"num_buckets": 10}}}})
>>> query_tower, candidate_tower = tt.build_towers(schema, output_dim=8)
>>> model = tt.TwoTowerModel(query_tower, candidate_tower, tt.Retrieval())
"""

import importlib as _importlib
import os as _os
import sys as _sys


def _started_by_cli() -> bool:
    """Whether this import starts the `tfrs-twotower` command (console script or `python -m`)."""
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if script.split(".")[0] in ("tfrs-twotower", "tfrs-twotower-script"):
        return True
    argv = getattr(_sys, "orig_argv", [])
    return len(argv) > 2 and argv[1] == "-m" and argv[2] in ("tfrs_twotower", "tfrs_twotower.cli")


if "tensorflow" not in _sys.modules:
    # TensorFlow's C++ INFO/WARNING lines (CUDA probing on CPU machines, iterator ends) drown our output.
    # The command also hides the ERROR lines a CPU-only machine gets ("failed call to cuInit"). Set
    # TF_CPP_MIN_LOG_LEVEL yourself (0 shows everything) to override.
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _started_by_cli() else "2")

_EXPORTS = {
    "make_candidate_dataset": "data",
    "make_dataset": "data",
    "scan": "data",
    "export_encoder": "export",
    "read_embeddings": "export",
    "FeatureEncoder": "features",
    "RowEmbedding": "features",
    "BruteForce": "index",
    "ScaNN": "index",
    "FactorizedTopK": "metrics",
    "evaluate_retrieval": "metrics",
    "Model": "models",
    "TwoTowerModel": "models",
    "RowSparseAdagrad": "optimizers",
    "FeatureSpec": "schema",
    "InputSchema": "schema",
    "SchemaError": "schema",
    "load_schema": "schema",
    "Retrieval": "tasks",
    "Tower": "towers",
    "build_towers": "towers",
    "TrainingConfig": "training",
    "TrainingInputs": "training",
    "TrainingResult": "training",
    "build_model": "training",
    "build_weights": "training",
    "export_job": "training",
    "fit": "training",
    "prepare_inputs": "training",
    "train": "training",
}
_SUBPACKAGES = ("data", "features", "index", "metrics", "tasks", "text")


def __getattr__(name: str):
    # Only reached before the imports below have run: when the `tfrs-twotower` command starts, which
    # imports TensorFlow only once a command runs, so `--help` and argument errors answer at once.
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"tfrs_twotower.{name}")
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f"tfrs_twotower.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfrs_twotower' has no attribute {name!r}")


if not _started_by_cli():
    # Everything at once (this imports TensorFlow): `import tfrs_twotower` registers the Keras classes,
    # so `keras.saving.load_model` finds them.
    from tfrs_twotower import data, features, index, metrics, tasks, text  # noqa: E402
    from tfrs_twotower.data import make_candidate_dataset, make_dataset, scan  # noqa: E402
    from tfrs_twotower.export import export_encoder, read_embeddings  # noqa: E402
    from tfrs_twotower.features import FeatureEncoder, RowEmbedding  # noqa: E402
    from tfrs_twotower.index import BruteForce, ScaNN  # noqa: E402
    from tfrs_twotower.metrics import FactorizedTopK, evaluate_retrieval  # noqa: E402
    from tfrs_twotower.models import Model, TwoTowerModel  # noqa: E402
    from tfrs_twotower.optimizers import RowSparseAdagrad  # noqa: E402
    from tfrs_twotower.schema import FeatureSpec, InputSchema, SchemaError, load_schema  # noqa: E402
    from tfrs_twotower.tasks import Retrieval  # noqa: E402
    from tfrs_twotower.towers import Tower, build_towers  # noqa: E402
    from tfrs_twotower.training import (  # noqa: E402
        TrainingConfig,
        TrainingInputs,
        TrainingResult,
        build_model,
        build_weights,
        export_job,
        fit,
        prepare_inputs,
        train,
    )

__version__ = "0.1.0"

__all__ = [
    "BruteForce",
    "FactorizedTopK",
    "FeatureEncoder",
    "FeatureSpec",
    "InputSchema",
    "Model",
    "Retrieval",
    "RowEmbedding",
    "RowSparseAdagrad",
    "ScaNN",
    "SchemaError",
    "Tower",
    "TrainingConfig",
    "TrainingInputs",
    "TrainingResult",
    "TwoTowerModel",
    "build_model",
    "build_towers",
    "build_weights",
    "data",
    "evaluate_retrieval",
    "export_encoder",
    "export_job",
    "features",
    "fit",
    "index",
    "load_schema",
    "make_candidate_dataset",
    "make_dataset",
    "metrics",
    "prepare_inputs",
    "read_embeddings",
    "scan",
    "tasks",
    "text",
    "train",
]
