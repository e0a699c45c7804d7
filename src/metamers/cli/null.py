"""``metamers null | validate``: null distributions and the acceptance test of generated metamers."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import (
    AlphaOption,
    CriterionOption,
    Device,
    FormatOption,
    InclusiveOption,
    LabelsFile,
    LabelSpaceOption,
    NullPairsOption,
    QuantileOption,
    RandomWeights,
    SixteenWayFlag,
    SixteenWayRuleOption,
    TrustCode,
    Weights,
    check_format,
    console,
    emit,
    label_space,
    null_criterion,
    open_model,
    out,
    pick_device,
    progress_bar,
    set_threads,
)
from metamers.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

Seed = typer.Option(0, "--seed", help="Seed of the null's sampling and augmentation.")
CacheDir = typer.Option(
    None,
    "--cache-dir",
    help="Null cache folder (default $METAMERS_CACHE/null or ~/.cache/metamers/null).",
)
BatchSize = typer.Option(32, "--batch-size", min=2, help="Views per forward pass.")


@contextmanager
def _warnings_to_console() -> Iterator[None]:
    """Show library warnings (small null, stale cache) as one-line CLI messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {warning.message}")


def _progress_callback(progress, description: str) -> Callable[[int, int], None]:
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update


@app.command("null")
def null_command(
    model: str = typer.Argument(..., help="Model name."),
    layers: str = typer.Option(..., "--layers", help="Comma-separated layers."),
    stimuli: str = typer.Option(..., "--stimuli", help="Natural stimuli for the pairs (spec)."),
    pairs: int = NullPairsOption,
    seed: int = Seed,
    cache_dir: str = CacheDir,
    batch_size: int = BatchSize,
    labels: str = LabelsFile,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
) -> None:
    """Compute (or load from the cache) a null distribution and print its quantiles."""
    from metamers.null import compute_null
    from metamers.stimuli import resolve_stimuli
    from metamers.synthesis.jobs import parse_layer_list

    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
    )
    pool = resolve_stimuli(stimuli, labels=labels)
    with _warnings_to_console(), progress_bar() as progress:
        null = compute_null(
            net,
            parse_layer_list(layers),
            pool,
            pairs,
            seed=seed,
            batch_size=batch_size,
            cache_dir=cache_dir,
            progress=_progress_callback(progress, "null pairs"),
        )
    out.print(f"{'loaded' if null.from_cache else 'computed'} {null.path}")
    out.print(f"{null.model}: {null.describe()} (pool of {null.pool_size})")
    table = Table("layer", "metric", "min", "median", "99%", "max", title=f"N = {null.n_pairs}")
    for row in null.summary().itertuples():
        table.add_row(
            row.layer, row.metric, *(f"{v:.4g}" for v in (row.min, row.median, row.q99, row.max))
        )
    out.print(table)


@app.command("validate")
def validate_command(
    directory: Path = typer.Argument(..., help="A `metamers generate` output folder."),
    pairs: int = NullPairsOption,
    null_stimuli: str = typer.Option(
        None,
        "--null-stimuli",
        help="Natural stimuli for the null pairs (spec; default by modality: bundled:photos, "
        "bundled:words-null).",
    ),
    labels: str = LabelSpaceOption,
    sixteen_way: bool = SixteenWayFlag,
    rule: str = SixteenWayRuleOption,
    criterion: str = CriterionOption,
    quantile: float = QuantileOption,
    alpha: float = AlphaOption,
    inclusive: bool = InclusiveOption,
    seed: int = Seed,
    cache_dir: str = CacheDir,
    batch_size: int = BatchSize,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
    fmt: str = FormatOption,
) -> None:
    """Accept or reject every metamer of a generate folder against its model's null.

    Each generator is loaded as its metamers recorded (its file: path, weights
    file or random-weights seed); a file: generator still needs --trust-code.
    --weights / --random-weights apply only to generators that record no load
    (folders of older versions): give the same as to `generate`. A model with
    other weights than its metamers' recorded fingerprints is refused.

    --format csv|json prints the whole validation table (one row per metamer
    and judging model, as in validation.csv).
    """
    from metamers.io import write_table
    from metamers.validation import null_provider, recorded_loader, validate_results

    check_format(fmt)
    results = _load_results(directory)
    provider = null_provider(
        null_stimuli, pairs, seed=seed, cache_dir=cache_dir, batch_size=batch_size
    )
    set_threads()  # also for generators loaded from their records
    with _warnings_to_console():
        table = validate_results(
            results,
            provider,
            models=recorded_loader(
                results,
                lambda name: open_model(
                    name,
                    random_weights=random_weights,
                    weights=weights,
                    trust_code=trust_code,
                    device=device,
                ),
                trust_code=trust_code,
                device=pick_device(device),
            ),
            labels=label_space(labels, sixteen_way, rule),
            criterion=null_criterion(criterion, quantile, alpha, inclusive),
        )
    write_table(table, directory / "validation")
    if fmt == "table":
        _print_validation(table)
    else:
        emit(table, fmt)
    console.print(f"wrote {directory / 'validation.parquet'} and {directory / 'validation.csv'}")


def _load_results(directory: Path) -> list:
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a folder; give a `metamers generate` output folder")
    from metamers.synthesis import load_results

    results = load_results(directory)
    if not results:
        raise ConfigError(f"no finished metamers in {directory}")
    return results


def _print_validation(table: pd.DataFrame) -> None:
    detail = Table("metamer", "model", "layer", "accepted", "failed", "ρ", "r", "SNR dB")
    sign = "≥" if bool(table["criterion_inclusive"].iloc[0]) else ">"
    for row in table.itertuples():
        detail.add_row(
            str(row.stimulus_id),
            row.model,
            row.layer,
            "yes" if row.accepted else "[red]no[/red]",
            row.failed or "-",
            f"{row.spearman:.3f} {sign} {row.spearman_threshold:.3f}",
            f"{row.pearson:.3f} {sign} {row.pearson_threshold:.3f}",
            f"{row.snr_db:.1f} {sign} {row.snr_db_threshold:.1f}",
        )
    out.print(detail)
    per_metamer = table.drop_duplicates("result_index")
    rates = per_metamer.groupby(["generator", "generation_layer"], sort=False).agg(
        accepted=("accepted_all_models", "sum"),
        total=("accepted_all_models", "size"),
        null_pairs=("null_pairs", "first"),
    )
    summary = Table("generator", "layer", "accepted", "rate", "null pairs", title="acceptance")
    for (model, layer), row in rates.iterrows():
        summary.add_row(
            model,
            layer,
            f"{row.accepted}/{row.total}",
            f"{row.accepted / row.total:.0%}",
            str(row.null_pairs),
        )
    out.print(summary)
    out.print(f"criterion: {table['criterion'].iloc[0]}")
    out.print(f"label space: {', '.join(sorted(table['label_space'].unique()))}")
