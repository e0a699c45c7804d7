"""Human recognition from exported trials: exclusions, proportion correct with CIs, the comparison.

Participants are excluded as the configuration says (incomplete sessions,
failed screening, catch trials below ``exclusions.catch_min``); each kept
participant's proportion correct per condition on main, non-catch trials is
averaged over participants, with a seeded percentile bootstrap over
participants. The per-(model, layer) table has the columns of
:func:`metamers.evaluation.human.load_human_recognition`, so it can be the
``evaluation.human`` table of a study, and it is related to other models'
recognition with :func:`metamers.evaluation.human.correlate_with_human`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamers.io import write_table

__all__ = ["HumanAnalysis", "analyze", "exclusions", "recognition_by_condition"]


@dataclass
class HumanAnalysis:
    """What :func:`analyze` found.

    Attributes
    ----------
    participants
        Every participant with ``catch_correct``, ``excluded`` and ``reason``.
    by_condition
        Per condition: ``model, layer, condition, human_recognition, ci_low,
        ci_high, n_participants, n_trials``.
    correlation
        Spearman ρ and R² with other models' recognition (``None`` without a
        model table).
    figures
        Files written.
    """

    participants: pd.DataFrame
    by_condition: pd.DataFrame
    correlation: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)


def exclusions(trials: pd.DataFrame, participants: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Mark the participants the analysis leaves out, and why.

    Parameters
    ----------
    trials, participants
        The exported tables.
    config
        The experiment configuration (``exclusions`` block).

    Returns
    -------
    pandas.DataFrame
        ``participants`` with ``catch_correct`` (proportion), ``excluded`` and ``reason``.
    """
    rules = config["exclusions"]
    catch = trials[(trials["phase"] == "main") & trials["catch"].astype(bool)]
    catch_score = catch.groupby("participant_id")["correct"].mean()
    table = participants.copy()
    table["catch_correct"] = table["participant_id"].map(catch_score)
    reasons = []
    for row in table.itertuples(index=False):
        reason = ""
        if rules["require_screening"] and row.status == "screened_out":
            reason = "failed screening"
        elif rules["require_complete"] and row.status != "complete":
            reason = "incomplete"
        elif pd.notna(row.catch_correct) and row.catch_correct < rules["catch_min"]:
            reason = f"catch trials {row.catch_correct:.2f} < {rules['catch_min']}"
        reasons.append(reason)
    table["reason"] = reasons
    table["excluded"] = table["reason"] != ""
    return table


