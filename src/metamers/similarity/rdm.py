"""Representational dissimilarity matrices (RDMs) and their comparison (RSA).

An RDM holds, for ``N`` stimuli, the ``N x N`` dissimilarities between their
feature vectors; RSA compares two RDMs computed on the same stimuli by
correlating their upper triangles. Everything is computed in ``float64``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from metamers.errors import MetamersError

Distance = Literal["correlation", "cosine", "euclidean"]
RSAMethod = Literal["spearman", "pearson", "kendall"]

DISTANCES: tuple[str, ...] = ("correlation", "cosine", "euclidean")
RSA_METHODS: tuple[str, ...] = ("spearman", "pearson", "kendall")


def as_features(features: np.ndarray, *, min_rows: int = 3) -> np.ndarray:
    """Validate an ``(N, D)`` feature matrix and return it as ``float64``.

    Higher-dimensional arrays are flattened to ``(N, -1)``.

    Parameters
    ----------
    features
        One row per stimulus.
    min_rows
        Fewest stimuli the caller can work with.

    Returns
    -------
    np.ndarray
        ``(N, D)`` ``float64`` array.
    """
    array = np.asarray(features, dtype=np.float64)
    if array.ndim == 1 or array.ndim == 0:
        raise MetamersError(f"features must be (N, D) with one row per stimulus, got {array.shape}")
    array = array.reshape(array.shape[0], -1)
    if array.shape[0] < min_rows:
        raise MetamersError(f"need at least {min_rows} stimuli, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise MetamersError("features contain NaN or infinite values")
    return array


def compute_rdm(features: np.ndarray, distance: Distance = "correlation") -> np.ndarray:
    """The ``(N, N)`` dissimilarity matrix of ``N`` feature vectors.

    Parameters
    ----------
    features
        ``(N, D)`` array, one row per stimulus (extra dimensions are flattened).
    distance
        ``"correlation"`` (1 − Pearson r between rows), ``"cosine"``
        (1 − cosine similarity) or ``"euclidean"`` (plain, not squared).

    Returns
    -------
    np.ndarray
        Symmetric ``float64`` matrix with a zero diagonal.

    Raises
    ------
    MetamersError
        For an unknown distance, or a constant row (correlation) / all-zero row
        (cosine), whose dissimilarity is undefined.

    Examples
    --------
    >>> import numpy as np
    >>> rdm = compute_rdm(np.eye(3), "euclidean")
    >>> float(rdm[0, 1]) == float(np.sqrt(2))
    True
    """
    if distance not in DISTANCES:
        raise MetamersError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    array = as_features(features, min_rows=2)
    if distance == "correlation":
        spread = array.std(axis=1)
        if np.any(spread == 0):
            rows = np.flatnonzero(spread == 0).tolist()
            raise MetamersError(
                f"stimuli {rows} have constant features; correlation distance is undefined "
                "(use --distance euclidean or another layer)"
            )
    if distance == "cosine" and np.any(np.linalg.norm(array, axis=1) == 0):
        raise MetamersError("some stimuli have all-zero features; cosine distance is undefined")
    return squareform(pdist(array, metric=distance), checks=False)


def upper_triangle(rdm: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of a square matrix, row by row (as ``pdist`` orders them).

    Parameters
    ----------
    rdm
        A square ``(N, N)`` matrix.

    Returns
    -------
    numpy.ndarray
        ``(N (N - 1) / 2,)`` ``float64`` values.

    Raises
    ------
    MetamersError
        ``rdm`` is not a square matrix.
    """
    matrix = np.asarray(rdm, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise MetamersError(f"an RDM must be a square matrix, got shape {matrix.shape}")
    return matrix[np.triu_indices(matrix.shape[0], k=1)]


def compare_rdms(rdm_a: np.ndarray, rdm_b: np.ndarray, method: RSAMethod = "spearman") -> float:
    """Correlate the upper triangles of two RDMs of the same stimuli.

    Parameters
    ----------
    rdm_a, rdm_b
        ``(N, N)`` RDMs, stimuli in the same order.
    method
        ``"spearman"`` (rank correlation; the usual RSA choice), ``"pearson"``,
        or ``"kendall"`` (Kendall's τ-b, as :func:`scipy.stats.kendalltau`).

    Returns
    -------
    float
        The correlation; ``nan`` when either RDM has identical off-diagonal entries.
    """
    if method not in RSA_METHODS:
        raise MetamersError(
            f"unknown RSA method {method!r}; choose one of {', '.join(RSA_METHODS)}"
        )
    a, b = upper_triangle(rdm_a), upper_triangle(rdm_b)
    if a.shape != b.shape:
        raise MetamersError(
            f"RDMs cover different numbers of stimuli: {rdm_a.shape} vs {rdm_b.shape}"
        )
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    if method == "spearman":
        return float(stats.spearmanr(a, b).statistic)
    if method == "pearson":
        return float(stats.pearsonr(a, b).statistic)
    return float(stats.kendalltau(a, b).statistic)


def rsa(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    distance: Distance = "correlation",
    method: RSAMethod = "spearman",
) -> float:
    """Representational similarity of two feature sets on the same stimuli.

    Shorthand for ``compare_rdms(compute_rdm(a, distance), compute_rdm(b, distance), method)``.
    The two sets may have different feature dimensions.

    Parameters
    ----------
    features_a, features_b
        ``(N, Da)`` and ``(N, Db)`` arrays, rows in the same stimulus order
        (at least 2 rows).
    distance
        RDM distance: ``"correlation"``, ``"cosine"`` or ``"euclidean"`` (see
        :func:`compute_rdm`).
    method
        How the RDMs are correlated: ``"spearman"``, ``"pearson"`` or
        ``"kendall"`` (see :func:`compare_rdms`).

    Returns
    -------
    float
        The RDM correlation, in ``[-1, 1]``; ``nan`` when either RDM is constant.

    Raises
    ------
    MetamersError
        The feature sets cover different numbers of stimuli, or an RDM is
        undefined (see :func:`compute_rdm`).
    """
    return compare_rdms(
        compute_rdm(features_a, distance), compute_rdm(features_b, distance), method
    )
