"""Layer-wise curves and best-layer selection from an encoding's score table.

Every function starts from :func:`target_medians`: each target's median over
splits of a score at each layer, clipped (the recorded reporting rule) after
the median. Then:

- :func:`layer_curves` -- the median over targets by layer, per participant
  and/or ROI, with a bootstrap CI over targets; and the mean ± SEM across
  participants.
- :func:`best_layer_split_half` -- Tuckute, Feather et al. 2023: repeatedly
  divide each target's splits 5/5 at random, select the layer on one half
  (argmax per target, ties broken at random), read it out on the other.
- :func:`best_layer_lopo` -- Feather et al. 2023: the layer chosen on the
  mean curve of the other participants, read out on the held-out one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from metamers.errors import ConfigError

SCORE = "r2_corrected_reported"


def _score_column(scores: pd.DataFrame, score: str | None) -> str:
    column = score or (SCORE if SCORE in scores else "r2_reported")
    if column not in scores:
        raise ConfigError(f"the score table has no column {column!r}")
    return column


def score_cube(
    scores: pd.DataFrame, layers: Sequence[str], score: str | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The ``(layers, targets, splits)`` array of a score, and one row per target.

    Parameters
    ----------
    scores
        A table of :func:`~metamers.brain.encoding.fit_encoding`.
    layers
        Layer order.
    score
        Column (default ``r2_corrected_reported``, else ``r2_reported``).
    """
    column = _score_column(scores, score)
    layer_index = {name: i for i, name in enumerate(layers)}
    unknown = set(scores["layer"]) - set(layer_index)
    if unknown:
        raise ConfigError(f"scores hold layers not in the layer order: {sorted(unknown)}")
    targets = np.sort(scores["target"].unique())
    splits = np.sort(scores["split"].unique())
    cube = np.full((len(layers), len(targets), len(splits)), np.nan)
    cube[
        scores["layer"].map(layer_index).to_numpy(),
        np.searchsorted(targets, scores["target"].to_numpy()),
        np.searchsorted(splits, scores["split"].to_numpy()),
    ] = scores[column].to_numpy()
    info = _target_info(scores).set_index("target").loc[targets].reset_index()
    return cube, info


