"""Does recognition of a model's metamers by other models predict human recognition?

Feather et al. (2023) found that how well *other* networks recognise a
generating model's metamers, per (model, layer), predicts how well humans
recognise them (vision R² ≈ 0.90). These pure functions on
:class:`pandas.DataFrame` tables reproduce that analysis: aggregate
network–network recognition per (model, layer), join it with a human table and
report Spearman's ρ and the R² of a least-squares line, each with a seeded
percentile-bootstrap confidence interval over (model, layer) conditions.

The bundled example table ``human_recognition_resnet50.csv`` holds the
published human recognition of the standard ResNet50's metamers (approximate
values read from the paper's summary; see its ``source`` column).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from metamers.errors import ConfigError

EXAMPLE_HUMAN_TABLE = "human_recognition_resnet50.csv"
KEYS: tuple[str, str] = ("model", "layer")


def load_human_recognition(path: str | Path | None = None) -> pd.DataFrame:
    """Read a human recognition table (default: the bundled ResNet50 example).

    The table needs columns ``model``, ``layer`` and ``human_recognition``
    (proportion correct in ``[0, 1]``); other columns are kept.

    Parameters
    ----------
    path
        A CSV file; ``None`` reads the bundled :data:`EXAMPLE_HUMAN_TABLE`.

    Returns
    -------
    pandas.DataFrame
        The table as read.

    Raises
    ------
    ConfigError
        The file does not exist, lacks a required column, or has a missing or
        out-of-range ``human_recognition`` value.
    """
    if path is None:
        bundled = resources.files("metamers").joinpath(f"data/{EXAMPLE_HUMAN_TABLE}")
        with bundled.open("r") as handle:
            table = pd.read_csv(handle)
    else:
        if not Path(path).is_file():
            raise ConfigError(f"human recognition table {path} does not exist")
        table = pd.read_csv(path)
    _require_columns(table, [*KEYS, "human_recognition"], "human recognition table")
    values = table["human_recognition"]
    if values.isna().any() or not values.between(0, 1).all():
        raise ConfigError("human_recognition must be proportions in [0, 1] with no gaps")
    return table


SCORE_COLUMNS: tuple[str, ...] = (
    "correct",
    "correct_vs_label",
    "correct_vs_label_mean",
    "agrees_with_reference",
    "agrees_with_reference_mean",
)
"""Score columns :func:`other_model_recognition` looks for, in order, when none is named:
``correct`` of a hand-made table, then the measures of the package's own ``recognition``
(per stimulus) and ``recognition_summary`` (``{measure}_mean``) tables."""


def other_model_recognition(
    table: pd.DataFrame,
    *,
    score: str | None = None,
    generator: str | None = None,
    recogniser: str | None = None,
    exclude_self: bool = True,
) -> pd.DataFrame:
    """Mean recognition of each (generating model, layer)'s metamers by the other models.

    Reads the package's own tables as they are: ``recognition_summary``
    (``generator, layer, observer, {measure}_mean, {measure}_n``) and
    ``recognition`` (one row per stimulus and observer), as well as a hand-made
    ``model, layer, recogniser, correct`` table.

    Parameters
    ----------
    table
        One row per trial (``score`` 0/1) or per condition (``score`` a proportion),
        with columns ``generator``, ``layer``, ``recogniser`` and ``score``.
    score
        Column with correctness or accuracy (default: the first of
        :data:`SCORE_COLUMNS` present with any value).
    generator, recogniser
        Columns naming the model that made the metamer and the model that classified
        it (default: ``generator``/``observer`` where present, else ``model``/``recogniser``).
    exclude_self
        Leave out a model's recognition of its own metamers (trivially high).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``layer``, ``model_recognition`` (mean over recognisers,
        each recogniser weighted equally), ``n_recognisers``, ``n_items`` (trials,
        or the summed ``{score}_n`` of a summary; missing when unknown) and ``score``
        (the column used).
    """
    generator = generator or ("generator" if "generator" in table else "model")
    recogniser = recogniser or ("observer" if "observer" in table else "recogniser")
    score = score or _score_column(table)
    _require_columns(table, [generator, "layer", recogniser, score], "recognition table")
    rows = table[table[generator] != table[recogniser]] if exclude_self else table
    rows = rows.dropna(subset=[score])
    if rows.empty:
        raise ConfigError(
            f"no recognition by other models in {score!r}: every row is a model on its own "
            "metamers or has no value"
        )
    keys = [generator, "layer", recogniser]
    counts = f"{score.removesuffix('_mean')}_n" if score.endswith("_mean") else None
    grouped = rows.groupby(keys, sort=False)
    per_recogniser = grouped[score].mean().to_frame("score")
    if counts is not None and counts in rows:
        per_recogniser["items"] = grouped[counts].sum()
    elif counts is None:
        per_recogniser["items"] = grouped[score].size()
    by_condition = per_recogniser.groupby(level=[0, 1], sort=False)
    summary = by_condition["score"].agg(["mean", "size"])
    if "items" in per_recogniser:
        summary["n_items"] = by_condition["items"].sum().astype("int64")
    summary = summary.reset_index().rename(
        columns={generator: "model", "mean": "model_recognition", "size": "n_recognisers"}
    )
    return summary.assign(score=score)


def _score_column(table: pd.DataFrame) -> str:
    for column in SCORE_COLUMNS:
        if column in table and table[column].notna().any():
            return column
    raise ConfigError(
        f"recognition table has no score column (one of {list(SCORE_COLUMNS)} with values); "
        f"it has {list(table.columns)}"
    )


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (``nan`` when either variable is constant).

    Parameters
    ----------
    x, y
        Paired values, one per condition, of equal length.
    """
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def linear_r2(x: np.ndarray, y: np.ndarray) -> float:
    """R² of the least-squares line predicting ``y`` from ``x`` (``nan`` when either is constant).

    Parameters
    ----------
    x
        The predictor (e.g. model recognition), one value per condition.
    y
        The predicted values (e.g. human recognition), paired with ``x``.
    """
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.linregress(x, y).rvalue ** 2)


