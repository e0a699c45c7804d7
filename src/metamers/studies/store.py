"""The study folder: task outputs plus a SQLite catalog of finished tasks.

Layout::

    STUDY/
      study.yaml              the settings the last run used
      catalog.sqlite          finished/failed tasks, the current plan, an event log
      tasks/KIND/KEY/         one folder per finished task (outputs + task.json)
      work/KEY/               scratch of unfinished tasks (library checkpoints)
      report/                 index.html and tables

Crash safety: only the driver writes here. A finished task's files are
written atomically into ``tasks/KIND/KEY.partial/``, ``task.json`` last,
then the folder is renamed to ``tasks/KIND/KEY`` (an atomic rename), then
the catalog row is committed. A kill before the rename leaves a
``.partial`` folder that the next run removes; a kill after the rename but
before the commit leaves a complete folder that the next run adopts
(``task.json`` holds the result). The catalog runs in WAL mode, so a kill
never corrupts it. A finished task is reused only while its folder is
intact (``task.json`` and every catalogued file with its size and SHA-256,
:meth:`StudyStore.discard_unsound`); otherwise it is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metamers.errors import ConfigError, MetamersError
from metamers.io import is_locked, lock_file, write_bytes_atomic, write_json_atomic
from metamers.studies.planner import Plan, Task
from metamers.studies.tasks import TaskOutcome

CATALOG = "catalog.sqlite"
MANIFEST = "task.json"
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    settings TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT,
    files TEXT,
    error TEXT,
    seconds REAL,
    host TEXT,
    executor TEXT,
    finished REAL
);
CREATE TABLE IF NOT EXISTS plan (
    key TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    inputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    key TEXT,
    event TEXT NOT NULL,
    time REAL NOT NULL
);
"""


@dataclass(frozen=True)
class TaskRecord:
    """A row of the catalog."""

    key: str
    kind: str
    label: str
    status: str
    settings: dict[str, Any]
    inputs: tuple[str, ...]
    summary: dict[str, Any]
    files: list[dict[str, Any]]
    error: str | None
    seconds: float | None


