"""Odd sounds given to a word model, and sounds and images given to the wrong kind of model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


def classify(runner, model: str, spec: str):
    return runner.invoke(
        app, ["classify", model, "--stimuli", spec, "--top", "1", "--format", "json"]
    )


def test_stereo_44khz_and_short_clips_are_fitted_as_documented(runner, tmp_path):
    t = np.arange(44_100) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    soundfile.write(tmp_path / "stereo.wav", 0.3 * stereo, 44_100)  # 1 s, two channels
    soundfile.write(tmp_path / "short.flac", 0.3 * stereo[:8_000, 0], 44_100)  # 0.18 s
    from metamers.stimuli import resolve_stimuli

    sounds = resolve_stimuli(f"{tmp_path / 'stereo.wav'},{tmp_path / 'short.flac'}")
    for stimulus in sounds:
        wave = sounds.load(stimulus, (40_000,), sample_rate=20_000)
        assert wave.shape == (40_000,)  # mono, 20 kHz, centred and zero-padded
        assert float(wave.pow(2).mean().sqrt()) == pytest.approx(0.1, rel=1e-4)
        assert float(wave[:1000].std()) < 1e-9  # constant padding (demeaned), not sound
    done = classify(runner, "word_cnn_s0", f"{tmp_path / 'stereo.wav'},{tmp_path / 'short.flac'}")
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 2


def test_silence_is_a_one_line_error_naming_the_file(runner, tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(40_000), 20_000)
    done = classify(runner, "word_cnn_s0", str(tmp_path / "silence.wav"))
    assert done.exit_code != 0
    assert "silence.wav" in str(done.exception) and "silent" in str(done.exception)


def test_images_for_an_audio_model_and_sounds_for_an_image_model_are_refused(runner, tmp_path):
    done = classify(runner, "word_cnn_s0", "bundled:photos")
    assert "bundled:photos holds images, but word_cnn_s0 takes sounds" in str(done.exception)
    soundfile.write(tmp_path / "tone.wav", 0.1 * np.sin(np.arange(20_000) / 5), 20_000)
    done = classify(runner, "mnist_cnn_s0", str(tmp_path / "tone.wav"))
    assert "holds sounds, but mnist_cnn_s0 takes images" in str(done.exception)


@pytest.mark.filterwarnings("ignore::metamers.null.distribution.SmallNullWarning")
def test_the_default_null_pool_follows_the_models_modality(tmp_path):
    from metamers.models import load_model
    from metamers.validation import null_provider

    get = null_provider(None, 16, cache_dir=tmp_path)
    audio = get(load_model("word_cnn_s0"), ["relu0"])
    assert audio.stimuli_spec == "bundled:words-null"
    assert audio.n_distinct_pairs == 16  # different clips in every pair
    image = get(load_model("mnist_cnn_s0"), ["relu1"])
    assert image.stimuli_spec == "bundled:photos"
