"""Audio front ends: a differentiable cochleagram and a log-mel spectrogram, and a plot.

Examples
--------
>>> from metamers.audio import Cochleagram
>>> Cochleagram.feather2023().center_frequencies(40000).shape
(211,)
"""

from __future__ import annotations

from metamers.audio.cochleagram import Cochleagram, CochleagramSettings, erb2freq, freq2erb
from metamers.audio.logmel import LogMelSettings, LogMelSpectrogram, hz2mel, mel2hz, mel_filterbank
from metamers.audio.plot import plot_cochleagram

__all__ = [
    "Cochleagram",
    "CochleagramSettings",
    "LogMelSettings",
    "LogMelSpectrogram",
    "erb2freq",
    "freq2erb",
    "hz2mel",
    "mel2hz",
    "mel_filterbank",
    "plot_cochleagram",
]
