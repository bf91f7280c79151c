"""Training: the config, the trainer, the job directory."""

from tfrs_twotower.training.config import TrainingConfig

__all__ = ["TrainingConfig", "TrainingResult", "build_model", "train"]


def __getattr__(name: str):
    # The trainer pulls in the whole model stack; import it only when asked for.
    if name in ("TrainingResult", "build_model", "train"):
        from tfrs_twotower.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'tfrs_twotower.training' has no attribute {name!r}")
