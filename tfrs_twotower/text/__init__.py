"""Text encoders: Keras 3 layers mapping a batch of strings `[N]` to float32 `[N, output_dim]`.

The default, `LexicalTextEncoder` (`@lexical`), trains; the others are frozen.

`get_text_encoder(embedding_module)` resolves a schema's `embedding_module` (None, an `@` preset, a TF Hub
handle or a SavedModel path) to one of them.
"""

from tfrs_twotower.text.hashed_ngrams import HashedNgramEncoder
from tfrs_twotower.text.hub_encoder import HubTextEncoder
from tfrs_twotower.text.hub_handles import HubUnavailableError
from tfrs_twotower.text.lexical import LexicalTextEncoder
from tfrs_twotower.text.lexical_space import LexicalSpace
from tfrs_twotower.text.presets import DEFAULT_PRESET, PRESETS, Preset, get_text_encoder, offline_presets
from tfrs_twotower.text.wordllama import WordLlamaEncoder

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "HashedNgramEncoder",
    "HubTextEncoder",
    "HubUnavailableError",
    "LexicalSpace",
    "LexicalTextEncoder",
    "Preset",
    "WordLlamaEncoder",
    "get_text_encoder",
    "offline_presets",
]
