"""The study report: read a study folder's finished results into tables, draw, write the page.

``build_report(STUDY)`` writes ``STUDY/report/index.html`` (self-contained) and
``STUDY/report/tables/*.parquet|csv``. Each section appears only when its
data exists: metamer grids (each metamer captioned with its final loss and
whether it was accepted), image-quality metrics, loss curves, null
histograms with the metamers marked, the generation-layer × measured-layer
similarity matrix, the acceptance table, recognisability and
representation-test heat maps with CIs, human vs other models' recognition (when
the study names ``evaluation.human``), RSA/CKA matrices, and brain mapping (when the
study has a ``brain:`` section). Failed tasks are
listed first; ``tables/tasks.csv`` indexes every task (kind, label, model,
layer, status) to its folder, relative to the study folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from metamers.report import figures
from metamers.report.page import Section, write_page, write_tables
from metamers.report.sounds import sound_rows
from metamers.stimuli.sounds import DEFAULT_SAMPLE_RATE
from metamers.studies.store import StudyStore, TaskRecord

SectionBuilder = Callable[[StudyStore, list[TaskRecord], dict[str, pd.DataFrame]], list[Section]]

SHOWN_STIMULI = 12
"""Stimuli per generator shown (or played) in the report's Metamers section."""


def build_report(study_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Build a study's report from its catalog.

    Parameters
    ----------
    study_dir
        The study folder.
    out_dir
        Where to write ``index.html`` and ``tables/`` (default ``STUDY/report``).

    Returns
    -------
    dict
        ``sections`` (titles) and ``tables`` (names) that were written.
    """
    study_dir = Path(study_dir)
    out_dir = Path(out_dir) if out_dir is not None else study_dir / "report"
    # every section's figures stay open until the page renders (and closes) them
    with StudyStore(study_dir) as store, matplotlib.rc_context({"figure.max_open_warning": 0}):
        records = store.records()
        meta = store.meta()
        tables: dict[str, pd.DataFrame] = {}
        sections: list[Section] = []
        for builder in SECTION_BUILDERS:
            sections.extend(builder(store, records, tables))
        failures = _failures_section(store)
        sections[:0] = failures
        sections.append(_tasks_section(store, meta, tables))
    write_tables(out_dir / "tables", tables)
    name = meta.get("name", study_dir.name)
    write_page(
        out_dir / "index.html",
        f"Study {name}",
        sections,
        subtitle=f"settings digest {meta.get('digest', '?')}; tables in tables/ (Parquet and CSV)",
    )
    return {"sections": [s.title for s in sections], "tables": sorted(tables)}


def task_index(store: StudyStore) -> pd.DataFrame:
    """Every planned task: ``kind, label, model, layer, status, folder, key, error``.

    ``folder`` is the task's output folder relative to the study folder
    (``tasks/KIND/KEY``), empty while the task has no outputs; ``model`` and
    ``layer`` come from the task's settings (empty where a task has none).

    Parameters
    ----------
    store
        The open study.
    """
    settings = {r.key: r.settings for r in store.records(status=None)}
    rows = []
    for task in store.planned():
        model, layer = _model_and_layer(settings.get(task["key"], {}))
        folder = store.root / "tasks" / task["kind"] / task["key"]
        rows.append(
            {
                "kind": task["kind"],
                "label": task["label"],
                "model": model,
                "layer": layer,
                "status": task["status"],
                "folder": f"tasks/{task['kind']}/{task['key']}" if folder.is_dir() else "",
                "key": task["key"],
                "error": task["error"] or "",
            }
        )
    columns = ["kind", "label", "model", "layer", "status", "folder", "key", "error"]
    return pd.DataFrame(rows, columns=columns)


def _model_and_layer(settings: dict[str, Any]) -> tuple[str, str]:
    model = settings.get("model", "")
    if isinstance(model, dict):
        model = model.get("name", "")
    layers = settings.get("layer", settings.get("layers", ""))
    if isinstance(layers, list | tuple):
        layers = ", ".join(map(str, layers))
    return str(model or ""), str(layers or "")


def _failures_section(store: StudyStore) -> list[Section]:
    planned = store.planned()
    failed = [t for t in planned if t["status"] == "failed"]
    if not failed:
        return []
    waiting = [t for t in planned if t["status"] == "pending" and t["kind"] != "report"]
    table = pd.DataFrame(
        [{"kind": t["kind"], "label": t["label"], "error": t["error"] or ""} for t in failed]
    )
    return [
        Section(
            "Failed tasks",
            text=f"{len(failed)} task(s) failed, so this report is partial: what depends on them "
            "is missing below. Fix the cause and run the study again; finished work is reused.",
            tables=[table],
            notes=[f"not run (an input is missing): {t['label']}" for t in waiting],
        )
    ]


def _tasks_section(
    store: StudyStore, meta: dict[str, Any], tables: dict[str, pd.DataFrame]
) -> Section:
    planned = task_index(store)
    tables["tasks"] = planned
    counts = planned.groupby("kind", sort=False)["status"].value_counts().unstack(fill_value=0)
    counts.insert(0, "n", counts.sum(axis=1))
    counts = counts.reset_index().rename_axis(columns=None)
    index = planned[["kind", "label", "model", "layer", "status", "folder"]]
    return Section(
        "Tasks",
        text=f"{len(planned)} planned tasks. Each finished task's outputs are in its folder "
        "(relative to the study folder; also in tables/tasks.csv).",
        tables=[counts, index],
        notes=list(meta.get("notes", [])),
        links={"folder": "../"},
    )


def _features_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    rows = [
        {
            "model": r.settings["model"]["name"],
            "layer": layer,
            "n": r.summary.get("stimuli"),
            "file": f"tasks/{r.kind}/{r.key}/features.h5",
        }
        for r in records
        if r.kind == "features"
        for layer in r.settings["layers"]
    ]
    if not rows:
        return []
    table = pd.DataFrame(rows)
    tables["features"] = table
    return [
        Section(
            "Features of the reference stimuli",
            text="n: the number of stimuli whose activations were stored.",
            tables=[table],
        )
    ]


def _of_kind(records: list[TaskRecord], kind: str) -> list[TaskRecord]:
    return [r for r in records if r.kind == kind]


def _read_tables(store: StudyStore, records: list[TaskRecord], name: str) -> pd.DataFrame:
    frames = []
    for record in records:
        path = store.task_dir(record) / f"{name}.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _acceptance(store: StudyStore, records: list[TaskRecord]) -> pd.DataFrame:
    return _read_tables(store, _of_kind(records, "validate"), "acceptance")


def _metamers_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    from metamers.studies.tasks import load_generated

    generated = _of_kind(records, "generate")
    if not generated:
        return []
    results = [
        r for record in generated for r in load_generated(store.task_dir(record), record.settings)
    ]
    acceptance = _acceptance(store, records)
    accepted = {}
    if not acceptance.empty:
        for row in acceptance.itertuples(index=False):
            accepted[(row.generator, row.generation_layer, row.stimulus_id)] = bool(row.accepted)
    section = Section(
        "Metamers",
        text="Reference, then its metamer at each generation layer, captioned with its final "
        "synthesis loss and whether it was accepted; rejected metamers are framed in red.",
        notes=[
            f"{record.label}: synthesis failed for {', '.join(record.summary['failed'])}"
            for record in generated
            if record.summary.get("failed")
        ],
    )
    losses = []
    for generator in dict.fromkeys(r.generator for r in results):
        mine = [r for r in results if r.generator == generator]
        references = {r.stimulus_id: r.reference for r in mine}
        frame = pd.DataFrame(
            {
                "stimulus": [r.stimulus_id for r in mine],
                "layer": [r.layer for r in mine],
                "image": [r.metamer for r in mine],
                "accepted": [accepted.get((generator, r.layer, r.stimulus_id)) for r in mine],
                "loss": [float(r.losses[-1]) if len(r.losses) else np.nan for r in mine],
            }
        )
        shown_ids = list(references)[:SHOWN_STIMULI]
        shown = frame[frame["stimulus"].isin(shown_ids)]
        shown_references = {k: references[k] for k in shown_ids}
        if len(references) > SHOWN_STIMULI:
            section.notes.append(
                f"{generator}: the first {SHOWN_STIMULI} of {len(references)} stimuli are shown; "
                "every metamer is listed in tables/metamers.csv with its folder"
            )
        if mine[0].reference.ndim == 1:  # waveforms: players and cochleagrams
            rate = int(mine[0].settings.get("sample_rate", DEFAULT_SAMPLE_RATE))
            section.sounds += sound_rows(shown_references, shown, generator, rate)
        else:
            section.figures.append(figures.metamer_grid(shown_references, shown, title=generator))
        for r in mine:
            steps = np.arange(1, len(r.losses) + 1)
            keep = _thin(len(steps))
            losses.append(
                pd.DataFrame(
                    {
                        "generator": generator,
                        "layer": r.layer,
                        "stimulus": r.stimulus_id,
                        "step": steps[keep],
                        "loss": r.losses[keep],
                    }
                )
            )
    loss_table = pd.concat(losses, ignore_index=True)
    tables["losses"] = loss_table
    tables["metamers"] = pd.DataFrame(
        {
            "generator": [r.generator for r in results],
            "layer": [r.layer for r in results],
            "stimulus_id": [r.stimulus_id for r in results],
            "steps": [len(r.losses) for r in results],
            "final_loss": [float(r.losses[-1]) if len(r.losses) else np.nan for r in results],
            "accepted": [accepted.get((r.generator, r.layer, r.stimulus_id)) for r in results],
            "path": [str(r.path.relative_to(store.root)) if r.path else "" for r in results],
        }
    )
    section.tables.append(tables["metamers"].drop(columns="path"))
    positive = loss_table[loss_table["loss"] > 0]
    curves = (
        Section("Loss curves", figures=[figures.loss_curves(positive)]) if len(positive) else None
    )
    quality = _image_quality_section(results, accepted, tables)
    quality += _sound_quality_section(results, accepted, tables)
    return [section, *quality, *([curves] if curves else [])]


def _sound_quality_section(
    results: list, accepted: dict, tables: dict[str, pd.DataFrame]
) -> list[Section]:
    """STOI, RMS and peak of each audio metamer against its reference."""
    from metamers.evaluation.sound_quality import sound_quality

    rows = [
        {
            "generator": r.generator,
            "layer": r.layer,
            "stimulus_id": r.stimulus_id,
            "accepted": accepted.get((r.generator, r.layer, r.stimulus_id)),
            **sound_quality(
                r.metamer, r.reference, int(r.settings.get("sample_rate", DEFAULT_SAMPLE_RATE))
            ),
        }
        for r in results
        if r.reference.ndim == 1
    ]
    if not rows:
        return []
    tables["sound_quality"] = pd.DataFrame(rows)
    return [
        Section(
            "Sound quality",
            text="Each audio metamer against its reference: STOI (short-time objective "
            "intelligibility, 1 = as intelligible to people as the reference, about 0.4 and "
            "below = poorly; no model involved) and the level of both (synthesis does not "
            "constrain a metamer's loudness). tables/sound_quality.csv holds them.",
            tables=[tables["sound_quality"]],
        )
    ]


QUALITY_COLUMNS = ["ssim", "ms_ssim", "pixel_r", "spectral_slope_difference"]


def _image_quality_section(
    results: list, accepted: dict, tables: dict[str, pd.DataFrame]
) -> list[Section]:
    """SSIM, MS-SSIM, pixel correlation and spectra of each metamer against its reference."""
    from metamers.errors import MetamersError
    from metamers.evaluation.image_quality import image_quality

    rows, skipped = [], []
    for r in results:
        if r.reference.ndim == 1:  # waveforms: no image metrics
            continue
        try:
            metrics = image_quality(r.metamer, r.reference)
        except MetamersError as exc:
            skipped.append(f"{r.generator} {r.layer} {r.stimulus_id}: {exc}")
            continue
        rows.append(
            {
                "generator": r.generator,
                "layer": r.layer,
                "stimulus_id": r.stimulus_id,
                "accepted": accepted.get((r.generator, r.layer, r.stimulus_id)),
                **metrics,
            }
        )
    if not rows:
        return []
    table = pd.DataFrame(rows)
    tables["image_quality"] = table
    shown = ["generator", "layer", "stimulus_id", "accepted", *QUALITY_COLUMNS]
    return [
        Section(
            "Image quality",
            text="Each metamer against its reference: SSIM and MS-SSIM (1 = identical; MS-SSIM "
            "is empty for images too small for five scales), pixel correlation, and the "
            "metamer's spectral slope minus the reference's (0 = the same 1/f spectrum). "
            "All metrics are in tables/image_quality.csv.",
            tables=[table[shown]],
            notes=[f"not measured: {s}" for s in skipped],
        )
    ]


def _layer_matrix_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    """Generation layer × measured layer: median similarity of metamers to references."""
    from metamers.null.plots import plot_similarity_matrix

    matrix = _read_tables(store, _of_kind(records, "validate"), "similarity_matrix")
    if matrix.empty:
        return []
    tables["similarity_matrix"] = matrix
    section = Section(
        "Similarity across layers",
        text="Median Spearman correlation of each metamer's activations with its reference's, "
        "by the layer the metamer was generated at (rows) and the layer measured (columns); "
        "* marks medians above the null maximum of the measured layer.",
    )
    for model in dict.fromkeys(matrix["model"]):
        fig = plot_similarity_matrix(matrix[matrix["model"] == model], "spearman")
        fig.suptitle(model, fontsize=9)
        section.figures.append(fig)
    return [section]


def _thin(n: int, most: int = 400) -> np.ndarray:
    """Indices of at most ``most`` steps, evenly spread, always keeping the last."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(int))


def _null_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    nulls = _of_kind(records, "null")
    if not nulls:
        return []
    acceptance = _acceptance(store, records)
    section = Section(
        "Null distributions",
        text="Similarity of random pairs of different natural stimuli (grey; dashed: maximum, "
        "the acceptance threshold) and of each metamer to its reference (red).",
    )
    summaries = []
    for record in nulls:
        path = store.task_dir(record) / "null.parquet"
        if not path.is_file():
            continue
        null = pd.read_parquet(path)
        model = record.summary.get("model", record.settings["model"]["name"])
        marks = None
        if not acceptance.empty:
            mine = acceptance[acceptance["model"] == model]
            marks = mine.melt(
                id_vars=["layer"], value_vars=METRICS, var_name="metric", value_name="value"
            )
        section.figures.append(
            figures.null_histograms(null, marks, title=f"{record.label.removeprefix('null ')}")
        )
        summaries.append(null_summary(null).assign(model=model, pairs=record.settings["pairs"]))
        for warning in record.summary.get("warnings", []):
            section.notes.append(f"{record.label}: {warning}")
    if not summaries:
        return []
    table = pd.concat(summaries, ignore_index=True)
    table = table[["model", "layer", "metric", "pairs", "n", "min", "median", "max"]]
    tables["null_summary"] = table
    section.tables.append(table)
    return [section]


def null_summary(null: pd.DataFrame) -> pd.DataFrame:
    """Per layer and metric: ``n`` (pairs with a value), ``min``, ``median`` and ``max`` of a null.

    Parameters
    ----------
    null
        Long table: ``layer``, ``metric``, ``value`` (one row per random pair;
        missing values are left out of ``n`` and of the statistics alike).
    """
    summary = null.groupby(["layer", "metric"], sort=False)["value"].agg(
        ["count", "min", "median", "max"]
    )
    return summary.rename(columns={"count": "n"}).reset_index()


METRICS = ["spearman", "pearson", "snr_db"]


def _acceptance_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    acceptance = _acceptance(store, records)
    if acceptance.empty:
        return []
    tables["acceptance"] = acceptance
    summary = acceptance_rates(acceptance)
    tables["acceptance_summary"] = summary
    criterion = acceptance["criterion"].iloc[0] if "criterion" in acceptance else ""
    return [
        Section(
            "Acceptance",
            text="A metamer is accepted when the generator gives it the reference's label and "
            f"Spearman, Pearson and dB SNR to the reference all exceed the null ({criterion}). "
            "n: the number of metamers (one per stimulus) behind each rate.",
            tables=[summary],
        )
    ]


def acceptance_rates(acceptance: pd.DataFrame) -> pd.DataFrame:
    """Per generator and layer: ``n`` metamers, how many were accepted, and each test's rate.

    Parameters
    ----------
    acceptance
        One row per metamer and generating model: ``generator`` (when given: two
        synthesis conditions of one model are two generators), ``model``,
        ``generation_layer``, ``accepted``, ``label_match`` and ``{metric}_pass``
        for each of :data:`METRICS`.
    """
    passes = [f"{m}_pass" for m in METRICS if f"{m}_pass" in acceptance]
    keys = [k for k in ("generator", "model", "generation_layer") if k in acceptance]
    summary = (
        acceptance.groupby(keys, sort=False)
        .agg(
            n=("accepted", "size"),
            accepted=("accepted", "sum"),
            label_match=("label_match", "mean"),
            **{p: (p, "mean") for p in passes},
        )
        .reset_index()
    )
    summary.insert(len(keys) + 2, "accepted_fraction", summary["accepted"] / summary["n"])
    return summary


def _evaluation_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    evaluated = _of_kind(records, "evaluate")
    if not evaluated:
        return []
    sections = []
    recognition = _read_tables(store, evaluated, "recognition_summary")
    if not recognition.empty:
        items = _read_tables(store, evaluated, "recognition")
        recognition = with_counts(recognition, items, RECOGNITION_KEYS, RECOGNITION_COUNTS)
        tables["recognition_summary"] = recognition
        tables["recognition"] = items
        sections.append(recognition_section(recognition))
    representation = _read_tables(store, evaluated, "representation_summary")
    if not representation.empty:
        items = _read_tables(store, evaluated, "representation")
        representation = with_counts(representation, items, REPRESENTATION_KEYS, {"n": "passed"})
        tables["representation_summary"] = representation
        tables["representation"] = items
        sections.append(representation_section(representation))
    return sections


RECOGNITION_MEASURES = ["agrees_with_reference", "correct_vs_label", "correct_vs_generator"]
RECOGNITION_KEYS = ["generator", "layer", "observer"]
RECOGNITION_COUNTS = {f"{m}_n": m for m in RECOGNITION_MEASURES}
REPRESENTATION_KEYS = ["generator", "layer", "observer", "observer_layer"]
REPRESENTATION_VALUES = ["n", "pass_fraction", "ci_low", "ci_high", "chance", "p_value"]


def with_counts(
    summary: pd.DataFrame, items: pd.DataFrame, keys: list[str], counts: dict[str, str]
) -> pd.DataFrame:
    """``summary`` with each count column it lacks computed from the per-item table.

    Parameters
    ----------
    summary
        One row per ``keys`` combination.
    items
        The per-item table the summary was made from (one row per stimulus).
    keys
        The summary's grouping columns.
    counts
        Count column → the item column whose non-missing values it counts
        (``{"n": "passed"}``); columns already in ``summary`` are kept as they are.
    """
    summary = summary.copy()
    for count, source in counts.items():
        if count in summary or source not in items or not set(keys) <= set(items):
            continue
        counted = items.groupby(keys, sort=False)[source].count().rename(count).reset_index()
        summary = summary.merge(counted, on=keys, how="left")
    return summary


def recognition_section(summary: pd.DataFrame) -> Section:
    """The recognisability section: a heat map per measure and the rates as a table.

    Parameters
    ----------
    summary
        :func:`metamers.evaluation.summarize_recognition`'s table: per generator ×
        layer × observer, ``{measure}_mean``, ``_ci_low``, ``_ci_high`` and ``_n``.
    """
    frame = summary.assign(row=summary["generator"] + " / " + summary["layer"])
    shown = [
        m for m in RECOGNITION_MEASURES if f"{m}_mean" in frame and frame[f"{m}_mean"].notna().any()
    ]
    section = Section(
        "Recognisability",
        text="Fraction of metamers each observer classifies like the reference "
        "(bootstrap 95% CIs over stimuli; n: the number of stimuli behind each value).",
        tables=[recognition_rates(summary, shown)],
    )
    for measure in shown:
        section.figures.append(
            figures.heatmap_with_ci(
                frame,
                row="row",
                column="observer",
                value=f"{measure}_mean",
                low=f"{measure}_ci_low",
                high=f"{measure}_ci_high",
                n=f"{measure}_n",
                title=measure.replace("_", " "),
                row_label="generator / layer",
            )
        )
    return section


def recognition_rates(summary: pd.DataFrame, measures: list[str]) -> pd.DataFrame:
    """The recognition summary in long form: one row per cell and measure, with its ``n``.

    Parameters
    ----------
    summary
        The recognition summary (see
        :func:`~metamers.evaluation.recognition.summarize_recognition`), one row
        per ``generator, layer, observer``.
    measures
        The measures to keep, e.g. ``["agrees_with_reference"]``; a measure
        whose ``{measure}_{stat}`` column is missing gets NaN there.

    Returns
    -------
    pandas.DataFrame
        Columns ``generator, layer, observer, measure, n, mean, ci_low, ci_high``.
    """
    columns = {"n": "n", "mean": "mean", "ci_low": "ci_low", "ci_high": "ci_high"}
    parts = []
    for measure in measures:
        part = summary[RECOGNITION_KEYS].assign(measure=measure)
        for name in columns:
            source = f"{measure}_{name}"
            part[name] = summary[source] if source in summary else np.nan
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*RECOGNITION_KEYS, "measure", *columns])
    return pd.concat(parts, ignore_index=True)


