"""The findings analysis (metamers.evaluation.findings): planted effects are recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamers.evaluation.findings import (
    Catalogue,
    GeneratorFacts,
    Measures,
    ObserverFacts,
    bootstrap_difference,
    class_pull,
    findings_tables,
    steps_to_criterion,
    wilson_interval,
)

STIMULI = [f"s{i:03d}" for i in range(60)]
LAYERS = ("l1", "l2", "l3")


def _generator(name, architectures, models, training="standard", condition=None):
    return GeneratorFacts(
        name=name,
        architectures=architectures,
        training=training,
        seed=0 if len(models) == 1 else None,
        layers=LAYERS,
        models=models,
        condition=condition or {},
    )


def _catalogue() -> Catalogue:
    generators = (
        _generator("cnn", ("cnn",), ("cnn",)),
        _generator("cnn_robust", ("cnn",), ("cnn_robust",), "robust"),
        _generator("mlp", ("mlp",), ("mlp",)),
        _generator("ens", ("cnn", "mlp"), ("cnn", "mlp")),
        _generator("cnn_pink", ("cnn",), ("cnn",), condition={"init": "pink"}),
    )
    observers = (
        ObserverFacts("cnn_s1", "cnn", "standard", 1),
        ObserverFacts("mlp_s1", "mlp", "standard", 1),
        ObserverFacts("vit_s1", "vit", "standard", 1),
        ObserverFacts("cnn_robust_s1", "cnn", "robust", 1),
    )
    return Catalogue(generators, observers)


PLANTED = {
    # generator, layer -> probability of recognition by every observer
    ("cnn", "l1"): 0.95,
    ("cnn", "l2"): 0.7,
    ("cnn", "l3"): 0.2,
    ("cnn_robust", "l1"): 0.95,
    ("cnn_robust", "l2"): 0.9,
    ("cnn_robust", "l3"): 0.8,
    ("mlp", "l1"): 0.9,
    ("mlp", "l2"): 0.5,
    ("mlp", "l3"): 0.3,
    ("ens", "l1"): 0.95,
    ("ens", "l2"): 0.85,
    ("ens", "l3"): 0.75,
    ("cnn_pink", "l1"): 0.95,
    ("cnn_pink", "l2"): 0.7,
    ("cnn_pink", "l3"): 0.2,
}


def _recognition(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for (generator, layer), p in PLANTED.items():
        for observer in ("cnn_s1", "mlp_s1", "vit_s1", "cnn_robust_s1"):
            same = generator.startswith("cnn") and observer.startswith("cnn")
            chance = min(1.0, p + 0.4) if same and layer == "l3" else p  # seeds agree more
            for stimulus in STIMULI:
                label = int(stimulus[1:]) % 10
                correct = rng.random() < chance
                rows.append(
                    {
                        "generator": generator,
                        "layer": layer,
                        "stimulus_id": stimulus,
                        "observer": observer,
                        "reference_choice": label,
                        "metamer_choice": label if correct else 3,
                        "correct_vs_label": float(correct),
                    }
                )
    return pd.DataFrame(rows)


def _representation(recognition: pd.DataFrame) -> pd.DataFrame:
    table = recognition.assign(observer_layer="x", passed=recognition["correct_vs_label"] > 0.5)
    return table[["generator", "layer", "stimulus_id", "observer", "observer_layer", "passed"]]


def test_bootstrap_difference_is_paired_and_covers_the_truth():
    rng = np.random.default_rng(1)
    base = pd.Series(rng.normal(size=200), index=[f"s{i}" for i in range(200)])
    shifted = base + 0.1 + rng.normal(scale=0.01, size=200)  # a small shift, strongly paired
    stats = bootstrap_difference(shifted, base, n_boot=500)
    assert stats["ci_low"] < 0.1 < stats["ci_high"]
    assert stats["ci_high"] - stats["ci_low"] < 0.01  # pairing removes the between-stimulus spread
    assert stats["p"] < 0.01 and stats["n_a"] == stats["n_b"] == 200
    same = bootstrap_difference(base, base.copy(), n_boot=200)
    assert same["diff"] == 0 and np.isnan(same["z"])  # no spread: no z


def test_bootstrap_difference_of_an_empty_side_is_nan():
    stats = bootstrap_difference(pd.Series([1.0, 0.0], index=["a", "b"]), pd.Series(dtype=float))
    assert np.isnan(stats["diff"]) and stats["n_b"] == 0 and stats["a"] == 0.5


def test_wilson_interval_matches_the_formula():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_planted_effects_are_recovered():
    recognition = _recognition()
    measures = Measures(recognition, representation=_representation(recognition), n_boot=300)
    tables = findings_tables(_catalogue(), measures)
    contrasts = tables["contrasts"].set_index("contrast")

    depth = contrasts.loc["cnn (standard): late − early"]
    assert depth["ci_high"] < -0.4  # 0.4 (0.2, seeds of its architecture 0.6) vs 0.95 planted
    robust = contrasts.loc["cnn_robust − cnn, late"]
    assert robust["ci_low"] > 0.4  # 0.8 vs 0.2, judged by mlp and vit observers only
    assert robust["a"] == pytest.approx(0.8, abs=0.1)
    inside = contrasts.loc["ens − its members alone, late, observers inside the ensemble"]
    outside = contrasts.loc["ens − its members alone, late, observers outside the ensemble"]
    assert inside["ci_low"] > 0.3 and outside["ci_low"] > 0.15  # 0.75 vs mean(0.2, 0.3)
    seeds = contrasts.loc["cnn, late: same architecture − other architectures"]
    assert seeds["ci_low"] > 0.0  # +0.4 planted for cnn observers of cnn metamers
    no_effect = contrasts.loc["cnn_pink − cnn, late"]
    assert no_effect["ci_low"] < 0 < no_effect["ci_high"]

    assert set(tables) == {"depth", "contrasts", "conditions", "measures", "cells"}
    measured = tables["measures"].set_index("contrast")
    assert measured.loc["cnn (standard): late − early", "agree"]
    assert measured.loc["cnn (standard): late − early", "rep_diff"] < -0.5


def test_conditions_table_measures_steps_and_pull():
    recognition = _recognition()
    acceptance = pd.DataFrame(
        {
            "generator": ["cnn", "cnn", "cnn_pink", "cnn_pink"],
            "generation_layer": ["l1"] * 4,
            "stimulus_id": ["s000", "s001", "s000", "s001"],
            "accepted_all_models": [True, False, True, True],
            "snr_db_threshold": [20.0] * 4,  # the loss must fall below 0.1
        }
    )
    losses = pd.DataFrame(
        {
            "generator": ["cnn"] * 6 + ["cnn_pink"] * 4,
            "layer": "l1",
            "stimulus": ["s000"] * 3 + ["s001"] * 3 + ["s000"] * 2 + ["s001"] * 2,
            "step": [1, 2, 3] * 2 + [1, 2] * 2,
            "loss": [0.5, 0.09, 0.01, 0.5, 0.3, 0.2, 0.05, 0.01, 0.2, 0.08],
        }
    )
    measures = Measures(recognition, acceptance=acceptance, losses=losses, n_boot=100)
    table = findings_tables(_catalogue(), measures)["conditions"].set_index(["generator", "layer"])
    assert table.loc[("cnn", "l1"), "accepted_fraction"] == 0.5
    assert (
        table.loc[("cnn", "l1"), "steps_median"] == 2 and table.loc[("cnn", "l1"), "reached"] == 0.5
    )
    assert table.loc[("cnn_pink", "l1"), "steps_median"] == 1.5
    steps = steps_to_criterion(losses, acceptance, "cnn", "l1")
    assert steps["s000"] == 2 and np.isnan(steps["s001"])


def test_class_pull_finds_the_class_errors_are_drawn_to():
    recognition = _recognition()
    pull = class_pull(recognition, "cnn", "l3", ["mlp_s1", "vit_s1"])
    assert pull["pull_class"] == "3" and pull["pull_share"] > 0.6  # every error says 3
    pull = class_pull(recognition, "cnn", "l1", ["mlp_s1"])
    assert pull["pull_share"] < 0.15
