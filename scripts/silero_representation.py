"""Why the silero-vad observer passes so few word-model metamers: the numbers of docs/audio.md.

Run from the repository root on a finished audio study:
``python scripts/silero_representation.py metamers-studies/audio-depth [generator]``.
It prints, per generation layer of ``generator`` (default ``word_cnn_s0``):

1. the representation test's pass rate per silero layer and metric (from the report's
   ``tables/representation.parquet``), beside the null maximum each must beat;
2. the level of the metamer in the reference's quiet stretches (10-ms frames more than
   40 dB below the reference's loudest frame), in dB re that loudest frame;
3. at silero's ``stft`` layer, Spearman's rho over all time-frequency bins and over the bins
   where the reference has energy (above 1e-3 of its largest magnitude).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metamers.models import load_model
from metamers.similarity.metrics import spearman
from metamers.stimuli.fit import fit_to_input
from metamers.synthesis.storage import read_result

OBSERVER = "silero_vad"
FRAME = 200
"""10 ms at the word models' 20 kHz."""
QUIET_DB = -40.0


def frame_levels(wave: np.ndarray) -> np.ndarray:
    """RMS level of each 10-ms frame.

    Parameters
    ----------
    wave
        ``(T,)`` waveform.
    """
    frames = wave[: len(wave) // FRAME * FRAME].reshape(-1, FRAME)
    return np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))


def quiet_levels(metamer: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Share of quiet reference frames, and the mean level there of metamer and reference (dB).

    Parameters
    ----------
    metamer, reference
        ``(T,)`` waveforms.
    """
    ref, met = frame_levels(reference), frame_levels(metamer)
    peak = ref.max()
    quiet = 20 * np.log10(ref / peak + 1e-12) < QUIET_DB
    return (
        float(quiet.mean()),
        float(20 * np.log10(met[quiet].mean() / peak + 1e-12)),
        float(20 * np.log10(ref[quiet].mean() / peak + 1e-12)),
    )


def stft_spearman(
    observer, metamers: torch.Tensor, references: torch.Tensor
) -> tuple[float, float]:
    """Median Spearman's rho at ``stft`` over all bins, and over the reference's loud bins.

    Parameters
    ----------
    observer
        The silero-vad :class:`~metamers.models.PixelModel`.
    metamers, references
        ``(N, T)`` waveforms at the word models' rate.
    """
    with torch.no_grad():
        a, b = (
            observer.activations(fit_to_input(x, observer.input_shape), ["stft"])["stft"].flatten(1)
            for x in (metamers, references)
        )
    loud = b > 1e-3 * b.amax(dim=1, keepdim=True)
    on_loud = [float(spearman(a[i, loud[i]][None], b[i, loud[i]][None])) for i in range(len(a))]
    return float(spearman(a, b).median()), float(np.median(on_loud))


def main() -> None:
    """Print the three views for every generation layer of one generator."""
    study = Path(sys.argv[1])
    generator = sys.argv[2] if len(sys.argv) > 2 else "word_cnn_s0"
    tables = study / "report" / "tables"
    metamers = pd.read_csv(tables / "metamers.csv")
    representation = pd.read_parquet(tables / "representation.parquet")
    observer = load_model(OBSERVER)
    rows = representation[
        (representation["observer"] == OBSERVER) & (representation["generator"] == generator)
    ]
    passes = rows.groupby(["layer", "observer_layer"], sort=False).agg(
        **{f"{m}_pass": (f"{m}_pass", "mean") for m in ("spearman", "pearson", "snr_db")},
        **{f"{m}_null_max": (f"{m}_threshold", "first") for m in ("spearman", "pearson")},
        passed=("passed", "mean"),
    )
    print(passes.round(2).to_string())
    for layer, group in metamers[metamers["generator"] == generator].groupby("layer", sort=False):
        results = [read_result(study / path) for path in group["path"]]
        levels = np.array(
            [quiet_levels(r.metamer.numpy(), r.reference.numpy()) for r in results]
        ).mean(axis=0)
        rho_all, rho_loud = stft_spearman(
            observer,
            torch.stack([r.metamer for r in results]),
            torch.stack([r.reference for r in results]),
        )
        print(
            f"{layer}: {100 * levels[0]:.0f} % of frames quiet; there the metamer is at "
            f"{levels[1]:.1f} dB, the reference at {levels[2]:.1f} dB; stft Spearman "
            f"{rho_all:.2f} on all bins, {rho_loud:.2f} on the reference's loud bins"
        )


if __name__ == "__main__":
    main()
