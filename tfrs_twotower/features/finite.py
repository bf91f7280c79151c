"""Non-finite values at serving time: rejected inside the exported SavedModels, naming the feature.

The record readers refuse NaN and infinities, but a SavedModel's `serving_default` (under TF Serving, or
called directly) takes raw tensors: an infinite Numeric or a NaN Vector value would give NaN scores and
arbitrary ids, silently. So the encoders and both index flavours check their float inputs first:

- Numeric (`[B, L]`, NaN-padded): NaN means "no value" (the padding of shorter lists; a row of NaN is a
  missing feature, encoded with its missing indicator); +-inf is rejected.
- Vector (`[B, length]`): NaN and +-inf are rejected.

A rejected request fails with `InvalidArgumentError` whose message names the side, the feature and the
rule, e.g. "query feature `age` (Numeric): values must be finite (NaN pads lists: no value); got inf".

Example:
>>> spec = {"taste": tf.TensorSpec([None, 2], tf.float32, name="taste")}
>>> check_finite({"taste": tf.constant([[0.5, float("nan")]])}, spec, "query")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tensorflow.python.framework.errors_impl.InvalidArgumentError: ...query feature `taste` (Vector)...
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf


def is_vector(spec: tf.TensorSpec) -> bool:
    """Vector inputs have a static width (`length`); Numeric lists do not."""
    return spec.shape.rank == 2 and spec.shape[-1] is not None


def check_finite(
    features: Mapping[str, tf.Tensor], signature: Mapping[str, tf.TensorSpec], side: str
) -> dict[str, tf.Tensor]:
    """`features` with each float feature asserted finite (Numeric: NaN allowed as padding)."""
    checked = {}
    for name, value in features.items():
        spec = signature.get(name)
        if spec is None or not value.dtype.is_floating:
            checked[name] = value
            continue
        if is_vector(spec):
            bad = tf.logical_not(tf.math.is_finite(value))
            rule = f"{side} feature `{name}` (Vector): values must be finite, no NaN or inf"
        else:
            bad = tf.math.is_inf(value)
            rule = f"{side} feature `{name}` (Numeric): values must be finite (NaN pads lists: no value)"
        found = tf.boolean_mask(value, bad)[:1]
        assertion = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)), [f"{rule}; got", found], name=f"finite_{name}"
        )
        with tf.control_dependencies([assertion]):
            checked[name] = tf.identity(value)
    return checked
