"""Reproduce docs/images/cochleagram.png: a cochleagram and a log-mel spectrogram of one sound.

The sound is a spoken word when the ``espeak-ng`` command is on the PATH, otherwise a
synthetic harmonic tone sweep (deterministic; no download). Run from the repository root::

    python scripts/make_audio_figure.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from metamers.audio import Cochleagram, LogMelSpectrogram, plot_cochleagram

SR = 20000
LENGTH = 2 * SR
OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "cochleagram.png"


def spoken_word(word: str = "metamer") -> np.ndarray | None:
    """Synthesise ``word`` with the espeak-ng command, or return None if it is missing.

    Parameters
    ----------
    word : str
        Text to speak.

    Returns
    -------
    numpy.ndarray or None
        Waveform at 20 kHz, or None.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "word.wav"
        subprocess.run([exe, "-w", str(path), word], check=True, capture_output=True)
        wave, rate = sf.read(path, dtype="float64", always_2d=True)
    return soxr.resample(wave.mean(axis=1), rate, SR)


def harmonic_sweep() -> np.ndarray:
    """Two harmonic 'syllables' with gliding pitch and a moving spectral peak.

    Returns
    -------
    numpy.ndarray
        About 1.2 s at 20 kHz.
    """
    out = []
    for f_start, f_end, peak_start, peak_end in ((110, 180, 500, 2500), (200, 120, 3000, 800)):
        t = np.arange(int(0.55 * SR)) / SR
        f0 = np.linspace(f_start, f_end, t.size)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        peak = np.geomspace(peak_start, peak_end, t.size)
        wave = np.zeros_like(t)
        for h in range(1, 40):
            fh = h * f0
            gain = np.exp(-0.5 * (np.log(fh / peak) / 0.35) ** 2) + 0.3 / h
            wave += np.where(fh < SR / 2, gain, 0.0) * np.sin(h * phase)
        out += [wave * np.hanning(t.size) ** 0.5, np.zeros(int(0.1 * SR))]
    return np.concatenate(out)


def main() -> None:
    """Make the figure and save it."""
    wave = spoken_word()
    label = "spoken word 'metamer' (espeak-ng)" if wave is not None else "harmonic tone sweep"
    if wave is None:
        wave = harmonic_sweep()
    wave = wave[:LENGTH]
    start = (LENGTH - wave.size) // 2
    x = np.zeros(LENGTH)
    x[start : start + wave.size] = wave
    x -= x.mean()
    x *= 0.1 / np.sqrt(np.mean(x**2))  # RMS 0.1, the published convention
    xt = torch.tensor(x)[None]
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    coch = Cochleagram.feather2023()
    plot_cochleagram(coch(xt), coch, LENGTH, ax=ax1, title=f"feather2023 cochleagram: {label}")
    mel = LogMelSpectrogram.standard()
    plot_cochleagram(mel(xt), mel, LENGTH, ax=ax2, title="standard log-mel spectrogram")
    for ax in (ax1, ax2):
        ax.title.set_fontsize(9)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
