"""`CorpusSampler`: candidates drawn uniformly from the corpus, for mixed negative sampling.

Mixed negative sampling (Yang et al., WWW 2020) adds candidates drawn uniformly from the whole corpus to
every batch's in-batch negatives, so rarely-clicked candidates are seen as negatives too; in-batch
negatives alone follow the popularity distribution.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class CorpusSampler(keras.layers.Layer):
    """Holds the corpus' candidate features and returns `num_samples` of them, drawn uniformly.

    The features are kept as constants (the corpus' raw feature arrays, as model inputs), so drawing is
    a `tf.gather` inside the training step. Not saved with exports: it exists only for training.

    Args:
      features: `{name: array [N, ...]}`, the corpus in the model-input format.
      num_samples: candidates drawn per call, >= 1.
      seed: seed of the draws.

    `sample()` returns `(features, indices)`: `{name: tensor [num_samples, ...]}` and the drawn rows
    `[num_samples]`.

    Example:
    >>> sampler = CorpusSampler({"item": np.array([b"a", b"b", b"c"])}, num_samples=2)
    >>> drawn, rows = sampler.sample()
    >>> drawn["item"].shape
    TensorShape([2])
    """

    def __init__(
        self, features: Mapping[str, np.ndarray], num_samples: int, seed: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"The `num_samples` parameter must be an int >= 1. Got {num_samples!r} instead.")
        sizes = {name: len(values) for name, values in features.items()}
        if not sizes or len(set(sizes.values())) != 1 or 0 in sizes.values():
            raise ValueError(
                f"`features` must hold the same non-zero number of candidates per feature. Got {sizes}."
            )
        self.num_samples = num_samples
        self.seed = seed
        self.corpus_size = next(iter(sizes.values()))
        self.features = {name: tf.constant(values) for name, values in features.items()}
        self._generator = tf.random.Generator.from_seed(seed if seed is not None else 0)

    def sample(self):
        """Draws `num_samples` candidates uniformly (with replacement)."""
        rows = self._generator.uniform([self.num_samples], 0, self.corpus_size, dtype=tf.int64)
        return {name: tf.gather(values, rows) for name, values in self.features.items()}, rows

    @property
    def sampling_probability(self) -> float:
        """The probability that a given candidate is one of a call's draws: about num_samples / N."""
        return min(1.0, self.num_samples / self.corpus_size)

    def get_config(self) -> dict:
        def as_list(values):
            values = values.numpy()
            if values.dtype == object:
                return np.vectorize(lambda v: v.decode("utf-8"), otypes=[object])(values).tolist()
            return values.tolist()

        features = {name: as_list(values) for name, values in self.features.items()}
        config = {"features": features, "num_samples": self.num_samples, "seed": self.seed}
        return {**super().get_config(), **config}
