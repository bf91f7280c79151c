"""`SavedModelEncoder`: an exported encoder SavedModel (`job-dir/query_model`, ...) as a callable.

The encoders' `serving_default` takes one side's raw features as named inputs and returns
`{"encoding": float32 [batch, output_dim]}`. This wraps that signature in a `tf.Module`, so that it can
be called with a feature dict (what the index layers' `query_model` expects), and re-saved inside
another SavedModel (the retrieval models of `retrieval_export`).

Example:
>>> encoder = load_encoder("job-dir", "query")  # doctest: +SKIP
>>> encoder({"user_id": tf.constant(["u1"]), ...}).shape  # doctest: +SKIP
TensorShape([1, 64])
"""

from __future__ import annotations

import os

import tensorflow as tf

SIDES = ("query", "candidate")
SIGNATURE = "serving_default"
OUTPUT = "encoding"


def check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"The `side` parameter must be one of {', '.join(SIDES)}. Got {side!r} instead.")
    return side


class SavedModelEncoder(tf.Module):
    """A side's encoder SavedModel, callable on `{feature name: tensor}` (model-input format).

    Args:
        path: the SavedModel directory (`job-dir/query_model` or `job-dir/candidate_model`).

    Call arguments:
        features: `{name: tensor}` with every input of the signature, in the dtypes and ranks of
            docs/architecture.md (extra keys are refused).

    Returns:
        float32 `[batch, output_dim]`.

    Raises:
        FileNotFoundError: when `path` holds no SavedModel.
        ValueError: when the SavedModel has no `serving_default` signature returning `encoding`, or the
            features do not match its inputs.
    """

    def __init__(self, path: str):
        super().__init__(name="saved_model_encoder")
        if not tf.saved_model.contains_saved_model(path):
            raise FileNotFoundError(
                f"No SavedModel at {path}. Pass a job-dir written by `tfrs-twotower train`."
            )
        self.path = path
        self.model = tf.saved_model.load(path)
        signature = self.model.signatures.get(SIGNATURE)
        if signature is None or OUTPUT not in signature.structured_outputs:
            raise ValueError(
                f"The SavedModel at {path} must have a `{SIGNATURE}` signature returning `{OUTPUT}`; it has "
                f"{sorted(self.model.signatures)}. Was it exported by tfrs_twotower?"
            )
        self._signature = signature
        self.input_specs: dict[str, tf.TensorSpec] = dict(signature.structured_input_signature[1])
        self.output_dim = signature.structured_outputs[OUTPUT].shape[-1]

    def __call__(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        missing = sorted(set(self.input_specs) - set(features))
        extra = sorted(set(features) - set(self.input_specs))
        if missing or extra:
            raise ValueError(
                f"The encoder at {self.path} takes the features {sorted(self.input_specs)}. Got "
                f"{sorted(features)} instead (missing: {missing or 'none'}, unknown: {extra or 'none'})."
            )
        inputs = {
            name: tf.convert_to_tensor(features[name], spec.dtype) for name, spec in self.input_specs.items()
        }
        return self._signature(**inputs)[OUTPUT]


def encoder_path(job_dir: str, side: str) -> str:
    return os.path.join(job_dir, f"{check_side(side)}_model")


def load_encoder(job_dir: str, side: str) -> SavedModelEncoder:
    """The exported `side` encoder of `job_dir` (`<job_dir>/<side>_model`)."""
    return SavedModelEncoder(encoder_path(job_dir, side))