def representation_section(summary: pd.DataFrame) -> Section:
    """The representation-test section: a heat map of pass fractions and their table.

    Parameters
    ----------
    summary
        :func:`metamers.evaluation.summarize_representation`'s table: per generator ×
        layer × observer × observer layer, ``pass_fraction``, ``ci_low``, ``ci_high``,
        ``n`` and ``p_value``.
    """
    frame = summary.assign(
        row=summary["generator"] + " / " + summary["layer"],
        column=summary["observer"] + " / " + summary["observer_layer"],
    )
    shown = [c for c in [*REPRESENTATION_KEYS, *REPRESENTATION_VALUES] if c in summary]
    return Section(
        "Representation test",
        text="Fraction of metamers whose representation in each observer layer is "
        "closer to the reference's than any natural pair of that layer's null "
        "(bootstrap 95% CIs; n: the number of stimuli behind each value).",
        figures=[
            figures.heatmap_with_ci(
                frame,
                row="row",
                column="column",
                value="pass_fraction",
                title="metameric for the observer layer",
                row_label="generator / layer",
                column_label="observer / layer",
            )
        ],
        tables=[summary[shown]],
    )


def _compare_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    compared = _of_kind(records, "compare")
    if not compared:
        return []
    section = Section(
        "Model comparison",
        text="Similarity of every model's layers on the reference stimuli.",
    )
    for record in compared:
        method = record.settings["method"]
        matrix = pd.read_parquet(store.task_dir(record) / f"{method}.parquet")
        labels = [" ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in matrix.index]
        flat = pd.DataFrame(matrix.to_numpy(dtype=float), index=labels, columns=labels)
        tables[f"similarity_{method}"] = flat.reset_index(names="layer")
        n = len(record.settings.get("stimuli", {}).get("ids", []))
        options = ", ".join(f"{k}={v}" for k, v in record.settings.get("options", {}).items())
        title = method.upper() + (f" ({options})" if options else "")
        title += f" (n={n} stimuli)" if n else ""
        section.figures.append(figures.similarity_matrix(flat, title=title))
    return [section]


def _human_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    study_file = store.root / "study.yaml"
    if not study_file.is_file():
        return []
    evaluation = (yaml.safe_load(study_file.read_text()) or {}).get("evaluation") or {}
    if not evaluation.get("human"):
        return []
    return [human_section(tables.get("recognition_summary"), evaluation["human"])]


def human_section(recognition: pd.DataFrame | None, human_path: str | Path) -> Section:
    """The "Humans and models" section: human recognition of each generation layer's
    metamers against other models' recognition of them, and their correlation.

    Parameters
    ----------
    recognition
        The study's recognition summary (``generator, layer, observer,
        {measure}_mean, {measure}_n``); ``None`` or empty before any evaluation.
    human_path
        CSV of human recognition (``model, layer, human_recognition``, see
        :func:`~metamers.evaluation.human.load_human_recognition`); ``model``
        names the generator as the recognition table does.
    """
    from metamers.errors import ConfigError
    from metamers.evaluation.human import (
        correlate_with_human,
        load_human_recognition,
        other_model_recognition,
    )

    section = Section(
        "Humans and models",
        text="Human recognition of each generation layer's metamers (from "
        f"{Path(human_path).name}) against the mean recognition of them by the other "
        "models (each observer weighted equally; n_recognisers observers, n_items "
        "stimulus judgements); Spearman's rho and the R² of a least-squares line over "
        "(model, layer) conditions, with 95% bootstrap CIs.",
    )
    try:
        human = load_human_recognition(human_path)
    except ConfigError as exc:
        section.notes.append(str(exc))
        return section
    if recognition is None or recognition.empty:
        section.notes.append("no recognition results yet")
        return section
    try:
        models = other_model_recognition(recognition)
    except ConfigError as exc:
        section.notes.append(str(exc))
        return section
    joined = models.merge(human[["model", "layer", "human_recognition"]], on=["model", "layer"])
    if joined.empty:
        section.notes.append(
            "no (model, layer) of the human table matches the study's generators "
            f"({', '.join(sorted(set(models['model'])))}) and layers"
        )
        return section
    first = ["model", "layer", "human_recognition", "model_recognition"]
    joined = joined[[*first, *[c for c in joined if c not in first]]]
    section.tables.append(joined)
    try:
        correlation = correlate_with_human(models, human, seed=0)
    except ConfigError as exc:
        section.notes.append(f"no correlation: {exc}")
    else:
        section.tables.append(correlation.reset_index())
    section.figures.append(_human_scatter(joined))
    return section


def _human_scatter(joined: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(4.2, 4.0))
    axis = fig.add_subplot()
    axis.scatter(joined["model_recognition"], joined["human_recognition"], s=18)
    for row in joined.itertuples():
        axis.annotate(
            f"{row.model} / {row.layer}",
            (row.model_recognition, row.human_recognition),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axis.plot([0, 1], [0, 1], color="0.7", linewidth=0.8, linestyle="--")
    axis.set_xlim(-0.05, 1.05)
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("recognition by other models")
    axis.set_ylabel("human recognition")
    fig.tight_layout()
    return fig


def _human_tables(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    sections = _human_section(store, records, tables)
    for section in sections:
        names = ["human_vs_models", "human_correlation"]
        tables.update(zip(names, section.tables, strict=False))
    return sections


def _brain_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    """Brain mapping: per study model, it and its permuted controls by layer; RSA with ceiling."""
    from metamers.brain.plots import plot_best_layers, plot_layer_curves, plot_rsa

    mapped = _of_kind(records, "brain")
    if not mapped:
        return []
    by_model: dict[str, list[TaskRecord]] = {}
    for record in mapped:
        by_model.setdefault(record.settings["label"], []).append(record)
    section = Section(
        "Brain mapping",
        text="Noise-corrected r² by layer (median over targets of each target's median over "
        "splits; thin lines: participants with 95% CIs over targets; thick: mean ± SEM across "
        "participants), each model beside its permuted-weights controls; RSA by layer with the "
        "leave-one-participant-out noise ceiling (same comparator). See docs/brain.md.",
    )
    frames: dict[str, list[pd.DataFrame]] = {"summary": [], "curves": [], "rsa": []}
    for label, group in by_model.items():
        layers = list(group[0].settings["layers"])
        curves, scores, ceiling = [], [], pd.DataFrame()
        for record in group:
            folder = store.task_dir(record)
            frames["summary"].append(_read_parquet(folder / "encoding" / "summary.parquet"))
            curves += [pd.read_parquet(p) for p in folder.glob("encoding/*/curves.parquet")]
            scores += [pd.read_parquet(p) for p in folder.glob("rsa/*/rsa_scores.parquet")]
            if record.settings["permuted_seed"] is None:
                found = list(folder.glob("rsa/*/rsa_ceiling.parquet"))
                ceiling = pd.read_parquet(found[0]) if found else ceiling
                roi = record.settings.get("roi")
                targets = list(folder.glob("encoding/*/best_layer_targets.parquet"))
                if roi and targets:
                    section.figures.append(
                        plot_best_layers(pd.read_parquet(targets[0]), layers, roi)
                    )
        if curves:
            section.figures.append(plot_layer_curves(pd.concat(curves), layers, title=label))
            frames["curves"] += curves
        if scores:
            section.figures.append(plot_rsa(pd.concat(scores), ceiling, layers, title=label))
            frames["rsa"] += scores
    for name, parts in frames.items():
        parts = [p for p in parts if not p.empty]
        if parts:
            tables[f"brain_{name}"] = pd.concat(parts, ignore_index=True)
    if "brain_summary" in tables:
        section.tables.append(tables["brain_summary"])
    return [section]


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def _findings_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    from metamers.report.findings import findings_section, stored_study

    study = stored_study(store.root)
    return findings_section(study, tables) if study is not None else []


SECTION_BUILDERS: list[SectionBuilder] = [
    _metamers_section,
    _null_section,
    _acceptance_section,
    _layer_matrix_section,
    _evaluation_section,
    _findings_section,
    _human_tables,
    _compare_section,
    _brain_section,
    _features_section,
]
