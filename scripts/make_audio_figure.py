"""Reproduce docs/images/cochleagram.png: a cochleagram and a log-mel spectrogram of a spoken word.

The word is the first clip of ``bundled:words`` (built offline with eSpeak NG on first use).
Run from the repository root::

    python scripts/make_audio_figure.py
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from metamers.audio import Cochleagram, LogMelSpectrogram, plot_cochleagram
from metamers.stimuli import resolve_stimuli

LENGTH = 40_000
OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "cochleagram.png"


def main() -> None:
    """Make the figure and save it."""
    words = resolve_stimuli("bundled:words", limit=1)
    stimulus = words[0]
    x = words.load(stimulus, (LENGTH,))[None].double()
    label = f"'{stimulus.label}', voice {stimulus.id.split('_')[1]} (bundled:words)"
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    coch = Cochleagram.feather2023()
    plot_cochleagram(coch(x), coch, LENGTH, ax=ax1, title=f"feather2023 cochleagram: {label}")
    mel = LogMelSpectrogram.standard()
    plot_cochleagram(mel(x), mel, LENGTH, ax=ax2, title="standard log-mel spectrogram")
    for ax in (ax1, ax2):
        ax.title.set_fontsize(9)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
