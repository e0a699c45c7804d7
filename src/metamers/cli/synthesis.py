"""``metamers generate``: metamers of a stimulus set at one or more layers, resumable."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metamers.cli.app import app
from metamers.cli.common import (
    Device,
    LabelsFile,
    RandomWeights,
    SkipBad,
    TrustCode,
    Weights,
    console,
    open_model,
    out,
    split_list,
)
from metamers.defaults import DEFAULT_NULL_PAIRS
from metamers.errors import ConfigError
from metamers.io import check_writable_dir

LAYERS_HELP = (
    "Layer jobs, each its own metamers: 'a,b' = two jobs; 'a+b' = one metamer matching a and b "
    "jointly. Ensembles: 'a' = the same layer in every model, 'a1+b1' (or 'a1,b1') one layer "
    "per model, 'a1+a2;b1' layers per model separated by ';'."
)


@app.command("generate")
def generate_command(
    models: str = typer.Argument(..., help="Model name, or comma-separated names (ensemble)."),
    layers: str = typer.Option(..., "--layers", help=LAYERS_HELP),
    stimuli: str = typer.Option(..., "--stimuli", help="Stimulus spec (bundled:photos, a folder)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (re-run to resume)."),
    preset: str = typer.Option("fast", "--preset", help="fast or feather2023."),
    optimizer: str = typer.Option(
        None, "--optimizer", help="normalized_gradient, sgd, adam or lbfgs."
    ),
    schedule: str = typer.Option(None, "--schedule", help="halving, cosine, plateau, constant."),
    objective: str = typer.Option(None, "--objective", help="normalized_l2, mse or cosine."),
    init: str = typer.Option(
        None,
        "--init",
        help="noise, uniform, constant, pink, reference_noise, stimulus, blur, downsample.",
    ),
    init_source: str = typer.Option(
        None, "--init-source", help="Stimulus file for --init stimulus."
    ),
    steps: int = typer.Option(None, "--steps", min=0, help="Update budget per metamer."),
    lr: float = typer.Option(
        None,
        "--lr",
        help="Initial step size (default: the preset's; changing --optimizer picks that "
        "optimiser's measured default, see docs/synthesis.md).",
    ),
    loss_threshold: float = typer.Option(None, "--loss-threshold", help="Stop an item below this."),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (CUDA)."),
    stop_accepted: bool = typer.Option(
        False,
        "--stop-accepted",
        help="Stop an item once it passes the acceptance test of `metamers validate` "
        "(default label space and criterion).",
    ),
    check_every: int = typer.Option(
        None, "--check-every", min=1, help="Steps between acceptance checks (default 50)."
    ),
    null_stimuli: str = typer.Option(
        None,
        "--null-stimuli",
        help="Natural stimuli of the null (--stop-accepted; default by modality: "
        "bundled:photos, bundled:words-null).",
    ),
    null_pairs: int = typer.Option(
        DEFAULT_NULL_PAIRS,
        "--null-pairs",
        min=1,
        help="Null pairs for --stop-accepted (cached; the same default as `metamers validate`).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Metamers optimised together; a finished one's slot goes to the next at once "
        "(default: 8 on the CPU, the largest that fits on CUDA, probed once and cached).",
    ),
    sync_every: int = typer.Option(
        None,
        "--sync-every",
        min=1,
        help="Steps between host syncs of the loop (default: 1 on the CPU, 10 on CUDA).",
    ),
    compile_backend: str = typer.Option(
        None,
        "--compile",
        help="torch.compile backend for each step (inductor, cudagraphs, inductor:reduce-overhead).",
    ),
    seed: int = typer.Option(0, "--seed"),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N stimuli."),
    device: str = Device,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    skip_bad: bool = SkipBad,
    labels: str = LabelsFile,
) -> None:
    """Generate metamers; finished ones are skipped and unfinished ones resumed on a re-run.

    An output folder belongs to one set of settings, seed and model weights
    once it holds a metamer: other settings on the same --out are refused (use
    another folder), and so is a second run while one is writing it. Items
    that fail (non-finite loss) are listed with their reason and the exit
    status is 1.
    """
    from metamers.stimuli import resolve_stimuli
    from metamers.synthesis import generate_metamers, get_preset, parse_layer_jobs
    from metamers.validation import AcceptanceStop, null_provider

    check_writable_dir(out_dir)  # a file in the way or a read-only target: before any work
    settings = get_preset(
        preset,
        optimizer=optimizer,
        schedule=schedule,
        objective=objective,
        init=init,
        init_source=init_source,
        max_steps=steps,
        lr=lr,
        loss_threshold=loss_threshold,
        amp=amp,
        stop_check_every=check_every,
    )
    names = split_list(models)
    if not names:
        raise ConfigError("give at least one model name")
    nets = [
        open_model(
            n, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
        )
        for n in names
    ]
    jobs = parse_layer_jobs(layers, len(nets))
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad, labels=labels, limit=limit)
    stop = None
    if stop_accepted:
        # A null per model and job layers, built once and then read from the null cache.
        stop = AcceptanceStop(null_provider(null_stimuli, null_pairs))
    started = time.perf_counter()
    with _generate_progress() as bar:
        task = bar.add_task(
            "metamers", total=None, rate=0.0, best=float("nan"), median=float("nan")
        )

        def report(event: dict) -> None:
            bar.update(
                task,
                description=event["job"],
                completed=event["items_done"],
                total=event["items_total"],
                rate=event["steps_per_s"],
                best=event["best_loss"],
                median=event["median_loss"],
            )

        results = generate_metamers(
            nets,
            jobs,
            stimulus_set,
            out_dir,
            settings,
            batch_size=batch_size,
            seed=seed,
            limit=limit,
            progress=report,
            stop_criterion=stop,
            sync_every=sync_every,
            compile=compile_backend,
        )
    elapsed = time.perf_counter() - started
    out.print(f"{len(results)} metamers in {out_dir} ({elapsed:.1f} s)")
    _report_unfinished(results)


def _report_unfinished(results) -> None:
    """List skipped stimuli and failed items with their reason; exit 1 if any item failed."""
    if results.skipped:
        console.print(
            f"skipped {len(results.skipped)} undecodable stimuli: {', '.join(results.skipped)}"
        )
    for failed in results.failed:
        record = failed.settings
        reason = FAILURE_REASONS.get(record.get("stop_reason"), record.get("stop_reason"))
        console.print(
            f"failed: {failed.generator} {failed.layer} {failed.stimulus_id}: {reason} "
            f"({record.get('restarts', 0)} restarts, {record.get('steps', 0)} steps; {failed.path})"
        )
    if results.failed:
        console.print(f"{len(results.failed)} metamers failed; no metamer was made for them")
        raise typer.Exit(1)


FAILURE_REASONS = {
    "non-finite": "the loss or its gradient stayed non-finite (NaN/inf) after every restart",
}


def _generate_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} steps/s"),
        TextColumn("loss best {task.fields[best]:.3g} median {task.fields[median]:.3g}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
