"""``metamers brain fit | rsa`` on a planted dataset in the NH2015 file layout, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from typer.testing import CliRunner

from metamers.brain import layer_features
from metamers.cli.app import _register_commands, app
from metamers.models import load_model
from metamers.stimuli import resolve_stimuli

MODEL = Path(__file__).parent / "data" / "brain" / "tinyaudio.py"
N_SOUNDS = 80


def _run(*args: str):
    _register_commands()
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def nh2015(tmp_path_factory):
    return write_planted_nh2015(tmp_path_factory.mktemp("nh2015"))


def write_planted_nh2015(root: Path) -> Path:
    """WAV stimuli (``root/sounds``) and NH2015-layout responses (``root/NH2015``, ROI table
    ``root/rois.csv``) planted on the tiny model's ``relu`` layer."""
    sounds = root / "sounds"
    sounds.mkdir()
    rng = np.random.default_rng(0)
    names = [f"stim{i}_cat{i % 4}" for i in range(N_SOUNDS)]
    times = np.arange(4000) / 20000
    for name in names:
        tone = np.sin(2 * np.pi * rng.uniform(100, 6000) * times) * rng.uniform(0.2, 1)
        wave = tone + rng.uniform(0, 1) * rng.normal(size=times.size)
        soundfile.write(sounds / f"{name}.wav", 0.1 * wave / np.abs(wave).max(), 20000)
    model = load_model(f"file:{MODEL}", trust_code=True)
    stimuli = resolve_stimuli(str(sounds))
    relu = layer_features(model, stimuli, ["relu"], pool="time_mean").features["relu"]
    by_id = dict(zip(stimuli.ids, relu, strict=True))
    x = np.stack([by_id[name] for name in names]).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    n_voxels = 24
    weights = rng.normal(size=(x.shape[1], n_voxels)) * (rng.random((x.shape[1], 1)) < 0.02)
    signal = x @ weights
    signal = (signal - signal.mean(0)) / signal.std(0)
    array = signal[:, :, None] + 0.4 * rng.normal(size=(N_SOUNDS, n_voxels, 3))
    folder = root / "NH2015"
    folder.mkdir()
    stim = np.zeros(N_SOUNDS, dtype=[("stim_name", "S40"), ("category", "S10")])
    stim["stim_name"] = [f"{n}.wav".encode() for n in names]
    stim["category"] = [n.split("_")[1].encode() for n in names]
    meta = np.zeros(
        n_voxels,
        dtype=[
            ("subj_idx", "<i8"),
            ("hemi", "S2"),
            ("x_ras", "<i8"),
            ("y_ras", "<i8"),
            ("voxel_id", "<i8"),
            ("n_reps", "<i8"),
        ],
    )
    meta["subj_idx"] = np.repeat([0, 1, 2, 5], n_voxels // 4)
    meta["hemi"] = b"lh"
    meta["voxel_id"] = np.arange(n_voxels)
    meta["n_reps"] = 3
    np.save(folder / "neural_stim_meta.npy", stim)
    np.save(folder / "voxel_features_meta.npy", meta)
    np.save(folder / "voxel_features_array.npy", array)
    rois = pd.DataFrame({"roi_label_general": ["Primary", "Anterior"] * (n_voxels // 2)})
    rois.to_csv(root / "rois.csv", index=False)
    return root


def test_fit_writes_tables_and_figures_with_a_permuted_control(nh2015, tmp_path):
    out = tmp_path / "fit"
    result = _run(
        "brain", "fit", f"file:{MODEL}", "--trust-code",
        "--layers", "cochleagram,relu,fc",
        "--stimuli", str(nh2015 / "sounds"),
        "--responses", str(nh2015 / "NH2015"),
        "--roi-table", str(nh2015 / "rois.csv"), "--roi", "roi_label_general",
        "--out", str(out), "--pool", "time_mean", "--permuted", "3",
        "--preset", "default", "--format", "json", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = pd.DataFrame(json.loads(result.stdout))
    assert list(summary["model"]) == ["tinyaudio", "tinyaudio:permuted3"]
    trained = summary.set_index("model").loc["tinyaudio"]
    assert trained["best_layer_of_mean_curve"] == "relu"
    assert trained["mean_curve_max"] > 0.5
    curves = pd.read_parquet(out / "tinyaudio" / "curves_summary.parquet").set_index("layer")
    control = next(out.glob("tinyaudio_permuted3*"))
    permuted = pd.read_parquet(control / "curves_summary.parquet").set_index("layer")
    assert curves.loc["relu", "mean"] > permuted.loc["relu", "mean"] + 0.05
    # the cochleagram has no parameters: the control leaves it as it is
    assert curves.loc["cochleagram", "mean"] == pytest.approx(permuted.loc["cochleagram", "mean"])
    for name in ("summary.parquet", "corrected_r2_by_layer.png", "splits.json"):
        assert (out / name).is_file()
    model_dir = out / "tinyaudio"
    for name in (
        "scores.parquet",
        "curves.csv",
        "curves_roi.parquet",
        "best_layer.csv",
        "best_layer_lopo.csv",
        "best_layer_targets.parquet",
        "encoding.json",
        "corrected_r2_by_layer_roi.png",
        "best_layer_by_roi.png",
    ):
        assert (model_dir / name).is_file(), name
    scores = pd.read_parquet(model_dir / "scores.parquet")
    assert len(scores) == 24 * 3 * 10 and scores["participant"].nunique() == 4
    control_dir = next(out.glob("tinyaudio_permuted3*"))
    record = json.loads((control_dir / "encoding.json").read_text())
    assert record["settings"]["features"]["permuted_seed"] == 3
    assert record["settings"]["features"]["pool"] == "time_mean"


def test_rsa_writes_tables_and_a_figure(nh2015, tmp_path):
    out = tmp_path / "rsa"
    result = _run(
        "brain", "rsa", f"file:{MODEL}", "--trust-code",
        "--layers", "cochleagram,relu",
        "--stimuli", str(nh2015 / "sounds"),
        "--responses", str(nh2015 / "NH2015"),
        "--out", str(out), "--pool", "time_mean", "--format", "csv", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ceiling_lower" in result.stdout
    assert (out / "rsa_by_layer.png").is_file()
    assert (out / "tinyaudio" / "rsa_scores.parquet").is_file()


def test_stimuli_without_responses_fail_before_the_model(nh2015, tmp_path):
    extra = tmp_path / "sounds"
    extra.mkdir()
    soundfile.write(extra / "unknown.wav", np.zeros(4000), 20000)
    result = _run(
        "brain", "fit", "no-such-model",
        "--layers", "relu", "--stimuli", str(extra),
        "--responses", str(nh2015 / "NH2015"), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "have no responses" in str(result.exception)
