"""``metamers zoo list | train``: the project's own MNIST model zoo."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import console, out

zoo_app = typer.Typer(help="The project's MNIST model zoo: list it, or retrain it from scratch.")
app.add_typer(zoo_app, name="zoo")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


@zoo_app.command("list")
def list_command() -> None:
    """Every zoo model with its accuracy, robustness, seed and study layers."""
    from metamers.models.zoo import ZOO_SPECS, read_manifest

    models = read_manifest()["models"]
    table = Table("name", "arch", "training", "seed", "acc %", "PGD acc %", "study layers")
    for name, spec in ZOO_SPECS.items():
        entry = models.get(name, {})
        table.add_row(
            name,
            spec.arch,
            "robust" if spec.robust else "standard",
            str(spec.seed),
            _pct(entry.get("accuracy")),
            _pct(entry.get("robust_accuracy")),
            ", ".join(spec.study_layers),
        )
    out.print(table)


@zoo_app.command("train")
def train_command(
    names: list[str] = typer.Argument(
        None, help="Zoo model names (default with --all: every one)."
    ),
    all_models: bool = typer.Option(False, "--all", help="Train every zoo model."),
    out_dir: Path = typer.Option(
        Path("zoo-weights"), "--out", help="Directory for NAME.safetensors and zoo.json."
    ),
    force: bool = typer.Option(False, "--force", help="Retrain models already in --out."),
    tolerance: float = typer.Option(
        1.0, "--tolerance", help="Allowed accuracy difference from the committed value, in points."
    ),
) -> None:
    """Retrain zoo models from scratch on CPU (fixed seeds) and compare with the committed ones."""
    from metamers.errors import ConfigError
    from metamers.models.zoo import resolve_names, train_zoo

    if not names and not all_models:
        raise ConfigError("name zoo models to train, or pass --all")
    specs = resolve_names(names or [], all_models)
    table = Table("name", "acc %", "committed %", "PGD acc %", "committed %", "same bytes", "ok")

    def done(result) -> None:
        ok = result.within(tolerance / 100)
        note = " (already trained)" if result.skipped else ""
        console.print(
            f"{result.name}: accuracy {_pct(result.accuracy)}% "
            f"(committed {_pct(result.committed_accuracy)}%){note}"
        )
        table.add_row(
            result.name,
            _pct(result.accuracy),
            _pct(result.committed_accuracy),
            _pct(result.robust_accuracy),
            _pct(result.committed_robust_accuracy),
            "yes" if result.identical else "no",
            "yes" if ok else "NO",
        )

    results = train_zoo(
        specs,
        out_dir,
        force=force,
        on_epoch=lambda spec, epoch, loss: console.print(
            f"  {spec.name} epoch {epoch}/{spec.epochs} loss {loss:.4f}"
        ),
        on_done=done,
    )
    out.print(table)
    console.print(f"weights and zoo.json in {out_dir}")
    if not all(r.within(tolerance / 100) for r in results):
        raise typer.Exit(1)
