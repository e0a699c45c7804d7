"""The driver: plan the study, skip finished work, run the rest in waves, catalog results.

The driver is the study folder's single writer. It submits each wave of
ready tasks to the executor, stores every outcome the moment it arrives (so
a kill loses at most the tasks still running), and moves to the next wave.
A task whose input failed is left pending for the next run.

The ``report`` task runs in the driver's process through a *reporter*
callable (``metamers.report.build_report``), passed in by the caller because
the report layer sits above this one. When a task failed (or was blocked) the
``report`` task stays pending, but a report is still written to
``STUDY/report`` after everything else finished or failed, listing what is
missing; the next complete run replaces it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamers.io import write_bytes_atomic
from metamers.studies.config import StudyConfig
from metamers.studies.executors import Executor, make_executor
from metamers.studies.planner import Plan, Task, plan_study
from metamers.studies.store import StudyStore
from metamers.studies.tasks import (
    KINDS,
    InputRef,
    TaskOutcome,
    TaskSpec,
    clear_scratch,
    collect_files,
)

Reporter = Callable[[Path, Path], dict[str, Any]]
"""``reporter(study_dir, out_dir) -> summary``: writes the report's files into ``out_dir``."""

ProgressFn = Callable[[str, Task, TaskOutcome | str | None], None]
"""``progress(event, task, outcome)`` with event ``submitted``, ``done``, ``failed``, ``skipped``;
or ``progress("progress", task, line)`` with a running task's periodic progress line (from
executors that run tasks in the driver's process)."""


@dataclass
class RunSummary:
    """What one run did.

    Attributes
    ----------
    root
        The study folder.
    computed
        Keys of tasks finished by this run.
    reused
        Keys of tasks already finished before it.
    failed
        Key → error of tasks that failed in this run.
    blocked
        Keys of tasks not run because an input is missing.
    discarded
        Key → problem of tasks catalogued as finished whose outputs were
        missing or altered (folder deleted, a file changed): they were computed
        again, not reused.
    notes
        What the planner left out, and why.
    report
        Path of the report page, when one was built (also when some tasks
        failed: then the report lists them, and ``partial_report`` is set).
    partial_report
        Whether the report was built with tasks missing (the ``report`` task
        itself stays pending, so the next complete run builds it again).
    """

    root: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    discarded: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report: Path | None = None
    partial_report: bool = False

    @property
    def ok(self) -> bool:
        """Whether every planned task is finished."""
        return not self.failed and not self.blocked


