"""Encoding models: planted ground truth recovered, the noise correction equal to a direct one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from metamers.brain import (
    best_layer_lopo,
    best_layer_split_half,
    critical_r,
    fit_encoding,
    get_preset,
    layer_curves,
    report_scores,
    spearman_brown,
)
from metamers.brain.synthetic import planted_dataset

GRID = tuple(10.0**k for k in range(6, -4, -1))


@pytest.fixture(scope="module")
def planted():
    return planted_dataset(n_targets=120, explainable=0.5, noise=1.0, participants=4, seed=0)


@pytest.fixture(scope="module")
def result(planted):
    return fit_encoding(planted.features, planted.data, preset="default", model="toy")


def test_planted_explainable_variance_is_recovered(result):
    per_target = result.scores.groupby(["layer", "target"])["r2_corrected"].median()
    assert abs(per_target["planted"].median() - 0.5) < 0.06
    assert abs(per_target["random"].median()) < 0.05
    reliability = result.scores["data_reliability"].median()
    assert abs(reliability - spearman_brown(0.5, 3)) < 0.03  # SD 1 signal, SD 1 noise


def test_corrected_r2_estimates_the_noiseless_correlation():
    """Per target, the corrected r² is about r² against the noiseless (planted) response."""
    planted = planted_dataset(n_targets=150, explainable=np.linspace(0.2, 0.9, 150), seed=3)
    result = fit_encoding({"planted": planted.features["planted"]}, planted.data, preset="default")
    scores = result.scores
    medians = scores.groupby("target")["r2_corrected"].median().to_numpy()
    assert np.corrcoef(medians, planted.explainable)[0, 1] > 0.9
    assert np.median(np.abs(medians - planted.explainable)) < 0.08


def test_noise_correction_equals_a_direct_per_target_implementation(planted):
    """The published per-voxel loop (sklearn RidgeCV per fit, np.corrcoef, nanmax floors)."""
    preset = get_preset("tuckute2023", alphas=GRID)
    data = planted.data.select_targets(np.arange(planted.data.n_targets) < 8)
    x = planted.features["planted"]
    result = fit_encoding({"planted": x}, data, preset=preset)
    splits = result.splits.indices(data.stimulus_ids)
    for number in (0, 7):
        train, test = splits[number]
        rows = result.scores[result.scores["split"] == number].set_index("target")
        for target in range(data.n_targets):
            y = data.responses[:, target, :]

            def fit(values, train=train, test=test):
                model = RidgeCV(alphas=GRID).fit(x[train], values[train])
                return model.predict(x[test]), model.alpha_

            prediction, alpha = fit(y.mean(1))
            r = np.corrcoef(prediction, y.mean(1)[test])[0, 1]
            singles = [fit(y[:, i])[0] for i in range(3)]
            pairs = [[0, 1], [1, 2], [0, 2]]
            rv = np.median([np.corrcoef(y[train, a], y[train, b])[0, 1] for a, b in pairs])
            rvh = np.median([np.corrcoef(singles[a], singles[b])[0, 1] for a, b in pairs])
            rv, rvh = 3 * rv / (1 + 2 * rv), 3 * rvh / (1 + 2 * rvh)
            row = rows.loc[target]
            assert row["alpha"] == alpha
            assert row["r"] == pytest.approx(r, abs=1e-9)
            # unfloored, equal; floored, the published literals 0.182/0.183 are rounded critical r
            tight = 1e-9 if min(rv, rvh) > 0.2 else 2e-3
            assert row["data_reliability"] == pytest.approx(max(rv, 0.182), abs=tight)
            assert row["prediction_reliability"] == pytest.approx(max(rvh, 0.183), abs=tight)
            expected = max(r, 0.0) ** 2 / (max(rv, 0.182) * max(rvh, 0.183))
            assert row["r2_corrected_reported"] == pytest.approx(expected, rel=10 * tight)


def test_floors_are_the_critical_r_of_the_split_sizes():
    assert round(critical_r(83), 3) == 0.182 and round(critical_r(82), 3) == 0.183
    assert critical_r(30) > critical_r(83)


def test_reporting_rules_are_explicit_and_recorded(result):
    scores = result.scores
    negative = scores["r"] < 0
    assert negative.any()
    assert (scores.loc[negative, "r_reported"] == 0).all()
    assert np.allclose(scores["r2"], scores["r"] ** 2, equal_nan=True)
    squared = report_scores(scores, "square")
    assert np.allclose(squared.loc[negative, "r2_reported"], scores.loc[negative, "r"] ** 2)
    assert squared.attrs["negative_r"] == "square"
    assert result.settings["reporting"] == {"negative_r": "zero", "corrected_max": 1.0}
    assert (scores["r2_corrected"] > 1).any() or scores["r2_corrected"].max() <= 1  # stored raw


def test_best_layer_selection_finds_the_planted_layer(result):
    layers = result.layers
    summary, per_target = best_layer_split_half(result.scores, layers, n_repeats=4, seed=1)
    assert set(summary["participant"]) == {"p0", "p1", "p2", "p3"}
    assert (summary["value"] > 0.35).all()
    assert (per_target["best_layer"] == "planted").mean() > 0.9
    lopo = best_layer_lopo(result.scores, layers)
    assert (lopo["best_layer"] == "planted").all()
    curves = layer_curves(result.scores, n_boot=200)
    planted_curve = curves[curves["layer"] == "planted"]
    assert (planted_curve["ci_low"] <= planted_curve["median"]).all()
    assert (planted_curve["median"] <= planted_curve["ci_high"]).all()


def test_stimulus_order_of_features_is_respected(planted):
    """Features in another order than the responses: aligned by stimulus id, same scores."""
    order = np.random.default_rng(0).permutation(planted.data.n_stimuli)
    ids = [planted.data.stimulus_ids[i] for i in order]
    small = planted.data.select_targets(np.arange(planted.data.n_targets) < 10)
    direct = fit_encoding({"p": planted.features["planted"]}, small, preset="tuckute2023")
    shuffled = fit_encoding(
        {"p": planted.features["planted"][order]}, small, stimulus_ids=ids, preset="tuckute2023"
    )
    np.testing.assert_allclose(shuffled.scores["r"], direct.scores["r"], atol=1e-10)


def test_saved_result(tmp_path, result):
    files = {p.name for p in result.save(tmp_path)}
    assert {"scores.parquet", "scores.csv", "splits.json", "encoding.json"} <= files


def test_features_for_a_subset_of_the_stimuli(planted):
    small = planted.data.select_targets(np.arange(planted.data.n_targets) < 5)
    ids = list(small.stimulus_ids[:100])
    result = fit_encoding({"p": planted.features["planted"][:100]}, small, stimulus_ids=ids)
    assert set(result.splits.stimulus_ids) == set(ids)
    assert result.scores["r"].notna().all()
