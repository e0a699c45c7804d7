"""The Typer application and the entry point that turns user errors into one-line messages."""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from metamers.errors import MetamersError

app = typer.Typer(
    name="metamers",
    help="Model metamers: generate, validate and evaluate stimuli that a model cannot tell apart.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = ("models", "synthesis", "null", "evaluation", "studies", "zoo")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"metamers.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"metamers.cli.{name}":
                raise


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    _register_commands()
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except MetamersError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; finished results are kept, re-run to resume", err=True)
        sys.exit(130)
