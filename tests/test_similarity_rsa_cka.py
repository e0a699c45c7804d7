"""RDMs, RSA and CKA: checked by invariances and against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group

from metamers.errors import MetamersError
from metamers.similarity import (
    cka,
    cka_from_grams,
    compare_rdms,
    compute_rdm,
    gram_matrix,
    hsic,
    median_bandwidth,
    rsa,
    upper_triangle,
)


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    """30 stimuli, 12 features with some shared structure."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 4)) @ rng.normal(size=(4, 12)) + 0.3 * rng.normal(size=(30, 12))


def _loop_hsic(k: np.ndarray, l: np.ndarray, unbiased: bool) -> float:  # noqa: E741
    """HSIC written out element by element, straight from the papers' formulas."""
    n = len(k)
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return float(np.trace(k @ h @ l @ h) / (n - 1) ** 2)
    kt, lt = k.copy(), l.copy()
    for i in range(n):
        kt[i, i] = lt[i, i] = 0.0
    trace = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    sum_k = sum(kt[i, j] for i in range(n) for j in range(n))
    sum_l = sum(lt[i, j] for i in range(n) for j in range(n))
    cross = sum(kt[i, j] * lt[j, m] for i in range(n) for j in range(n) for m in range(n))
    value = trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross
    return float(value / (n * (n - 3)))


# --- RDMs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["correlation", "cosine", "euclidean"])
def test_rdm_matches_scipy_pdist(features: np.ndarray, distance: str) -> None:
    rdm = compute_rdm(features.astype(np.float32), distance)
    assert rdm.dtype == np.float64
    np.testing.assert_allclose(rdm, squareform(pdist(features, distance)), atol=1e-6)
    np.testing.assert_allclose(upper_triangle(rdm), pdist(features, distance), atol=1e-6)
    assert np.all(np.diag(rdm) == 0)


def test_correlation_rdm_is_one_minus_pearson(features: np.ndarray) -> None:
    np.testing.assert_allclose(compute_rdm(features), 1 - np.corrcoef(features), atol=1e-12)


def test_constant_row_raises_for_correlation(features: np.ndarray) -> None:
    bad = features.copy()
    bad[3] = 1.0
    with pytest.raises(MetamersError, match="constant"):
        compute_rdm(bad, "correlation")


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_rsa_of_rotated_features_is_one(features: np.ndarray, method: str) -> None:
    q = ortho_group.rvs(features.shape[1], random_state=1)
    assert rsa(features, 2.5 * features @ q, distance="euclidean", method=method) == pytest.approx(
        1.0
    )


def test_rsa_methods_match_scipy_on_upper_triangles(features: np.ndarray) -> None:
    other = features[:, :6] + np.random.default_rng(2).normal(size=(30, 6))
    a, b = compute_rdm(features), compute_rdm(other)
    ua, ub = pdist(features, "correlation"), pdist(other, "correlation")
    assert compare_rdms(a, b, "spearman") == pytest.approx(stats.spearmanr(ua, ub).statistic)
    assert compare_rdms(a, b, "pearson") == pytest.approx(np.corrcoef(ua, ub)[0, 1])
    assert compare_rdms(a, b, "kendall") == pytest.approx(stats.kendalltau(ua, ub).statistic)
    assert 0.0 < compare_rdms(a, b) < 1.0


def test_rsa_of_unrelated_features_is_near_zero() -> None:
    rng = np.random.default_rng(3)
    values = [rsa(rng.normal(size=(40, 20)), rng.normal(size=(40, 20))) for _ in range(20)]
    assert abs(np.mean(values)) < 0.05


# --- CKA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_one_under_rotation_and_isotropic_scaling(
    features: np.ndarray, kernel: str, unbiased: bool
) -> None:
    q = ortho_group.rvs(features.shape[1], random_state=4)
    rotated = features @ q
    assert cka(features, rotated, kernel=kernel, unbiased=unbiased) == pytest.approx(1.0)
    assert cka(features, 7.0 * rotated, kernel=kernel, unbiased=unbiased) == pytest.approx(1.0)
    other = np.random.default_rng(5).normal(size=features.shape)
    base = cka(features, other, kernel=kernel, unbiased=unbiased)
    scaled = cka(0.01 * features @ q, 3.0 * other, kernel=kernel, unbiased=unbiased)
    assert scaled == pytest.approx(base, abs=1e-10)
    assert base < 0.9


def test_cka_is_not_invariant_to_anisotropic_scaling(features: np.ndarray) -> None:
    stretched = features * np.geomspace(0.01, 10.0, features.shape[1])
    assert cka(features, stretched) < 0.95


def test_linear_cka_equals_feature_space_formula(features: np.ndarray) -> None:
    other = np.tanh(features[:, :7]) + 0.5 * np.random.default_rng(6).normal(size=(30, 7))
    x = features - features.mean(axis=0)
    y = other - other.mean(axis=0)
    expected = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert cka(features, other, kernel="linear") == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("unbiased", [False, True])
def test_hsic_matches_loop_reference(features: np.ndarray, kernel: str, unbiased: bool) -> None:
    small_x = features[:12]
    small_y = np.sin(small_x[:, :5]) + 0.2 * np.random.default_rng(7).normal(size=(12, 5))
    k, l = gram_matrix(small_x, kernel), gram_matrix(small_y, kernel)  # noqa: E741
    assert hsic(k, l, unbiased=unbiased) == pytest.approx(_loop_hsic(k, l, unbiased), rel=1e-10)
    reference = _loop_hsic(k, l, unbiased) / np.sqrt(
        _loop_hsic(k, k, unbiased) * _loop_hsic(l, l, unbiased)
    )
    assert cka_from_grams(k, l, unbiased=unbiased) == pytest.approx(reference, rel=1e-10)


def test_unbiased_cka_removes_small_sample_bias() -> None:
    rng = np.random.default_rng(8)
    biased, unbiased = [], []
    for _ in range(30):
        x, y = rng.normal(size=(15, 40)), rng.normal(size=(15, 40))
        biased.append(cka(x, y))
        unbiased.append(cka(x, y, unbiased=True))
    assert np.mean(biased) > 0.3
    assert abs(np.mean(unbiased)) < 0.05


def test_rbf_bandwidth_is_median_distance_times_factor(features: np.ndarray) -> None:
    sigma = median_bandwidth(features)
    assert sigma == pytest.approx(np.median(pdist(features)))
    gram = gram_matrix(features, "rbf", bandwidth_factor=2.0)
    d01 = np.sum((features[0] - features[1]) ** 2)
    assert gram[0, 1] == pytest.approx(np.exp(-d01 / (2 * (2.0 * sigma) ** 2)))
    assert np.allclose(np.diag(gram), 1.0)


def test_cka_rejects_mismatched_stimuli(features: np.ndarray) -> None:
    with pytest.raises(MetamersError, match="stimuli"):
        cka(features, features[:-1])
    with pytest.raises(MetamersError, match="kernel"):
        cka(features, features, kernel="poly")  # type: ignore[arg-type]
