"""The report's "Findings" section: the study's questions answered with CIs.

It describes the study's generators and observers for
:mod:`metamers.evaluation.findings` (architecture, training and seed of each
model from :func:`metamers.models.registry.model_facts`, ensembles, synthesis
conditions, layers by depth) and shows the tables it returns with two figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import yaml
from matplotlib.figure import Figure

from metamers.evaluation.findings import (
    Catalogue,
    GeneratorFacts,
    Measures,
    ObserverFacts,
    findings_tables,
)
from metamers.models.registry import model_facts
from metamers.report.page import Section
from metamers.studies.config import EnsembleSpec, ModelSpec, StudyConfig, parse_study

TEXT = {
    "depth": "Recognisability of accepted metamers by held-out observers (every observer that "
    "is not a generating model) at each generation depth, with the acceptance rate beside it "
    "(Wilson 95% CI). Question 1.",
    "contrasts": "Each contrast: side a − side b of the mean recognisability, with a paired "
    "bootstrap 95% CI over stimuli, its SE, z and two-sided bootstrap p. Question 1: late − "
    "early per generator; 2: robust − standard (observers of other architectures); 3: ensemble "
    "− its members alone (held-out observers inside and outside the ensemble's architectures); "
    "4: same-architecture observers (other seeds) − other-architecture observers; 6: a synthesis "
    "condition − the main one.",
    "conditions": "Question 6, per synthesis condition of a model: acceptance rate; steps until "
    "the loss meets the SNR part of the acceptance rule (median over the metamers that reach it, "
    "bootstrap CI; `reached`: their share); recognisability by held-out observers; and the class "
    "decisions are most drawn to for metamers of other classes (`pull_share`: a start's bias "
    "shows as a large share for one class).",
    "measures": "Question 5: the contrasts above measured by recognisability (rec) and by the "
    "representation test (rep, pass rate over each observer's layers). z = difference / bootstrap "
    "SE says how sharply a measure separates the two conditions; `agree`: same sign.",
    "cells": "Question 5, cell by cell: recognisability and representation pass rate per "
    "generator layer and observer, largest disagreement first.",
}


def study_catalogue(study: StudyConfig) -> Catalogue:
    """The generators and observers of a study, as the findings analysis needs them.

    A single model that is neither a synthesis condition nor an ensemble is
    named by its model name (as its metamers are); the others by their label.

    Parameters
    ----------
    study
        The study's settings.
    """
    generators = [_generator_facts(study, spec) for spec in study.models.generators]
    observers = [
        ObserverFacts(name=spec.name, **model_facts(spec.name)) for spec in study.models.observers
    ]
    return Catalogue(tuple(generators), tuple(observers))


def _generator_facts(study: StudyConfig, spec: ModelSpec | EnsembleSpec) -> GeneratorFacts:
    members = spec.ensemble if isinstance(spec, EnsembleSpec) else [spec]
    facts = [model_facts(m.name) for m in members]
    trainings = {f["training"] for f in facts}
    labelled = isinstance(spec, EnsembleSpec) or bool(spec.synthesis)
    return GeneratorFacts(
        name=spec.display if labelled else spec.name,
        architectures=tuple(f["architecture"] for f in facts),
        training=trainings.pop() if len(trainings) == 1 else "mixed",
        seed=facts[0]["seed"] if len(facts) == 1 else None,
        layers=tuple(spec.layers),
        models=tuple(m.name for m in members),
        condition=dict(spec.synthesis or {}),
    )


def stored_study(study_dir: str | Path) -> StudyConfig | None:
    """The settings of a study folder's last run (``STUDY/study.yaml``), or ``None``.

    Parameters
    ----------
    study_dir
        The study folder.
    """
    path = Path(study_dir) / "study.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    return parse_study(data, source=str(path), base_dir=None)


def findings_section(study: StudyConfig, tables: dict[str, pd.DataFrame]) -> list[Section]:
    """The "Findings" section from the report's tables (added to ``tables`` as ``findings_*``).

    Parameters
    ----------
    study
        The study's settings (its generators, observers, bootstraps and seed).
    tables
        The report's tables so far: ``recognition`` is needed; ``representation``,
        ``acceptance`` and ``losses`` are used when present.
    """
    recognition = tables.get("recognition")
    if recognition is None or recognition.empty:
        return []
    measures = Measures(
        recognition=recognition,
        representation=tables.get("representation"),
        acceptance=tables.get("acceptance"),
        losses=tables.get("losses"),
        n_boot=study.evaluation.bootstraps,
        seed=study.seed,
    )
    found = findings_tables(study_catalogue(study), measures)
    if not found:
        return []
    tables.update({f"findings_{name}": table for name, table in found.items()})
    section = Section(
        "Findings",
        text=" ".join(TEXT[name] for name in found) + " Tables: tables/findings_*.csv.",
        tables=[_rounded(found[name]) for name in found],
    )
    if "depth" in found:
        section.figures.append(depth_figure(found["depth"]))
    if "contrasts" in found:
        section.figures.append(contrast_figure(found["contrasts"]))
    return [section]


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round(3)


def depth_figure(depth: pd.DataFrame) -> Figure:
    """Recognisability (with CI) against generation depth, one line per generator.

    Parameters
    ----------
    depth
        :func:`~metamers.evaluation.findings.depth_table`'s table.
    """
    fig, axis = plt.subplots(figsize=(6.4, 3.6))
    for generator, rows in depth.groupby("generator", sort=False):
        style = _line_style(rows.iloc[0])
        x = range(len(rows))
        yerr = [rows["recognisability"] - rows["ci_low"], rows["ci_high"] - rows["recognisability"]]
        axis.errorbar(x, rows["recognisability"], yerr=yerr, capsize=3, label=generator, **style)
        axis.set_xticks(list(x), list(rows["depth"]))
    axis.set_ylim(-0.02, 1.02)
    axis.set_ylabel("recognisability by held-out observers")
    axis.set_xlabel("generation depth")
    axis.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    return fig


def _line_style(row: pd.Series) -> dict[str, Any]:
    if row["kind"] == "ensemble":
        return {"linestyle": "-", "linewidth": 2.5, "marker": "s"}
    if row["kind"] == "condition":
        return {"linestyle": ":", "marker": "^"}
    return {"linestyle": "--" if row["training"] == "robust" else "-", "marker": "o"}


def contrast_figure(contrasts: pd.DataFrame) -> Figure:
    """Forest plot: each contrast's difference with its 95% CI, grouped by question.

    Parameters
    ----------
    contrasts
        :func:`~metamers.evaluation.findings.contrast_table`'s table.
    """
    shown = contrasts.dropna(subset=["diff"]).reset_index(drop=True)
    fig, axis = plt.subplots(figsize=(11.0, 0.24 * len(shown) + 1.0))
    y = list(range(len(shown)))[::-1]
    error = [shown["diff"] - shown["ci_low"], shown["ci_high"] - shown["diff"]]
    axis.errorbar(shown["diff"], y, xerr=error, fmt="o", markersize=3, capsize=2)
    axis.axvline(0, color="grey", linewidth=0.8)
    axis.set_yticks(
        y, [f"Q{q} {c}" for q, c in zip(shown["question"], shown["contrast"])], fontsize=6
    )
    axis.set_xlabel("difference in recognisability (95% CI)")
    fig.subplots_adjust(left=0.42, right=0.98, top=0.98, bottom=0.6 / fig.get_figheight())
    return fig
