"""Experiment bundles, the Latin-square design, the configuration, and the analysis of answers."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments_support import SMALL_CONFIG, make_sounds, shared_metamers
from metamers.errors import ConfigError
from metamers.experiments import analyze, build_bundle, load_config, parse_config
from metamers.experiments.bundle import antiphase_trial
from metamers.experiments.design import list_for, public_trial, timeline


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle") / "b"
    manifest = build_bundle(shared_metamers(), folder, parse_config(SMALL_CONFIG), task="naway")
    return folder, manifest


def test_bundle_holds_only_accepted_metamers_under_opaque_ids(built):
    from metamers.synthesis import load_results
    from metamers.validation import accepted_mask

    folder, manifest = built
    results = load_results(shared_metamers())
    table = pd.read_parquet(shared_metamers() / "validation.parquet")
    accepted = {
        (r.stimulus_id, f"{r.generator}/{r.layer}")
        for r, ok in zip(results, accepted_mask(table, len(results)))
        if ok
    }
    conditions = [c["name"] for c in manifest["conditions"]]
    assert conditions == ["natural", "mnist_cnn_s0/conv1", "mnist_cnn_s0/fc1"]
    shown = {
        (s["item"], s["condition"]) for s in manifest["stimuli"].values() if s["kind"] == "stimulus"
    }
    assert {pair for pair in shown if pair[1] != "natural"} <= accepted
    # Complete items only: every main item has an accepted metamer in each condition.
    for entry in manifest["items"]:
        assert list(entry["stimuli"]) == conditions
        assert all((entry["item"], c) in accepted for c in conditions[1:])
    files = sorted(p.name for p in (folder / "stimuli").iterdir())
    assert len(files) == len(manifest["stimuli"])
    for name in files:
        stem = name.split(".")[0]
        assert len(stem) == 16 and int(stem, 16) >= 0  # random hex: no label, model or layer
        with Image.open(folder / "stimuli" / name) as image:
            assert image.mode == "RGB" and not image.info.get("parameters") and not image.text
    # Practice, screening and catch items are held out of the main block.
    held = {
        manifest["stimuli"][s]["item"]
        for p in ("practice", "screening", "catch")
        for s in manifest[p]
    }
    assert not held & {e["item"] for e in manifest["items"]}
    kinds = [manifest["stimuli"][s]["condition"] for s in manifest["screening"]]
    assert kinds == ["mnist_cnn_s0/conv1", "natural"]  # half metamers, as configured


def test_latin_square_balances_conditions_across_participants(built):
    _, manifest = built
    n_conditions = len(manifest["conditions"])
    seen: dict[str, Counter] = {e["item"]: Counter() for e in manifest["items"]}
    for arrival in range(1, 2 * n_conditions + 1):
        trials = timeline(manifest, list_for(arrival, manifest), seed=arrival)
        main = [t for t in trials if t["phase"] == "main" and not t["catch"]]
        items = [t["item"] for t in main]
        assert sorted(items) == sorted(seen)  # each item exactly once per participant
        per_condition = Counter(t["condition"] for t in main)
        assert max(per_condition.values()) - min(per_condition.values()) <= 1
        for t in main:
            seen[t["item"]][t["condition"]] += 1
        assert sum(t["catch"] for t in trials) == 2
        assert [t["phase"] for t in trials[:4]] == ["practice"] * 2 + ["screening"] * 2
        assert sum(t["break_before"] for t in trials) == 1
        public = json.dumps([public_trial(t, manifest) for t in trials])
        assert "mnist" not in public and "conv1" not in public and "answer" not in public
    # Over 2C participants, every item appeared in every condition exactly twice.
    assert all(set(c.values()) == {2} and len(c) == n_conditions for c in seen.values())


def test_words_bundle_from_sound_folders_with_headphone_check(tmp_path):
    config = parse_config({**SMALL_CONFIG, "audio": {"sample_rate": 16000}})
    manifest = build_bundle(make_sounds(tmp_path / "s"), tmp_path / "b", config, task="words")
    assert manifest["modality"] == "audio" and manifest["choices"] == sorted(manifest["choices"])
    assert len(manifest["headphone"]) == 6 and manifest["calibration"] in manifest["stimuli"]
    import soundfile

    for check in manifest["headphone"]:
        wave, rate = soundfile.read(tmp_path / "b" / "stimuli" / f"{check['stimulus']}.wav")
        assert rate == 16000 and wave.shape[1] == 2
        # The answer is the interval whose level is 6 dB lower (in both ears).
        step = int(1.5 * rate)
        levels = [np.sqrt(np.mean(wave[k * step : k * step + rate, 0] ** 2)) for k in range(3)]
        assert int(check["answer"]) - 1 == int(np.argmin(levels))
    trial = antiphase_trial([2, 0, 1], 1000)
    assert np.allclose(trial[:1000, 0], -trial[:1000, 1])  # the antiphase tone


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("screening: {trials: 4, pass_min: 9}", "screening: pass_min 9 exceeds the 4"),
        ("practice: {trials: many}", "practice.trials: Input should be a valid integer"),
        ("colour: blue", "colour: unknown setting"),
        ("task: [", "not valid YAML (line 1)"),
        ("completion: {code: 'a b'}", "completion.code: String should match pattern"),
    ],
)
def test_config_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_too_few_stimuli_is_a_one_line_error(tmp_path):
    config = parse_config({"practice": {"trials": 100}})
    with pytest.raises(ConfigError, match="usable stimuli; practice"):
        build_bundle(shared_metamers(), tmp_path / "b", config, task="naway")
    with pytest.raises(ConfigError, match="needs sounds"):
        build_bundle(shared_metamers(), tmp_path / "c", config, task="words")


def planted_tables(manifest: dict, truth: dict[str, float], n_people: int, seed: int = 0):
    """Answers of simulated participants with a known recognition per condition."""
    rng = np.random.default_rng(seed)
    rows, people = [], []
    for k in range(n_people):
        pid = f"P{k}"
        status = "screened_out" if k == 0 else "complete"
        catch_rate = 0.0 if k == 1 else 1.0  # P1 fails the catch trials
        people.append({"participant_id": pid, "status": status})
        for t in timeline(manifest, list_for(k + 1, manifest), seed=k):
            rate = catch_rate if t["catch"] else truth.get(t["condition"], 1.0)
            rows.append({"participant_id": pid, "phase": t["phase"], "catch": t["catch"],
                         "condition": t["condition"], "correct": bool(rng.random() < rate)})  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(people)


def test_analysis_recovers_planted_recognition_and_applies_exclusions(built, tmp_path):
    _, manifest = built
    truth = {"natural": 0.9, "mnist_cnn_s0/conv1": 0.6, "mnist_cnn_s0/fc1": 0.2}
    trials, people = planted_tables(manifest, truth, n_people=150)
    result = analyze(trials, people, manifest, tmp_path / "a", n_boot=300, seed=1)
    excluded = result.participants.set_index("participant_id")
    assert excluded.loc["P0", "reason"] == "failed screening"
    assert excluded.loc["P1", "reason"].startswith("catch trials 0.00")
    assert int(result.participants["excluded"].sum()) == 2
    table = result.by_condition.set_index("condition")
    for condition, rate in truth.items():
        assert abs(table.loc[condition, "human_recognition"] - rate) < 0.05
        assert table.loc[condition, "ci_low"] < rate < table.loc[condition, "ci_high"]
        assert table.loc[condition, "n_participants"] == 148
    assert (tmp_path / "a" / "human_recognition.csv").is_file()
    assert (tmp_path / "a" / "figures" / "human_recognition.png").is_file()


def test_analysis_relates_humans_to_other_models_with_evaluation_human(tmp_path):
    from metamers.evaluation.human import correlate_with_human, other_model_recognition

    layers = ["l1", "l2", "l3", "l4"]
    truth = dict(zip(layers, [0.9, 0.7, 0.4, 0.1]))
    conditions = [{"name": "natural", "model": "", "layer": "natural"}] + [
        {"name": f"m/{layer}", "model": "m", "layer": layer} for layer in layers
    ]
    manifest = {
        "config": parse_config({}).model_dump(),
        "conditions": conditions,
        "choices": list("abcd"),
    }
    rng = np.random.default_rng(3)
    rows = [
        {"participant_id": f"P{k}", "phase": "main", "catch": False, "condition": f"m/{layer}",
         "correct": bool(rng.random() < truth[layer])}
        for k in range(40) for layer in layers for _ in range(5)
    ]  # fmt: skip
    people = pd.DataFrame({"participant_id": [f"P{k}" for k in range(40)], "status": "complete"})
    models = pd.DataFrame(
        {
            "generator": ["m"] * 8,
            "layer": layers * 2,
            "observer": ["a"] * 4 + ["b"] * 4,
            "correct_vs_label_mean": [0.8, 0.6, 0.5, 0.2, 0.9, 0.5, 0.3, 0.1],
        }
    )
    result = analyze(
        pd.DataFrame(rows), people, manifest, tmp_path, model_recognition=models, n_boot=200
    )
    human = result.by_condition[result.by_condition["model"] != ""]
    expected = correlate_with_human(other_model_recognition(models), human, n_boot=200, seed=0)
    pd.testing.assert_frame_equal(result.correlation, expected)
    assert result.correlation.loc["spearman_rho", "estimate"] == pytest.approx(1.0)
    assert np.isnan(result.by_condition.set_index("condition").loc["natural", "human_recognition"])
    assert [p.name for p in result.figures] == ["human_recognition.png", "human_vs_models.png"]
