"""``metamers compare``: representational similarity of models' layers (RSA or CKA)."""

from __future__ import annotations

import time
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
    QuantileOption,
    RandomWeights,
    SixteenWayFlag,
    SixteenWayRuleOption,
    SkipBad,
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
    split_list,
)
from metamers.defaults import DEFAULT_NULL_PAIRS
from metamers.io import check_writable_dir

if TYPE_CHECKING:
    import pandas as pd

    from metamers.models import PixelModel

LAYERS_HELP = (
    "Layers to compare. 'a,b' reads the same layers from every model; "
    "'M1=a,b;M2=c' gives each model its own (every model must be named)."
)


def parse_layers_option(text: str, models: list[str]) -> list[str] | dict[str, list[str]]:
    """Parse compare's ``--layers``: ``a,b`` for every model, or ``M1=a,b;M2=c`` per model."""
    from metamers.synthesis.jobs import parse_model_layers

    return parse_model_layers(text, models, role="models compared")


@app.command("compare")
def compare_command(
    models: str = typer.Argument(..., help="Comma-separated model names (M1,M2,...)."),
    layers: str = typer.Option(..., "--layers", help=LAYERS_HELP),
    stimuli: str = typer.Option(..., "--stimuli", help="Stimulus spec (bundled:photos, ...)."),
    method: str = typer.Option("rsa", "--method", help="rsa or cka."),
    distance: str = typer.Option(
        "correlation", "--distance", help="RSA: correlation, cosine or euclidean."
    ),
    rsa_method: str = typer.Option(
        "spearman", "--rsa-method", help="RSA: spearman, pearson or kendall."
    ),
    kernel: str = typer.Option("linear", "--kernel", help="CKA: linear or rbf."),
    unbiased: bool = typer.Option(False, "--unbiased", help="CKA: unbiased HSIC estimator."),
    bandwidth_factor: float = typer.Option(
        1.0, "--bandwidth-factor", min=0.0, help="CKA rbf: multiple of the median distance."
    ),
    out_dir: Path = typer.Option(
        None, "--out", help="Folder for similarity_METHOD.{csv,parquet,png}."
    ),
    limit: int = typer.Option(None, "--limit", min=3, help="Only the first N stimuli."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    skip_bad: bool = SkipBad,
    labels: str = LabelsFile,
    random_weights: bool = RandomWeights,
    trust_code: bool = TrustCode,
    device: str = Device,
) -> None:
    """Similarity matrix of (model, layer) pairs on one stimulus set; prints it, saves it with --out."""
    from metamers.evaluation.compare import compare_models, save_similarity_matrix
    from metamers.stimuli import resolve_stimuli

    if out_dir is not None:
        check_writable_dir(out_dir)
    model_names = split_list(models)
    layer_spec = parse_layers_option(layers, model_names)
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad, labels=labels, limit=limit)
    started = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("extract", total=len(stimulus_set) * len(model_names))
        finished: dict[str, int] = {}

        def progress(label: str, done: int) -> None:
            finished[label] = done
            bar.update(task, completed=sum(finished.values()), description=label)

        matrix = compare_models(
            model_names,
            layer_spec,
            stimulus_set,
            method,  # type: ignore[arg-type]
            distance=distance,  # type: ignore[arg-type]
            rsa_method=rsa_method,  # type: ignore[arg-type]
            kernel=kernel,  # type: ignore[arg-type]
            unbiased=unbiased,
            bandwidth_factor=bandwidth_factor,
            batch_size=batch_size,
            loader=lambda name: open_model(
                name, random_weights=random_weights, trust_code=trust_code, device=device
            ),
            progress=progress,
        )
    out.print(_matrix_table(matrix))
    console.print(
        f"{len(matrix.attrs['stimulus_ids'])} stimuli, {time.perf_counter() - started:.1f} s"
    )
    if out_dir is not None:
        paths = save_similarity_matrix(matrix, out_dir, stem=f"similarity_{method}")
        console.print("wrote " + ", ".join(str(path) for path in paths.values()))


def _matrix_table(matrix: pd.DataFrame) -> Table:
    settings = ", ".join(
        f"{key}={value}"
        for key, value in matrix.attrs.items()
        if key not in ("stimulus_ids", "stimuli")
    )
    table = Table(title=settings)
    table.add_column("#", justify="right")
    table.add_column("model", overflow="fold")
    table.add_column("layer", overflow="fold")
    for number in range(matrix.shape[1]):
        table.add_column(str(number), justify="right", no_wrap=True)
    for number, ((model, layer), row) in enumerate(matrix.iterrows()):
        table.add_row(str(number), model, layer, *(f"{value:.3f}" for value in row))
    return table


def parse_observer_layers(text: str | None, observers: list[str]) -> dict[str, list[str]] | None:
    """Parse ``--observer-layers``: ``a,b`` for every observer, or ``M1=a,b;M2=c`` per observer."""
    from metamers.synthesis.jobs import parse_model_layers

    if not text:
        return None
    layers = parse_model_layers(text, observers, complete=False, role="observers")
    return layers if isinstance(layers, dict) else dict.fromkeys(observers, layers)