def correlate_with_human(
    model_scores: pd.DataFrame,
    human: pd.DataFrame,
    *,
    model_column: str = "model_recognition",
    human_column: str = "human_recognition",
    keys: Sequence[str] = KEYS,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman ρ and linear-fit R² between model and human recognition, with bootstrap CIs.

    Parameters
    ----------
    model_scores
        Per-condition model recognition, e.g. from :func:`other_model_recognition`,
        or the package's own ``recognition_summary``/``recognition`` table (passed
        through :func:`other_model_recognition` first).
    human
        Per-condition human recognition, e.g. from :func:`load_human_recognition`.
    model_column, human_column
        The two columns to relate.
    keys
        Columns identifying a condition; the tables are inner-joined on them.
    n_boot
        Bootstrap resamples of the conditions (with replacement).
    ci
        Confidence level of the percentile intervals.
    seed
        Seed of the resampling.

    Returns
    -------
    pandas.DataFrame
        Index ``statistic`` (``spearman_rho``, ``r2``); columns ``estimate``,
        ``ci_low``, ``ci_high``, ``n_conditions`` and ``n_boot_valid`` (resamples
        where the statistic was defined).
    """
    if not 0 < ci < 1:
        raise ConfigError(f"ci must be between 0 and 1, got {ci}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    if model_column not in model_scores and {"layer", "observer"} <= set(model_scores.columns):
        model_scores = other_model_recognition(model_scores)
    joined = _join(model_scores, human, model_column, human_column, list(keys))
    x = joined[model_column].to_numpy(dtype=np.float64)
    y = joined[human_column].to_numpy(dtype=np.float64)
    resamples = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    rows = {}
    for name, statistic in (("spearman_rho", spearman_rho), ("r2", linear_r2)):
        boot = np.array([statistic(x[index], y[index]) for index in resamples])
        valid = boot[np.isfinite(boot)]
        tail = 100 * (1 - ci) / 2
        low, high = np.percentile(valid, [tail, 100 - tail]) if valid.size else (np.nan, np.nan)
        rows[name] = {
            "estimate": statistic(x, y),
            "ci_low": float(low),
            "ci_high": float(high),
            "n_conditions": len(x),
            "n_boot_valid": int(valid.size),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("statistic")


def _join(
    model_scores: pd.DataFrame,
    human: pd.DataFrame,
    model_column: str,
    human_column: str,
    keys: list[str],
) -> pd.DataFrame:
    _require_columns(model_scores, [*keys, model_column], "model table")
    _require_columns(human, [*keys, human_column], "human table")
    for table, what in ((model_scores, "model table"), (human, "human table")):
        if table.duplicated(subset=keys).any():
            raise ConfigError(f"{what} has several rows for one {'/'.join(keys)}; aggregate first")
    joined = model_scores[[*keys, model_column]].merge(
        human[[*keys, human_column]], on=keys, how="inner"
    )
    joined = joined.dropna(subset=[model_column, human_column])
    if len(joined) < 3:
        raise ConfigError(
            f"only {len(joined)} (model, layer) conditions appear in both tables; need at least 3 "
            f"(check that the {'/'.join(keys)} names match)"
        )
    return joined


def _require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ConfigError(f"{what} lacks column(s) {missing}; it has {list(table.columns)}")
