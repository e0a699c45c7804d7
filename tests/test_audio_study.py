"""Audio metamers through a whole study: generate, validate, evaluate, and a report whose sounds play."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from metamers.report import build_report
from metamers.studies import parse_study, run_study
from metamers.studies.config import load_bundled_study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--mute-audio",
]  # fmt: skip

SMALL = {
    "name": "audio-small",
    "seed": 0,
    "models": {
        "generators": [{"name": "word_cnn_s0", "label": "cnn", "layers": ["relu0"]}],
        "observers": [
            {"name": "word_resnet_s0", "label": "resnet", "layers": ["conv1_relu1"]},
            {"name": "silero_vad", "label": "vad", "layers": ["stft"]},
        ],
    },
    "stimuli": {"spec": "bundled:words", "limit": 2, "chunk": 2},
    "synthesis": {"preset": "fast", "max_steps": 80},
    "null": {"pairs": 200, "stimuli": "bundled:words-null"},
    "evaluation": {
        "recognisability": True,
        "representation_test": True,
        "transfer": True,
        "similarity": [],
    },
    "executor": {"kind": "local"},
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-study")
    study = parse_study(SMALL | {"output": str(root / "out")}, base_dir=root)
    summary = run_study(study, reporter=build_report)
    assert not summary.failed, summary.failed
    return root / "out"


def test_audio_metamers_match_the_reference_and_are_judged(study_dir):
    tables = study_dir / "report" / "tables"
    metamers = pd.read_csv(tables / "metamers.csv")
    losses = pd.read_csv(tables / "losses.csv")
    assert len(metamers) == 2 and (metamers["steps"] > 0).all()
    for stimulus, curve in losses.groupby("stimulus"):
        assert curve["loss"].iloc[-1] < 0.6 * curve["loss"].iloc[0], stimulus
    acceptance = pd.read_csv(tables / "acceptance.csv")
    assert set(acceptance["stimulus_id"]) == set(metamers["stimulus_id"])
    assert acceptance["null_stimuli"].min() >= 2  # nulls of different speech-in-noise clips
    assert acceptance["accepted"].all()  # same word, and every metric above the null's maximum


def test_a_detector_observer_gets_the_representation_test_and_no_recognition(study_dir):
    tables = study_dir / "report" / "tables"
    recognition = pd.read_csv(tables / "recognition.csv")
    representation = pd.read_csv(tables / "representation.csv")
    assert set(recognition["observer"]) == {"word_resnet_s0"}
    vad = representation[representation["observer"] == "silero_vad"]
    assert len(vad) == 2 and set(vad["observer_layer"]) == {"stft"}


def test_the_report_measures_intelligibility(study_dir):
    quality = pd.read_csv(study_dir / "report" / "tables" / "sound_quality.csv")
    assert len(quality) == 2 and quality["stoi"].dropna().between(-1, 1).all()
    assert (quality["reference_rms"] - 0.04).abs().max() < 1e-3


def test_stoi_is_one_for_the_reference_and_lower_in_noise():
    import numpy as np

    from metamers.evaluation.sound_quality import sound_quality
    from metamers.stimuli import resolve_stimuli

    words = resolve_stimuli("bundled:words", limit=1)
    clean = words.load(words[0], (40_000,)).numpy()
    noise = np.random.default_rng(0).standard_normal(clean.shape)
    scores = [
        sound_quality(clean + level * noise, clean, 20_000)["stoi"] for level in (0, 0.1, 0.4)
    ]
    assert scores[0] == pytest.approx(1.0)
    assert scores[0] > scores[1] > scores[2] and scores[2] < 0.7


def test_the_report_embeds_a_player_and_a_cochleagram_per_sound(study_dir):
    page = (study_dir / "report" / "index.html").read_text()
    assert page.count("<audio") == 4  # two references and their two metamers
    assert page.count('alt="cochleagram:') == 4
    assert page.count("data:audio/wav;base64,") == 4


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium; the README's test "
    "command does)",
)
def test_every_sound_of_the_report_plays_in_chromium(study_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto((study_dir / "report" / "index.html").as_uri())
            page.wait_for_function(
                "() => [...document.querySelectorAll('audio')].every(a => a.readyState >= 1)",
                timeout=30_000,
            )
            players = page.evaluate(
                "() => [...document.querySelectorAll('audio')].map(a => ({duration: a.duration,"
                " expected: Number(a.dataset.seconds), error: a.error && a.error.code,"
                " playable: a.canPlayType('audio/wav')}))"
            )
        finally:
            browser.close()
    assert len(players) == 4
    for player in players:
        assert player["error"] is None and player["playable"]
        assert player["duration"] == pytest.approx(player["expected"], abs=0.01)
        assert player["expected"] == pytest.approx(2.0)


def test_the_bundled_audio_study_is_valid():
    study = load_bundled_study("audio")
    assert study.stimuli.spec == "bundled:words"
    names = [m.name for m in [*study.models.generators, *study.models.observers]]
    assert {"word_cnn_s0", "word_cnn_robust_s0"} <= set(names)
    assert study.null.stimuli == "bundled:words-null"
