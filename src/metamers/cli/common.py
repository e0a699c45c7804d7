"""Options and helpers shared by the CLI command modules.

Nothing here imports torch, numpy or pandas at import time (``metamers --help``
stays fast): the command modules import the library inside their commands.

Internal module: use it through the ``metamers`` command; not part of the public API.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from rich.table import Table

from metamers.defaults import (
    CRITERION_KINDS,
    DEFAULT_NULL_PAIRS,
    DEFAULT_SIXTEEN_WAY_RULE,
    LABEL_SPACES,
    SIXTEEN_WAY_RULES,
)
from metamers.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from metamers.decisions import LabelSpace
    from metamers.models import PixelModel
    from metamers.null.criterion import NullCriterion

PIPED_WIDTH = 10_000
"""Console width when output is piped or logged: tables and lines are never cut or wrapped."""


def _width(stream) -> int | None:
    """``None`` (the terminal's width) on a terminal or with ``COLUMNS`` set, else :data:`PIPED_WIDTH`."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return PIPED_WIDTH


console = Console(stderr=True, width=_width(sys.stderr))
out = Console(width=_width(sys.stdout))

OUTPUT_FORMATS = ("table", "csv", "json")
FormatOption = typer.Option(
    "table",
    "--format",
    help="Output: table (for people), csv or json (for programs: json is one array of "
    "records, or an object of arrays when there are several tables).",
)

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
    import torch

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
    import torch

    torch.set_num_threads(int(threads))


def load_model(name: str, **kwargs: Any) -> PixelModel:
    """:func:`metamers.models.load_model`, imported on first use (``--help`` stays fast)."""
    from metamers.models import load_model as load

    return load(name, **kwargs)


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
    from metamers.decisions import LabelSpace

    return LabelSpace("16-way" if sixteen_way else space, rule)


def null_criterion(
    kind: str, quantile: float = 0.999, alpha: float = 0.001, inclusive: bool = False
) -> NullCriterion:
    """The :class:`~metamers.null.NullCriterion` the criterion options describe."""
    from metamers.null.criterion import NullCriterion

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


def check_format(fmt: str) -> str:
    """``fmt`` when it is one of :data:`OUTPUT_FORMATS`, else a one-line :class:`ConfigError`."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"--format {fmt}: choose one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


def emit(
    data: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fmt: str,
    table: Table | Sequence[Table] | None = None,
) -> None:
    """Print a command's result on stdout as a table for people, or as CSV or JSON.

    The one way commands print their results: ``--format table`` prints
    ``table`` (the command's own rich table; by default one built from
    ``data``); ``csv`` and ``json`` print ``data`` and nothing else, so the
    output parses. Messages go to stderr (:data:`console`).

    Parameters
    ----------
    data
        A :class:`pandas.DataFrame` or a list of records (dicts); or several
        named tables ``{name: DataFrame or records}``, printed as one JSON
        object of arrays, or as CSV tables each after a ``# name`` line.
    fmt
        ``table``, ``csv`` or ``json``.
    table
        What ``table`` prints (one rich table or several).
    """
    import pandas as pd

    check_format(fmt)
    named = isinstance(data, Mapping)
    frames = {k: pd.DataFrame(v) for k, v in (data.items() if named else [("", data)])}
    if fmt == "table":
        tables = table if table is not None else [_rich_table(f) for f in frames.values()]
        for item in [tables] if isinstance(tables, Table) else tables:
            out.print(item)
    elif fmt == "json":
        records = {k: json.loads(f.to_json(orient="records")) for k, f in frames.items()}
        typer.echo(json.dumps(records if named else records[""], ensure_ascii=False))
    else:
        for name, frame in frames.items():
            if named:
                typer.echo(f"# {name}")
            typer.echo(frame.to_csv(index=False), nl=False)


def _rich_table(frame: pd.DataFrame) -> Table:
    table = Table(*map(str, frame.columns))
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    return table