@app.command("evaluate")
def evaluate_command(
    directory: Path = typer.Argument(..., help="A `metamers generate` output folder."),
    observers: str = typer.Option(..., "--observers", help="Comma-separated observer models."),
    representation_test: bool = typer.Option(
        False, "--representation-test", help="Also test metamers against observer-layer nulls."
    ),
    observer_layers: str = typer.Option(
        None,
        "--observer-layers",
        help="Observer layers: 'a,b' for every observer or 'M1=a,b;M2=c' (default: the "
        "generation layers an observer also has).",
    ),
    null_stimuli: str = typer.Option(
        None,
        "--null-stimuli",
        help="Natural stimuli of the nulls (default by modality: bundled:photos, "
        "bundled:words-null).",
    ),
    pairs: int = typer.Option(
        None,
        "--pairs",
        min=10,
        help="Pairs per null (default: the size of the folder's stored validation, else "
        f"{DEFAULT_NULL_PAIRS}).",
    ),
    all_metamers: bool = typer.Option(
        False, "--all", help="Evaluate every metamer, not only accepted ones."
    ),
    labels: str = LabelSpaceOption,
    sixteen_way: bool = SixteenWayFlag,
    rule: str = SixteenWayRuleOption,
    criterion: str = CriterionOption,
    quantile: float = QuantileOption,
    alpha: float = AlphaOption,
    inclusive: bool = InclusiveOption,
    n_boot: int = typer.Option(1000, "--bootstrap", min=10),
    seed: int = typer.Option(0, "--seed"),
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
    fmt: str = FormatOption,
) -> None:
    """Recognisability (and representation test) of stored metamers by observer models.

    Each generator (loaded to check and judge its metamers, and as an
    observer of the same name) is loaded as its metamers recorded (its file:
    path, weights file or random-weights seed); a file: generator still needs
    --trust-code. --random-weights, --trust-code and --device apply to every
    other model; --weights applies to generators that record no load (folders
    of older versions), as in `validate`. A generator with other weights than
    its metamers' recorded fingerprints is refused.

    --format csv|json prints the summaries: {"recognition": [...],
    "representation": [...]} (one record per generator, layer and observer).
    """
    import pandas as pd

    from metamers.evaluation.directory import EVALUATION_FOLDER, evaluate_directory
    from metamers.validation import recorded_loader

    check_format(fmt)
    if directory.is_dir():  # the tables go to DIR/evaluation: writable before any work
        check_writable_dir(directory / EVALUATION_FOLDER)
    start = time.perf_counter()
    observer_names = split_list(observers)
    recorded = _stored_results(directory)
    generators = {name for result in recorded for name in result.models}

    def open_named(name: str) -> PixelModel:
        return open_model(
            name,
            random_weights=random_weights,
            weights=weights if name in generators else None,
            trust_code=trust_code,
            device=device,
        )

    set_threads()  # also for generators loaded from their records
    load = recorded_loader(recorded, open_named, trust_code=trust_code, device=pick_device(device))

    with console.status("evaluating metamers on " + ", ".join(observer_names)):
        evaluation = evaluate_directory(
            directory,
            [load(name) for name in observer_names],
            models=load,
            representation_test=representation_test,
            observer_layers=parse_observer_layers(observer_layers, observer_names),
            null_stimuli=null_stimuli,
            n_pairs=pairs,
            accepted_only=not all_metamers,
            labels=label_space(labels, sixteen_way, rule),
            criterion=null_criterion(criterion, quantile, alpha, inclusive),
            n_boot=n_boot,
            seed=seed,
        )
    table = Table(
        "generator", "layer", "observer", "n", "agrees w/ reference [95% CI]", "correct vs label"
    )
    for row in evaluation.recognition_summary.itertuples():
        table.add_row(
            row.generator,
            row.layer,
            row.observer,
            str(row.agrees_with_reference_n),
            f"{row.agrees_with_reference_mean:.2f} [{row.agrees_with_reference_ci_low:.2f}, "
            f"{row.agrees_with_reference_ci_high:.2f}]",
            "-" if pd.isna(row.correct_vs_label_mean) else f"{row.correct_vs_label_mean:.2f}",
        )
    tables = [table]
    if not evaluation.representation_summary.empty:
        rep = Table("generator", "layer", "observer", "observer layer", "pass", "p")
        for row in evaluation.representation_summary.itertuples():
            rep.add_row(
                row.generator,
                row.layer,
                row.observer,
                row.observer_layer,
                f"{row.pass_fraction:.2f}",
                f"{row.p_value:.2g}",
            )
        tables.append(rep)
    emit(
        {
            "recognition": evaluation.recognition_summary,
            "representation": evaluation.representation_summary,
        },
        fmt,
        tables,
    )
    console.print(f"wrote {directory / EVALUATION_FOLDER} in {time.perf_counter() - start:.0f} s")


def _stored_results(directory: Path) -> list:
    """The metamers in ``directory`` (none when it is no folder: evaluation says so)."""
    from metamers.synthesis import load_results

    return load_results(directory) if directory.is_dir() else []
