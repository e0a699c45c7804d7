"""Options and helpers shared by the CLI command modules."""

from __future__ import annotations

import os

import torch
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from metamers.models import PixelModel, load_model

console = Console(stderr=True)
out = Console()

RandomWeights = typer.Option(
    False, "--random-weights", help="Build the architecture untrained (no weight download)."
)
Weights = typer.Option(None, "--weights", help="Local weights file for a timm:/torchvision: model.")
TrustCode = typer.Option(
    False, "--trust-code", help="Allow file:MODEL.py models, whose code runs on load."
)
Device = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu).")
SkipBad = typer.Option(False, "--skip-bad", help="Skip undecodable stimuli with a warning.")


def pick_device(device: str | None) -> str:
    """The requested device, or CUDA when present, else CPU."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads() -> None:
    """Honour ``METAMERS_THREADS`` for CPU runs (default: torch's choice)."""
    threads = os.environ.get("METAMERS_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def open_model(
    name: str,
    *,
    random_weights: bool = False,
    weights: str | None = None,
    trust_code: bool = False,
    device: str | None = None,
) -> PixelModel:
    """Load a model for a CLI command."""
    set_threads()
    return load_model(
        name,
        random_weights=random_weights,
        weights=weights,
        trust_code=trust_code,
        device=pick_device(device),
    )


def split_list(text: str | None) -> list[str]:
    """Split a comma-separated option into its non-empty parts."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def progress_bar() -> Progress:
    """A rich progress bar on stderr (disabled when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
