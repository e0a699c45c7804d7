"""Time a 2,000-pair null at three layers of EfficientNet-Lite0 (bundled photos, no cache).

Usage: ``python bench/null_build.py [--threads 2] [--pairs 2000]``.
Prints wall time, views (forward passes) and the share spent in the model.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

from metamers.models import load_model
from metamers.null import SmallNullWarning, compute_null
from metamers.stimuli import resolve_stimuli

LAYERS = ["blocks.1", "blocks.3", "blocks.5"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("efficientnet_lite0")
    photos = resolve_stimuli("bundled:photos")
    forward_time = [0.0]
    original = model.activations

    def timed(*a, **k):
        t = time.perf_counter()
        out = original(*a, **k)
        forward_time[0] += time.perf_counter() - t
        return out

    model.activations = timed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        t = time.perf_counter()
        null = compute_null(model, LAYERS, photos, args.pairs, use_cache=False)
        total = time.perf_counter() - t
    print(f"{null.describe()}")
    print(f"wall {total:.1f} s, model forwards {forward_time[0]:.1f} s, threads {args.threads}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
