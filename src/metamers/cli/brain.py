"""``metamers brain fit | rsa``: map a model's layers to neural responses."""

from __future__ import annotations

from pathlib import Path

import typer

from metamers.cli.app import app
from metamers.cli.common import (
    Device,
    FormatOption,
    RandomWeights,
    SkipBad,
    TrustCode,
    Weights,
    console,
    emit,
    open_model,
    progress_bar,
    split_list,
)

brain_app = typer.Typer(
    help="Brain mapping: encoding models with noise-corrected scores, RSA with noise ceilings.",
    no_args_is_help=True,
)
app.add_typer(brain_app, name="brain")

LayersOption = typer.Option(..., "--layers", help="Comma-separated layer names of the model.")
StimuliOption = typer.Option(
    ..., "--stimuli", help="Stimulus spec (folder or files); ids must match the responses'."
)
ResponsesOption = typer.Option(
    ...,
    "--responses",
    help="Neural data: an .h5/.npz file (see docs/brain.md) or a folder in the published "
    "NH2015/B2021 layout.",
)
OutOption = typer.Option(..., "--out", help="Output folder (one subfolder per model).")
PresetOption = typer.Option(
    "default", "--preset", help="default, tuckute2023 or feather2023 (see docs/brain.md)."
)
PermutedOption = typer.Option(
    None,
    "--permuted",
    help="Also map the permuted-weights control (every parameter tensor permuted) with this seed.",
)
PoolOption = typer.Option(
    "none",
    "--pool",
    help="Activation pooling: none, or time_mean (the published pooling of audio conv layers).",
)
RoiOption = typer.Option(
    None, "--roi", help="A target column of ROI labels: curves and best layers per ROI."
)
RoiTableOption = typer.Option(
    None, "--roi-table", help="Published layouts: a Parquet/CSV ROI table, one row per voxel."
)
BatchOption = typer.Option(16, "--batch-size", min=1, help="Stimuli per forward pass.")


def _features(
    model: str,
    layers: str,
    stimuli: str,
    responses: Path,
    *,
    permuted: int | None,
    pool: str,
    roi_table: Path | None,
    skip_bad: bool,
    batch_size: int,
    random_weights: bool,
    weights: str | None,
    trust_code: bool,
    device: str | None,
):
    """Load the responses, the stimuli and the model; extract the features (and the control's)."""
    from metamers.brain import layer_features, load_neural_data
    from metamers.brain.features import POOLS
    from metamers.errors import ConfigError
    from metamers.stimuli import resolve_stimuli

    if pool not in POOLS:
        raise ConfigError(f"--pool {pool}: choose one of {', '.join(POOLS)}")
    options = {"roi_table": roi_table} if roi_table is not None else {}
    data = load_neural_data(responses, **options)
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad)
    data.align(stimulus_set.ids)  # every stimulus must have responses: fail before the model
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
    )
    layer_list = net.check_layers(split_list(layers))
    seeds = [None] if permuted is None else [None, permuted]
    extracted = []
    with progress_bar() as bar:
        for seed in seeds:
            label = model if seed is None else f"{model} (permuted, seed {seed})"
            task = bar.add_task(f"features {label}", total=len(stimulus_set))
            extracted.append(
                layer_features(
                    net,
                    stimulus_set,
                    layer_list,
                    pool=pool,
                    permuted_seed=seed,
                    batch_size=batch_size,
                    progress=lambda n, task=task: bar.update(task, advance=n),
                )
            )
    return data, extracted


@brain_app.command("fit")
def fit_command(
    model: str = typer.Argument(..., help="Model name (see `metamers models`)."),
    layers: str = LayersOption,
    stimuli: str = StimuliOption,
    responses: Path = ResponsesOption,
    out: Path = OutOption,
    preset: str = PresetOption,
    permuted: int = PermutedOption,
    pool: str = PoolOption,
    roi: str = RoiOption,
    roi_table: Path = RoiTableOption,
    backend: str = typer.Option(
        "auto", "--backend", help="Ridge backend: auto, torch (exact LOO) or himalaya (k-fold)."
    ),
    noise_correction: bool = typer.Option(
        True, "--noise-correction/--no-noise-correction", help="Correct r² for reliability."
    ),
    batch_size: int = BatchOption,
    skip_bad: bool = SkipBad,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
    fmt: str = FormatOption,
) -> None:
    """Fit encoding models of each layer to every target; write tables and figures to --out."""
    from metamers.brain import get_preset
    from metamers.brain.run import map_encoding
    from metamers.io import check_writable_dir

    chosen = get_preset(preset, noise_correction=noise_correction)
    check_writable_dir(out)
    data, extracted = _features(
        model, layers, stimuli, responses, permuted=permuted, pool=pool, roi_table=roi_table,
        skip_bad=skip_bad, batch_size=batch_size, random_weights=random_weights,
        weights=weights, trust_code=trust_code, device=device,
    )  # fmt: skip
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"ridge {name}", total=total)
            bar.update(tasks[name], completed=done)

        _, summary = map_encoding(
            extracted, data, out, preset=chosen, backend=backend, device=device, roi=roi,
            progress=report,
        )  # fmt: skip
    console.print(f"wrote {out}")
    emit(summary, fmt)


@brain_app.command("rsa")
def rsa_command(
    model: str = typer.Argument(..., help="Model name (see `metamers models`)."),
    layers: str = LayersOption,
    stimuli: str = StimuliOption,
    responses: Path = ResponsesOption,
    out: Path = OutOption,
    preset: str = PresetOption,
    permuted: int = PermutedOption,
    pool: str = PoolOption,
    roi: str = RoiOption,
    roi_table: Path = RoiTableOption,
    method: str = typer.Option(
        "spearman", "--method", help="RDM comparator (model score and ceiling alike)."
    ),
    ceiling_pool: str = typer.Option(
        "mean", "--ceiling-pool", help="Pool the other participants' RDMs: mean or ranks."
    ),
    batch_size: int = BatchOption,
    skip_bad: bool = SkipBad,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
    fmt: str = FormatOption,
) -> None:
    """RSA of each layer against each participant, best layer chosen on training stimuli."""
    from metamers.brain import get_preset
    from metamers.brain.run import map_rsa
    from metamers.io import check_writable_dir

    chosen = get_preset(preset)
    check_writable_dir(out)
    data, extracted = _features(
        model, layers, stimuli, responses, permuted=permuted, pool=pool, roi_table=roi_table,
        skip_bad=skip_bad, batch_size=batch_size, random_weights=random_weights,
        weights=weights, trust_code=trust_code, device=device,
    )  # fmt: skip
    _, summary = map_rsa(
        extracted, data, out, preset=chosen, method=method, pool=ceiling_pool, roi=roi
    )
    console.print(f"wrote {out}")
    emit(summary, fmt)
