"""``metamers experiment build | serve | export | analyze``: human recognition experiments."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

from metamers.cli.app import app
from metamers.cli.common import FormatOption, check_format, console, emit
from metamers.errors import ConfigError

experiment_app = typer.Typer(
    help="Human recognition experiments: build a bundle, serve it, export and analyze the answers."
)
app.add_typer(experiment_app, name="experiment")

TOKEN_ENV = "METAMERS_ADMIN_TOKEN"
DbOption = typer.Option(
    None,
    "--db",
    help="Database URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB "
    "(default: BUNDLE/experiment.sqlite).",
)


@experiment_app.command("build")
def build_command(
    bundle: Path = typer.Argument(..., help="New folder for the experiment bundle."),
    metamers: Path = typer.Option(
        ...,
        "--metamers",
        help="A validated `metamers generate` folder, or a stimulus folder ROOT/LABEL/FILE "
        "(or ROOT/CONDITION/LABEL/FILE).",
    ),
    task: str = typer.Option(
        None, "--task", help="image16, naway or words (default: the config's)."
    ),
    config: Path = typer.Option(None, "--config", help="Experiment YAML (default: every default)."),
) -> None:
    """Build a bundle: accepted metamers and natural references under opaque ids, and the design."""
    from metamers.experiments import TASKS, build_bundle, load_config
    from metamers.experiments.design import n_lists, timeline

    if task is not None and task not in TASKS:
        raise ConfigError(f"--task {task}: choose one of {', '.join(TASKS)}")
    manifest = build_bundle(metamers, bundle, load_config(config), task=task)
    conditions = ", ".join(c["name"] for c in manifest["conditions"])
    trials = len(timeline(manifest, 0, 0))
    console.print(
        f"bundle {bundle}: {manifest['task']} task, {len(manifest['items'])} main items in "
        f"{len(manifest['conditions'])} conditions ({conditions}), {n_lists(manifest)} "
        f"Latin-square lists, {trials} trials per participant"
    )


@experiment_app.command("serve")
def serve_command(
    bundle: Path = typer.Argument(..., help="An experiment bundle."),
    db: str = DbOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    token: str = typer.Option(
        None,
        "--admin-token",
        envvar=TOKEN_ENV,
        help=f"Token of the export and admin endpoints (default: ${TOKEN_ENV}, else a new one).",
    ),
) -> None:
    """Serve the experiment (FastAPI + uvicorn); put it behind an HTTPS proxy for participants."""
    import uvicorn

    from metamers.experiments import create_app
    from metamers.experiments.db import default_url

    if token is None:
        token = secrets.token_urlsafe(24)
        console.print(f"admin token (export and admin endpoints): {token}")
    server = create_app(bundle, db or default_url(bundle), admin_token=token)
    console.print(f"serving {bundle} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(server, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


@experiment_app.command("export")
def export_command(
    bundle: Path = typer.Argument(..., help="The experiment bundle."),
    db: str = DbOption,
    out: Path = typer.Option(None, "--out", help="Folder for the tables (default: BUNDLE/export)."),
    url: str = typer.Option(None, "--url", help="Export from a running server instead (its URL)."),
    token: str = typer.Option(None, "--admin-token", envvar=TOKEN_ENV, help="Its admin token."),
) -> None:
    """Write trials and participants tables (Parquet and CSV), locally or from a server."""
    from metamers.experiments import export_tables
    from metamers.experiments.db import default_url

    out = out or bundle / "export"
    if url is not None:
        tables = _export_http(url, token, out)
    else:
        tables = export_tables(bundle, db or default_url(bundle), out)
    console.print(
        f"wrote {out}/trials ({len(tables['trials'])} trials) and {out}/participants "
        f"({len(tables['participants'])} participants), .parquet and .csv"
    )


def _export_http(url: str, token: str | None, out: Path) -> dict:
    import io
    import urllib.error
    import urllib.request

    import pandas as pd

    from metamers.io import write_table

    if not token:
        raise ConfigError(f"--url needs --admin-token (or ${TOKEN_ENV})")
    tables = {}
    for name in ("trials", "participants"):
        request = urllib.request.Request(
            f"{url.rstrip('/')}/api/admin/export/{name}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise ConfigError(f"{url}: export refused ({exc.code} {exc.reason})") from None
        except urllib.error.URLError as exc:
            raise ConfigError(f"{url}: cannot connect ({exc.reason})") from None
        tables[name] = pd.read_csv(io.StringIO(text)) if text.strip() else pd.DataFrame()
        write_table(tables[name], out / name)
    return tables


@experiment_app.command("analyze")
def analyze_command(
    bundle: Path = typer.Argument(..., help="The experiment bundle."),
    tables: Path = typer.Option(
        None, "--tables", help="Folder of exported tables (default: BUNDLE/export)."
    ),
    models: Path = typer.Option(
        None,
        "--models",
        help="Other models' recognition of the same metamers: a recognition_summary or "
        "recognition table of `metamers evaluate` (.parquet or .csv).",
    ),
    out: Path = typer.Option(None, "--out", help="Folder for results (default: BUNDLE/analysis)."),
    n_boot: int = typer.Option(1000, "--n-boot", min=1, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    fmt: str = FormatOption,
) -> None:
    """Proportion correct per (model, layer) with bootstrap CIs, exclusions, model comparison."""
    import pandas as pd

    from metamers.experiments import analyze, load_manifest

    check_format(fmt)
    manifest = load_manifest(bundle)
    folder = tables or bundle / "export"
    frames = {name: _read_table(folder / name) for name in ("trials", "participants")}
    recognition = _read_table(models.with_suffix(""), models.suffix) if models else None
    result = analyze(
        frames["trials"],
        frames["participants"],
        manifest,
        out or bundle / "analysis",
        model_recognition=recognition,
        n_boot=n_boot,
        seed=seed,
    )
    excluded = int(result.participants["excluded"].sum())
    console.print(f"{len(result.participants)} participants, {excluded} excluded")
    data: dict[str, pd.DataFrame] = {"human_recognition": result.by_condition}
    if result.correlation is not None:
        data["human_vs_models"] = result.correlation.reset_index()
    emit(data if len(data) > 1 else result.by_condition, fmt)
    for figure in result.figures:
        console.print(f"figure: {figure}")


def _read_table(stem: Path, suffix: str | None = None):
    import pandas as pd

    for candidate in [suffix] if suffix else [".parquet", ".csv"]:
        path = stem.with_suffix(candidate) if candidate else stem
        if path.is_file():
            return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    raise ConfigError(f"no table {stem}.parquet or .csv; run `metamers experiment export` first")
