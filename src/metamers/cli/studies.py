"""``metamers run | status | report``: whole studies from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import FormatOption, check_format, console, emit, out, set_threads
from metamers.errors import ConfigError

if TYPE_CHECKING:
    from metamers.studies import StudyConfig


def _open_study(
    path: Path | None, name: str | None, executor: str | None, address: str | None, out_dir
) -> StudyConfig:
    from metamers.studies import load_bundled_study, load_study

    if path is not None and name is not None:
        raise ConfigError("give a study file or --study NAME, not both")
    study = load_study(path) if path is not None else load_bundled_study(name or "default")
    changes = {}
    if executor:
        changes["executor.kind"] = executor
    if address:
        changes["executor.address"] = address
    if out_dir:
        changes["output"] = str(out_dir)
    return study.with_updates(**changes) if changes else study


@app.command("run")
def run_command(
    study_file: Path = typer.Argument(
        None, help="Study YAML (default: the bundled default study).", show_default=False
    ),
    study_name: str = typer.Option(None, "--study", help="A bundled study by name."),
    executor: str = typer.Option(
        None, "--executor", help="local, ray or slurm (overrides the file)."
    ),
    address: str = typer.Option(None, "--address", help="Ray cluster address to join."),
    out_dir: Path = typer.Option(None, "--out", help="Study folder (overrides the file)."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Check models, layers and stimulus counts, print the task plan and a cost "
        "estimate; run nothing.",
    ),
) -> None:
    """Run (or resume) a study: finished tasks are skipped, changed settings recomputed."""
    from metamers.report import build_report
    from metamers.studies import run_study

    set_threads()
    study = _open_study(study_file, study_name, executor, address, out_dir)
    if dry_run:
        _check_study(study)
        _print_plan(study)
        return

    def progress(event, task, outcome) -> None:
        if event == "done":
            console.print(f"[green]done[/]    {task.label}  ({outcome.seconds:.1f} s)")
        elif event == "failed":
            console.print(f"[red]failed[/]  {task.label}: {outcome.error.splitlines()[0]}")
        elif event == "progress":
            console.print(f"[dim]…[/]       {task.label}: {outcome}", highlight=False)

    summary = run_study(study, reporter=build_report, progress=progress)
    for note in summary.notes:
        console.print(f"[yellow]note[/]: {note}")
    out.print(
        f"{len(summary.computed)} computed, {len(summary.reused)} reused, "
        f"{len(summary.failed)} failed, {len(summary.blocked)} blocked; study folder {summary.root}"
    )
    if summary.report is not None:
        out.print(f"report: {summary.report}")
    if not summary.ok:
        raise typer.Exit(1)


def _check_study(study: StudyConfig) -> None:
    """Print every problem found without computing, one ``error:`` line each; exit 2 if any."""
    from metamers.studies.planner import check_study

    problems = check_study(study)
    label = Path(study.source).name if study.source else "study"
    for problem in problems:
        typer.echo(f"error: {label}: {problem}", err=True)
    if problems:
        raise typer.Exit(2)


def _print_plan(study: StudyConfig) -> None:
    from metamers.studies import plan_study
    from metamers.studies.store import catalog_status

    plan = plan_study(study)
    done = catalog_status(study.output_dir)
    table = Table("wave", "kind", "task", "key", "status")
    for wave_index, wave in enumerate(plan.waves()):
        for task in wave:
            table.add_row(
                str(wave_index), task.kind, task.label, task.key, done.get(task.key, "pending")
            )
    out.print(table)
    for note in plan.notes:
        out.print(f"note: {note}")
    remaining = [t for t in plan if done.get(t.key) != "done"]
    totals = plan.estimate()
    steps = sum(v["steps"] for v in totals.values())
    seconds = sum(v["seconds"] for v in totals.values())
    out.print(
        f"{len(plan)} tasks ({len(remaining)} to run) in {len(plan.waves())} waves; "
        f"{int(steps)} optimisation steps; roughly {seconds / 60:.1f} min on one CPU core "
        f"for the whole study; output {study.output_dir}"
    )


@app.command("status")
def status_command(
    study_dir: Path = typer.Argument(..., help="Study folder."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Also check every finished result's files against their catalogued size and "
        "SHA-256 (a re-run recomputes any that differ).",
    ),
    fmt: str = FormatOption,
) -> None:
    """Done, pending and failed tasks of a study's current plan.

    --format csv|json prints one record per planned task: kind, label, key,
    status (done, submitted, pending or failed) and error.
    """
    from metamers.studies import StudyStore
    from metamers.studies.store import is_running

    check_format(fmt)
    running = is_running(study_dir)
    with StudyStore(study_dir) as store:
        planned = store.planned()
        notes = store.meta().get("notes", [])
        in_flight = store.in_flight() if running else set()
        problems = store.verify() if verify else []
    table = Table("kind", "done", "submitted", "pending", "failed")
    for kind in dict.fromkeys(t["kind"] for t in planned):
        tasks = [t for t in planned if t["kind"] == kind]
        statuses = [t["status"] for t in tasks]
        busy = sum(t["status"] == "pending" and t["key"] in in_flight for t in tasks)
        table.add_row(
            kind,
            str(statuses.count("done")),
            str(busy),
            str(statuses.count("pending") - busy),
            str(statuses.count("failed")),
        )
    if fmt != "table":
        emit(
            [
                {
                    "kind": t["kind"],
                    "label": t["label"],
                    "key": t["key"],
                    "status": "submitted"
                    if t["status"] == "pending" and t["key"] in in_flight
                    else t["status"],
                    "error": t["error"] or None,
                }
                for t in planned
            ],
            fmt,
        )
        for problem in problems:
            console.print(f"damaged {problem}")
        if problems:
            raise typer.Exit(1)
        return
    out.print(table)
    for task in planned:
        if task["status"] == "failed":
            out.print(f"failed  {task['label']}: {(task['error'] or '').splitlines()[0]}")
    for note in notes:
        out.print(f"note: {note}")
    counts = {s: sum(t["status"] == s for t in planned) for s in ("done", "pending", "failed")}
    progress = f" ({len(in_flight)} submitted; a run is in progress)" if running else ""
    out.print(
        f"{counts['done']} done, {counts['pending']} pending, {counts['failed']} failed{progress}"
    )
    if verify:
        for problem in problems:
            out.print(f"damaged {problem}")
        if problems:
            out.print(f"{len(problems)} damaged: a re-run computes those tasks again")
            raise typer.Exit(1)
        out.print("verified: every finished result matches its catalogued digest")


@app.command("report")
def report_command(
    study_dir: Path = typer.Argument(..., help="Study folder."),
) -> None:
    """Rebuild a study's HTML report and tables from its finished results."""
    from metamers.report import build_report

    result = build_report(study_dir)
    out.print(f"report: {study_dir / 'report' / 'index.html'} ({len(result['sections'])} sections)")
