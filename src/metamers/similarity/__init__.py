"""similarity."""

from metamers.similarity.cka import (
    center_gram,
    cka,
    cka_from_grams,
    gram_matrix,
    hsic,
    linear_gram,
    median_bandwidth,
    rbf_gram,
)
from metamers.similarity.rdm import compare_rdms, compute_rdm, rsa, upper_triangle

__all__ = [
    "center_gram",
    "cka",
    "cka_from_grams",
    "compare_rdms",
    "compute_rdm",
    "gram_matrix",
    "hsic",
    "linear_gram",
    "median_bandwidth",
    "rbf_gram",
    "rsa",
    "upper_triangle",
]
