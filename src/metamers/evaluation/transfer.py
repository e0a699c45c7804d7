"""Transfer matrices: generator × generation layer × observer, for recognisability and
the representation test, as tidy tables, pivoted matrices and heat maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from metamers.decisions import LabelSpace
from metamers.evaluation.recognition import recognition_table, summarize_recognition
from metamers.evaluation.representation import (
    representation_table,
    summarize_representation,
)
from metamers.io import write_table
from metamers.models import PixelModel
from metamers.null.criterion import NullCriterion
from metamers.null.distribution import NullDistribution
from metamers.synthesis.results import MetamerResult
from metamers.validation import check_generator_weights


@dataclass
class TransferResults:
    """Every table of a cross-model evaluation.

    Attributes
    ----------
    recognition
        One row per metamer × observer (see :func:`recognition_table`).
    recognition_summary
        Accuracy with CIs per generator × layer × observer.
    representation
        One row per metamer × observer layer (empty without a representation test).
    representation_summary
        Pass fraction with CIs and p-values per generator × layer × observer × observer layer.
    """

    recognition: pd.DataFrame
    recognition_summary: pd.DataFrame
    representation: pd.DataFrame = field(default_factory=pd.DataFrame)
    representation_summary: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, folder: str | Path) -> list[Path]:
        """Write every non-empty table as Parquet and CSV (atomically); return the paths.

        Parameters
        ----------
        folder
            The folder written into (created if missing); each table ``NAME`` becomes
            ``NAME.parquet`` and ``NAME.csv``.

        Returns
        -------
        list of Path
            The files written.
        """
        folder = Path(folder)
        written = []
        for name in (
            "recognition",
            "recognition_summary",
            "representation",
            "representation_summary",
        ):
            table: pd.DataFrame = getattr(self, name)
            if table.empty:
                continue
            written += write_table(table, folder / name)
        return written


def evaluate_transfer(
    results: Sequence[MetamerResult],
    observers: Sequence[PixelModel],
    *,
    generators: dict[str, PixelModel] | None = None,
    targets: dict[str, int | None] | None = None,
    nulls: dict[str, NullDistribution] | None = None,
    observer_layers: dict[str, Sequence[str]] | None = None,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> TransferResults:
    """Recognisability (and, given nulls, the representation test) of metamers by observers.

    Parameters
    ----------
    results
        The metamers (typically the accepted ones).
    observers
        Observer models.
    generators
        Generating models by name (to label references for ``correct_vs_generator``).
    targets
        True label per stimulus id.
    nulls
        Null distribution per observer name; observers with a null get the representation test.
    observer_layers
        Observer layers to test per observer name (default: every layer of its null).
    labels
        Label space of every decision (default ``LabelSpace()``: 16-way for
        ImageNet models, as published).
    criterion
        How the representation test meets the null (default ``NullCriterion()``).
    n_boot, seed
        Bootstrap settings for the CIs.

    Raises
    ------
    ConfigError
        A generator whose weights differ from the ones recorded with its metamers.
    """
    for generator in (generators or {}).values():
        check_generator_weights(results, generator)
    recognition = recognition_table(results, observers, generators, targets=targets, labels=labels)
    representation = [
        representation_table(
            results,
            observer,
            nulls[observer.name],
            (observer_layers or {}).get(observer.name),
            criterion=criterion,
        )
        for observer in observers
        if nulls and observer.name in nulls
    ]
    representation_frame = (
        pd.concat(representation, ignore_index=True) if representation else pd.DataFrame()
    )
    return TransferResults(
        recognition=recognition,
        recognition_summary=summarize_recognition(recognition, n_boot=n_boot, seed=seed),
        representation=representation_frame,
        representation_summary=summarize_representation(
            representation_frame, n_boot=n_boot, seed=seed
        ),
    )


def transfer_matrix(
    summary: pd.DataFrame, value: str, *, columns: str = "observer"
) -> pd.DataFrame:
    """Pivot a summary to rows ``generator / layer`` × columns (observer or observer layer).

    Parameters
    ----------
    summary
        A summary table with ``generator`` and ``layer`` columns, e.g.
        :attr:`TransferResults.recognition_summary`.
    value
        The column that fills the cells, e.g. ``"agrees_with_reference_mean"``.
    columns
        The column whose values become the matrix columns (``"observer"`` or
        ``"observer_layer"``).

    Returns
    -------
    pandas.DataFrame
        Rows ``"generator / layer"`` in order of first appearance; empty for an
        empty summary.
    """
    if summary.empty:
        return pd.DataFrame()
    frame = summary.assign(row=summary["generator"] + " / " + summary["layer"])
    order = list(dict.fromkeys(frame["row"]))
    matrix = frame.pivot_table(index="row", columns=columns, values=value, sort=False)
    return matrix.reindex(order)


def plot_transfer_heatmap(
    matrix: pd.DataFrame,
    *,
    title: str,
    low: pd.DataFrame | None = None,
    high: pd.DataFrame | None = None,
    n: pd.DataFrame | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
):
    """A heat map of a transfer matrix, each cell annotated with value, CI and n when given.

    ``low``, ``high`` and ``n`` are matrices shaped like ``matrix`` (CI bounds and
    the number of stimuli behind each value); a cell then reads
    ``0.83 / [0.61, 1.00] / n=6``, one per line.

    Parameters
    ----------
    matrix
        The values, e.g. from :func:`transfer_matrix`; NaN cells stay blank.
    title
        The figure title.
    low, high
        Lower and upper CI bounds per cell (both or neither are shown).
    n
        Number of stimuli behind each cell.
    vmin, vmax
        The range of the colour scale.

    Returns
    -------
    matplotlib.figure.Figure
        The heat map (built without pyplot).
    """
    row_height = 0.55 if n is None else 0.7
    if n is not None:
        n = n.reindex(index=matrix.index, columns=matrix.columns)
    fig = Figure(
        figsize=(1.6 + 1.3 * max(1, matrix.shape[1]), 1.0 + row_height * max(1, matrix.shape[0]))
    )
    ax = fig.subplots()
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=35, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index])
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            value = matrix.iat[i, j]
            if np.isnan(value):
                continue
            text = f"{value:.2f}"
            if low is not None and high is not None:
                text += f"\n[{low.iat[i, j]:.2f}, {high.iat[i, j]:.2f}]"
            if n is not None and not np.isnan(n.iat[i, j]):
                text += f"\nn={int(n.iat[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < (vmin + vmax) / 2 else "black",
            )
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def recognition_heatmap(summary: pd.DataFrame, measure: str = "agrees_with_reference"):
    """Heat map of recognisability (``measure`` mean, CI and n) per generator layer × observer.

    Parameters
    ----------
    summary
        :attr:`TransferResults.recognition_summary`.
    measure
        ``"agrees_with_reference"``, ``"correct_vs_label"`` or
        ``"correct_vs_generator"``.

    Returns
    -------
    matplotlib.figure.Figure
        The heat map.
    """
    count = f"{measure}_n"
    return plot_transfer_heatmap(
        transfer_matrix(summary, f"{measure}_mean"),
        title=f"Recognisability ({measure.replace('_', ' ')})",
        low=transfer_matrix(summary, f"{measure}_ci_low"),
        high=transfer_matrix(summary, f"{measure}_ci_high"),
        n=transfer_matrix(summary, count) if count in summary else None,
    )


def representation_heatmap(summary: pd.DataFrame, observer: str):
    """Heat map of representation-test pass fractions (CI and n) for one observer's layers.

    Parameters
    ----------
    summary
        :attr:`TransferResults.representation_summary`.
    observer
        The observer whose layers form the columns.

    Returns
    -------
    matplotlib.figure.Figure
        The heat map.
    """
    part = summary[summary["observer"] == observer]
    return plot_transfer_heatmap(
        transfer_matrix(part, "pass_fraction", columns="observer_layer"),
        title=f"Representation test: metameric for {observer}?",
        low=transfer_matrix(part, "ci_low", columns="observer_layer"),
        high=transfer_matrix(part, "ci_high", columns="observer_layer"),
        n=transfer_matrix(part, "n", columns="observer_layer") if "n" in part else None,
    )
