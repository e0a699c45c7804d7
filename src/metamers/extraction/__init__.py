"""Feature extraction: any model, any layers, batched, streamed to disk."""

from metamers.extraction.extract import Extractor, extract_features, get_extractor
from metamers.extraction.writers import (
    FEATURE_SUFFIXES,
    check_features_path,
    read_features,
    save_features,
)

__all__ = [
    "FEATURE_SUFFIXES",
    "Extractor",
    "check_features_path",
    "extract_features",
    "get_extractor",
    "read_features",
    "save_features",
]
