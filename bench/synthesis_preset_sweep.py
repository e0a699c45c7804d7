"""Measure candidate settings for the ``fast`` preset on EfficientNet-Lite0.

Runs each candidate for a fixed number of steps at early/mid/late blocks on a
few bundled photos and prints the median final normalised-L2 loss and the
time. Usage: ``METAMERS_THREADS=2 python bench/synthesis_preset_sweep.py [steps] [n_photos]``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from metamers.models.efficientnet_lite import build_efficientnet_lite
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import MetamerSynthesis, get_preset, item_seed

CANDIDATES = {
    "fast (adam0.03-b2=0.9-cos-noise)": {},
    "adam0.03-b2=0.999-cos-noise": {"betas": (0.9, 0.999)},
    "adam0.03-b2=0.7-cos-noise": {"betas": (0.9, 0.7)},
    "adam0.01-cos-noise": {"optimizer": "adam", "lr": 0.01, "schedule": "cosine"},
    "adam0.02-cos-noise": {"optimizer": "adam", "lr": 0.02, "schedule": "cosine"},
    "adam0.05-cos-noise": {"optimizer": "adam", "lr": 0.05, "schedule": "cosine"},
    "adam0.02-cos-blur": {"optimizer": "adam", "lr": 0.02, "schedule": "cosine", "init": "blur"},
    "adam0.02-plateau-noise": {"optimizer": "adam", "lr": 0.02, "schedule": "plateau"},
    "lbfgs-noise": {"optimizer": "lbfgs", "lr": 1.0, "schedule": "constant"},
    "published-compressed": {
        "optimizer": "normalized_gradient",
        "lr": 1.0,
        "schedule": "halving",
    },
}
LAYERS = tuple(os.environ.get("SWEEP_LAYERS", "blocks.1,blocks.3,blocks.5").split(","))


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_photos = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(int(os.environ.get("METAMERS_THREADS", "2")))
    model = build_efficientnet_lite("efficientnet_lite0")
    stimuli = resolve_stimuli("bundled:photos").limit(n_photos)
    refs = torch.stack([stimuli.load(s, model.input_shape) for s in stimuli])
    seeds = [item_seed(0, s.id) for s in stimuli]
    print(f"{'candidate':34s} {'layer':9s} {'median final':>12s} {'worst':>9s} {'s':>6s}")
    for name, overrides in CANDIDATES.items():
        extra = (
            {"halving_every": max(steps // 8, 1)} if overrides.get("schedule") == "halving" else {}
        )
        settings = get_preset("fast", max_steps=steps, **overrides, **extra)
        for layer in LAYERS:
            synthesis = MetamerSynthesis(model, layer, refs, settings=settings)
            synthesis.setup(item_seeds=seeds)
            started = time.perf_counter()
            synthesis.synthesize()
            final = np.array([synthesis.losses(i)[-1] for i in range(len(refs))])
            print(
                f"{name:34s} {layer:9s} {np.median(final):12.4g} {final.max():9.3g} "
                f"{time.perf_counter() - started:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
