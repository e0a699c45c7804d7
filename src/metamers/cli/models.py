"""``metamers models | layers | classify | extract``."""

from __future__ import annotations

from pathlib import Path

import torch
import typer
from rich.table import Table

from metamers.cli.app import app
from metamers.cli.common import (
    Device,
    LabelsFile,
    RandomWeights,
    SixteenWayRuleOption,
    SkipBad,
    TrustCode,
    Weights,
    console,
    open_model,
    out,
    progress_bar,
)
from metamers.decisions import LabelSpace
from metamers.extraction import Extractor, check_features_path, save_features
from metamers.models import registered_models
from metamers.stimuli import resolve_stimuli
from metamers.synthesis.jobs import parse_layer_list


@app.command("models")
def models_command() -> None:
    """List the registry: name, source, offline availability and notes."""
    table = Table("name", "source", "offline", "description", "info")
    for entry in registered_models():
        info = ", ".join(f"{k}={v}" for k, v in entry.info().items())
        table.add_row(
            entry.name, entry.source, "yes" if entry.offline() else "no", entry.description, info
        )
    out.print(table)
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
) -> None:
    """Print one layer name per line (pipe-friendly)."""
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device="cpu"
    )
    if not shapes:
        typer.echo("\n".join(net.layer_names()))
        return
    known = net.layer_shapes()
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
) -> None:
    """Top-k class names and probabilities per stimulus."""
    net = open_model(
        model, random_weights=random_weights, weights=weights, trust_code=trust_code, device=device
    )
    sixteen = LabelSpace("16-way", rule) if sixteen_way else None
    if sixteen is not None:
        sixteen.resolved(net.label_space)  # refuses a model that is not an ImageNet classifier
    stimulus_set = resolve_stimuli(stimuli, skip_bad=skip_bad, labels=labels, limit=limit)
    names = net.class_names or tuple(str(i) for i in range(10**6))
    table = Table("stimulus", "label", "prediction (probability)")
    for chunk, x in stimulus_set.batches(net.input_shape, batch_size):
        with torch.inference_mode():
            logits = net(x.to(net.device)).float()
        if sixteen is not None:
            rows = [str(n) for n in sixteen.names(net, sixteen.decide(net, logits))]
        else:
            probs, idx = logits.softmax(1).topk(min(top, logits.shape[1]), dim=1)
            rows = [
                ", ".join(f"{names[int(i)]} ({float(p):.3f})" for p, i in zip(pr, ix, strict=True))
                for pr, ix in zip(probs, idx, strict=True)
            ]
        for stimulus, row in zip(chunk, rows, strict=True):
            table.add_row(stimulus.id, stimulus.label or "-", row)
    out.print(table)


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
