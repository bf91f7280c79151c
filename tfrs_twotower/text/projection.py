"""The lexical-match prior of a tower's output projection: identity blocks for the trainable text features.

Each tower projects its feature vector with its own Dense layer. Drawn at random, the two projections turn
`query_text . candidate_text` into `query_text^T W_q W_c^T candidate_text`, a random bilinear form: what
the text encoder knows about matching words is lost and has to be learned back from the training pairs.
`IdentityBlocks` starts the projection at `gain * [I; I; ...]` on the blocks of the trainable text features
(`LexicalTextEncoder`), so that both towers start from the same map and the embeddings' dot product starts
as the sum of the text features' dot products; the other features' blocks keep Glorot-uniform weights.

Example:
>>> init = IdentityBlocks([["identity", 2], ["glorot_uniform", 1]], gain=1.0, seed=0)
>>> init((3, 2)).numpy()[:2].tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="tfrs_twotower")
class IdentityBlocks(keras.initializers.Initializer):
    """A `[sum(widths), units]` kernel made of row blocks: `gain * eye(width, units)` for "identity" blocks,
    and Glorot-uniform (drawn for the whole kernel's shape, with `seed`) for the others.

    A large `gain` with a small input (`LexicalTextEncoder`'s `output_norm`) keeps Adagrad's first steps,
    about `learning_rate` per entry whatever the gradient's size, small next to the prior.

    Args:
        blocks: `[[kind, width], ...]` in the feature vector's order; kind "identity" or "glorot_uniform".
        gain: the identity blocks' diagonal.
        seed: seed of the Glorot-uniform blocks.
    """

    def __init__(self, blocks, gain: float = 1.0, seed: int | None = None):
        self.blocks = [[str(kind), int(width)] for kind, width in blocks]
        self.gain = float(gain)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rows, units = shape
        if sum(width for _, width in self.blocks) != rows:
            raise ValueError(
                f"`IdentityBlocks` has blocks {self.blocks} for a kernel of {rows} rows; the widths must "
                "add up to the rows."
            )
        # The blocks are constants of the shape; the random part stays a tensor, so this also runs in a
        # graph (weights first built inside `model.fit`).
        identity = np.zeros((rows, units), dtype=np.float32)
        is_identity = np.zeros((rows, 1), dtype=np.float32)
        start = 0
        for kind, width in self.blocks:
            if kind == "identity":
                identity[start : start + width] = self.gain * np.eye(width, units, dtype=np.float32)
                is_identity[start : start + width] = 1.0
            start += width
        random = keras.initializers.GlorotUniform(seed=self.seed)(shape, dtype="float32")
        kernel = random * (1.0 - is_identity) + identity
        return keras.ops.cast(kernel, dtype or "float32")

    def get_config(self) -> dict:
        return {"blocks": self.blocks, "gain": self.gain, "seed": self.seed}


def projection_initializer(feature_encoder) -> IdentityBlocks | None:
    """`IdentityBlocks` for a side's `FeatureEncoder` whose features include a trainable text encoder with
    `identity_projection`; None (Keras's default) for any other encoder."""
    encoders = getattr(feature_encoder, "encoders", None)
    specs = getattr(feature_encoder, "encoded_specs", None)
    if not encoders or specs is None:
        return None
    blocks, gains = [], []
    for spec in specs:
        encoder = encoders[spec.name]
        kind = "identity" if getattr(encoder, "identity_projection", False) else "glorot_uniform"
        blocks.append([kind, int(encoder.output_dim)])
        if kind == "identity":
            gains.append(float(encoder.projection_gain))
    if not gains:
        return None
    return IdentityBlocks(blocks, gain=max(gains))
