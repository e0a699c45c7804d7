"""Report figures: plain functions of data (DataFrames, tensors), each returning a Figure.

They know nothing about studies or stores; :mod:`metamers.report.study`
turns a study folder into the data these functions take. All use
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

PANEL = 1.9  # inches per image panel


def to_display(image: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)):
    """A ``(C, H, W)`` or ``(H, W)`` stimulus as an ``(H, W[, 3])`` float array in [0, 1].

    Parameters
    ----------
    image
        A tensor (detached and moved to the CPU) or array; a single channel is
        shown as ``(H, W)``, three channels as ``(H, W, 3)``.
    value_range
        The stimulus's valid range, mapped linearly to ``[0, 1]`` (values
        outside are clipped); ``(-1, 1)`` for waveform-like stimuli.
    """
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else image
    array = np.asarray(array, dtype=np.float32)
    low, high = value_range
    array = np.clip((array - low) / (high - low), 0.0, 1.0)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    return array


def metamer_grid(
    references: Mapping[str, torch.Tensor],
    metamers: pd.DataFrame,
    *,
    title: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """Reference next to its metamer at each layer, one row per stimulus.

    Parameters
    ----------
    references
        Stimulus id → reference image ``(C, H, W)``.
    metamers
        One row per metamer: columns ``stimulus``, ``layer``, ``image`` (a tensor)
        and optionally ``accepted`` (bool; rejected metamers get a red frame)
        and ``loss`` (the final loss); each metamer is captioned with its
        loss and ``accepted``/``rejected`` when known.
    title
        Figure title (e.g. the generating model), wrapped to the grid's width
        and kept clear of the column titles.
    value_range
        The images' valid range.
    """
    layers = list(dict.fromkeys(metamers["layer"]))
    stimuli = [s for s in references if s in set(metamers["stimulus"])]
    width = PANEL * (len(layers) + 1)
    fig, axes = plt.subplots(
        len(stimuli),
        len(layers) + 1,
        figsize=(width, PANEL * len(stimuli) + (0.5 if title else 0.0)),
        squeeze=False,
        layout="constrained",  # leaves room for the suptitle above the column titles
    )
    cells = {(row.stimulus, row.layer): row for row in metamers.itertuples(index=False)}
    for i, stimulus in enumerate(stimuli):
        _show(axes[i, 0], to_display(references[stimulus], value_range))
        axes[i, 0].set_ylabel(stimulus, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("reference", fontsize=9)
        for j, layer in enumerate(layers, start=1):
            cell = cells.get((stimulus, layer))
            axis = axes[i, j]
            if i == 0:
                axis.set_title(layer, fontsize=9)
            if cell is None:
                axis.axis("off")
                continue
            _show(axis, to_display(cell.image, value_range))
            accepted = getattr(cell, "accepted", None)
            known = accepted is not None and not pd.isna(accepted)
            if known and not accepted:
                for spine in axis.spines.values():
                    spine.set(visible=True, color="crimson", linewidth=3)
            caption = _caption(getattr(cell, "loss", None), accepted if known else None)
            if caption:
                axis.set_xlabel(caption, fontsize=7)
    if title:
        # about 7 points per character at this size: wrap rather than overflow a narrow grid
        fig.suptitle(textwrap.fill(title, max(12, int(width * 72 / 7))), fontsize=10)
    return fig


def _caption(loss, accepted: bool | None) -> str:
    """``loss 0.0123`` and/or ``accepted``/``rejected`` for a metamer's panel."""
    parts = []
    if loss is not None and not pd.isna(loss):
        parts.append(f"loss {float(loss):.3g}")
    if accepted is not None:
        parts.append("accepted" if accepted else "rejected")
    return "\n".join(parts)


def _show(axis, array: np.ndarray) -> None:
    axis.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def loss_curves(losses: pd.DataFrame, *, title: str = "") -> Figure:
    """Synthesis loss against step, one panel per generator, one colour per layer.

    Parameters
    ----------
    losses
        Long table: ``generator``, ``layer``, ``stimulus``, ``step``, ``loss``.
        Each stimulus is a thin line; the median over stimuli is thick.
    """
    generators = list(dict.fromkeys(losses["generator"]))
    fig, axes = plt.subplots(
        1, len(generators), figsize=(4.2 * len(generators), 3.2), squeeze=False
    )
    for axis, generator in zip(axes[0], generators, strict=True):
        part = losses[losses["generator"] == generator]
        for colour, (layer, rows) in zip(
            _colours(), part.groupby("layer", sort=False), strict=False
        ):
            for _, curve in rows.groupby("stimulus"):
                axis.plot(curve["step"], curve["loss"], color=colour, alpha=0.25, linewidth=0.8)
            median = rows.groupby("step")["loss"].median()
            axis.plot(median.index, median.values, color=colour, linewidth=2, label=layer)
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("loss")
        axis.set_title(generator, fontsize=10)
        axis.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _colours():
    return plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4


