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


# -- issue 14: result identity, locks, failures that speak ------------------------------------


class _NaNs(nn.Module):
    def forward(self, x):
        return x * float("nan")


def nan_model(name: str = "tiny16", seed: int = 1) -> PixelModel:
    """A model whose every activation from layer "1" on is NaN (same input contract as tiny16)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        _NaNs(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 8**2, 10),
    )
    return PixelModel(net, name=name, input_shape=(3, 16, 16))


def image_folder(folder, seeds, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        pixels = np.random.default_rng(seed).integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{names[i] if names else f'img{i}'}.png")
    return resolve_stimuli(str(folder))


def record_times(out):
    return {p: p.stat().st_mtime_ns for p in out.rglob("record.json")}


def test_case1_same_id_other_content_is_not_reused(model, tmp_path):
    first = image_folder(tmp_path / "a", [0, 1])
    other = image_folder(tmp_path / "b", [0, 7])  # img1 is another image under the same id
    made = generate_metamers(model, "3", first, tmp_path / "out", SETTINGS)
    before = {r.stimulus_id: r.metamer.clone() for r in made}
    with pytest.raises(ConfigError, match=r"another stimulus \(reference content digest\)"):
        generate_metamers(model, "3", other, tmp_path / "out", SETTINGS)
    kept = {r.stimulus_id: r for r in load_results(tmp_path / "out")}
    for sid, metamer in before.items():  # neither reused for the new image nor overwritten
        torch.testing.assert_close(kept[sid].metamer, metamer, atol=0, rtol=0)
    assert kept["img1"].reference.shape == (3, 16, 16)
    # the same content under the same ids is reused, and recorded with its digest
    same = image_folder(tmp_path / "c", [0, 1])
    again = generate_metamers(model, "3", same, tmp_path / "out", SETTINGS)
    assert len(again) == 2 and all(len(r.settings["reference_digest"]) == 16 for r in again)


def test_case1_settings_recorded_with_a_result_must_match(model, stimuli, tmp_path):
    generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, limit=1)
    run = json.loads((tmp_path / "run.json").read_text())
    # a run.json rewritten by hand (or lost) no longer lets other settings reuse a result
    run["settings_digest"] = get_preset("fast", max_steps=41).digest()
    run["settings"]["max_steps"] = 41
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="made with another settings"):
        generate_metamers(model, "3", stimuli, tmp_path, get_preset("fast", max_steps=41), limit=1)


def test_case2_ids_differing_in_accents_get_their_own_folders(model, tmp_path):
    from metamers.io import path_name

    names = ["chat é", "chat è", "chat__"]
    stimuli = image_folder(tmp_path / "s", [0, 1, 2], names)
    results = generate_metamers(model, "3", stimuli, tmp_path / "out", SETTINGS)
    assert len({r.path for r in results}) == 3
    loaded = {r.stimulus_id: r for r in load_results(tmp_path / "out")}
    assert sorted(loaded) == sorted(names)
    for name in names:
        assert loaded[name].path.name == path_name(name)
        expected = stimuli.load(stimuli.select([name])[0], model.input_shape)
        torch.testing.assert_close(loaded[name].reference, expected, atol=0, rtol=0)
    assert path_name("timm:resnet18") != path_name("timm_resnet18")
    assert path_name("a/b") != path_name("a_b") and "/" not in path_name("a/b")


def test_case2_ids_sharing_a_folder_of_an_earlier_version_are_refused(model, tmp_path):
    stimuli = image_folder(tmp_path / "s", [0, 1], ["chat é", "chat è"])
    generate_metamers(model, "3", stimuli[:1], tmp_path / "out", SETTINGS)
    # make the folder look like one of an earlier version (legacy names, no "naming")
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    del run["naming"]
    (tmp_path / "out" / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="would share the folder 'chat__'"):
        generate_metamers(model, "3", stimuli, tmp_path / "out", SETTINGS)


MODEL_FILE = """
import torch
from torch import nn
from metamers.models import PixelModel


def build_model(pretrained=True):
    if pretrained:
        torch.manual_seed(123)  # stands for a file's own trained weights
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 8**2, 10),
    )
    return PixelModel(net, name="filenet", input_shape=(3, 16, 16))
