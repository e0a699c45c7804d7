"""A differentiable log-mel spectrogram with the interface of :class:`Cochleagram`.

Definition (``LogMelSpectrogram.standard()``):

1. short-time Fourier transform (``torch.stft``) with a periodic Hann window of
   ``win_length`` samples, ``n_fft = win_length``, hop ``hop_length``, no centring or padding
   (frame ``k`` covers samples ``k * hop ... k * hop + win_length - 1``);
2. power spectrum ``|X|**2``;
3. a triangular mel filter bank built in numpy with the **HTK** mel formula
   ``mel(f) = 2595 log10(1 + f / 700)``: ``n_mels + 2`` points equally spaced in mel from
   ``low_hz`` to ``high_hz``, filter ``i`` rises linearly (in Hz) from point ``i`` to a peak
   of 1 at point ``i + 1`` and falls to 0 at point ``i + 2`` (no area normalisation);
4. ``log(mel_power + log_offset)``.

Examples
--------
>>> import torch
>>> from metamers.audio import LogMelSpectrogram
>>> LogMelSpectrogram.standard()(torch.zeros(2, 40000)).shape
torch.Size([2, 1, 64, 198])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metamers.audio.cochleagram import FilterCache, waveform_batch

__all__ = ["LogMelSettings", "LogMelSpectrogram", "hz2mel", "mel2hz", "mel_filterbank"]


def hz2mel(freq: np.ndarray | float) -> np.ndarray:
    """Convert frequency (Hz) to mel (HTK formula).

    Parameters
    ----------
    freq : array_like
        Frequencies in Hz.

    Returns
    -------
    numpy.ndarray
        ``2595 * log10(1 + f / 700)``.
    """
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel2hz(mel: np.ndarray | float) -> np.ndarray:
    """Convert mel (HTK formula) to frequency (Hz); the inverse of :func:`hz2mel`.

    Parameters
    ----------
    mel : array_like
        Mel values.

    Returns
    -------
    numpy.ndarray
        Frequencies in Hz.
    """
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_fft: int, sample_rate: int, n_mels: int, low_hz: float, high_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Triangular HTK mel filters on the rFFT bins.

    Parameters
    ----------
    n_fft : int
        FFT length; the filters act on ``n_fft // 2 + 1`` bins.
    sample_rate : int
        Sample rate (Hz).
    n_mels : int
        Number of mel bands.
    low_hz, high_hz : float
        Lower edge of the first and upper edge of the last band (Hz).

    Returns
    -------
    filters : numpy.ndarray
        ``(n_mels, n_fft // 2 + 1)``, float64, peak 1 at each centre.
    centres : numpy.ndarray
        Centre frequency (Hz) of each band, low to high.
    """
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    points = mel2hz(np.linspace(hz2mel(low_hz), hz2mel(high_hz), n_mels + 2))
    lo, mid, hi = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (bins[None] - lo) / (mid - lo)
    falling = (hi - bins[None]) / (hi - mid)
    return np.clip(np.minimum(rising, falling), 0.0, None), points[1:-1].copy()


@dataclass(frozen=True)
class LogMelSettings:
    """Every number of a log-mel spectrogram.

    Parameters
    ----------
    sample_rate : int
        Waveform sample rate (Hz).
    win_length : int
        Hann window length and FFT length (samples).
    hop_length : int
        Hop between frames (samples).
    n_mels : int
        Number of mel bands.
    low_hz, high_hz : float
        Frequency range of the mel bands (Hz); ``high_hz`` may not exceed Nyquist.
    log_offset : float
        Added to the mel power before the logarithm.
    """

    sample_rate: int = 20000
    win_length: int = 500
    hop_length: int = 200
    n_mels: int = 64
    low_hz: float = 50.0
    high_hz: float = 10000.0
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.low_hz < self.high_hz <= self.sample_rate / 2:
            raise ValueError("need 0 <= low_hz < high_hz <= sample_rate / 2")
        if self.win_length < 2 or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError("win_length, hop_length and n_mels must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dictionary (to record with results).

        Returns
        -------
        dict
            Field name to value.
        """
        return dataclasses.asdict(self)


class LogMelSpectrogram(torch.nn.Module):
    """Differentiable log-mel spectrogram of a batch of waveforms.

    Parameters
    ----------
    settings : LogMelSettings, optional
        All numbers; defaults to the ``standard`` preset.

    Notes
    -----
    Input ``(N, T)``, ``(N, 1, T)`` or ``(T,)``; output ``(N, 1, n_mels, frames)``. The mel
    filters and the window are built in float64 on first use and cached per (length, dtype,
    device); float32 and float64 inputs are supported.
    """

    def __init__(self, settings: LogMelSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else LogMelSettings()
        self._cache = FilterCache()

    @classmethod
    def standard(cls, **overrides: Any) -> LogMelSpectrogram:
        """A common speech log-mel preset.

        Parameters
        ----------
        **overrides
            Replacements for any :class:`LogMelSettings` field.

        Returns
        -------
        LogMelSpectrogram
            20 kHz, 25 ms Hann window, 10 ms hop, 64 HTK mel bands 50 Hz-10 kHz,
            ``log(x + 1e-6)`` (198 frames for 2 s).
        """
        return cls(LogMelSettings(**overrides))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings.to_dict().items())

    def center_frequencies(self, length: int) -> np.ndarray:
        """Centre frequencies (Hz) of the mel bands, low to high.

        Parameters
        ----------
        length : int
            Waveform length in samples (unused: the bands do not depend on it).

        Returns
        -------
        numpy.ndarray
            One frequency per output row.
        """
        s = self.settings
        return mel_filterbank(s.win_length, s.sample_rate, s.n_mels, s.low_hz, s.high_hz)[1]

    def n_frames(self, length: int) -> int:
        """Number of output frames for ``length`` samples.

        Parameters
        ----------
        length : int
            Waveform length in samples.

        Returns
        -------
        int
            Frame count.
        """
        s = self.settings
        return (length - s.win_length) // s.hop_length + 1

    def frame_times(self, length: int) -> np.ndarray:
        """Times (s) of the output frames: the centre of each analysis window.

        Parameters
        ----------
        length : int
            Waveform length in samples.

        Returns
        -------
        numpy.ndarray
            One time per output column.
        """
        s = self.settings
        k = np.arange(self.n_frames(length), dtype=np.float64)
        return (k * s.hop_length + s.win_length / 2) / s.sample_rate

    def _buffers_for(
        self, length: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        return self._cache.get(length, dtype, device, self._build_filters)

    def _build_filters(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        if length < s.win_length:
            raise ValueError(f"waveform of {length} samples is shorter than the window")
        filts, _ = mel_filterbank(s.win_length, s.sample_rate, s.n_mels, s.low_hz, s.high_hz)
        n = np.arange(s.win_length, dtype=np.float64)
        return filts, 0.5 - 0.5 * np.cos(2 * np.pi * n / s.win_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the log-mel spectrogram.

        Parameters
        ----------
        x : torch.Tensor
            Waveforms ``(N, T)``, ``(N, 1, T)`` or ``(T,)``, float32 or float64.

        Returns
        -------
        torch.Tensor
            ``(N, 1, n_mels, frames)``.
        """
        s = self.settings
        x = waveform_batch(x)
        filts, window = self._buffers_for(x.shape[-1], x.dtype, x.device)
        spec = torch.stft(
            x,
            n_fft=s.win_length,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=window,
            center=False,
            return_complex=True,
        )
        power = spec.real**2 + spec.imag**2
        mel = torch.einsum("mf,nft->nmt", filts, power)
        return torch.log(mel + s.log_offset).unsqueeze(1)
