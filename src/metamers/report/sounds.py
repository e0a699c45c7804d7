"""Sounds in the report: 16-bit WAV data for ``<audio>`` elements and a cochleagram under each.

Internal module: use it through metamers.report (``build_report``); not part of the public API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from metamers.stimuli.sounds import wav_bytes


@dataclass
class Sound:
    """One playable sound of a report section.

    Attributes
    ----------
    caption
        What it is (stimulus, layer, loss, accepted).
    wav
        A 16-bit PCM WAV file's bytes.
    seconds
        Its duration.
    picture
        A figure shown under it (its cochleagram), or ``None``.
    """

    caption: str
    wav: bytes
    seconds: float
    picture: Figure | None = None


def cochleagram_picture(waveform: torch.Tensor, sample_rate: int) -> Figure:
    """A small figure of the published cochleagram (``feather2023``) of a waveform.

    Parameters
    ----------
    waveform
        ``(T,)`` samples.
    sample_rate
        Its rate in Hz.
    """
    from metamers.audio import Cochleagram, plot_cochleagram

    front = Cochleagram.feather2023(sample_rate=sample_rate)
    x = torch.as_tensor(waveform).detach().double().cpu()[None]
    fig = Figure(figsize=(3.2, 1.6), layout="constrained")
    ax = fig.subplots()
    plot_cochleagram(front(x), front, x.shape[-1], ax=ax)
    ax.tick_params(labelsize=6)
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)
    return fig


def sound(caption: str, waveform: torch.Tensor, sample_rate: int, picture: bool = True) -> Sound:
    """A :class:`Sound` of a waveform, with its cochleagram.

    Parameters
    ----------
    caption
        What it is; a gain applied against clipping is added to it.
    waveform
        ``(T,)`` samples.
    sample_rate
        Its rate in Hz.
    picture
        Draw the cochleagram under it.
    """
    data, gain = wav_bytes(waveform, sample_rate)
    if gain != 1.0:
        caption = f"{caption} (played at {20 * np.log10(gain):.1f} dB to avoid clipping)"
    seconds = torch.as_tensor(waveform).shape[-1] / sample_rate
    figure = cochleagram_picture(waveform, sample_rate) if picture else None
    return Sound(caption, data, seconds, figure)


def sound_rows(
    references: dict[str, torch.Tensor],
    metamers: pd.DataFrame,
    generator: str,
    sample_rate: int,
) -> list[list[Sound]]:
    """One row per reference: the reference, then its metamer at each layer.

    Parameters
    ----------
    references
        Stimulus id → reference waveform ``(T,)``.
    metamers
        One row per metamer: ``stimulus``, ``layer``, ``image`` (the waveform), and
        ``accepted`` and ``loss`` for the caption.
    generator
        The generating model (in the reference's caption).
    sample_rate
        Rate of every waveform in Hz.
    """
    rows = []
    for stimulus, reference in references.items():
        row = [sound(f"{generator}, {stimulus}: reference", reference, sample_rate)]
        for cell in metamers[metamers["stimulus"] == stimulus].itertuples(index=False):
            accepted = getattr(cell, "accepted", None)
            verdict = (
                ""
                if accepted is None or pd.isna(accepted)
                else (", accepted" if accepted else ", rejected")
            )
            caption = f"{cell.layer}: loss {cell.loss:.3g}{verdict}"
            row.append(sound(caption, cell.image, sample_rate))
        rows.append(row)
    return rows
