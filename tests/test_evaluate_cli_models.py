"""`metamers evaluate` loads generators as recorded, else applies --random-weights, --weights."""

from __future__ import annotations

import pandas as pd
import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.models import load_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers, get_preset

GENERATOR = "mnist_cnn_s0"
SETTINGS = get_preset("fast", max_steps=5)
OPTIONS = ["--all", "--bootstrap", "10"]


@pytest.fixture(scope="module", autouse=True)
def registered():
    _register_commands()


@pytest.fixture(scope="module")
def digits():
    return resolve_stimuli("bundled:mnist").limit(2)


def evaluate(*args: str):
    result = CliRunner().invoke(app, ["evaluate", *args, *OPTIONS])
    return result, result.output


def unrecorded(model):
    """``model`` without its load record, as a folder of an earlier version holds it."""
    model.load_spec = None
    return model


def test_recorded_loads_need_no_model_options(digits, tmp_path):
    out = tmp_path / "recorded"
    generate_metamers(load_model(GENERATOR, random_weights=True), "relu2", digits, out, SETTINGS)
    result, output = evaluate(str(out), "--observers", GENERATOR)
    assert result.exit_code == 0, output


def test_random_weights_reach_the_generator_and_observer(digits, tmp_path):
    out = tmp_path / "random"
    model = unrecorded(load_model(GENERATOR, random_weights=True))
    generate_metamers(model, "relu2", digits, out, SETTINGS)
    refused, _ = evaluate(str(out), "--observers", GENERATOR)
    assert refused.exit_code != 0 and "made with" in str(refused.exception)
    result, output = evaluate(str(out), "--observers", GENERATOR, "--random-weights")
    assert result.exit_code == 0, output
    table = pd.read_parquet(out / "evaluation" / "recognition.parquet")
    assert set(table["observer"]) == {GENERATOR} and len(table) == 2


def test_weights_file_applies_to_the_generating_model(digits, tmp_path):
    custom = load_model(GENERATOR, random_weights=True, seed=3)
    weights = tmp_path / "custom.safetensors"
    save_file({k: v.contiguous() for k, v in custom.net.state_dict().items()}, str(weights))
    out = tmp_path / "custom"
    model = unrecorded(load_model(GENERATOR, weights=str(weights)))
    generate_metamers(model, "relu2", digits, out, SETTINGS)
    # The observer is another architecture: it keeps its own weights (the file would not fit it);
    # --observer-layers "relu1" (no MODEL=) names the layers of every observer.
    args = [str(out), "--observers", "mnist_mlp_s0", "--observer-layers", "relu1"]
    refused, _ = evaluate(*args)
    assert refused.exit_code != 0 and "made with" in str(refused.exception)
    result, output = evaluate(*args, "--weights", str(weights), "--device", "cpu")
    assert result.exit_code == 0, output
    table = pd.read_parquet(out / "evaluation" / "recognition.parquet")
    assert set(table["observer"]) == {"mnist_mlp_s0"}
