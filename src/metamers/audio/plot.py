"""Drawing a cochleagram or spectrogram with real axes (s, Hz), without pyplot."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_cochleagram"]

_TICKS_HZ = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


class _FrontEnd(Protocol):
    def center_frequencies(self, length: int) -> np.ndarray: ...

    def frame_times(self, length: int) -> np.ndarray: ...


def plot_cochleagram(
    coch: torch.Tensor | np.ndarray,
    front_end: _FrontEnd,
    length: int,
    ax: Axes | None = None,
    title: str | None = None,
    **imshow_kwargs: Any,
) -> Figure:
    """Draw a cochleagram (or log-mel spectrogram) with time (s) and frequency (Hz) axes.

    Parameters
    ----------
    coch : torch.Tensor or numpy.ndarray
        One front-end output: ``(filters, frames)``, ``(1, filters, frames)`` or
        ``(1, 1, filters, frames)``.
    front_end : Cochleagram or LogMelSpectrogram
        The module that made it; supplies ``center_frequencies`` and ``frame_times``.
    length : int
        Waveform length in samples that the output came from.
    ax : matplotlib.axes.Axes, optional
        Axes to draw in; a new :class:`matplotlib.figure.Figure` is made when omitted.
    title : str, optional
        Axes title.
    **imshow_kwargs
        Passed to :meth:`matplotlib.axes.Axes.pcolormesh` (e.g. ``cmap``, ``vmin``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes. The x limits are the first and last frame times and the
        y limits the lowest and highest centre frequencies; the frequency axis is logarithmic.
    """
    data = coch.detach().cpu().numpy() if isinstance(coch, torch.Tensor) else np.asarray(coch)
    data = np.asarray(data, dtype=np.float64)
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"expected one (filters, frames) output, got shape {np.shape(coch)}")
    freqs = np.asarray(front_end.center_frequencies(length), dtype=np.float64)
    times = np.asarray(front_end.frame_times(length), dtype=np.float64)
    if data.shape != (freqs.size, times.size):
        raise ValueError(
            f"output shape {data.shape} does not match {freqs.size} frequencies x "
            f"{times.size} frames for length {length}"
        )
    if ax is None:
        fig = Figure(figsize=(6, 3), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    imshow_kwargs.setdefault("cmap", "magma")
    mesh = ax.pcolormesh(times, freqs, data, shading="nearest", **imshow_kwargs)
    ax.set_yscale("log")
    ax.set_xlim(times[0], times[-1])
    ax.set_ylim(freqs[0], freqs[-1])
    ticks = [t for t in _TICKS_HZ if freqs[0] <= t <= freqs[-1]]
    ax.set_yticks(ticks, [f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    fig.colorbar(mesh, ax=ax)
    return fig  # type: ignore[return-value]
