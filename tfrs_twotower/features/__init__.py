"""Feature encoders, one per schema feature type, and the per-side `FeatureEncoder`."""

from tfrs_twotower.features.categorical import CategoricalEncoder
from tfrs_twotower.features.embedding import RowEmbedding
from tfrs_twotower.features.encoder import FeatureEncoder, make_feature_encoder
from tfrs_twotower.features.id import IdEncoder, default_embedding_dim
from tfrs_twotower.features.numeric import NumericEncoder
from tfrs_twotower.features.text import TextFeatureEncoder
from tfrs_twotower.features.vector import VectorEncoder

__all__ = [
    "CategoricalEncoder",
    "FeatureEncoder",
    "IdEncoder",
    "NumericEncoder",
    "RowEmbedding",
    "TextFeatureEncoder",
    "VectorEncoder",
    "default_embedding_dim",
    "make_feature_encoder",
]
