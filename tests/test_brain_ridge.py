"""Batched exact-LOO ridge equals scikit-learn's RidgeCV(alpha_per_target=True), fit by fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeCV

from metamers.brain import fit_ridge, ridge_himalaya, ridge_loo
from metamers.brain.presets import get_preset
from metamers.errors import ConfigError


def _problem(n_features: int, seed: int = 0, n_targets: int = 60):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(165, n_features)) * rng.uniform(0.1, 3, n_features)
    w = rng.normal(size=(n_features, n_targets)) * rng.uniform(0, 1, n_targets)
    y = x @ w + rng.normal(size=(165, n_targets)) * rng.uniform(0.5, 30, n_targets)
    return x[:83], y[:83], x[83:]


def _unique_minimum(loo_mse: np.ndarray) -> np.ndarray:
    ordered = np.sort(loo_mse, axis=0)
    return (ordered[1] - ordered[0]) > 1e-9 * np.abs(ordered[0])


@pytest.mark.parametrize("n_features", [400, 40])
def test_equals_sklearn_ridgecv_alpha_per_target(n_features):
    x_train, y_train, x_test = _problem(n_features)
    alphas = [10.0**k for k in range(7, -4, -1)]
    fit = ridge_loo(x_train, y_train, x_test, alphas, keep_loo=True)
    reference = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x_train, y_train)
    unique = _unique_minimum(fit.loo_mse)
    assert unique.mean() > 0.9
    np.testing.assert_array_equal(fit.alpha[unique], reference.alpha_[unique])
    expected = reference.predict(x_test)
    scale = np.abs(expected).max(0)
    assert np.max(np.abs(fit.predictions - expected)[:, unique] / scale[unique]) < 1e-6


def test_published_grid_matches_sklearn_where_alpha_is_meaningful():
    """With 10^49..10^-50, alphas agree wherever they are below 10^8 and the minimum is unique."""
    x_train, y_train, x_test = _problem(300, seed=1)
    alphas = get_preset("tuckute2023").alphas
    fit = ridge_loo(x_train, y_train, x_test, alphas, keep_loo=True)
    reference = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x_train, y_train)
    meaningful = _unique_minimum(fit.loo_mse) & (reference.alpha_ < 1e8)
    assert meaningful.sum() > 20
    np.testing.assert_array_equal(fit.alpha[meaningful], reference.alpha_[meaningful])
    expected = reference.predict(x_test)[:, meaningful]
    got = fit.predictions[:, meaningful]
    assert np.max(np.abs(got - expected) / np.abs(expected).max(0)) < 1e-6


def test_edges_and_ties_follow_grid_order():
    x_train, y_train, x_test = _problem(50, seed=2)
    y_train = y_train.copy()
    y_train[:, 0] = np.random.default_rng(3).normal(size=len(y_train))  # pure noise
    grid = [1e12, 1e11, 1.0, 1e-2]
    fit = ridge_loo(x_train, y_train, x_test, grid)
    assert fit.alpha[0] == 1e12 and fit.edge[0] == "upper"
    assert set(fit.edge) <= {"upper", "lower", ""}


def test_data_scaled_grid_is_a_function_of_the_eigenvalues():
    x_train, y_train, x_test = _problem(100, seed=4)
    preset = get_preset("default")
    fit = ridge_loo(x_train, y_train, x_test, preset.alpha_grid)
    eigvals = np.linalg.eigvalsh((x_train - x_train.mean(0)) @ (x_train - x_train.mean(0)).T)
    assert fit.alphas[0] > eigvals.max() * 100
    assert fit.alphas[-1] < eigvals[eigvals > 1e-8].min() / 100
    assert np.all(np.diff(fit.alphas) < 0)


def test_bad_inputs_are_one_line_errors():
    x_train, y_train, x_test = _problem(20)
    with pytest.raises(ConfigError, match="positive"):
        ridge_loo(x_train, y_train, x_test, [1.0, -1.0])
    with pytest.raises(ConfigError, match="response rows"):
        ridge_loo(x_train, y_train[:10], x_test, [1.0])
    with pytest.raises(ConfigError, match="unknown ridge backend"):
        fit_ridge(x_train, y_train, x_test, [1.0], backend="sklearn")


def test_himalaya_backend_is_close_on_clear_signal():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(165, 30))
    y = x @ rng.normal(size=(30, 20)) + 0.5 * rng.normal(size=(165, 20))
    alphas = np.logspace(4, -2, 13)
    exact = ridge_loo(x[:83], y[:83], x[83:], alphas)
    fast = ridge_himalaya(x[:83], y[:83], x[83:], alphas)
    assert fast.loo_mse is None
    for a, b in zip(exact.predictions.T, fast.predictions.T, strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    x_train, y_train, x_test = _problem(500, seed=6)
    alphas = np.logspace(6, -3, 19)
    cpu = ridge_loo(x_train, y_train, x_test, alphas, device="cpu")
    gpu = ridge_loo(x_train, y_train, x_test, alphas, device="cuda")
    np.testing.assert_array_equal(cpu.alpha, gpu.alpha)
    np.testing.assert_allclose(cpu.predictions, gpu.predictions, rtol=1e-8, atol=1e-10)
