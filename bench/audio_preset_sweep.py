"""Measure candidate settings for the audio ``fast`` preset on a word model.

Runs each candidate for a fixed number of steps at an early, a middle and a late
layer of ``word_cnn_s0`` on the first clean test words, from the published
near-silent start ``N(0, (1e-7)^2)``, and prints the median and worst final
normalised-L2 loss. Step counts, not seconds, decide (the time column is only
indicative on a shared machine). Usage::

    python bench/audio_preset_sweep.py [steps] [n_words] [weights_dir]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from metamers.models.words import load_word_model
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import MetamerSynthesis, get_preset, item_seed

CANDIDATES = {
    "adam1e-4-cos": {"lr": 1e-4},
    "adam3e-4-cos": {"lr": 3e-4},
    "adam1e-3-cos": {"lr": 1e-3},
    "adam3e-3-cos": {"lr": 3e-3},
    "adam1e-2-cos": {"lr": 1e-2},
    "fast (adam3e-2-cos)": {},
    "published-normgrad1.0-halving": {
        "optimizer": "normalized_gradient",
        "lr": 1.0,
        "schedule": "halving",
    },
}
LAYERS = tuple(os.environ.get("SWEEP_LAYERS", "relu0,relu2,relufc").split(","))


def main() -> None:
    """Run every candidate at every layer and print one line each."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_words = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    directory = sys.argv[3] if len(sys.argv) > 3 else None
    torch.set_num_threads(int(os.environ.get("METAMERS_THREADS", "2")))
    model = load_word_model("word_cnn_s0", directory=directory)
    words = resolve_stimuli("bundled:words", limit=n_words)
    refs = torch.stack([words.load_for(s, model) for s in words])
    seeds = [item_seed(0, s.id) for s in words]
    print(f"{'candidate':32s} {'layer':8s} {'median final':>12s} {'worst':>9s} {'s':>6s}")
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
            seconds = time.perf_counter() - started
            print(
                f"{name:32s} {layer:8s} {np.median(final):12.4f} {final.max():9.4f} {seconds:6.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
