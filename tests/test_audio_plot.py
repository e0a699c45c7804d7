"""Tests of ``metamers.audio.plot_cochleagram``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from metamers.audio import Cochleagram, LogMelSpectrogram, plot_cochleagram


@pytest.mark.parametrize(
    "front_end", [Cochleagram.feather2023(), LogMelSpectrogram.standard()], ids=["coch", "mel"]
)
def test_axes_are_frame_times_and_frequencies(front_end) -> None:
    length = 8000
    out = front_end(torch.randn(1, length) * 0.1)
    fig = plot_cochleagram(out, front_end, length)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    times = front_end.frame_times(length)
    freqs = front_end.center_frequencies(length)
    np.testing.assert_allclose(ax.get_xlim(), (times[0], times[-1]))
    np.testing.assert_allclose(ax.get_ylim(), (freqs[0], freqs[-1]))
    assert ax.get_yscale() == "log"
    assert "s" in ax.get_xlabel() and "Hz" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert {"100", "200", "500", "1k", "2k", "5k"} <= set(labels)
    np.testing.assert_allclose(ax.get_yticks(), [float(x.replace("k", "e3")) for x in labels])


def test_draws_into_given_axes_and_rejects_mismatch() -> None:
    coch = Cochleagram.feather2023()
    out = coch(torch.zeros(1, 4000))
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_cochleagram(out[0, 0].numpy(), coch, 4000, ax=ax) is fig
    with pytest.raises(ValueError):
        plot_cochleagram(out, coch, 6000)
