"""Sound measures of an audio metamer against its reference: intelligibility, level.

- :func:`sound_quality`: STOI (short-time objective intelligibility, Taal et al.
  2011, via :mod:`pystoi`) of the metamer with its reference as the clean
  signal, and the RMS and peak of both. STOI predicts whether a *person* would
  understand the words of the metamer as well as those of the reference (1:
  as well; ~0.4 and below: poorly); it compares short-time envelopes in
  one-third-octave bands, so it is blind to fine structure a model may use and
  a metamer a model calls the same word can score low. It uses no model and no
  weights. Silent frames of the reference are left out, as STOI defines; a
  reference with less than 384 ms of sound left has no STOI (NaN).

A metamer's loudness is not constrained by synthesis, so its RMS and peak are
reported beside its reference's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from metamers.errors import MetamersError


def _wave(x: torch.Tensor | np.ndarray) -> np.ndarray:
    wave = np.asarray(torch.as_tensor(x).detach().double().cpu())
    if wave.ndim != 1:
        raise MetamersError(f"expected a waveform (T,), got shape {wave.shape}")
    return wave


def sound_quality(
    metamer: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray, sample_rate: int
) -> dict[str, float]:
    """STOI of a metamer against its reference, and both sounds' RMS and peak.

    Parameters
    ----------
    metamer, reference
        ``(T,)`` waveforms of equal length.
    sample_rate
        Their rate in Hz (STOI resamples to 10 kHz itself).

    Returns
    -------
    dict
        ``stoi``, ``rms``, ``peak``, ``reference_rms``, ``reference_peak``.

    Raises
    ------
    MetamersError
        Not waveforms, or of different lengths.
    """
    from pystoi import stoi

    m, r = _wave(metamer), _wave(reference)
    if m.shape != r.shape:
        raise MetamersError(f"metamer {m.shape} and reference {r.shape} differ in length")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(stoi(r, m, sample_rate))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        score = float("nan")  # pystoi returns 1e-5: too little sound to measure
    return {
        "stoi": score,
        "rms": float(np.sqrt(np.mean(m**2))),
        "peak": float(np.abs(m).max()),
        "reference_rms": float(np.sqrt(np.mean(r**2))),
        "reference_peak": float(np.abs(r).max()),
    }