def run_study(
    study: StudyConfig,
    *,
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Run (or resume) a study.

    Parameters
    ----------
    study
        The validated study; its ``output`` folder is created if needed.
    executor
        Where tasks run (default: the one the study's ``executor`` section names).
    reporter
        Builds the report page (``metamers.report.build_report``); without
        it the ``report`` task stays pending.
    progress
        Called for each task event.

    Returns
    -------
    RunSummary
        What was computed, reused, failed or blocked.
    """
    plan = plan_study(study)
    root = study.output_dir
    summary = RunSummary(root=root, notes=list(plan.notes))
    with StudyStore(root, create=True) as store:
        store.acquire()
        store.record_plan(plan)
        store.log("run-started")
        for task in plan:
            store.adopt(task)
        summary.discarded = store.discard_unsound(plan)
        for key, problem in summary.discarded.items():
            warnings.warn(
                f"{plan.tasks[key].label}: finished outputs are not intact ({problem}); "
                "computing it again",
                stacklevel=2,
            )
        own_executor = executor is None
        executor = executor or make_executor(study.executor, root)
        try:
            for wave in plan.waves():
                _run_wave(wave, plan, store, executor, reporter, summary, progress)
        finally:
            if own_executor:
                executor.close()
        store.log("run-finished")
        summary.report = _publish_report(plan, store)
        if summary.report is None and reporter is not None:
            summary.report = _partial_report(store, reporter)
            summary.partial_report = summary.report is not None
    return summary


def _run_wave(
    wave: list[Task],
    plan: Plan,
    store: StudyStore,
    executor: Executor,
    reporter: Reporter | None,
    summary: RunSummary,
    progress: ProgressFn | None,
) -> None:
    todo = []
    for task in wave:
        if store.is_done(task.key):
            summary.reused.append(task.key)
        elif not all(store.is_done(k) for k in task.inputs) or (
            task.kind == "report" and reporter is None
        ):
            summary.blocked.append(task.key)
            _notify(progress, "skipped", task, None)
        else:
            todo.append(task)
    in_driver = [t for t in todo if t.kind == "report"]
    remote = [t for t in todo if t.kind != "report"]
    device = executor.device() if remote else "cpu"
    specs = [_spec(task, plan, store, executor, device) for task in remote]
    for spec in specs:
        store.log("submitted", spec.key)
        _notify(progress, "submitted", plan.tasks[spec.key], None)
    if progress is not None and hasattr(executor, "on_progress"):
        executor.on_progress = lambda key, line: progress("progress", plan.tasks[key], line)
    for outcome in executor.run(specs):
        _finish(plan.tasks[outcome.key], outcome, store, executor.name, summary, progress)
    for task in in_driver:
        outcome = _run_report(task, store, reporter)
        _finish(task, outcome, store, "driver", summary, progress)


def _spec(task: Task, plan: Plan, store: StudyStore, executor: Executor, device: str) -> TaskSpec:
    inputs = tuple(
        InputRef(
            key=key,
            kind=plan.tasks[key].kind,
            settings=plan.tasks[key].settings,
            path=str(store.task_dir(plan.tasks[key]).resolve()),
        )
        for key in task.inputs
    )
    return TaskSpec(
        key=task.key,
        kind=task.kind,
        label=task.label,
        settings=task.settings,
        inputs=inputs,
        scratch=str(store.scratch_dir(task.key).resolve()),
        threads=executor_threads(executor),
        device=device,
    )


def executor_threads(executor: Executor) -> int:
    """Torch threads per task (see :meth:`ExecutorSection.threads`).

    Parameters
    ----------
    executor
        The executor; one without ``settings`` (an
        :class:`~metamers.studies.config.ExecutorSection`) gets 1 thread.
    """
    settings = getattr(executor, "settings", None)
    return settings.threads() if settings is not None else 1


def _finish(task, outcome, store, executor_name, summary, progress) -> None:
    store.store(task, outcome, executor_name)
    if outcome.ok:
        summary.computed.append(task.key)
        clear_scratch(store.scratch_dir(task.key))
        _notify(progress, "done", task, outcome)
    else:
        summary.failed[task.key] = outcome.error or "failed"
        _notify(progress, "failed", task, outcome)


def _run_report(task: Task, store: StudyStore, reporter: Reporter) -> TaskOutcome:
    started = time.perf_counter()
    scratch = store.scratch_dir(task.key) / "out"
    clear_scratch(scratch)
    scratch.mkdir(parents=True)
    try:
        result = reporter(store.root, scratch)
    except Exception as exc:  # the report must not lose the study's results
        return TaskOutcome(task.key, False, error=f"{type(exc).__name__}: {exc}")
    seconds = round(time.perf_counter() - started, 3)
    return TaskOutcome(task.key, True, result, collect_files(scratch), seconds=seconds)


def _publish_report(plan: Plan, store: StudyStore) -> Path | None:
    """Copy the finished report task's files to ``STUDY/report``."""
    reports = [t for t in plan.of_kind("report") if store.is_done(t.key)]
    if not reports:
        return None
    record = store.record(reports[0].key)
    source = store.task_dir(record)
    target = store.root / "report"
    for entry in record.files:
        write_bytes_atomic(target / entry["path"], (source / entry["path"]).read_bytes())
    return target / "index.html"


def _partial_report(store: StudyStore, reporter: Reporter) -> Path | None:
    """Build the report of what finished into ``STUDY/report`` (the report task stays pending).

    The study's results are safe in the catalog whatever happens here: an
    ``OSError`` (a full disk) stops the run like any other write of the
    driver's; any other failure of the reporter only warns.
    """
    scratch = store.root / "work" / "partial-report"
    clear_scratch(scratch)
    scratch.mkdir(parents=True)
    try:
        reporter(store.root, scratch)
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            relative = path.relative_to(scratch)
            write_bytes_atomic(store.root / "report" / relative, path.read_bytes())
    except OSError:
        raise
    except Exception as exc:  # the results must not be lost to a report
        warnings.warn(f"the report could not be written: {type(exc).__name__}: {exc}", stacklevel=3)
        return None
    finally:
        clear_scratch(scratch)
    store.log("partial-report")
    return store.root / "report" / "index.html"


def _notify(progress: ProgressFn | None, event: str, task: Task, outcome) -> None:
    if progress is not None:
        progress(event, task, outcome)


__all__ = ["KINDS", "Reporter", "RunSummary", "run_study"]