def null_histograms(
    null: pd.DataFrame, metamers: pd.DataFrame | None = None, *, title: str = ""
) -> Figure:
    """Null distribution of each metric per layer, with the metamers' values marked.

    Parameters
    ----------
    null
        Long table: ``layer``, ``metric``, ``value`` (one row per random pair);
        each panel's title gives its number of finite values ``n``.
    metamers
        Long table: ``layer``, ``metric``, ``value`` (one row per metamer); drawn
        as vertical lines, with the null's maximum dashed.
    """
    layers = list(dict.fromkeys(null["layer"]))
    metrics = list(dict.fromkeys(null["metric"]))
    fig, axes = plt.subplots(
        len(metrics),
        len(layers),
        figsize=(3.0 * len(layers), 2.4 * len(metrics)),
        squeeze=False,
    )
    for i, metric in enumerate(metrics):
        for j, layer in enumerate(layers):
            axis = axes[i, j]
            values = null[(null["metric"] == metric) & (null["layer"] == layer)]["value"]
            values = values[np.isfinite(values)]
            axis.hist(values, bins=40, color="0.6")
            if len(values):
                axis.axvline(values.max(), color="0.2", linestyle="--", linewidth=1)
            if metamers is not None:
                chosen = metamers[(metamers["metric"] == metric) & (metamers["layer"] == layer)]
                for value in chosen["value"]:
                    if np.isfinite(value):
                        axis.axvline(value, color="crimson", linewidth=1, alpha=0.8)
            axis.set_title(f"{layer} (n={len(values)})", fontsize=8)
            if j == 0:
                axis.set_ylabel(metric, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap_with_ci(
    table: pd.DataFrame,
    *,
    row: str,
    column: str,
    value: str = "value",
    low: str | None = "ci_low",
    high: str | None = "ci_high",
    n: str | None = "n",
    title: str = "",
    vmin: float = 0.0,
    vmax: float = 1.0,
    row_label: str | None = None,
    column_label: str | None = None,
) -> Figure:
    """Heat map of ``value`` over ``row`` × ``column``, each cell annotated with its CI and n.

    Used for recognisability (generator/layer × observer) and the
    representation-test transfer matrix. A cell reads ``0.83 / [0.61, 1.00] /
    n=6`` (one per line): the value, its CI (when ``low`` and ``high`` are
    columns of ``table``) and the number of stimuli behind it (when ``n`` is).

    Parameters
    ----------
    table
        Long table, one row per cell.
    row, column
        Columns whose values label the heat map's rows and columns.
    value, low, high, n
        Columns holding each cell's value, CI bounds and count (``None``, or a
        column the table lacks, leaves that part out of the annotation).
    title, row_label, column_label
        Axis title and labels (the labels default to ``row`` and ``column``).
    vmin, vmax
        The colour scale's range.
    """
    grid = table.pivot_table(index=row, columns=column, values=value, sort=False)
    extras = [c for c in (low, high, n) if c and c in table]
    cells = {
        (item[0], item[1]): dict(zip(extras, item[2:], strict=True))
        for item in table[[row, column, *extras]].itertuples(index=False, name=None)
    }
    show_n = bool(n) and n in extras
    height = (0.8 if show_n else 0.65) * grid.shape[0] + 2.0
    fig, axis = plt.subplots(figsize=(1.5 * grid.shape[1] + 3.0, height))
    image = axis.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=vmin, vmax=vmax)
    axis.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], rotation=30, ha="right")
    axis.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
    for i, r in enumerate(grid.index):
        for j, c in enumerate(grid.columns):
            cell = grid.iloc[i, j]
            if not np.isfinite(cell):
                continue
            found = cells.get((r, c), {})
            text = cell_text(cell, found.get(low), found.get(high), found.get(n))
            shade = (cell - vmin) / (vmax - vmin) if vmax > vmin else 0.5
            axis.text(
                j, i, text, ha="center", va="center", fontsize=7, color="k" if shade > 0.6 else "w"
            )
    fig.colorbar(image, ax=axis, shrink=0.8)
    axis.set_xlabel(column if column_label is None else column_label)
    axis.set_ylabel(row if row_label is None else row_label)
    if title:
        axis.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def cell_text(value: float, low: float | None = None, high: float | None = None, n=None) -> str:
    """A heat-map cell's annotation: ``value``, then ``[low, high]`` and ``n=N`` when known.

    Parameters
    ----------
    value
        The cell's value, shown with two decimals.
    low, high
        CI bounds; shown only when both are given and finite.
    n
        Number of observations behind the value; ``None`` or NaN leaves it out.

    Examples
    --------
    >>> print(cell_text(1.0, 1.0, 1.0, 3))
    1.00
    [1.00, 1.00]
    n=3
    """
    text = f"{value:.2f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f"\n[{low:.2f}, {high:.2f}]"
    if n is not None and not pd.isna(n):
        text += f"\nn={int(n)}"
    return text


def similarity_matrix(matrix: pd.DataFrame, *, title: str = "") -> Figure:
    """A square model × model (or layer × layer) similarity matrix, annotated.

    Parameters
    ----------
    matrix
        Square DataFrame; index and columns label the compared representations.
    """
    values = matrix.to_numpy(dtype=float)
    size = max(3.0, 0.55 * len(matrix) + 2.0)
    fig, axis = plt.subplots(figsize=(size + 0.8, size))
    image = axis.imshow(values, cmap="magma", vmin=min(0.0, np.nanmin(values)), vmax=1.0)
    axis.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(matrix.index)), matrix.index, fontsize=7)
    if len(matrix) <= 12:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                axis.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=axis, shrink=0.8)
    if title:
        axis.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
