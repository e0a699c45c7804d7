"""generate_metamers / load_results: output folder, resume, skipping, settings guard, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from metamers.errors import ConfigError
from metamers.models import ModelEntry, PixelModel, register_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers, get_preset, load_results


def tiny_model(size: int = 16, seed: int = 0, name: str | None = None) -> PixelModel:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * (size // 2) ** 2, 10),
    )
    return PixelModel(net, name=name or f"tiny{size}", input_shape=(3, size, size))


@pytest.fixture(scope="module")
def model() -> PixelModel:
    return tiny_model()


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return resolve_stimuli(str(folder))


SETTINGS = get_preset("fast", max_steps=40, checkpoint_every=5, init="noise")


def metamers_by_key(results):
    return {(r.layer, r.stimulus_id): r for r in results}


def test_generate_writes_complete_folders(model, stimuli, tmp_path):
    events = []
    results = generate_metamers(
        model, ["1", "3"], stimuli, tmp_path, SETTINGS, batch_size=3, progress=events.append
    )
    assert len(results) == 8
    assert events[-1]["items_done"] == events[-1]["items_total"] == 8
    loaded = load_results(tmp_path)
    assert [(r.layer, r.stimulus_id) for r in loaded] == sorted(metamers_by_key(results))
    first = loaded[0]
    folder = first.path
    assert {p.name for p in folder.iterdir()} == {
        "metamer.safetensors",
        "metamer.png",
        "reference.png",
        "record.json",
    }
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "done" and record["steps"] == 40
    assert record["settings"]["max_steps"] == 40 and "torch" in record["versions"]
    assert first.losses[-1] < first.losses[0] / 5
    png = np.asarray(Image.open(folder / "metamer.png"))
    expected = np.rint(first.metamer.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(png, expected)
    exact = load_file(str(folder / "metamer.safetensors"))["metamer"]
    torch.testing.assert_close(exact, first.metamer, atol=0, rtol=0)
    assert (tmp_path / "run.json").is_file()
    assert not list((tmp_path / ".checkpoints").rglob("*.safetensors"))


def test_batched_run_equals_one_at_a_time(model, stimuli, tmp_path):
    batched = generate_metamers(model, "3", stimuli, tmp_path / "b", SETTINGS, batch_size=4)
    single = generate_metamers(model, "3", stimuli, tmp_path / "s", SETTINGS, batch_size=1)
    for key, result in metamers_by_key(batched).items():
        other = metamers_by_key(single)[key]
        torch.testing.assert_close(result.metamer, other.metamer, atol=1e-4, rtol=0)


def test_rerun_skips_finished_metamers(model, stimuli, tmp_path):
    generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, batch_size=2, limit=2)
    before = {
        r.stimulus_id: r.path.joinpath("record.json").stat().st_mtime_ns
        for r in load_results(tmp_path)
    }
    events = []
    results = generate_metamers(
        model, "3", stimuli, tmp_path, SETTINGS, batch_size=2, progress=events.append
    )
    assert len(results) == 4
    after = {
        r.stimulus_id: r.path.joinpath("record.json").stat().st_mtime_ns
        for r in load_results(tmp_path)
    }
    assert all(after[k] == v for k, v in before.items())
    assert events[0]["items_done"] >= 2


def test_resume_after_interrupt_equals_uninterrupted(model, stimuli, tmp_path):
    whole = generate_metamers(
        model, ["1", "3"], stimuli, tmp_path / "whole", SETTINGS, batch_size=3
    )

    calls = {"n": 0}

    def interrupt(_event):
        calls["n"] += 1
        if calls["n"] == 57:  # mid-way through the second batch of layer 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_metamers(
            model, ["1", "3"], stimuli, tmp_path / "cut", SETTINGS, batch_size=3, progress=interrupt
        )
    assert list((tmp_path / "cut" / ".checkpoints").rglob("*.safetensors"))
    resumed = generate_metamers(
        model, ["1", "3"], stimuli, tmp_path / "cut", SETTINGS, batch_size=3
    )
    assert metamers_by_key(resumed).keys() == metamers_by_key(whole).keys()
    for key, result in metamers_by_key(whole).items():
        other = metamers_by_key(resumed)[key]
        torch.testing.assert_close(other.metamer, result.metamer, atol=0, rtol=0)
        np.testing.assert_array_equal(other.losses, result.losses)


def test_other_settings_on_same_folder_is_refused(model, stimuli, tmp_path):
    generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, limit=1)
    with pytest.raises(ConfigError, match="another --out"):
        generate_metamers(model, "3", stimuli, tmp_path, get_preset("fast", max_steps=41), limit=1)
    with pytest.raises(ConfigError, match="seed"):
        generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, seed=1, limit=1)


def test_ensemble_and_layer_errors(model, stimuli, tmp_path):
    large = tiny_model(24, seed=2)
    results = generate_metamers([model, large], "3", stimuli, tmp_path, SETTINGS, limit=2)
    assert [r.generator for r in results] == ["tiny16+tiny24"] * 2
    assert results[0].metamer.shape == (3, 24, 24)
    assert (tmp_path / "tiny16+tiny24" / "3").is_dir()
    with pytest.raises(Exception, match="did you mean"):
        generate_metamers(model, "33", stimuli, tmp_path / "x", SETTINGS)
    with pytest.raises(ConfigError, match="no stimuli"):
        generate_metamers(model, "3", stimuli[:0], tmp_path / "y", SETTINGS)


def test_one_stop_criterion_serves_every_batch(model, stimuli, tmp_path):
    seen = []

    def criterion(synthesis, x, indices):
        seen.append((tuple(synthesis.item_ids), indices.tolist()))
        return torch.ones(len(indices), dtype=torch.bool)

    settings = get_preset("fast", max_steps=40, stop_check_every=10)
    results = generate_metamers(
        model, "3", stimuli, tmp_path, settings, batch_size=2, limit=4, stop_criterion=criterion
    )
    assert seen == [(("img0", "img1"), [0, 1]), (("img2", "img3"), [0, 1])]
    assert {r.settings["stop_reason"] for r in results} == {"criterion"}
    assert {r.settings["steps"] for r in results} == {10}


def test_cli_generate_and_resume(model, stimuli, tmp_path):
    from metamers.cli.app import _register_commands, app

    register_model(
        ModelEntry(
            "tiny_cli", lambda random_weights=False: tiny_model(name="tiny_cli"), "test", "tiny"
        )
    )
    _register_commands()
    args = ["generate", "tiny_cli", "--layers", "1,3", "--stimuli", stimuli.spec]
    args += ["--out", str(tmp_path), "--steps", "20", "--limit", "2", "--batch-size", "2"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 metamers" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    changed = runner.invoke(app, [*args[:-6], "--steps", "21", "--limit", "2"])
    assert changed.exit_code != 0
    assert isinstance(changed.exception, ConfigError)


@pytest.mark.filterwarnings("ignore:.*distinct stimuli")
def test_cli_generate_stops_items_once_accepted(model, stimuli, tmp_path, monkeypatch):
    from metamers.cli.app import _register_commands, app

    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))
    register_model(
        ModelEntry(
            "tiny_stop", lambda random_weights=False: tiny_model(name="tiny_stop"), "test", "tiny"
        )
    )
    _register_commands()
    args = ["generate", "tiny_stop", "--layers", "3", "--stimuli", stimuli.spec, "--limit", "2"]
    args += ["--out", str(tmp_path / "out"), "--steps", "400", "--stop-accepted"]
    args += ["--check-every", "10", "--null-stimuli", stimuli.spec, "--null-pairs", "60"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("record.json")]
    assert len(records) == 2
    # Accepted long before the 400-step budget, at a check (multiple of 10 steps).
    assert {r["stop_reason"] for r in records} == {"criterion"}
    assert all(0 < r["steps"] < 400 and r["steps"] % 10 == 0 for r in records)
    assert list((tmp_path / "cache").rglob("*.npz")), "the null was not cached"


def test_cli_layers_commas_make_jobs_plus_joins_layers(model, stimuli, tmp_path):
    from metamers.cli.app import _register_commands, app

    register_model(
        ModelEntry(
            "tiny_jobs", lambda random_weights=False: tiny_model(name="tiny_jobs"), "test", "tiny"
        )
    )
    _register_commands()
    runner = CliRunner()
    for layers in ("1,3", "1+3"):
        args = ["generate", "tiny_jobs", "--layers", layers, "--stimuli", stimuli.spec]
        args += ["--out", str(tmp_path), "--steps", "5", "--limit", "1"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in (tmp_path / "tiny_jobs").iterdir())
    assert folders == ["1", "1+3", "3"]
    joint = [r for r in load_results(tmp_path) if r.layer == "1+3"]
    assert len(joint) == 1 and joint[0].layers == ("1+3",)
    run = json.loads((tmp_path / "run.json").read_text())
    assert [i["layers"] for i in run["invocations"]] == [[["1"], ["3"]], [["1+3"]]]
    bad = runner.invoke(app, [*args[:3], "1;3", *args[4:]])
    assert bad.exit_code != 0 and "separates the models" in str(bad.exception)


def test_joint_job_matches_both_layers(model, stimuli, tmp_path):
    from metamers.synthesis import LayerJob, MetamerSynthesis

    job = LayerJob((("1", "3"),))
    results = generate_metamers(model, [job], stimuli, tmp_path, SETTINGS, limit=2)
    assert {r.layer for r in results} == {"1+3"} and len(results) == 2
    # the same job written as a string, and as MetamerSynthesis reads a list, is the same job
    again = generate_metamers(model, "1+3", stimuli, tmp_path, SETTINGS, limit=2)
    assert [r.path for r in again] == [r.path for r in results]
    refs = torch.rand(1, 3, 16, 16)
    assert MetamerSynthesis(model, ["1", "3"], refs).layers == [["1", "3"]]
    assert MetamerSynthesis(model, "1+3", refs).layers == [["1", "3"]]
    with pytest.raises(ConfigError, match="describes 2 jobs"):
        MetamerSynthesis(model, "1,3", refs)


def test_ensemble_layer_forms(model, stimuli, tmp_path):
    large = tiny_model(24, seed=2)
    results = generate_metamers([model, large], "1+3,3", stimuli, tmp_path, SETTINGS, limit=1)
    assert sorted((r.layers, r.layer) for r in results) == [(("1", "3"), "1+3"), (("3", "3"), "3")]
    with pytest.raises(Exception, match="3 layers for 2 models"):
        generate_metamers([model, large], "1,3,1", stimuli, tmp_path / "x", SETTINGS)
