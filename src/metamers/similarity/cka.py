"""Centred kernel alignment (CKA) with linear and RBF kernels, biased or unbiased HSIC.

CKA compares two representations of the same ``N`` stimuli through their
``N x N`` Gram matrices ``K`` and ``L``:

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``

(Kornblith et al. 2019). The *biased* HSIC is ``tr(K H L H) / (N - 1)^2`` with
the centring matrix ``H``; the *unbiased* HSIC (Song et al. 2012; used for CKA
by Nguyen et al. 2021) removes the dependence of the estimate on ``N`` and
needs ``N > 3``. Linear CKA is invariant to orthogonal transforms and isotropic
scaling of either representation, but not to arbitrary invertible linear maps.
All arithmetic is ``float64``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.spatial.distance import pdist, squareform

from metamers.errors import MetamersError
from metamers.similarity.rdm import as_features

Kernel = Literal["linear", "rbf"]
KERNELS: tuple[str, ...] = ("linear", "rbf")


def linear_gram(features: np.ndarray) -> np.ndarray:
    """``X Xᵀ`` of an ``(N, D)`` feature matrix, in ``float64``.

    Parameters
    ----------
    features
        ``(N, D)`` array, one row per stimulus (extra dimensions are flattened);
        at least 2 rows, all finite.

    Raises
    ------
    MetamersError
        Fewer than 2 rows, or a NaN or infinite value.
    """
    array = as_features(features, min_rows=2)
    return array @ array.T


def median_bandwidth(features: np.ndarray) -> float:
    """Median heuristic: the median Euclidean distance between distinct stimuli.

    Parameters
    ----------
    features
        ``(N, D)`` array, one row per stimulus; at least 2 rows, all finite.

    Returns
    -------
    float
        In the units of the features; 0 when most rows are identical.
    """
    distances = pdist(as_features(features, min_rows=2), metric="euclidean")
    return float(np.median(distances))


def rbf_gram(features: np.ndarray, bandwidth_factor: float = 1.0) -> np.ndarray:
    """Gaussian kernel ``exp(-||x_i - x_j||² / (2 σ²))`` with ``σ = factor × median distance``.

    Parameters
    ----------
    features
        ``(N, D)`` array.
    bandwidth_factor
        Multiplies the median heuristic (Kornblith et al. use 0.2 to 2; 1 is common).
    """
    if not bandwidth_factor > 0:
        raise MetamersError(f"bandwidth_factor must be positive, got {bandwidth_factor}")
    array = as_features(features, min_rows=2)
    squared = pdist(array, metric="sqeuclidean")
    sigma = bandwidth_factor * float(np.median(np.sqrt(squared)))
    if sigma == 0:
        raise MetamersError("most stimuli have identical features; the RBF bandwidth is zero")
    return squareform(np.exp(-squared / (2.0 * sigma**2)), checks=False) + np.eye(len(array))


def gram_matrix(
    features: np.ndarray, kernel: Kernel = "linear", *, bandwidth_factor: float = 1.0
) -> np.ndarray:
    """The ``(N, N)`` Gram matrix of ``features`` under ``kernel`` (``"linear"`` or ``"rbf"``).

    Parameters
    ----------
    features
        ``(N, D)`` array, one row per stimulus.
    kernel
        ``"linear"`` (:func:`linear_gram`) or ``"rbf"`` (:func:`rbf_gram`).
    bandwidth_factor
        RBF only: multiplies the median-distance bandwidth.

    Raises
    ------
    MetamersError
        An unknown kernel, or features :func:`linear_gram` / :func:`rbf_gram`
        refuse.
    """
    if kernel == "linear":
        return linear_gram(features)
    if kernel == "rbf":
        return rbf_gram(features, bandwidth_factor)
    raise MetamersError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def center_gram(gram: np.ndarray) -> np.ndarray:
    """``H K H`` with the centring matrix ``H = I - 11ᵀ/N``.

    Parameters
    ----------
    gram
        An ``(N, N)`` Gram matrix (converted to ``float64``).
    """
    matrix = np.asarray(gram, dtype=np.float64)
    matrix = matrix - matrix.mean(axis=0, keepdims=True)
    return matrix - matrix.mean(axis=1, keepdims=True)


def hsic(gram_x: np.ndarray, gram_y: np.ndarray, *, unbiased: bool = False) -> float:
    """Hilbert–Schmidt independence criterion of two Gram matrices.

    Parameters
    ----------
    gram_x, gram_y
        ``(N, N)`` symmetric Gram matrices of the same stimuli.
    unbiased
        ``False``: ``tr(K H L H) / (N - 1)^2`` (Gretton et al. 2005).
        ``True``: the unbiased estimator of Song et al. (2012), which needs ``N > 3``.

    Returns
    -------
    float
    """
    k = np.asarray(gram_x, dtype=np.float64)
    l = np.asarray(gram_y, dtype=np.float64)  # noqa: E741
    if k.shape != l.shape or k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise MetamersError(
            f"Gram matrices must be square and equal in shape: {k.shape}, {l.shape}"
        )
    n = k.shape[0]
    if not unbiased:
        return float(np.sum(center_gram(k) * l) / (n - 1) ** 2)
    if n < 4:
        raise MetamersError(f"unbiased HSIC needs at least 4 stimuli, got {n}")
    k = k - np.diag(np.diag(k))
    l = l - np.diag(np.diag(l))  # noqa: E741
    trace_term = np.sum(k * l)
    sums_term = k.sum() * l.sum() / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * float(k.sum(axis=0) @ l.sum(axis=1))
    return float((trace_term + sums_term - cross_term) / (n * (n - 3)))


def cka_from_grams(gram_x: np.ndarray, gram_y: np.ndarray, *, unbiased: bool = False) -> float:
    """CKA of two Gram matrices: ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``.

    Returns ``nan`` when either self-HSIC is not positive (a constant
    representation, or an unbiased estimate that came out non-positive).

    Parameters
    ----------
    gram_x, gram_y
        ``(N, N)`` uncentred Gram matrices of the same stimuli, in the same order
        (see :func:`gram_matrix`).
    unbiased
        Use the unbiased HSIC estimator (needs ``N > 3``).

    Returns
    -------
    float
        In ``[0, 1]`` for the biased estimator; the unbiased one can be slightly
        negative.

    Raises
    ------
    MetamersError
        The matrices are not square or differ in shape, or ``unbiased`` with
        fewer than 4 stimuli.
    """
    cross = hsic(gram_x, gram_y, unbiased=unbiased)
    norm = hsic(gram_x, gram_x, unbiased=unbiased) * hsic(gram_y, gram_y, unbiased=unbiased)
    if not norm > 0:
        return float("nan")
    return float(cross / np.sqrt(norm))


def cka(
    features_x: np.ndarray,
    features_y: np.ndarray,
    *,
    kernel: Kernel = "linear",
    unbiased: bool = False,
    bandwidth_factor: float = 1.0,
) -> float:
    """Centred kernel alignment between two representations of the same stimuli.

    Parameters
    ----------
    features_x, features_y
        ``(N, Dx)`` and ``(N, Dy)`` arrays, rows in the same stimulus order.
    kernel
        ``"linear"`` or ``"rbf"`` (bandwidth: median heuristic × ``bandwidth_factor``).
    unbiased
        Use the unbiased HSIC estimator (Song et al. 2012; needs ``N > 3``).
    bandwidth_factor
        RBF only.

    Returns
    -------
    float
        1 for representations equal up to rotation and scale; near 0 for unrelated ones
        (the biased estimate is positively biased at small ``N``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> round(cka(x, 3 * x), 6)
    1.0
    """
    x, y = as_features(features_x), as_features(features_y)
    if len(x) != len(y):
        raise MetamersError(f"representations cover {len(x)} and {len(y)} stimuli; they must match")
    return cka_from_grams(
        gram_matrix(x, kernel, bandwidth_factor=bandwidth_factor),
        gram_matrix(y, kernel, bandwidth_factor=bandwidth_factor),
        unbiased=unbiased,
    )
