"""`metamers null` and `metamers validate` end to end on a tiny registered model."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.models import ModelEntry, register_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers, get_preset
from null_fixtures import split_model

NAME = "splitnet-cli-test"
LAYER = "left.1"


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_model(
        ModelEntry(
            name=NAME,
            build=lambda random_weights=False: split_model(name=NAME),
            source="test",
            description="tiny split net for tests",
        )
    )
    _register_commands()


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, result.output


def test_null_command_computes_then_loads(tmp_path):
    args = ["null", NAME, "--layers", f"{LAYER},logits", "--stimuli", "bundled:photos"]
    args += ["--pairs", "60", "--cache-dir", str(tmp_path)]
    result, output = run(*args)
    assert result.exit_code == 0, output
    assert "computed" in output and "18 distinct stimuli" in output
    assert "warning:" in output and "fewer than 100 distinct stimuli" in output
    assert "spearman" in output and "snr_db" in output and "N = 60" in output
    result, output = run(*args)
    assert result.exit_code == 0 and "loaded" in output


def test_null_command_refuses_bad_layer(tmp_path):
    result, _ = run("null", NAME, "--layers", "nope", "--stimuli", "bundled:photos")
    assert result.exit_code != 0 and "unknown layer" in str(result.exception)


def test_validate_command_writes_tables(tmp_path):
    out = tmp_path / "run"
    model = split_model(name=NAME)
    settings = get_preset("fast", max_steps=40, lr=0.05)
    photos = resolve_stimuli("bundled:photos").limit(2)
    generate_metamers(model, LAYER, photos, out, settings=settings)
    args = ["validate", str(out), "--pairs", "60", "--cache-dir", str(tmp_path / "cache")]
    result, output = run(*args)
    assert result.exit_code == 0, output
    table = pd.read_parquet(out / "validation.parquet")
    assert len(table) == 2 and set(table["stimulus_id"]) == set(photos.ids)
    assert {"accepted", "failed", "spearman", "spearman_null_max"} <= set(table.columns)
    assert (pd.read_csv(out / "validation.csv")["stimulus_id"] == table["stimulus_id"]).all()
    assert "acceptance" in output and "60-pair null" in output
    assert not list(out.glob(".validation*"))  # no temporary files left behind


def test_validate_refuses_a_model_with_other_weights(tmp_path):
    out = tmp_path / "run"
    other_weights = split_model(seed=1, name=NAME)
    photos = resolve_stimuli("bundled:photos").limit(1)
    generate_metamers(other_weights, LAYER, photos, out, settings=get_preset("fast", max_steps=5))
    result, _ = run("validate", str(out), "--pairs", "60", "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code != 0
    assert "made with" in str(result.exception) and "--weights" in str(result.exception)
    assert not (out / "validation.parquet").exists()
