"""Figures of brain mapping: plain functions of result tables, each returning a Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def _layer_axis(ax, layers: Sequence[str]) -> None:
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layer")


def plot_layer_curves(
    curves: pd.DataFrame,
    layers: Sequence[str],
    *,
    panel: str | None = None,
    ylabel: str = "noise-corrected r² (median over targets)",
    title: str = "",
) -> Figure:
    """Score by layer: one thin line (with its 95 % CI) per participant, their mean ± SEM thick.

    Parameters
    ----------
    curves
        :func:`metamers.brain.selection.layer_curves` grouped by ``participant``
        (and ``panel``), one or more models.
    layers
        Layer order.
    panel
        A column drawn as one panel per value (e.g. an ROI column).
    ylabel, title
        Labels.
    """
    values = [None] if panel is None else list(pd.unique(curves[panel].dropna()))
    fig, axes = plt.subplots(
        1, len(values), figsize=(4.2 * len(values), 3.6), squeeze=False, sharey=True
    )
    order = {name: i for i, name in enumerate(layers)}
    for ax, value in zip(axes[0], values, strict=True):
        part = curves if value is None else curves[curves[panel] == value]
        for number, (model, group) in enumerate(part.groupby("model", sort=False)):
            colour = f"C{number}"
            for _, person in group.groupby("participant"):
                person = person.sort_values("layer", key=lambda s: s.map(order))
                x = person["layer"].map(order).to_numpy()
                ax.plot(x, person["median"], color=colour, alpha=0.25, lw=0.8)
                ax.fill_between(x, person["ci_low"], person["ci_high"], color=colour, alpha=0.06)
            mean = group.groupby("layer")["median"].agg(["mean", "sem"]).reindex(list(layers))
            ax.errorbar(
                range(len(layers)),
                mean["mean"],
                yerr=mean["sem"].fillna(0),
                color=colour,
                lw=2,
                capsize=2,
                label=str(model),
            )
        _layer_axis(ax, layers)
        ax.set_title(str(value) if value is not None else title, fontsize=9)
        ax.axhline(0, color="0.7", lw=0.5)
    axes[0][0].set_ylabel(ylabel, fontsize=8)
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_best_layers(per_target: pd.DataFrame, layers: Sequence[str], roi: str) -> Figure:
    """Best-layer map by ROI: the fraction of each ROI's targets whose best layer is each layer.

    Parameters
    ----------
    per_target
        The per-target table of :func:`~metamers.brain.selection.best_layer_split_half`.
    layers
        Layer order.
    roi
        The ROI column.
    """
    table = per_target.dropna(subset=[roi])
    counts = pd.crosstab(table[roi].astype(str), table["best_layer"]).reindex(
        columns=list(layers), fill_value=0
    )
    fractions = counts.div(counts.sum(axis=1), axis=0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(layers), 0.6 + 0.4 * len(fractions)))
    image = ax.imshow(fractions.to_numpy(), aspect="auto", cmap="viridis", vmin=0)
    ax.set_yticks(range(len(fractions)))
    ax.set_yticklabels(fractions.index, fontsize=8)
    _layer_axis(ax, layers)
    fig.colorbar(image, ax=ax, label="fraction of targets")
    ax.set_title("best layer by ROI", fontsize=9)
    fig.tight_layout()
    return fig


def plot_rsa(
    scores: pd.DataFrame, ceiling: pd.DataFrame, layers: Sequence[str], *, title: str = ""
) -> Figure:
    """RSA by layer (mean over participants of the median over splits, ± SEM) and the ceiling band.

    Parameters
    ----------
    scores
        :attr:`metamers.brain.rsa.RSAResult.scores` (one or more models).
    ceiling
        :attr:`~metamers.brain.rsa.RSAResult.ceiling`.
    layers
        Layer order.
    title
        Figure title.
    """
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for number, (model, group) in enumerate(scores.groupby("model", sort=False)):
        per = group.groupby(["participant", "layer"])["rsa_test"].median().unstack("layer")
        per = per.reindex(columns=list(layers))
        ax.errorbar(
            range(len(layers)),
            per.mean(axis=0),
            yerr=per.sem(axis=0).fillna(0),
            color=f"C{number}",
            lw=2,
            capsize=2,
            label=str(model),
        )
    if not ceiling.empty:
        per = ceiling.groupby("participant")[["ceiling_lower", "ceiling_upper"]].median()
        low, high = float(per["ceiling_lower"].mean()), float(per["ceiling_upper"].mean())
        ax.axhspan(low, high, color="0.5", alpha=0.25, label="noise ceiling")
    _layer_axis(ax, layers)
    ax.set_ylabel("model–brain RDM correlation (test)", fontsize=8)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path) -> None:
    """Save ``fig`` as PNG atomically and close it.

    Parameters
    ----------
    fig
        The figure.
    path
        Destination ``.png``.
    """
    from metamers.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
