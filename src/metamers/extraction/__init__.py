"""Feature extraction: any model, any layers, batched, streamed to disk."""

from metamers.extraction.extract import Extractor, extract_features, get_extractor
from metamers.extraction.writers import FEATURE_SUFFIXES, save_features

__all__ = ["FEATURE_SUFFIXES", "Extractor", "extract_features", "get_extractor", "save_features"]
