"""Training: the config, the run's stages and the trainer that chains them.

`train(config)` runs a whole job; its stages are public for scripts that need one of them:
`prepare_inputs` -> `build_model` + `build_weights` -> `fit` -> `export_job` -> `write_report`.
"""

from tfrs_twotower.training.config import TrainingConfig

_STAGES = {
    "TrainingInputs": "inputs",
    "prepare_inputs": "inputs",
    "build_model": "build",
    "make_optimizer": "build",
    "build_weights": "fitting",
    "fit": "fitting",
    "export_job": "outputs",
    "write_report": "outputs",
    "TrainingResult": "trainer",
    "train": "trainer",
}

__all__ = ["TrainingConfig", *_STAGES]


def __getattr__(name: str):
    # The stages pull in the whole model stack; import them only when asked for.
    if name in _STAGES:
        import importlib

        return getattr(importlib.import_module(f"tfrs_twotower.training.{_STAGES[name]}"), name)
    raise AttributeError(f"module 'tfrs_twotower.training' has no attribute {name!r}")