def _target_info(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per target: ``target`` and the target table's columns."""
    columns = [c for c in _meta_columns(scores) if c != "model"]
    return scores.drop_duplicates("target")[columns].reset_index(drop=True)


def _meta_columns(scores: pd.DataFrame) -> list[str]:
    known = {
        "model",
        "layer",
        "split",
        "alpha",
        "alpha_edge",
        "r",
        "r2",
        "r2_corrected",
        "data_reliability_raw",
        "data_reliability",
        "prediction_reliability_raw",
        "prediction_reliability",
        "r_reported",
        "r2_reported",
        "r2_corrected_reported",
    }
    return [c for c in scores.columns if c not in known]


def target_medians(
    scores: pd.DataFrame,
    *,
    score: str | None = None,
    clip: float | None = 1.0,
) -> pd.DataFrame:
    """Each target's median over splits at each layer, clipped at ``clip`` after the median.

    Parameters
    ----------
    scores
        A table of :func:`~metamers.brain.encoding.fit_encoding`.
    score
        Column (default ``r2_corrected_reported``).
    clip
        Upper clip (``None``: none).

    Returns
    -------
    pandas.DataFrame
        One row per target × layer: ``layer``, the target's metadata, ``value``.
    """
    column = _score_column(scores, score)
    keys = ["model", "layer", "target"]
    table = scores.groupby(keys, sort=False)[column].median().reset_index()
    table = table.rename(columns={column: "value"})
    table = table.merge(_target_info(scores), on="target", how="left")
    if clip is not None:
        table["value"] = table["value"].clip(upper=clip)
    return table


def _bootstrap_median(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple:
    if len(values) == 0:
        return np.nan, np.nan
    draws = rng.integers(0, len(values), size=(n_boot, len(values)))
    medians = np.median(values[draws], axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def layer_curves(
    scores: pd.DataFrame,
    *,
    by: Sequence[str] = ("participant",),
    score: str | None = None,
    clip: float | None = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Median over targets of the per-target medians, by layer and group, with bootstrap CIs.

    Parameters
    ----------
    scores
        A table of :func:`~metamers.brain.encoding.fit_encoding`.
    by
        Target columns to group by (e.g. ``("participant",)``, ``("participant",
        "target_roi")``); ``()`` for all targets together.
    score, clip
        As for :func:`target_medians`.
    n_boot
        Bootstrap resamples of the targets for the 95 % CI.
    seed
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        ``model, layer, *by, median, ci_low, ci_high, n_targets``.
    """
    medians = target_medians(scores, score=score, clip=clip)
    missing = [c for c in by if c not in medians]
    if missing:
        raise ConfigError(f"no target column {missing[0]!r} to group by")
    rng = np.random.default_rng(seed)
    rows = []
    keys = ["model", "layer", *by]
    for key, group in medians.groupby(keys, sort=False, dropna=True):
        values = group["value"].dropna().to_numpy()
        low, high = _bootstrap_median(values, rng, n_boot)
        rows.append(
            dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            | {
                "median": float(np.median(values)) if len(values) else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n_targets": len(values),
            }
        )
    return pd.DataFrame(rows)


def across_participants(curves: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean ± SEM across participants of per-participant layer curves.

    Parameters
    ----------
    curves
        :func:`layer_curves` grouped by ``participant`` (and ``by``).
    by
        Further grouping columns kept (e.g. an ROI column).
    """
    keys = ["model", "layer", *by]
    grouped = curves.groupby(keys, sort=False)["median"]
    out = grouped.agg(["mean", "sem", "count"]).reset_index()
    return out.rename(columns={"count": "n_participants"})


def best_layer_split_half(
    scores: pd.DataFrame,
    layers: Sequence[str],
    *,
    n_repeats: int = 10,
    seed: int = 0,
    score: str | None = None,
    clip: float | None = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published split-half best-layer selection (Tuckute, Feather et al. 2023).

    ``n_repeats`` times: each target's splits are divided at random into two
    halves; the median over the first half selects the layer (argmax, ties
    broken at random), the median over the second is read out there and
    clipped; the median over targets within each participant is averaged
    over repeats.

    Parameters
    ----------
    scores
        A table of :func:`~metamers.brain.encoding.fit_encoding` (one model).
    layers
        Layer order.
    n_repeats
        Random divisions.
    seed
        Seed of the divisions and the tie-breaking.
    score, clip
        As for :func:`target_medians`.

    Returns
    -------
    tuple of pandas.DataFrame
        Per participant: ``participant, value`` (mean over repeats) and
        ``value_sem_repeats``; per target: the layer chosen most often
        (``best_layer``) with the target's metadata, for best-layer maps.
    """
    cube, info = score_cube(scores, layers, score)
    n_layers, n_targets, n_splits = cube.shape
    if n_splits < 2:
        raise ConfigError("split-half selection needs at least 2 splits")
    rng = np.random.default_rng(seed)
    participants = info["participant"].astype(str).to_numpy() if "participant" in info else None
    if participants is None:
        participants = np.full(n_targets, "all")
    chosen_counts = np.zeros((n_targets, n_layers), dtype=int)
    per_repeat = []
    half = n_splits // 2
    for _ in range(n_repeats):
        order = np.argsort(rng.random((n_targets, n_splits)), axis=1)
        pick = np.take_along_axis(cube, order[None, :, :half], axis=2)
        read = np.take_along_axis(cube, order[None, :, half:], axis=2)
        select = np.nanmedian(pick, axis=2)
        readout = np.nanmedian(read, axis=2)
        best = _argmax_random_ties(select, rng)
        chosen_counts[np.arange(n_targets), best] += 1
        value = readout[best, np.arange(n_targets)]
        if clip is not None:
            value = np.minimum(value, clip)
        frame = pd.DataFrame({"participant": participants, "value": value})
        per_repeat.append(frame.groupby("participant")["value"].median())
    stacked = pd.concat(per_repeat, axis=1)
    summary = pd.DataFrame(
        {
            "participant": stacked.index,
            "value": stacked.mean(axis=1).to_numpy(),
            "value_sem_repeats": stacked.sem(axis=1).to_numpy() if n_repeats > 1 else np.nan,
        }
    )
    per_target = info.copy()
    per_target["best_layer"] = [layers[i] for i in chosen_counts.argmax(1)]
    per_target["best_layer_index"] = chosen_counts.argmax(1)
    return summary, per_target


def _argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per column, the row of the largest value; ties (and all-NaN columns) at random."""
    filled = np.where(np.isnan(values), -np.inf, values)
    top = filled == filled.max(axis=0, keepdims=True)
    priority = np.where(top, rng.random(values.shape), -1.0)
    return priority.argmax(axis=0)


def best_layer_lopo(
    scores: pd.DataFrame,
    layers: Sequence[str],
    *,
    score: str | None = None,
    clip: float | None = 1.0,
) -> pd.DataFrame:
    """Leave-one-participant-out best layer (Feather et al. 2023).

    For each participant, the layer with the largest mean (over the other
    participants) of the median over targets of each target's median over
    splits is read out on the held-out participant.

    Parameters
    ----------
    scores
        A table of :func:`~metamers.brain.encoding.fit_encoding` (one model),
        with at least two participants.
    layers
        Layer order.
    score, clip
        As for :func:`target_medians`.

    Returns
    -------
    pandas.DataFrame
        ``participant, best_layer, value`` (the held-out participant's median at it).
    """
    medians = target_medians(scores, score=score, clip=clip)
    if "participant" not in medians or medians["participant"].nunique() < 2:
        raise ConfigError("leave-one-participant-out selection needs at least 2 participants")
    curve = medians.groupby(["participant", "layer"])["value"].median().unstack("layer")
    curve = curve.reindex(columns=list(layers))
    rows = []
    for participant in curve.index:
        others = curve.drop(index=participant).mean(axis=0)
        best = str(others.idxmax())
        rows.append(
            {
                "participant": participant,
                "best_layer": best,
                "value": float(curve.loc[participant, best]),
            }
        )
    return pd.DataFrame(rows)