"""


def test_case3_weights_of_file_models_are_applied_not_ignored(tmp_path):
    from safetensors.torch import save_file

    from metamers.errors import ModelError
    from metamers.models import load_model
    from metamers.models.registry import load_from_spec, load_spec

    (tmp_path / "net.py").write_text(MODEL_FILE)
    spec = f"file:{tmp_path / 'net.py'}"
    plain = load_model(spec, trust_code=True)
    state = {k: torch.full_like(v, 0.01) for k, v in plain.net.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    loaded = load_model(spec, trust_code=True, weights=str(tmp_path / "w.safetensors"))
    assert loaded.fingerprint() != plain.fingerprint()
    assert all(bool((v == 0.01).all()) for v in loaded.net.state_dict().values())
    # a PixelModel state dict (keys "net.*") loads too
    torch.save(loaded.state_dict(), tmp_path / "whole.pt")
    whole = load_model(spec, trust_code=True, weights=str(tmp_path / "whole.pt"))
    assert whole.fingerprint() == loaded.fingerprint()
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelError, match="cannot load weights"):
        load_model(spec, trust_code=True, weights=str(tmp_path / "bad.safetensors"))
    # the load is recorded and can be repeated, never without consent to run the code
    recorded = load_spec(loaded)
    assert recorded["name"] == spec and recorded["weights"] == str(tmp_path / "w.safetensors")
    assert len(recorded["weights_sha256"]) == 64 and recorded["random_weights"] is False
    with pytest.raises(ModelError, match="--trust-code"):
        load_from_spec(recorded)
    assert load_from_spec(recorded, trust_code=True).fingerprint() == loaded.fingerprint()
    save_file({k: v + 1 for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelError, match="has changed"):
        load_from_spec(recorded, trust_code=True)


@pytest.mark.filterwarnings("ignore:.*distinct stimuli")
@pytest.mark.parametrize("option", ["--weights", "--random-weights"])
def test_case3_file_generator_folders_validate_from_their_record(stimuli, tmp_path, option):
    from safetensors.torch import save_file

    from metamers.cli.app import _register_commands, app

    _register_commands()
    (tmp_path / "net.py").write_text(MODEL_FILE)
    extra = ["--random-weights"]
    if option == "--weights":
        torch.manual_seed(5)
        net = tiny_model().net  # the same architecture, other weights
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.st"))
        (tmp_path / "w.st").rename(tmp_path / "w.safetensors")
        extra = ["--weights", str(tmp_path / "w.safetensors")]
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["generate", f"file:{tmp_path / 'net.py'}", "--layers", "3", "--stimuli", stimuli.spec]
    made = runner.invoke(app, [*args, "--out", str(out), "--steps", "5", "--limit", "2"])
    assert made.exit_code != 0 and "--trust-code" in str(made.exception)
    made = runner.invoke(
        app, [*args, "--out", str(out), "--steps", "5", "--limit", "2", "--trust-code", *extra]
    )
    assert made.exit_code == 0, made.output
    record = load_results(out)[0].settings
    assert record["model_loads"][0]["name"] == f"file:{tmp_path / 'net.py'}"
    validate = ["validate", str(out), "--pairs", "20", "--null-stimuli", stimuli.spec]
    validate += ["--cache-dir", str(tmp_path / "cache")]
    refused = runner.invoke(app, validate)  # the recorded file: model runs code: consent needed
    assert refused.exit_code != 0 and "--trust-code" in str(refused.exception)
    done = runner.invoke(app, [*validate, "--trust-code"])  # no --weights / --random-weights
    assert done.exit_code == 0, done.output
    assert (out / "validation.parquet").is_file()
    evaluate = ["evaluate", str(out), "--observers", "filenet", "--all", "--bootstrap", "10"]
    evaluated = runner.invoke(app, [*evaluate, "--trust-code"])
    assert evaluated.exit_code == 0, evaluated.output


def test_case4_second_run_on_a_locked_folder_is_refused(model, stimuli, tmp_path):
    from metamers.errors import MetamersError
    from metamers.io import lock_file

    tmp_path.mkdir(exist_ok=True)
    holder = lock_file(tmp_path / ".lock")  # another run is writing the folder
    assert holder is not None
    try:
        with pytest.raises(MetamersError, match="another `metamers generate` is writing"):
            generate_metamers(model, "3", stimuli, tmp_path, get_preset("fast", max_steps=60))
        assert not (tmp_path / "run.json").exists()  # nothing checked or written meanwhile
    finally:
        holder.close()
    assert len(generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, limit=1)) == 1


def test_case7_non_finite_loss_is_listed_and_exit_status_is_nonzero(stimuli, tmp_path):
    from metamers.cli.app import _register_commands, app

    results = generate_metamers(nan_model(), "1", stimuli, tmp_path / "lib", SETTINGS, limit=2)
    assert len(results) == 0 and len(results.failed) == 2
    assert {r.settings["stop_reason"] for r in results.failed} == {"non-finite"}
    register_model(
        ModelEntry("tiny_nan", lambda random_weights=False: nan_model("tiny_nan"), "test", "NaN")
    )
    _register_commands()
    args = ["generate", "tiny_nan", "--layers", "1", "--stimuli", stimuli.spec, "--limit", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cli"), "--steps", "5"])
    assert result.exit_code == 1, result.output
    assert "0 metamers" in result.output
    assert "failed: tiny_nan 1 img0: the loss or its gradient stayed non-finite" in result.output
    assert "2 metamers failed" in result.output


def test_case8_skip_bad_skips_a_corrupt_image_in_generate(model, tmp_path):
    from metamers.cli.app import _register_commands, app
    from metamers.errors import StimulusError

    folder = tmp_path / "s"
    image_folder(folder, [0, 1])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(StimulusError):
        generate_metamers(model, "3", resolve_stimuli(str(folder)), tmp_path / "strict", SETTINGS)
    with pytest.warns(UserWarning, match="skipping broken"):
        results = generate_metamers(
            model, "3", resolve_stimuli(str(folder), skip_bad=True), tmp_path / "out", SETTINGS
        )
    assert sorted(r.stimulus_id for r in results) == ["img0", "img1"]
    assert results.skipped == ["broken"]
    register_model(
        ModelEntry("tiny_skip", lambda random_weights=False: tiny_model(name="tiny_skip"), "t", "t")
    )
    _register_commands()
    args = ["generate", "tiny_skip", "--layers", "3", "--stimuli", str(folder), "--skip-bad"]
    with pytest.warns(UserWarning, match="skipping broken"):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cli"), "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert (
        "2 metamers" in result.output and "skipped 1 undecodable stimuli: broken" in result.output
    )


def _interrupted(model, stimuli, out, after=7):
    calls = {"n": 0}

    def interrupt(_event):
        calls["n"] += 1
        if calls["n"] == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_metamers(model, "3", stimuli, out, SETTINGS, batch_size=4, progress=interrupt)


def test_case9_damaged_checkpoint_is_set_aside_and_its_items_restart(model, stimuli, tmp_path):
    whole = generate_metamers(model, "3", stimuli, tmp_path / "whole", SETTINGS, batch_size=4)
    _interrupted(model, stimuli, tmp_path / "cut")
    [checkpoint] = (tmp_path / "cut" / ".checkpoints").rglob("*.safetensors")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="cannot be read.*set aside.*restart"):
        resumed = generate_metamers(model, "3", stimuli, tmp_path / "cut", SETTINGS, batch_size=4)
    assert checkpoint.with_name(checkpoint.name + ".corrupt").is_file()
    for key, result in metamers_by_key(whole).items():
        torch.testing.assert_close(metamers_by_key(resumed)[key].metamer, result.metamer)


def test_case9_truncated_result_is_named_in_one_line_then_made_again(model, stimuli, tmp_path):
    from metamers.synthesis.storage import DamagedResult

    made = metamers_by_key(generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, limit=2))
    damaged = made[("3", "img1")].path / "metamer.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(DamagedResult, match=r"metamer\.safetensors is damaged") as caught:
        load_results(tmp_path)
    assert str(damaged) in str(caught.value) and "\n" not in str(caught.value)
    untouched = made[("3", "img0")].path / "record.json"
    mtime = untouched.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="damaged.*making it again"):
        again = metamers_by_key(generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, limit=2))
    assert untouched.stat().st_mtime_ns == mtime
    torch.testing.assert_close(again[("3", "img1")].metamer, made[("3", "img1")].metamer)
    assert damaged.with_name("metamer.safetensors.corrupt").is_file()
    assert len(load_results(tmp_path)) == 2


def test_case10_a_run_that_finished_nothing_does_not_bind_its_settings(model, stimuli, tmp_path):
    # interrupted before any metamer was written
    _interrupted(model, stimuli, tmp_path, after=2)
    other = get_preset("fast", max_steps=30, checkpoint_every=5, init="noise")
    assert len(generate_metamers(model, "3", stimuli, tmp_path, other, batch_size=4)) == 4
    assert {r.settings["steps"] for r in load_results(tmp_path)} == {30}
    # every item failed (a NaN model under this model's name): nothing binds either
    failed = tmp_path / "failed"
    assert generate_metamers(nan_model(), "3", stimuli, failed, SETTINGS, limit=2).failed
    redone = generate_metamers(model, "3", stimuli, failed, SETTINGS, limit=2)
    assert len(redone) == 2 and not redone.failed
    run = json.loads((failed / "run.json").read_text())
    assert run["models"][0]["fingerprint"] == model.fingerprint()
    # once a metamer exists, the folder is bound
    with pytest.raises(ConfigError, match="another --out"):
        generate_metamers(model, "3", stimuli, failed, other, limit=2)
