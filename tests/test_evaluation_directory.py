"""`metamers evaluate` on a real generate folder: validation, recognisability, representation test."""

from __future__ import annotations

import pandas as pd
import pytest

from metamers.errors import ConfigError
from metamers.evaluation.directory import evaluate_directory
from metamers.models import ModelEntry, register_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers
from metamers.synthesis.settings import get_preset

from conftest import make_tiny_model


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    register_model(
        ModelEntry(
            "tiny_eval",
            lambda random_weights=False: make_tiny_model(5, "tiny_eval"),
            "test",
            "tiny test model",
        )
    )
    out = tmp_path_factory.mktemp("gen")
    model = make_tiny_model(5, "tiny_eval")
    stimuli = resolve_stimuli("bundled:photos").limit(4)
    settings = get_preset("fast", max_steps=400)
    generate_metamers(model, ["relu1", "relu2"], stimuli, out, settings, batch_size=4, seed=0)
    return out


def test_evaluate_directory_end_to_end(generated):
    observer = make_tiny_model(5, "tiny_eval")
    stranger = make_tiny_model(9, "stranger")
    with pytest.warns(UserWarning, match="distinct stimuli"):
        evaluation = evaluate_directory(
            generated,
            [observer, stranger],
            representation_test=True,
            observer_layers={"stranger": ["relu1", "relu2"]},
            n_pairs=200,
            n_boot=100,
            accepted_only=False,
        )
    rep = evaluation.representation_summary.set_index(["layer", "observer", "observer_layer"])
    # The generator itself finds its metamers metameric at their generation layer ...
    assert rep.loc[("relu1", "tiny_eval", "relu1"), "pass_fraction"] == 1.0
    assert rep.loc[("relu2", "tiny_eval", "relu2"), "pass_fraction"] == 1.0
    # ... and a differently seeded network does not find the deep-layer metamers metameric.
    assert rep.loc[("relu2", "stranger", "relu2"), "pass_fraction"] < 1.0
    files = {p.name for p in (generated / "evaluation").iterdir()}
    assert {"recognition.parquet", "representation_summary.csv", "recognisability.png"} <= files
    table = pd.read_parquet(generated / "evaluation" / "recognition.parquet")
    assert len(table) == 2 * 2 * 4  # layers × observers × stimuli


def test_generator_with_other_weights_is_refused_unless_given(generated, tmp_path):
    custom = make_tiny_model(7, "tiny_eval")  # registered "tiny_eval" loads seed 5
    stimuli = resolve_stimuli("bundled:photos").limit(1)
    out = tmp_path / "custom"
    generate_metamers(custom, ["relu1"], stimuli, out, get_preset("fast", max_steps=5), seed=0)
    stranger = make_tiny_model(9, "stranger")
    options = {"accepted_only": False, "n_boot": 10, "observer_layers": {"stranger": ["relu1"]}}
    with pytest.raises(ConfigError, match="made with"):
        evaluate_directory(out, [stranger], **options)
    evaluation = evaluate_directory(out, [stranger, custom], **options)
    assert set(evaluation.recognition["observer"]) == {"stranger", "tiny_eval"}
