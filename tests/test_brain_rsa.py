"""RSA against brain responses, cross-checked with rsatoolbox, and its noise ceiling."""

from __future__ import annotations

import numpy as np
import pytest
import rsatoolbox
from scipy import stats

from metamers.brain import brain_rsa, get_preset, noise_ceiling
from metamers.brain.rsa import pool_rdms, zscore_by_training
from metamers.brain.synthetic import planted_dataset
from metamers.errors import ConfigError
from metamers.similarity import compare_rdms, compute_rdm, upper_triangle


@pytest.fixture(scope="module")
def planted():
    return planted_dataset(
        n_stimuli=60,
        n_features=6,
        n_targets=160,
        explainable=0.8,
        noise=1.5,
        participants=4,
        rois=("A", "B"),
        seed=2,
    )


def test_rdm_and_comparison_match_rsatoolbox():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 30)), rng.normal(size=(12, 20))
    ours = upper_triangle(compute_rdm(a, "correlation"))
    theirs = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(a), method="correlation")
    np.testing.assert_allclose(ours, theirs.get_vectors()[0], atol=1e-12)
    rdm_a, rdm_b = compute_rdm(a), compute_rdm(b)
    expected = rsatoolbox.rdm.compare(
        rsatoolbox.rdm.RDMs(upper_triangle(rdm_a)[None]),
        rsatoolbox.rdm.RDMs(upper_triangle(rdm_b)[None]),
        method="spearman",
    )
    assert compare_rdms(rdm_a, rdm_b, "spearman") == pytest.approx(expected[0, 0], abs=1e-12)


@pytest.mark.parametrize("method", ["spearman", "corr"])
def test_noise_ceiling_matches_rsatoolbox(method):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 66)) + 1.5 * rng.normal(size=66)
    ours = "spearman" if method == "spearman" else "pearson"
    pool = "ranks" if method == "spearman" else "mean"
    lower, upper = noise_ceiling(vectors, ours, pool)
    expected = rsatoolbox.inference.boot_noise_ceiling(rsatoolbox.rdm.RDMs(vectors), method=method)
    if method == "spearman":
        assert lower.mean() == pytest.approx(expected[0], abs=1e-12)
        assert upper.mean() == pytest.approx(expected[1], abs=1e-12)
    else:  # rsatoolbox standardises each RDM before pooling for 'corr'
        standard = (vectors - vectors.mean(1, keepdims=True)) / vectors.std(1, keepdims=True)
        lower_std, upper_std = noise_ceiling(standard, "pearson", "mean")
        assert lower_std.mean() == pytest.approx(expected[0], abs=1e-12)
        assert upper_std.mean() == pytest.approx(expected[1], abs=1e-12)


def test_published_pooling_is_the_mean_rdm():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(4, 28))
    lower, _ = noise_ceiling(vectors, "spearman", "mean")
    direct = stats.spearmanr(vectors[0], vectors[1:].mean(0)).statistic
    assert lower[0] == pytest.approx(direct)
    np.testing.assert_allclose(pool_rdms(vectors, "ranks"), stats.rankdata(vectors, axis=1).mean(0))
    with pytest.raises(ConfigError, match="pooling"):
        pool_rdms(vectors, "median")
    with pytest.raises(ConfigError, match="2 participants"):
        noise_ceiling(vectors[:1])


def test_zscore_uses_training_statistics_only():
    x = np.arange(20.0).reshape(10, 2) ** 2
    z = zscore_by_training(np.column_stack([x, np.ones(10)]), np.arange(5))
    assert z.shape == (10, 2)  # the constant column is dropped
    np.testing.assert_allclose(z[:5].mean(0), 0, atol=1e-12)
    assert z[5:].mean() > 1


def test_planted_layer_wins_and_stays_under_the_ceiling(planted):
    splits = get_preset("default", n_splits=4).make_splits(planted.data.stimulus_ids)
    result = brain_rsa(planted.features, planted.data, splits, model="toy")
    by_layer = result.scores.groupby("layer")["rsa_test"].median()
    assert by_layer["planted"] > 0.3 and abs(by_layer["random"]) < 0.1
    assert (result.best["best_layer"] == "planted").all()
    summary = result.summary()
    assert len(summary) == 4
    assert (summary["ceiling_lower"] <= summary["ceiling_upper"]).all()
    assert result.settings["method"] == result.settings["ceiling_method"] == "spearman"
    by_roi = brain_rsa(planted.features, planted.data, splits, roi="roi", method="pearson")
    assert set(by_roi.summary()["roi"]) == {"A", "B"} and len(by_roi.summary()) == 8


def test_bad_rsa_inputs(planted):
    splits = get_preset("default", n_splits=2).make_splits(planted.data.stimulus_ids)
    with pytest.raises(ConfigError, match="unknown RSA method"):
        brain_rsa(planted.features, planted.data, splits, method="cosine")
    with pytest.raises(ConfigError, match="no target column"):
        brain_rsa(planted.features, planted.data, splits, roi="area")
