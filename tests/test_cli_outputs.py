"""Outputs a researcher can use (issue 15): summaries, machine-readable CLI output, wide tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.cli.common import emit
from metamers.errors import ConfigError
from metamers.null import NullDistribution


def test_null_distribution_repr_is_a_summary_not_the_values():
    n = 5000
    rng = np.random.default_rng(0)
    null = NullDistribution(
        model="mnist_cnn_s0",
        model_fingerprint="abc",
        layers=("conv1", "fc"),
        values={m: rng.random((n, 2)) for m in ("spearman", "pearson", "snr_db")},
        first=np.arange(n) % 7,
        second=(np.arange(n) + 1) % 7,
        stimulus_ids=tuple(f"s{i}" for i in range(7)),
        stimuli_spec="bundled:mnist",
        stimuli_fingerprint="def",
        augmentation={},
        seed=0,
        n_views=2 * n,
        pairs_per_view=1,
    )
    text = repr(null)
    assert len(text) < 400 and "\n" not in text
    for part in ("mnist_cnn_s0", "conv1", "n_pairs=5000", "n_stimuli=7", "published"):
        assert part in text
    assert "array" not in text
    assert str(null) == text


# --- machine-readable CLI output: one --format table|csv|json through cli.common.emit ---

GENERATOR = "mnist_cnn_s0"


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


@pytest.fixture(autouse=True)
def _private_null_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_models_json(runner):
    records = as_json(runner.invoke(app, ["models", "--format", "json"]))
    entry = next(r for r in records if r["name"] == GENERATOR)
    assert {"name", "source", "offline", "description", "info"} <= set(entry)
    assert entry["offline"] is True


def test_layers_shapes_json_and_csv(runner):
    records = as_json(runner.invoke(app, ["layers", GENERATOR, "--shapes", "--format", "json"]))
    shapes = {r["layer"]: r["shape"] for r in records}
    assert shapes["conv1"] == [16, 28, 28] and shapes["logits"] == [10]
    result = runner.invoke(app, ["layers", GENERATOR, "--shapes", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["layer,shape", "conv1,16x28x28"]


def test_classify_json_and_out_file(runner, tmp_path):
    out = tmp_path / "probs.csv"
    args = ["classify", GENERATOR, "--stimuli", "bundled:mnist", "--limit", "3", "--top", "2"]
    records = as_json(runner.invoke(app, [*args, "--format", "json", "--out", str(out)]))
    assert len(records) == 6
    assert {"stimulus", "source", "label", "rank", "class_index", "class", "probability"} <= set(
        records[0]
    )
    assert [r["rank"] for r in records[:2]] == [1, 2]
    saved = pd.read_csv(out)
    assert len(saved) == 6 and saved["probability"].between(0, 1).all()
    parquet = pd.read_parquet(out.with_suffix(".parquet"))
    assert list(parquet["class"]) == [r["class"] for r in records]
    assert list(saved.columns) == list(parquet.columns)
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "probs.txt")])
    assert bad.exit_code != 0 and not (tmp_path / "probs.txt").exists()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from metamers.models import load_model
    from metamers.stimuli import resolve_stimuli
    from metamers.synthesis import generate_metamers, get_preset

    out = tmp_path_factory.mktemp("generated") / "run"
    digits = resolve_stimuli("bundled:mnist").limit(2)
    settings = get_preset("fast", max_steps=5)
    generate_metamers(load_model(GENERATOR, device="cpu"), "relu2", digits, out, settings)
    return out


def test_validate_and_evaluate_json(runner, generated, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "null")]
    args = ["validate", str(generated), "--pairs", "60", "--null-stimuli", "bundled:mnist"]
    records = as_json(runner.invoke(app, [*args, *cache, "--format", "json"]))
    assert len(records) == 2
    assert {"stimulus_id", "model", "layer", "accepted", "spearman", "null_pairs"} <= set(
        records[0]
    )
    args = ["evaluate", str(generated), "--observers", GENERATOR, "--all", "--bootstrap", "10"]
    summary = as_json(runner.invoke(app, [*args, "--format", "json"]))
    assert set(summary) == {"recognition", "representation"}
    row = summary["recognition"][0]
    assert {"generator", "layer", "observer", "agrees_with_reference_mean"} <= set(row)


def test_run_prints_progress_of_a_generate_task_and_status_json(runner, tmp_path, monkeypatch):
    from metamers.studies import tasks
    from studies_support import tiny_study, write_study

    monkeypatch.setattr(tasks, "PROGRESS_SECONDS", 0.0)  # a line at every step

    study = tiny_study(
        tmp_path,
        stimuli={"limit": 2},
        null={"enabled": False},
        evaluation={"similarity": [], "features": False},
    )
    study["models"]["generators"][0]["layers"] = ["conv1"]
    study["models"]["observers"] = []
    path = write_study(tmp_path, study)
    out = tmp_path / "study"
    run = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert run.exit_code == 0, run.output
    lines = [line for line in run.output.splitlines() if "best loss" in line]
    assert len(lines) >= 10, run.output
    assert "step 1/20 of conv1" in lines[0] and "median" in lines[0]
    records = as_json(runner.invoke(app, ["status", str(out), "--format", "json"]))
    assert records and all(r["status"] == "done" for r in records)
    assert {"kind", "label", "key", "status", "error"} <= set(records[0])


def test_emit_csv_of_several_tables(capsys):
    emit({"a": [{"x": 1}], "b": pd.DataFrame({"y": [2.5]})}, "csv")
    assert capsys.readouterr().out.splitlines() == ["# a", "x", "1", "# b", "y", "2.5"]
    with pytest.raises(ConfigError, match="--format"):
        emit([], "yaml")


# --- piped output is not cut; --help imports no heavy library ---


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


def test_piped_output_is_not_cut_at_80_columns():
    code = (
        "from rich.table import Table\n"
        "from metamers.cli.common import out, PIPED_WIDTH\n"
        "assert out.width == PIPED_WIDTH, out.width\n"
        "t = Table('layer', 'shape'); t.add_row('x' * 150, '1x2x3'); out.print(t)\n"
    )
    assert "x" * 150 in _python(code)


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from metamers.cli.app import _register_commands, app\n"
        "_register_commands()\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'validate' in result.output, result.output\n"
        "for verb in ('generate', 'validate', 'evaluate', 'classify', 'run'):\n"
        "    assert CliRunner().invoke(app, [verb, '--help']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))\n"
    )
    assert _python(code).strip() == "[]"
