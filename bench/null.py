"""P4: time to build a null of 10^4 pairs at three layers, ``compute_null`` vs the naive loop.

``compute_null`` (no cache) forms many pairs among the augmented views of a
batch, one forward per view that stops at the deepest requested layer. The
naive loop does what the published code does per pair: two augmented views of
two different photos, each run through the whole network (to the logits) on
its own, then the three metrics at each layer. The naive loop is timed on
``--naive-pairs`` pairs and extrapolated linearly to ``--pairs``; both sides
count their model-forward time separately, and decoding is cached on both.

Usage::

    python bench/null.py [--pairs 10000] [--naive-pairs 200] [--ours-pairs N] [--threads 2]
                         [--quick]

Prints a table and one JSON line per method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LAYERS, MODEL, NULL_STIMULI, machine_line, set_threads
from metamers.models import LOGITS, PixelModel, load_model
from metamers.null import Augmentation, SmallNullWarning, compute_null
from metamers.null.distribution import view_loader
from metamers.similarity.metrics import similarities
from metamers.stimuli import resolve_stimuli


class ForwardTimer:
    """Wraps ``model.activations`` on the instance and sums the seconds spent in it."""

    def __init__(self, model: PixelModel) -> None:
        self.model, self.seconds, self.calls = model, 0.0, 0
        self._original = model.activations

    def __enter__(self) -> ForwardTimer:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            out = self._original(*args, **kwargs)
            self.seconds += time.perf_counter() - started
            self.calls += 1
            return out

        self.model.activations = timed
        return self

    def __exit__(self, *exc) -> None:
        del self.model.activations


def time_compute_null(model: PixelModel, n_pairs: int, measured: int) -> dict:
    """``compute_null`` at :data:`LAYERS`, no cache, on ``measured`` pairs scaled to ``n_pairs``.

    Its cost is linear in the pairs (a fixed number of pairs per batch of views).
    """
    stimuli = resolve_stimuli(NULL_STIMULI)
    with ForwardTimer(model) as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        started = time.perf_counter()
        null = compute_null(model, list(LAYERS), stimuli, measured, use_cache=False)
        total = time.perf_counter() - started
    scale = n_pairs / measured
    return {
        "method": "compute_null",
        "pairs": n_pairs,
        "measured_pairs": measured,
        "forwards": int(timer.calls * scale),
        "views": int(null.n_views * scale),
        "seconds": round(total * scale, 2),
        "forward_seconds": round(timer.seconds * scale, 2),
    }


def time_naive(model: PixelModel, n_pairs: int, measured: int, seed: int = 0) -> dict:
    """The naive loop on ``measured`` pairs, extrapolated to ``n_pairs``.

    Views come from the same loader ``compute_null`` uses (same augmentation,
    same decoded-source cache), so the two sides differ only in how the
    model is run and how pairs share views.
    """
    stimuli = resolve_stimuli(NULL_STIMULI)
    load_view = view_loader(model, stimuli, Augmentation())
    rng = np.random.default_rng(seed)
    wanted = [*LAYERS, LOGITS]
    with ForwardTimer(model) as timer:
        started = time.perf_counter()
        for _ in range(measured):
            pair = rng.choice(len(stimuli), size=2, replace=False)
            acts = []
            for index in pair:
                view = load_view(int(index), int(rng.integers(2**62)))
                with torch.inference_mode():
                    acts.append(model.activations(view[None], wanted))
            for layer in LAYERS:
                similarities(acts[0][layer], acts[1][layer])
        total = time.perf_counter() - started
    scale = n_pairs / measured
    return {
        "method": "naive",
        "pairs": n_pairs,
        "measured_pairs": measured,
        "forwards": int(timer.calls * scale),
        "views": int(timer.calls * scale),
        "seconds": round(total * scale, 2),
        "forward_seconds": round(timer.seconds * scale, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--naive-pairs", type=int, default=200, help="naive pairs timed")
    parser.add_argument("--ours-pairs", type=int, default=None, help="compute_null pairs timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1,000 pairs, 20 naive pairs")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.naive_pairs, args.ours_pairs = 1000, 20, 1000
    set_threads(args.threads)
    model = load_model(MODEL)
    print(machine_line())
    rows = [
        time_naive(model, args.pairs, args.naive_pairs),
        time_compute_null(model, args.pairs, args.ours_pairs or args.pairs),
    ]
    print(f"\n{args.pairs}-pair null at {', '.join(LAYERS)} of {MODEL} ({NULL_STIMULI})")
    print(f"{'method':14s} {'forwards':>9s} {'seconds':>9s} {'forward s':>10s}  note")
    for row in rows:
        note = (
            f"extrapolated from {row['measured_pairs']} pairs"
            if row["measured_pairs"] != row["pairs"]
            else "measured"
        )
        print(
            f"{row['method']:14s} {row['forwards']:>9d} {row['seconds']:>9.1f} "
            f"{row['forward_seconds']:>10.1f}  {note}"
        )
    naive, ours = rows
    print(
        f"\ncompute_null / naive total: {ours['seconds'] / naive['seconds']:.3f}; "
        f"compute_null / naive forwards alone: {ours['seconds'] / naive['forward_seconds']:.3f}; "
        f"compute_null outside its forwards: {ours['seconds'] - ours['forward_seconds']:.1f} s"
    )
    print(machine_line())
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
