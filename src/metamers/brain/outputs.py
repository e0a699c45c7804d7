"""Tables and figures of a mapping run, written into one folder (the CLI and studies call these).

Internal module: reached through :func:`metamers.brain.write_encoding_outputs`
and :func:`metamers.brain.write_rsa_outputs`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metamers.brain.encoding import EncodingResult
from metamers.brain.plots import plot_best_layers, plot_layer_curves, plot_rsa, save_figure
from metamers.brain.rsa import RSAResult
from metamers.brain.selection import (
    across_participants,
    best_layer_lopo,
    best_layer_split_half,
    layer_curves,
)
from metamers.errors import ConfigError
from metamers.io import write_table


def write_encoding_outputs(
    result: EncodingResult, out: str | Path, *, roi: str | None = None
) -> dict[str, pd.DataFrame]:
    """Write an encoding's scores, layer curves, best layers and figures into ``out``.

    Files: ``scores``, ``curves`` (per participant; ``curves_roi`` per
    participant × ROI), ``curves_summary`` (mean ± SEM across participants),
    ``best_layer`` (split-half, per participant), ``best_layer_lopo`` (with 2+
    participants), ``best_layer_targets`` (per target) -- each ``.parquet`` and
    ``.csv`` -- ``splits.json``, ``encoding.json``, ``corrected_r2_by_layer.png``
    and, with ``roi``, ``corrected_r2_by_layer_roi.png`` and ``best_layer_by_roi.png``.

    Parameters
    ----------
    result
        The encoding.
    out
        Output folder.
    roi
        A target column of ROI labels.

    Returns
    -------
    dict
        The summary tables, by name.
    """
    out = Path(out)
    scores = result.scores
    if roi is not None and roi not in scores:
        raise ConfigError(f"no target column {roi!r} for ROIs (columns: {list(scores.columns)})")
    result.save(out)
    clip = result.preset.corrected_max
    score = "r2_corrected_reported" if "r2_corrected_reported" in scores else "r2_reported"
    curves = layer_curves(scores, by=("participant",), score=score, clip=clip)
    summary = across_participants(curves)
    best, per_target = best_layer_split_half(scores, result.layers, score=score, clip=clip)
    tables = {
        "curves": curves,
        "curves_summary": summary,
        "best_layer": best,
        "best_layer_targets": per_target,
    }
    if scores["participant"].nunique() > 1:
        tables["best_layer_lopo"] = best_layer_lopo(scores, result.layers, score=score, clip=clip)
    label = "noise-corrected r²" if score == "r2_corrected_reported" else "r²"
    save_figure(
        plot_layer_curves(curves, result.layers, ylabel=f"{label} (median over targets)"),
        out / "corrected_r2_by_layer.png",
    )
    if roi is not None:
        tables["curves_roi"] = layer_curves(scores, by=("participant", roi), score=score, clip=clip)
        save_figure(
            plot_layer_curves(tables["curves_roi"], result.layers, panel=roi),
            out / "corrected_r2_by_layer_roi.png",
        )
        save_figure(plot_best_layers(per_target, result.layers, roi), out / "best_layer_by_roi.png")
    for name, table in tables.items():
        write_table(table, out / name)
    return tables


def write_rsa_outputs(result: RSAResult, out: str | Path) -> dict[str, pd.DataFrame]:
    """Write an RSA's tables and its figure (``rsa_by_layer.png``) into ``out``.

    Parameters
    ----------
    result
        The RSA.
    out
        Output folder.
    """
    out = Path(out)
    result.save(out)
    save_figure(plot_rsa(result.scores, result.ceiling, result.layers), out / "rsa_by_layer.png")
    return {"rsa_summary": result.summary()}
