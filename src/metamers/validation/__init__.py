"""Validation of metamers: the one judgement against a null, acceptance, the acceptance stop.

Consumes synthesis output; :mod:`metamers.null` keeps the distribution, the
criterion and the cache.
"""

from metamers.validation.acceptance import (
    accept,
    accepted_mask,
    check_generator_weights,
    check_validation,
    null_getter,
    null_provider,
    recorded_loader,
    similarity_matrix,
    validate_results,
)
from metamers.validation.judge import judge, measure
from metamers.validation.stop import AcceptanceStop

__all__ = [
    "AcceptanceStop",
    "accept",
    "accepted_mask",
    "check_generator_weights",
    "check_validation",
    "judge",
    "measure",
    "null_getter",
    "null_provider",
    "recorded_loader",
    "similarity_matrix",
    "validate_results",
]
