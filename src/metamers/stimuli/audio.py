"""Waveform stimuli: fitting a waveform to a model's expected length."""

from __future__ import annotations

import torch

from metamers.errors import StimulusError


def fit_waveform(waveform: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Centre-crop or zero-pad a mono waveform to a model's input length.

    Parameters
    ----------
    waveform
        ``(T,)`` tensor in ``[-1, 1]``.
    input_shape
        ``(T_model,)``.
    """
    if waveform.ndim != 1 or len(input_shape) != 1:
        raise StimulusError(
            f"expected a mono waveform and a 1-d input shape, got {tuple(waveform.shape)} "
            f"and {input_shape}"
        )
    (length,) = input_shape
    have = waveform.shape[0]
    if have >= length:
        start = (have - length) // 2
        return waveform[start : start + length].clamp(-1.0, 1.0)
    pad = length - have
    return torch.nn.functional.pad(waveform, (pad // 2, pad - pad // 2)).clamp(-1.0, 1.0)
