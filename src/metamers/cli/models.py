"""``metamers models | layers | classify | extract``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import (
    Device,
    FormatOption,
    LabelsFile,
    RandomWeights,
    SixteenWayRuleOption,
    SkipBad,
    TrustCode,
    Weights,
    check_format,
    console,
    emit,
    open_model,
    out,
    progress_bar,
)
from metamers.errors import ConfigError

CLASSIFY_SUFFIXES = (".csv", ".parquet")


@app.command("models")
def models_command(fmt: str = FormatOption) -> None:
    """List the registry: name, source, offline availability and notes."""
    from metamers.models import registered_models

    table = Table("name", "source", "offline", "description", "info")
    records = []
    for entry in registered_models():
        info = ", ".join(f"{k}={v}" for k, v in entry.info().items())
        table.add_row(
            entry.name, entry.source, "yes" if entry.offline() else "no", entry.description, info
        )
        records.append(
            {
                "name": entry.name,
                "source": entry.source,
                "offline": entry.offline(),
                "description": entry.description,
                "info": entry.info(),
            }
        )
    emit(records, fmt, table)
    if fmt == "table":
        out.print(
            "Also: timm:NAME, torchvision:NAME (hub weights; --random-weights or --weights FILE "
            "offline), file:PATH.py (--trust-code)."
        )


@app.command("layers")
def layers_command(
    model: str = typer.Argument(..., help="Model name."),
    shapes: bool = typer.Option(False, "--shapes", help="Add each layer's output shape."),
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    fmt: str = typer.Option(
        "text",
        "--format",
        help="text (one layer per line, tab then shape: pipe-friendly), csv or json "
        "(records of layer and shape, a list of sizes or null).",
    ),
) -> None:
    """Print one layer name per line (pipe-friendly)."""
    if fmt != "text":
        check_format(fmt)
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device="cpu"
    )
    known = net.layer_shapes() if shapes else {}
    if fmt in ("csv", "json"):
        records = [{"layer": name} for name in net.layer_names()]
        if shapes:
            for record in records:
                shape = known.get(record["layer"])
                record["shape"] = list(shape) if shape is not None else None
                if fmt == "csv":
                    record["shape"] = "x".join(map(str, shape)) if shape is not None else ""
        emit(records, fmt)
        return
    if not shapes:
        typer.echo("\n".join(net.layer_names()))
        return
    for name in net.layer_names():
        shape = known.get(name)
        typer.echo(f"{name}\t{'x'.join(map(str, shape)) if shape is not None else '-'}")


@app.command("classify")
def classify_command(
    model: str = typer.Argument(..., help="Model name."),
    stimuli: str = typer.Option(
        ..., "--stimuli", help="Stimulus spec (bundled:photos, a folder, files)."
    ),
    top: int = typer.Option(5, "--top", min=1, help="How many classes to show."),
    sixteen_way: bool = typer.Option(
        False, "--16way", help="Geirhos 16-way categories (ImageNet models)."
    ),
    rule: str = SixteenWayRuleOption,
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N stimuli."),
    skip_bad: bool = SkipBad,
    labels: str = LabelsFile,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
    fmt: str = FormatOption,
    out_path: Path = typer.Option(
        None,
        "--out",
        help="Also save the top-k probabilities with class names, one row per stimulus and "
        "rank: FILE.parquet, or FILE.csv (written with a .parquet copy).",
    ),
) -> None:
    """Top-k class names and probabilities per stimulus.

    The records (table, --format csv|json, --out) hold one row per stimulus
    and rank: stimulus, source, label, rank, class_index, class and
    probability (with --16way: the category decided, rank 1, no probability).
    """
    import pandas as pd
    import torch

    from metamers.decisions import LabelSpace, require_classifier
    from metamers.io import check_writable_file, write_table
    from metamers.stimuli import resolve_stimuli

    check_format(fmt)
    if out_path is not None:
        if out_path.suffix.lower() not in CLASSIFY_SUFFIXES:
            raise ConfigError(
                f"--out {out_path}: give a {' or '.join(CLASSIFY_SUFFIXES)} file "
                f"(got {out_path.suffix or 'no suffix'})"
            )
        check_writable_file(out_path)
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
    )
    require_classifier(net)
    sixteen = LabelSpace("16-way", rule) if sixteen_way else None
    if sixteen is not None:
        sixteen.resolved(net.label_space)  # refuses a model that is not an ImageNet classifier
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad, labels=labels, limit=limit)
    names = net.class_names or tuple(str(i) for i in range(10**6))
    table = Table("stimulus", "label", "prediction (probability)")
    records = []
    for chunk, x in stimulus_set.batches_for(net, batch_size):
        with torch.inference_mode():
            logits = net(x.to(net.device)).float()
        if sixteen is not None:
            decided = [str(n) for n in sixteen.names(net, sixteen.decide(net, logits))]
            ranked = [[(None, name, None)] for name in decided]
        else:
            probs, idx = logits.softmax(1).topk(min(top, logits.shape[1]), dim=1)
            ranked = [
                [(int(i), names[int(i)], float(p)) for p, i in zip(pr, ix, strict=True)]
                for pr, ix in zip(probs, idx, strict=True)
            ]
        for stimulus, row in zip(chunk, ranked, strict=True):
            table.add_row(
                stimulus.id,
                stimulus.label or "-",
                ", ".join(name if p is None else f"{name} ({p:.3f})" for _, name, p in row),
            )
            records += [
                {
                    "stimulus": stimulus.id,
                    "source": stimulus.source,
                    "label": stimulus.label,
                    "rank": rank,
                    "class_index": index,
                    "class": name,
                    "probability": p,
                }
                for rank, (index, name, p) in enumerate(row, start=1)
            ]
    emit(records, fmt, table)
    if out_path is not None:
        written = write_table(
            pd.DataFrame(records), out_path, csv=out_path.suffix.lower() == ".csv"
        )
        console.print("wrote " + " and ".join(str(path) for path in reversed(written)))


@app.command("extract")
def extract_command(
    model: str = typer.Argument(..., help="Model name."),
    layers: str = typer.Option(..., "--layers", help="Comma-separated layer names."),
    stimuli: str = typer.Option(..., "--stimuli", help="Stimulus spec."),
    out_path: Path = typer.Option(
        ...,
        "--out",
        help="Output: a .h5, .npz, .pt or .mat file, or a .npy folder (one file per layer).",
    ),
    flatten: bool = typer.Option(True, "--flatten/--no-flatten"),
    center: bool = typer.Option(False, "--center", help="Subtract each feature's mean."),
    normalize: bool = typer.Option(False, "--normalize", help="Unit L2 norm per stimulus."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    limit: int = typer.Option(None, "--limit", min=1),
    skip_bad: bool = SkipBad,
    labels: str = LabelsFile,
    random_weights: bool = RandomWeights,
    weights: str = Weights,
    trust_code: bool = TrustCode,
    device: str = Device,
) -> None:
    """Extract layers for a stimulus set, streamed to disk in batches."""
    from metamers.extraction import Extractor, check_features_path, save_features
    from metamers.stimuli import resolve_stimuli
    from metamers.synthesis.jobs import parse_layer_list

    check_features_path(out_path)  # suffix and writability, before the model loads
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
    )
    layer_list = net.check_layers(parse_layer_list(layers))
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad, labels=labels, limit=limit)
    with progress_bar() as bar:
        task = bar.add_task(f"extract {model}", total=len(stimulus_set))
        path = save_features(
            Extractor(net, batch_size=batch_size),
            stimulus_set,
            layer_list,
            out_path,
            flatten=flatten,
            center=center,
            normalize=normalize,
            progress=lambda done: bar.update(task, completed=done),
        )
    console.print(f"wrote {path}")