def recognition_by_condition(
    trials: pd.DataFrame,
    kept: list[str],
    conditions: list[dict[str, str]],
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Proportion correct per condition: mean over participants, bootstrap CI over participants.

    Parameters
    ----------
    trials
        The exported trial table.
    kept
        Participant ids to include.
    conditions
        The bundle's conditions (``name, model, layer``), in display order.
    n_boot, ci, seed
        The percentile bootstrap over participants.
    """
    main = trials[
        (trials["phase"] == "main")
        & ~trials["catch"].astype(bool)
        & trials["participant_id"].isin(kept)
    ]
    per = main.groupby(["condition", "participant_id"])["correct"].mean().unstack("condition")
    rng = np.random.default_rng(seed)
    rows = []
    for condition in conditions:
        name = condition["name"]
        scores = per[name].dropna().to_numpy(float) if name in per else np.zeros(0)
        low = high = estimate = float("nan")
        if scores.size:
            estimate = float(scores.mean())
            draws = rng.integers(0, scores.size, size=(n_boot, scores.size))
            boot = scores[draws].mean(axis=1)
            tail = 100 * (1 - ci) / 2
            low, high = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
        rows.append(
            {
                "model": condition["model"],
                "layer": condition["layer"],
                "condition": name,
                "human_recognition": estimate,
                "ci_low": low,
                "ci_high": high,
                "n_participants": int(scores.size),
                "n_trials": int((main["condition"] == name).sum()),
            }
        )
    return pd.DataFrame(rows)


def analyze(
    trials: pd.DataFrame,
    participants: pd.DataFrame,
    manifest: dict[str, Any],
    out: str | Path,
    *,
    model_recognition: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> HumanAnalysis:
    """Exclusions, recognition per (model, layer) with CIs, the model comparison, figures.

    Parameters
    ----------
    trials, participants
        The exported tables (:func:`metamers.experiments.export_tables`).
    manifest
        The bundle manifest (conditions, configuration, choices).
    out
        Folder for ``participants_analyzed``, ``human_recognition`` (tables),
        ``human_vs_models`` and ``figures/*.png``.
    model_recognition
        A ``recognition_summary`` or ``recognition`` table of ``metamers
        evaluate`` (other models' recognition of the same metamers), or ``None``.
    n_boot, seed
        Bootstrap resamples and seed.

    Returns
    -------
    HumanAnalysis
        The tables and the figure files.
    """
    from metamers.evaluation.human import correlate_with_human, other_model_recognition

    out = Path(out)
    marked = exclusions(trials, participants, manifest["config"])
    kept = marked.loc[~marked["excluded"], "participant_id"].tolist()
    by_condition = recognition_by_condition(
        trials, kept, manifest["conditions"], n_boot=n_boot, seed=seed
    )
    write_table(marked, out / "participants_analyzed")
    write_table(by_condition, out / "human_recognition")
    result = HumanAnalysis(marked, by_condition)
    chance = 1 / max(1, len(manifest["choices"]))
    result.figures.append(_recognition_figure(by_condition, chance, out / "figures"))
    if model_recognition is not None:
        models = other_model_recognition(model_recognition)
        human = by_condition[by_condition["model"] != ""].dropna(subset=["human_recognition"])
        result.correlation = correlate_with_human(models, human, n_boot=n_boot, seed=seed)
        write_table(result.correlation.reset_index(), out / "human_vs_models")
        joined = models.merge(human, on=["model", "layer"])
        result.figures.append(_scatter_figure(joined, result.correlation, out / "figures"))
    return result


def _recognition_figure(table: pd.DataFrame, chance: float, folder: Path) -> Path:
    from matplotlib.figure import Figure

    from metamers.io import atomic_path

    figure = Figure(figsize=(max(4.0, 0.7 * len(table) + 1.5), 3.2))
    axis = figure.subplots()
    x = np.arange(len(table))
    values = table["human_recognition"].to_numpy(float)
    errors = np.vstack(
        [values - table["ci_low"].to_numpy(float), table["ci_high"].to_numpy(float) - values]
    )
    axis.bar(x, values, color="#4c72b0")
    axis.errorbar(x, values, yerr=np.nan_to_num(errors), fmt="none", color="black", capsize=3)
    axis.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    axis.set_xticks(x, [str(c) for c in table["condition"]], rotation=45, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("proportion correct")
    axis.set_title("Human recognition (95% bootstrap CI over participants)")
    axis.legend(frameon=False)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "human_recognition.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return path


def _scatter_figure(joined: pd.DataFrame, correlation: pd.DataFrame, folder: Path) -> Path:
    from matplotlib.figure import Figure

    from metamers.io import atomic_path

    figure = Figure(figsize=(4, 4))
    axis = figure.subplots()
    axis.scatter(joined["model_recognition"], joined["human_recognition"], color="#c44e52")
    for row in joined.itertuples(index=False):
        axis.annotate(f"{row.model}/{row.layer}", (row.model_recognition, row.human_recognition))
    rho = correlation.loc["spearman_rho", "estimate"]
    axis.set_title(f"Humans vs other models (Spearman ρ = {rho:.2f})")
    axis.set_xlabel("other models' recognition")
    axis.set_ylabel("human recognition")
    axis.set_xlim(-0.05, 1.05)
    axis.set_ylim(-0.05, 1.05)
    figure.tight_layout()
    path = folder / "human_vs_models.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return path
