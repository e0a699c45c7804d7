"""Tidy tables of an experiment's database: one row per trial, one row per participant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from metamers.experiments.bundle import load_manifest
from metamers.experiments.db import Participant, Trial, engine_of, open_database
from metamers.io import write_table

__all__ = ["export_tables", "participant_table", "trial_table"]

PARTICIPANT_COLUMNS = (
    "participant_id",
    "source",
    "study_id",
    "session_id",
    "assignment_id",
    "hit_id",
    "list_index",
    "status",
    "created_at",
    "consented_at",
    "finished_at",
    "screening_correct",
    "headphone_correct",
    "user_agent",
)


def trial_table(session: Session, manifest: dict[str, Any]) -> pd.DataFrame:
    """Every saved trial, with its participant, condition (model, layer) and measured timing.

    Parameters
    ----------
    session
        An open database session.
    manifest
        The bundle manifest (names each condition's model and layer).

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``participant_id, list_index, trial_index, phase,
        stimulus_id, item, condition, model, layer, catch, answer, response,
        correct, rt_ms, client_time, saved_at`` and ``timing_*`` (what the
        browser measured, e.g. ``timing_image_ms``, ``timing_refresh_hz``).
    """
    conditions = {c["name"]: c for c in manifest["conditions"]}
    rows = session.execute(
        select(Trial, Participant.participant_id, Participant.list_index)
        .join(Participant, Participant.pk == Trial.participant_pk)
        .order_by(Participant.pk, Trial.trial_index)
    ).all()
    records = []
    for trial, participant_id, list_index in rows:
        condition = conditions.get(trial.condition, {})
        record = {
            "participant_id": participant_id,
            "list_index": list_index,
            "trial_index": trial.trial_index,
            "phase": trial.phase,
            "stimulus_id": trial.stimulus_id,
            "item": trial.item,
            "condition": trial.condition,
            "model": condition.get("model", ""),
            "layer": condition.get("layer", trial.condition),
            "catch": bool(trial.catch),
            "answer": trial.answer,
            "response": trial.response,
            "correct": bool(trial.correct),
            "rt_ms": trial.rt_ms,
            "client_time": trial.client_time,
            "saved_at": trial.saved_at.isoformat() if trial.saved_at else None,
        }
        record.update({f"timing_{k}": v for k, v in (trial.timing or {}).items()})
        records.append(record)
    columns = [
        "participant_id", "list_index", "trial_index", "phase", "stimulus_id", "item",
        "condition", "model", "layer", "catch", "answer", "response", "correct", "rt_ms",
        "client_time", "saved_at",
    ]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=None if records else columns)


def participant_table(session: Session) -> pd.DataFrame:
    """Every participant: recruitment ids, list, status, gate scores and ``env_*`` (screen, refresh).

    Parameters
    ----------
    session
        An open database session.
    """
    records = []
    for participant in session.scalars(select(Participant).order_by(Participant.pk)):
        record: dict[str, Any] = {}
        for column in PARTICIPANT_COLUMNS:
            value = getattr(participant, column)
            record[column] = value.isoformat() if hasattr(value, "isoformat") else value
        record["n_trials"] = len(participant.timeline)
        record.update({f"env_{k}": v for k, v in (participant.environment or {}).items()})
        records.append(record)
    return pd.DataFrame.from_records(
        records, columns=None if records else [*PARTICIPANT_COLUMNS, "n_trials"]
    )


def export_tables(bundle: str | Path, db_url: str, out: str | Path) -> dict[str, pd.DataFrame]:
    """Write ``OUT/trials`` and ``OUT/participants`` (Parquet and CSV) from a database.

    Parameters
    ----------
    bundle
        The experiment bundle.
    db_url
        Its database URL.
    out
        Folder for the tables.

    Returns
    -------
    dict
        ``{"trials": ..., "participants": ...}``.
    """
    manifest = load_manifest(bundle)
    sessions = open_database(db_url)
    try:
        with sessions() as session:
            tables = {
                "trials": trial_table(session, manifest),
                "participants": participant_table(session),
            }
    finally:
        engine_of(sessions).dispose()
    for name, table in tables.items():
        write_table(table, Path(out) / name)
    return tables
