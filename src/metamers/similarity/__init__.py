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
from metamers.similarity.metrics import (
    SIMILARITY_METRICS,
    cosine,
    pearson,
    rank_average,
    similarities,
    snr_db,
    spearman,
)
from metamers.similarity.rdm import compare_rdms, compute_rdm, rsa, upper_triangle

__all__ = [
    "SIMILARITY_METRICS",
    "center_gram",
    "cka",
    "cka_from_grams",
    "compare_rdms",
    "compute_rdm",
    "cosine",
    "gram_matrix",
    "hsic",
    "linear_gram",
    "median_bandwidth",
    "pearson",
    "rank_average",
    "rbf_gram",
    "rsa",
    "similarities",
    "snr_db",
    "spearman",
    "upper_triangle",
]
