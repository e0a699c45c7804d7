"""The study report: read a study folder's finished results into tables, draw, write the page.

``build_report(STUDY)`` writes ``STUDY/report/index.html`` (self-contained) and
``STUDY/report/tables/*.parquet|csv``. Each section appears only when its
data exists: metamer grids, loss curves, null histograms with the metamers
marked, the acceptance table, recognisability and representation-test
heat maps with CIs, and RSA/CKA matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from metamers.report.page import Section, write_page, write_tables
from metamers.studies.store import StudyStore, TaskRecord

SectionBuilder = Callable[[StudyStore, list[TaskRecord], dict[str, pd.DataFrame]], list[Section]]


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
    with StudyStore(study_dir) as store:
        records = store.records()
        meta = store.meta()
        tables: dict[str, pd.DataFrame] = {}
        sections: list[Section] = []
        for builder in SECTION_BUILDERS:
            sections.extend(builder(store, records, tables))
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


def _tasks_section(
    store: StudyStore, meta: dict[str, Any], tables: dict[str, pd.DataFrame]
) -> Section:
    planned = pd.DataFrame(store.planned(), columns=["kind", "label", "status", "key"])
    tables["tasks"] = planned
    counts = planned.groupby("kind", sort=False)["status"].value_counts().unstack(fill_value=0)
    counts = counts.reset_index()
    return Section(
        "Tasks",
        text=f"{len(planned)} planned tasks.",
        tables=[counts],
        notes=list(meta.get("notes", [])),
    )


def _features_section(
    store: StudyStore, records: list[TaskRecord], tables: dict[str, pd.DataFrame]
) -> list[Section]:
    rows = [
        {
            "model": r.settings["model"]["name"],
            "layer": layer,
            "stimuli": r.summary.get("stimuli"),
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
    return [Section("Features of the reference stimuli", tables=[table])]


SECTION_BUILDERS: list[SectionBuilder] = [_features_section]
