"""Null distributions of natural-pair similarity, the criterion a value meets, and their cache.

What consumes synthesis output (acceptance, the acceptance stop, validation of
a folder) lives in :mod:`metamers.validation`.
"""

from metamers.null.augment import Augmentation
from metamers.null.cache import NullCacheError, NullCacheWarning, default_cache_dir
from metamers.null.criterion import CRITERION_KINDS, DEFAULT_NULL_PAIRS, NullCriterion
from metamers.null.distribution import (
    MIN_RECOMMENDED_STIMULI,
    NullDistribution,
    SmallNullWarning,
    compute_null,
)

__all__ = [
    "CRITERION_KINDS",
    "DEFAULT_NULL_PAIRS",
    "MIN_RECOMMENDED_STIMULI",
    "Augmentation",
    "NullCacheError",
    "NullCacheWarning",
    "NullCriterion",
    "NullDistribution",
    "SmallNullWarning",
    "compute_null",
    "default_cache_dir",
]
