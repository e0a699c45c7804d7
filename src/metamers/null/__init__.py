"""Null distributions of natural-pair similarity, and acceptance of metamers against them."""

from metamers.null.acceptance import (
    AcceptanceStop,
    NullCriterion,
    accept,
    acceptance_stop_factory,
    check_generator_weights,
    fit_to_model,
    measure,
    model_labels,
    null_provider,
    similarity_matrix,
    validate_results,
)
from metamers.null.augment import Augmentation
from metamers.null.cache import NullCacheError, NullCacheWarning, default_cache_dir
from metamers.null.distribution import (
    MIN_RECOMMENDED_STIMULI,
    NullDistribution,
    SmallNullWarning,
    compute_null,
)

__all__ = [
    "MIN_RECOMMENDED_STIMULI",
    "AcceptanceStop",
    "Augmentation",
    "NullCacheError",
    "NullCacheWarning",
    "NullCriterion",
    "NullDistribution",
    "SmallNullWarning",
    "accept",
    "acceptance_stop_factory",
    "check_generator_weights",
    "compute_null",
    "default_cache_dir",
    "fit_to_model",
    "measure",
    "model_labels",
    "null_provider",
    "similarity_matrix",
    "validate_results",
]
