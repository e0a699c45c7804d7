"""Measure each optimiser's step size on small models: which ``lr`` makes it fall fastest.

Switches the ``fast`` preset's optimiser (keeping its objective, cosine schedule,
noise start and clamping) and runs ``steps`` steps for every step size of a grid,
on the tests' tiny random conv net (3×32×32, ``relu2``) and the trained MNIST CNN
``mnist_cnn_s0`` (``relu2``), and prints the median fall ``first loss / last loss``
over a few references. The defaults in ``metamers.synthesis.settings.OPTIMIZER_LR``
come from this table (docs/synthesis.md). Usage:
``METAMERS_THREADS=1 python bench/optimizer_step_sizes.py [steps] [n_refs] [tiny,mnist_cnn_s0,lite0]``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
from torch import nn

from metamers.models import Normalize, PixelModel, load_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import MetamerSynthesis, get_preset

GRID = {
    "adam": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
    "sgd": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0],
    "normalized_gradient": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    "lbfgs": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
}


def tiny_model() -> PixelModel:
    """The tests' tiny random conv net (tests/conftest.py ``make_tiny_model``)."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("relu1", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(8, 16, 3, stride=2, padding=1))
    net.add_module("relu2", nn.ReLU())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(16, 10))
    return PixelModel(
        net, name="tiny", input_shape=(3, 32, 32), preprocess=Normalize([0.5] * 3, [0.25] * 3)
    )


def cases(n_refs: int, names: list[str]) -> dict[str, tuple[PixelModel, str, torch.Tensor]]:
    found = {}
    if "lite0" in names:  # slow on a CPU: a spot check at 224 px
        lite0 = load_model("efficientnet_lite0")
        photos = resolve_stimuli("bundled:photos").limit(n_refs)
        refs = torch.stack([photos.load(s, lite0.input_shape) for s in photos])
        found["lite0 blocks.1"] = (lite0, "blocks.1", refs)
    if "tiny" not in names and "mnist_cnn_s0" not in names:
        return found
    tiny = tiny_model()
    photos = resolve_stimuli("bundled:photos").limit(n_refs)
    mnist = load_model("mnist_cnn_s0")
    digits = resolve_stimuli("bundled:mnist").limit(n_refs)
    return found | {
        "tiny relu2": (tiny, "relu2", torch.stack([photos.load(s, (3, 32, 32)) for s in photos])),
        "mnist_cnn_s0 relu2": (
            mnist,
            "relu2",
            torch.stack([digits.load(s, mnist.input_shape) for s in digits]),
        ),
    }


def fall(model, layer, refs, optimizer: str, lr: float, steps: int) -> float:
    settings = get_preset("fast", optimizer=optimizer, lr=lr, max_steps=steps)
    synthesis = MetamerSynthesis(model, layer, refs, settings=settings)
    synthesis.setup(seed=0).synthesize()
    falls = [synthesis.losses(i)[0] / synthesis.losses(i)[-1] for i in range(len(refs))]
    return float(np.median(falls))


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_refs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(int(os.environ.get("METAMERS_THREADS", "1")))
    names = (sys.argv[3] if len(sys.argv) > 3 else "tiny,mnist_cnn_s0").split(",")
    chosen = {k: v for k, v in cases(n_refs, names).items() if k.split()[0] in names}
    for case, (model, layer, refs) in chosen.items():
        for optimizer, grid in GRID.items():
            started = time.perf_counter()
            row = {lr: fall(model, layer, refs, optimizer, lr, steps) for lr in grid}
            best = max(row, key=row.get)
            cells = "  ".join(f"{lr:g}:{value:.3g}x" for lr, value in row.items())
            print(
                f"{case:20s} {optimizer:20s} best lr {best:g}  {cells}  "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
