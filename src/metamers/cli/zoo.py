"""``metamers zoo list | train``: the project's own MNIST model zoo."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import console, out

zoo_app = typer.Typer(
    help="The project's own models (MNIST zoo, word models): list them, or retrain them."
)
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
    out.print(_word_table())


def _word_table() -> Table:
    from metamers.models.words import WORD_SPECS, read_word_manifest

    models = read_word_manifest()["models"]
    table = Table(
        "name", "arch", "training", "seed", "clean acc %", "noisy acc %", "PGD acc %",
        "study layers", title="word models (bundled:words, unseen test voices)",
    )  # fmt: skip
    for name, spec in WORD_SPECS.items():
        entry = models.get(name, {})
        table.add_row(
            name,
            spec.arch,
            "robust" if spec.robust else "standard",
            str(spec.seed),
            _pct(entry.get("accuracy")),
            _pct(entry.get("noisy_accuracy")),
            _pct(entry.get("robust_accuracy")),
            ", ".join(spec.study_layers),
        )
    return table


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
    from metamers.models.words import WORD_SPECS
    from metamers.models.words.reproduce import resolve_word_names, train_word_models
    from metamers.models.zoo import resolve_names, train_zoo

    if not names and not all_models:
        raise ConfigError("name zoo models to train, or pass --all")
    names = names or []
    word_names = list(WORD_SPECS) if all_models else [n for n in names if n.startswith("word_")]
    mnist_names = [n for n in names if not n.startswith("word_")]
    specs = resolve_names(mnist_names, all_models) if all_models or mnist_names else []
    word_specs = resolve_word_names(word_names)
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

    def on_epoch(spec, epoch, loss) -> None:
        console.print(f"  {spec.name} epoch {epoch}/{spec.epochs} loss {loss:.4f}")

    results = train_zoo(specs, out_dir, force=force, on_epoch=on_epoch, on_done=done)
    results += train_word_models(
        word_specs, out_dir, force=force, on_epoch=on_epoch, on_done=done, message=console.print
    )
    out.print(table)
    console.print(f"weights and zoo.json / words.json in {out_dir}")
    if not all(r.within(tolerance / 100) for r in results):
        raise typer.Exit(1)
