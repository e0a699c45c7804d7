"""Tests of the log-mel spectrogram front end (``metamers.audio.LogMelSpectrogram``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.audio import LogMelSettings, LogMelSpectrogram


def _numpy_logmel(x: np.ndarray, s: LogMelSettings) -> np.ndarray:
    """Independent numpy computation of the same definition (HTK mel, periodic Hann)."""
    win, hop = s.win_length, s.hop_length
    n_frames = (x.size - win) // hop + 1
    frames = np.stack([x[k * hop : k * hop + win] for k in range(n_frames)])
    window = np.hanning(win + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, bins)
    freqs = np.fft.rfftfreq(win, 1 / s.sample_rate)
    mel_lo, mel_hi = (2595 * np.log10(1 + f / 700) for f in (s.low_hz, s.high_hz))
    edges = 700 * (10 ** (np.linspace(mel_lo, mel_hi, s.n_mels + 2) / 2595) - 1)
    fb = np.zeros((s.n_mels, freqs.size))
    for m in range(s.n_mels):
        a, b, c = edges[m : m + 3]
        for j, f in enumerate(freqs):
            if a < f <= b:
                fb[m, j] = (f - a) / (b - a)
            elif b < f < c:
                fb[m, j] = (c - f) / (c - b)
    return np.log(fb @ power.T + s.log_offset)


def test_shapes_and_axes() -> None:
    lm = LogMelSpectrogram.standard()
    x = torch.randn(3, 40000) * 0.1
    out = lm(x)
    assert out.shape == (3, 1, 64, 198)
    torch.testing.assert_close(lm(x[:, None]), out)
    torch.testing.assert_close(lm(x[0]), out[:1])
    assert lm.frame_times(40000).shape == (198,)
    assert lm.frame_times(40000)[0] == pytest.approx(0.0125)
    cf = lm.center_frequencies(40000)
    assert cf.shape == (64,) and np.all(np.diff(cf) > 0)
    assert 50 < cf[0] < cf[-1] < 10000
    assert lm(torch.zeros(1, 1000)).shape == (1, 1, 64, 3)


def test_cache_per_length_dtype() -> None:
    lm = LogMelSpectrogram.standard()
    lm(torch.zeros(1, 4000))
    lm(torch.zeros(1, 4000, dtype=torch.float64))
    lm(torch.zeros(1, 6000))
    assert len(lm._cache) == 3
    with pytest.raises(ValueError):
        lm(torch.zeros(1, 100))
    with pytest.raises(ValueError):
        LogMelSpectrogram.standard(high_hz=12000.0)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_tone_peaks_in_its_band(freq: float) -> None:
    lm = LogMelSpectrogram.standard()
    t = torch.arange(20000, dtype=torch.float64) / 20000
    out = lm(torch.sin(2 * np.pi * freq * t))[0, 0].mean(dim=-1).numpy()
    cf = lm.center_frequencies(20000)
    # The band whose centre is nearest the tone on the mel scale holds the most energy.
    mel = 2595 * np.log10(1 + np.r_[freq, cf] / 700)
    assert int(np.argmax(out)) == int(np.argmin(np.abs(mel[1:] - mel[0])))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_numpy_definition(dtype: torch.dtype) -> None:
    lm = LogMelSpectrogram.standard()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000) * 0.1
    expected = _numpy_logmel(x, lm.settings)
    got = lm(torch.tensor(x, dtype=dtype))[0, 0].double().numpy()
    tol = 1e-5 if dtype == torch.float64 else 1e-3
    assert np.abs(got - expected).max() <= tol
    assert got.dtype == np.float64 and lm(torch.tensor(x, dtype=dtype)).dtype == dtype


def test_gradcheck_small_float64() -> None:
    lm = LogMelSpectrogram(
        LogMelSettings(
            sample_rate=1000, win_length=32, hop_length=16, n_mels=6, low_hz=20, high_hz=500
        )
    )
    x = torch.randn(2, 80, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lm, (x,), eps=1e-6, atol=1e-5)
