"""The spoken-word corpus: real eSpeak NG speech, deterministic, split by voice, mixed as published."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import soundfile

from metamers.stimuli import resolve_stimuli
from metamers.stimuli.words import (
    WORDS,
    WordCorpusSettings,
    build_word_corpus,
    mix_noise,
    pink_noise,
    word_corpus,
)

SMALL = WordCorpusSettings(
    words=("water", "garden", "rocket"),
    voices={"train": ("m1", "f1"), "validation": ("m6",), "test": ("m3", "Andrea")},
    babble_tracks=2,
    babble_talkers=2,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build_word_corpus(tmp_path_factory.mktemp("words") / "a", SMALL, progress=False)


def test_small_corpus_is_deterministic_and_complete(small, tmp_path):
    again = build_word_corpus(tmp_path / "b", SMALL, progress=False)
    assert (small.root / "manifest.csv").read_bytes() == (again.root / "manifest.csv").read_bytes()
    table = small.manifest
    counts = table.groupby(["split", "kind"]).size().to_dict()
    assert counts == {
        ("test", "clean"): 6,
        ("test", "noisy"): 6,
        ("train", "babble"): 2,
        ("train", "clean"): 12,
        ("validation", "clean"): 3,
        ("validation", "noisy"): 3,
    }
    for row in table.itertuples():
        path = small.root / row.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
    speakers = {
        s: set(table[table.split == s].voice) - {""} for s in ("train", "validation", "test")
    }
    assert not (speakers["train"] & speakers["test"]) and not (
        speakers["validation"] & speakers["test"]
    )


def test_clips_are_2s_at_20khz_with_the_word_centred_and_in_range(small):
    table = small.manifest
    clean = table[table.kind == "clean"]
    for row in clean.itertuples():
        wave, rate = soundfile.read(str(small.root / row.file))
        assert rate == 20_000 and wave.shape == (40_000,)
        assert abs(row.onset_s + row.duration_s / 2 - 1.0) < 1e-3
        loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())
        assert loud[0] / 20_000 >= row.onset_s - 1e-3
    assert table[table.kind != "babble"].peak.max() <= 1.0  # at RMS 0.04 nothing clips
    noisy = table[table.kind == "noisy"]
    assert noisy.snr_db.between(-10, 10).all()
    assert set(noisy.noise.str.rstrip("0123456789")) <= {"pink", "babble"}


def test_mix_noise_sets_the_snr_and_level():
    t = np.arange(40_000) / 40_000
    speech = np.sin(2 * np.pi * 50 * t) + 0.3  # the offsets are removed first
    noise = 5 * np.sin(2 * np.pi * 170 * t) - 1  # orthogonal to the speech
    mix = mix_noise(speech, noise, 6.0, rms=0.1)
    assert np.sqrt(np.mean(mix**2)) == pytest.approx(0.1) and abs(mix.mean()) < 1e-12
    s_part = np.sin(2 * np.pi * 50 * t) * 2 * np.mean(mix * np.sin(2 * np.pi * 50 * t))
    n_part = mix - s_part
    snr = 20 * np.log10(np.sqrt(np.mean(s_part**2)) / np.sqrt(np.mean(n_part**2)))
    assert snr == pytest.approx(6.0, abs=1e-6)


def test_pink_noise_falls_3db_per_octave():
    noise = pink_noise(1 << 16, np.random.default_rng(1))
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[100:200].mean(), power[200:400].mean()
    assert 10 * np.log10(low / high) == pytest.approx(3.0, abs=0.5)


def test_bundled_words_are_the_clean_test_words_by_unseen_voices():
    words = resolve_stimuli("bundled:words")
    assert len(words) == 4 * len(WORDS) and words.label_space == "words"
    assert words.modality == "audio"
    first = words.limit(len(WORDS))
    assert sorted(s.label for s in first) == sorted(WORDS)  # every word once, voices rotating
    assert {s.id.split("_")[1] for s in first} == {"m3", "Andrea", "david", "steph"}
    wave = words.load(words[0], (40_000,))
    assert wave.shape == (40_000,) and float(wave.pow(2).mean().sqrt()) == pytest.approx(0.04)
    table = word_corpus().manifest
    assert table[table.kind != "babble"].peak.max() <= 1.0
    noisy = resolve_stimuli("bundled:words-noisy", limit=4)
    assert noisy.ids == words.ids[:4]


def test_a_missing_corpus_is_an_error_when_building_is_off(tmp_path):
    from metamers.errors import StimulusError

    with pytest.raises(StimulusError, match="metamers corpus build"):
        word_corpus(tmp_path, replace(SMALL, seed=5), build=False)


def test_cli_builds_once_and_describes_the_corpus():
    import json

    from typer.testing import CliRunner

    from metamers.cli.app import _register_commands, app

    _register_commands()
    word_corpus()  # built (or found) in the cache
    for verb in ("build", "info"):
        done = CliRunner().invoke(app, ["corpus", verb, "--format", "json"])
        assert done.exit_code == 0, done.output
        records = json.loads(done.stdout.strip().splitlines()[-1])
        counts = {(r["split"], r["kind"]): r["clips"] for r in records}
        assert counts[("train", "clean")] == 3200 and counts[("test", "noisy")] == 400
