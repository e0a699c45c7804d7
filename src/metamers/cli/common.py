"""Options and helpers shared by the CLI command modules.

Internal module: use it through the ``metamers`` command; not part of the public API.
"""

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

from metamers.decisions import LABEL_SPACES, LabelSpace
from metamers.errors import ConfigError
from metamers.labels import DEFAULT_SIXTEEN_WAY_RULE, SIXTEEN_WAY_RULES
from metamers.models import PixelModel, load_model
from metamers.null.criterion import CRITERION_KINDS, DEFAULT_NULL_PAIRS, NullCriterion

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
LabelsFile = typer.Option(
    None,
    "--labels",
    help="Labels file replacing the stimuli's own labels: a CSV of stimulus,label (an ImageNet "
    "WordNet id, class name or index) or ImageNet's LOC_val_solution.csv.",
)

LabelSpaceOption = typer.Option(
    "auto",
    "--label-space",
    help=f"Label space of model decisions, one of {', '.join(LABEL_SPACES)}: auto = 16-way for "
    "ImageNet models (as published), each model's own classes otherwise.",
)
SixteenWayFlag = typer.Option(False, "--16way", help="Shorthand for --label-space 16-way.")
SixteenWayRuleOption = typer.Option(
    DEFAULT_SIXTEEN_WAY_RULE,
    "--16way-rule",
    help=f"16-way decision rule, one of {', '.join(SIXTEEN_WAY_RULES)} "
    "(first hit, as published; or mean probability per category).",
)
CriterionOption = typer.Option(
    "max", "--criterion", help=f"Null criterion, one of {', '.join(CRITERION_KINDS)}."
)
QuantileOption = typer.Option(0.999, "--quantile", help="Quantile for --criterion quantile.")
AlphaOption = typer.Option(0.001, "--alpha", help="Level for --criterion p_value.")
InclusiveOption = typer.Option(
    False,
    "--inclusive/--strict",
    help="Pass at a value equal to the threshold (>=, the published code) or only beyond it.",
)
NullPairsOption = typer.Option(
    DEFAULT_NULL_PAIRS, "--pairs", min=1, help="Number of null pairs (cached per model)."
)


def pick_device(device: str | None) -> str:
    """The requested device, or CUDA when present, else CPU.

    A device this machine lacks (``--device cuda`` without CUDA, ``cuda:3`` on
    a two-GPU machine, ``mps`` off Apple silicon) or a name torch does not
    know is refused with one line before any work.
    """
    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device}: CUDA is not available on this machine; use --device cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"--device {device}: MPS is not available on this machine; use --device cpu"
        )
    return device


def set_threads() -> None:
    """Honour ``METAMERS_THREADS`` for CPU runs (default: torch's choice).

    Raises
    ------
    ConfigError
        ``METAMERS_THREADS`` is not a positive whole number.
    """
    threads = os.environ.get("METAMERS_THREADS", "").strip()
    if not threads:
        return
    if not threads.isdigit() or int(threads) < 1:
        raise ConfigError(f"METAMERS_THREADS must be a positive whole number (got {threads!r})")
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


def label_space(
    space: str, sixteen_way: bool = False, rule: str = DEFAULT_SIXTEEN_WAY_RULE
) -> LabelSpace:
    """The :class:`~metamers.decisions.LabelSpace` the label options describe."""
    return LabelSpace("16-way" if sixteen_way else space, rule)


def null_criterion(
    kind: str, quantile: float = 0.999, alpha: float = 0.001, inclusive: bool = False
) -> NullCriterion:
    """The :class:`~metamers.null.NullCriterion` the criterion options describe."""
    return NullCriterion(kind=kind, q=quantile, alpha=alpha, inclusive=inclusive)


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