class StudyStore:
    """One study folder and its catalog.

    Parameters
    ----------
    root
        The study folder (created when ``create`` is set).
    create
        Create the folder and catalog if missing; otherwise they must exist.
    """

    def __init__(self, root: str | Path, *, create: bool = False) -> None:
        self.root = Path(root)
        if not create and not (self.root / CATALOG).is_file():
            raise ConfigError(
                f"{self.root} is not a study folder (no {CATALOG}); run a study first"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / CATALOG, timeout=30, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _damaged_catalog(self.root / CATALOG, exc) from None
        self._lock_handle = None
        self.run_id = uuid.uuid4().hex[:12]

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the writer lock and close the catalog."""
        self._db.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire(self) -> None:
        """Become the study's single writer (refuses if another driver runs it)."""
        handle = lock_file(self.root / ".lock")
        if handle is None:
            raise MetamersError(
                f"another `metamers run` is writing {self.root}; wait for it or stop it"
            )
        self._lock_handle = handle
        self._sweep()

    def _sweep(self) -> None:
        """Remove leftovers of killed runs: partial task folders and temporary files."""
        tasks = self.root / "tasks"
        for partial in tasks.glob("*/*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
        for stale in self.root.rglob(".*.tmp"):
            if stale.is_file():
                stale.unlink(missing_ok=True)

    # -- plan ----------------------------------------------------------------------------------

    def record_plan(self, plan: Plan) -> None:
        """Store the study settings and the current plan (the tasks ``status`` reports on).

        Writes ``study.yaml`` and replaces the catalog's plan and meta rows (study
        name, planner notes, settings digest) in one transaction.

        Parameters
        ----------
        plan
            The plan of the run now starting.
        """
        data = plan.study.model_dump(mode="json")
        write_bytes_atomic(self.root / "study.yaml", yaml.safe_dump(data, sort_keys=False).encode())
        rows = [(t.key, i, t.kind, t.label, json.dumps(list(t.inputs))) for i, t in enumerate(plan)]
        meta = {"name": plan.study.name, "notes": plan.notes, "digest": plan.study.digest()}
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM plan")
            self._db.executemany("INSERT INTO plan VALUES (?, ?, ?, ?, ?)", rows)
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )

    def meta(self) -> dict[str, Any]:
        """Study name, settings digest and planner notes of the last run."""
        rows = self._db.execute("SELECT name, value FROM meta").fetchall()
        return {name: json.loads(value) for name, value in rows}

    def planned(self) -> list[dict[str, Any]]:
        """The current plan: ``key, kind, label, inputs, status`` per task, in order."""
        rows = self._db.execute(
            "SELECT p.key, p.kind, p.label, p.inputs, coalesce(t.status, 'pending'), t.error,"
            " t.seconds FROM plan p LEFT JOIN tasks t ON p.key = t.key ORDER BY p.position"
        ).fetchall()
        return [
            {
                "key": key,
                "kind": kind,
                "label": label,
                "inputs": json.loads(inputs),
                "status": status,
                "error": error,
                "seconds": seconds,
            }
            for key, kind, label, inputs, status, error, seconds in rows
        ]

    # -- tasks ---------------------------------------------------------------------------------

    def task_dir(self, task: Task | TaskRecord) -> Path:
        """Where a finished task's outputs live.

        Parameters
        ----------
        task
            A planned task or a catalog record (its ``kind`` and ``key`` are used).

        Returns
        -------
        Path
            ``STUDY/tasks/KIND/KEY``.
        """
        return self.root / "tasks" / task.kind / task.key

    def scratch_dir(self, key: str) -> Path:
        """A task's scratch folder (kept across attempts).

        Parameters
        ----------
        key
            The task key.

        Returns
        -------
        Path
            ``STUDY/work/KEY`` (not created here).
        """
        return self.root / "work" / key

    def status_of(self, key: str) -> str:
        """``done``, ``failed`` or ``pending``.

        Parameters
        ----------
        key
            The task key; a key not in the catalog is ``pending``.
        """
        row = self._db.execute("SELECT status FROM tasks WHERE key = ?", (key,)).fetchone()
        return row[0] if row else "pending"

    def is_done(self, key: str) -> bool:
        """Whether a task finished (catalogued as done).

        A run calls :meth:`discard_unsound` first, so that a task whose folder
        was deleted or altered is no longer done and is computed again.

        Parameters
        ----------
        key
            The task key.
        """
        return self.status_of(key) == "done"

    def problems(self, record: TaskRecord) -> list[str]:
        """What is wrong with a finished task's folder; empty when its outputs are intact.

        The folder must hold its ``task.json`` (for this key) and every file the
        catalog lists, each with the recorded size and SHA-256.

        Parameters
        ----------
        record
            A catalogued task.

        Returns
        -------
        list of str
            One line per problem (``missing task folder``, ``missing FILE``,
            ``FILE differs from the catalog``, ...).
        """
        folder = self.task_dir(record)
        if not folder.is_dir():
            return ["missing task folder"]
        problems = []
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("key") != record.key:
            problems.append(f"missing or unreadable {MANIFEST}")
        problems += _file_problems(folder, record.files)
        return problems

    def discard_unsound(self, tasks: Iterable[Task]) -> dict[str, str]:
        """Un-finish tasks whose outputs are missing or altered, so that they are recomputed.

        Each such task loses its catalog row and its folder (an event
        ``discarded`` records why); a task whose outputs are intact is untouched.

        Parameters
        ----------
        tasks
            The tasks to check (a run passes its plan).

        Returns
        -------
        dict
            Key → the first problem found, for every task discarded.
        """
        discarded = {}
        for task in tasks:
            record = self.record(task.key)
            if record is None or record.status != "done":
                continue
            problems = self.problems(record)
            if not problems:
                continue
            shutil.rmtree(self.task_dir(record), ignore_errors=True)
            with self._db:
                self._db.execute("DELETE FROM tasks WHERE key = ?", (task.key,))
            self._event(task.key, "discarded")
            discarded[task.key] = problems[0]
        return discarded

    def adopt(self, task: Task) -> bool:
        """Catalog a task whose folder was completed by a run killed before its commit.

        Parameters
        ----------
        task
            A planned task.

        Returns
        -------
        bool
            Whether it was adopted: ``False`` when it is already done or its folder
            has no ``task.json``. A folder whose ``task.json`` is unreadable or
            whose files differ from it is removed (the task is computed again).
        """
        folder = self.task_dir(task)
        manifest = folder / MANIFEST
        if self.is_done(task.key) or not manifest.is_file():
            return False
        try:
            record = json.loads(manifest.read_text())
            files, summary, seconds = record["files"], record["summary"], record["seconds"]
            sound = record["key"] == task.key and not _file_problems(folder, files)
        except (OSError, ValueError, KeyError, TypeError):
            sound = False
        if not sound:
            shutil.rmtree(folder, ignore_errors=True)
            self._event(task.key, "discarded")
            return False
        self._commit(task, "done", summary, files, None, seconds, "")
        self._event(task.key, "adopted")
        return True

    def store(self, task: Task, outcome: TaskOutcome, executor: str) -> None:
        """Write a finished task's outputs and catalog it (or record its failure).

        Parameters
        ----------
        task
            The planned task.
        outcome
            What the task returned; its files are written to :meth:`task_dir` when it
            succeeded, only the error is catalogued when it failed.
        executor
            Name of the executor that ran it (``local``, ``ray``, ``slurm``).

        Raises
        ------
        MetamersError
            The task returned a file path outside its folder.
        """
        if not outcome.ok:
            self._commit(task, "failed", {}, [], outcome.error, outcome.seconds, outcome.host)
            self._event(task.key, "failed")
            return
        files = self._write_outputs(task, outcome)
        self._commit(
            task, "done", outcome.summary, files, None, outcome.seconds, outcome.host, executor
        )
        self._event(task.key, "done")

    def _write_outputs(self, task: Task, outcome: TaskOutcome) -> list[dict[str, Any]]:
        final = self.task_dir(task)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        files = []
        for relative, data in sorted(outcome.files.items()):
            path = partial / relative
            if ".." in Path(relative).parts or Path(relative).is_absolute():
                raise MetamersError(f"task {task.label} returned a file outside its folder")
            write_bytes_atomic(path, data)
            digest = hashlib.sha256(data).hexdigest()[:16]
            files.append({"path": relative, "bytes": len(data), "sha256": digest})
        manifest = {
            "key": task.key,
            "kind": task.kind,
            "label": task.label,
            "settings": task.settings,
            "inputs": list(task.inputs),
            "summary": outcome.summary,
            "files": files,
            "seconds": outcome.seconds,
        }
        write_json_atomic(partial / MANIFEST, manifest)
        _fsync_dir(partial)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync_dir(final.parent)
        return files

    def _commit(self, task, status, summary, files, error, seconds, host, executor="") -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.key,
                    task.kind,
                    task.label,
                    json.dumps(task.settings, sort_keys=True),
                    json.dumps(list(task.inputs)),
                    status,
                    json.dumps(summary, sort_keys=True),
                    json.dumps(files),
                    error,
                    seconds,
                    host,
                    executor,
                    time.time(),
                ),
            )

    def _event(self, key: str | None, event: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO events (run, key, event, time) VALUES (?, ?, ?, ?)",
                (self.run_id, key, event, time.time()),
            )

    def log(self, event: str, key: str | None = None) -> None:
        """Add an event (``run-started``, ``started``, ...) to the catalog's log.

        Parameters
        ----------
        event
            The event name, e.g. ``"run-started"``, ``"submitted"``, ``"run-finished"``.
        key
            The task the event concerns; ``None`` for run-level events.
        """
        self._event(key, event)

    # -- reading -------------------------------------------------------------------------------

    def records(
        self, *, status: str | None = "done", planned_only: bool = True
    ) -> list[TaskRecord]:
        """Catalogued tasks (by default: finished tasks of the current plan, in plan order).

        Parameters
        ----------
        status
            Keep tasks with this status (``"done"`` or ``"failed"``); ``None`` keeps
            every status.
        planned_only
            Keep only tasks of the current plan, in plan order; otherwise every
            catalogued task, ordered by kind and label.
        """
        query = (
            "SELECT t.key, t.kind, t.label, t.status, t.settings, t.inputs, t.summary, t.files,"
            " t.error, t.seconds FROM tasks t"
        )
        if planned_only:
            query += " JOIN plan p ON p.key = t.key"
        params: tuple = ()
        if status is not None:
            query += " WHERE t.status = ?"
            params = (status,)
        query += " ORDER BY p.position" if planned_only else " ORDER BY t.kind, t.label"
        return [_record(row) for row in self._db.execute(query, params).fetchall()]

    def record(self, key: str) -> TaskRecord | None:
        """One catalogued task, or ``None``.

        Parameters
        ----------
        key
            The task key.
        """
        row = self._db.execute(
            "SELECT key, kind, label, status, settings, inputs, summary, files, error, seconds"
            " FROM tasks WHERE key = ?",
            (key,),
        ).fetchone()
        return _record(row) if row else None

    def events(self, key: str | None = None) -> list[tuple[str, str | None, str]]:
        """The event log as ``(run, key, event)``.

        Parameters
        ----------
        key
            Only the events of this task; ``None`` for every event, in logged order.
        """
        query = "SELECT run, key, event FROM events"
        params: tuple = ()
        if key is not None:
            query += " WHERE key = ?"
            params = (key,)
        return self._db.execute(query + " ORDER BY id", params).fetchall()

    def in_flight(self) -> set[str]:
        """Keys submitted by the latest run that have not finished (running, or killed)."""
        row = self._db.execute("SELECT run FROM events ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return set()
        latest: dict[str, str] = {}
        for key, event in self._db.execute(
            "SELECT key, event FROM events WHERE run = ? AND key IS NOT NULL ORDER BY id", row
        ):
            latest[key] = event
        return {key for key, event in latest.items() if event == "submitted"}

    def verify(self, records: Iterable[TaskRecord] | None = None) -> list[str]:
        """Problems with finished tasks' files (missing, wrong size or hash); empty when sound.

        Parameters
        ----------
        records
            The tasks to check; ``None`` for every finished task of the current plan.

        Returns
        -------
        list of str
            One line per missing or altered file.
        """
        return [
            f"{record.label}: {problem}"
            for record in (self.records() if records is None else records)
            for problem in self.problems(record)
        ]


def catalog_status(root: str | Path) -> dict[str, str]:
    """Key → status of every catalogued task in ``root`` (empty when there is no study there).

    Opens the catalog read-only: safe while a run is writing it.

    Parameters
    ----------
    root
        A study folder.
    """
    path = Path(root) / CATALOG
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return dict(db.execute("SELECT key, status FROM tasks").fetchall())
    except sqlite3.OperationalError:  # a first run is still creating the catalog
        return {}
    except sqlite3.DatabaseError as exc:
        raise _damaged_catalog(path, exc) from None
    finally:
        db.close()


def is_running(root: str | Path) -> bool:
    """Whether a driver currently holds the study's writer lock.

    Parameters
    ----------
    root
        A study folder.
    """
    return is_locked(Path(root) / ".lock")


def _damaged_catalog(path: Path, exc: sqlite3.DatabaseError) -> MetamersError:
    return MetamersError(
        f"{path} is damaged ({exc}); move it aside and re-run: finished task folders are "
        "adopted again from their task.json"
    )


def file_sha256(path: Path) -> str:
    """The digest a task's file is catalogued with (SHA-256, first 16 hex digits), read in chunks.

    Parameters
    ----------
    path
        The file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _file_problems(folder: Path, files: list[dict[str, Any]]) -> list[str]:
    """Missing files and files whose size or SHA-256 differ from their entries."""
    problems = []
    for entry in files:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"missing {entry['path']}")
        elif path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']} differs from the catalog")
    return problems


def _record(row: tuple) -> TaskRecord:
    key, kind, label, status, settings, inputs, summary, files, error, seconds = row
    return TaskRecord(
        key=key,
        kind=kind,
        label=label,
        status=status,
        settings=json.loads(settings),
        inputs=tuple(json.loads(inputs)),
        summary=json.loads(summary or "{}"),
        files=json.loads(files or "[]"),
        error=error,
        seconds=seconds,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
