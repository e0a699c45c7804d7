"""Figures for null distributions and metamer validation (matplotlib, no pyplot state).

Figures are built with :class:`matplotlib.figure.Figure` directly, so they
work headless (Agg) and never touch a global figure manager; save them with
``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from metamers.null.distribution import NullDistribution
from metamers.similarity.metrics import SIMILARITY_METRICS

METRIC_LABELS = {"spearman": "Spearman ρ", "pearson": "Pearson r", "snr_db": "SNR (dB)"}


def plot_null_histograms(
    null: NullDistribution,
    metamer_values: pd.DataFrame | None = None,
    *,
    layers: Sequence[str] | None = None,
    metrics: Sequence[str] = SIMILARITY_METRICS,
    bins: int = 50,
) -> Figure:
    """Histogram of the null per layer (rows) and metric (columns), metamers marked.

    Parameters
    ----------
    null
        The null distribution.
    metamer_values
        Optional tidy table with ``layer`` (or ``measured_layer``), ``metric``
        and ``value`` columns (e.g. from :func:`similarity_matrix`) or the wide
        table from :func:`accept` (``layer`` plus one column per metric);
        each value is drawn as a vertical line.
    layers, metrics
        Subsets to draw (default: all of the null's layers, the three metrics).
    bins
        Histogram bins.

    Returns
    -------
    matplotlib.figure.Figure
    """
    layers = list(layers or null.layers)
    marks = _tidy_marks(metamer_values)
    fig = Figure(figsize=(3.2 * len(metrics), 2.2 * len(layers)), layout="constrained")
    axes = fig.subplots(len(layers), len(metrics), squeeze=False)
    for row, layer in enumerate(layers):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            column = null.column(layer, metric)
            ax.hist(column[np.isfinite(column)], bins=bins, color="0.6")
            ax.axvline(column.max(), color="k", linestyle="--", linewidth=1, label="null max")
            if marks is not None:
                here = marks[(marks["layer"] == layer) & (marks["metric"] == metric)]
                for value in here["value"]:
                    ax.axvline(value, color="tab:red", alpha=0.6, linewidth=1)
            ax.set_title(f"{layer} · {METRIC_LABELS.get(metric, metric)}", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{null.model}: {null.describe()}", fontsize=9)
    return fig


def _tidy_marks(values: pd.DataFrame | None) -> pd.DataFrame | None:
    if values is None or values.empty:
        return None
    if {"metric", "value"} <= set(values.columns):
        layer_column = "measured_layer" if "measured_layer" in values.columns else "layer"
        return values.rename(columns={layer_column: "layer"})[["layer", "metric", "value"]]
    present = [m for m in SIMILARITY_METRICS if m in values.columns]
    return values.melt(id_vars=["layer"], value_vars=present, var_name="metric")


def plot_similarity_matrix(matrix: pd.DataFrame, metric: str = "spearman") -> Figure:
    """Generation layer × measured layer heat map of the median similarity.

    Cells where the median exceeds the null maximum are marked with ``*``.

    Parameters
    ----------
    matrix
        Output of :func:`metamers.validation.similarity_matrix`.
    metric
        Which metric to draw.
    """
    data = matrix[matrix["metric"] == metric]
    generation = list(dict.fromkeys(data["generation_layer"]))
    measured = list(dict.fromkeys(data["measured_layer"]))
    grid = data.groupby(["generation_layer", "measured_layer"])["value"].median()
    null_max = data.groupby("measured_layer")["null_max"].first()
    image = np.array([[grid.get((g, m), np.nan) for m in measured] for g in generation])
    fig = Figure(figsize=(1.0 + 0.8 * len(measured), 1.0 + 0.6 * len(generation)))
    ax = fig.subplots()
    shown = ax.imshow(image, cmap="viridis", aspect="auto")
    fig.colorbar(shown, ax=ax, label=METRIC_LABELS.get(metric, metric))
    for i in range(len(generation)):
        for j, m in enumerate(measured):
            if np.isfinite(image[i, j]) and image[i, j] > null_max[m]:
                ax.text(j, i, "*", ha="center", va="center", color="w")
    ax.set_xticks(range(len(measured)), measured, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(generation)), generation, fontsize=7)
    ax.set_xlabel("measured layer")
    ax.set_ylabel("generation layer")
    return fig
