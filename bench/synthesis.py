"""P1 time to a good, validated metamer, and P2 engine overhead (EfficientNet-Lite0, CPU).

P1 — for each generation layer, every method runs from the same starts (the
published ``N(0.5, 0.05^2)`` noise, one seed per photo) and is checked every
``--check-every`` steps by the same :class:`common.TargetCheck`: accepted by the
published test against ONE shared null (class match; Spearman, Pearson and dB
SNR above the null maximum at the layer) AND normalised loss <= 0.1 (>= 20 dB).
Check time is excluded from every method's wall time. Methods:

- ``fast``: our ``fast`` preset, all photos in one batched run, per-item stop at the target.
- ``fast-long``: the same with ``max_steps`` = the step budget (cosine over the budget).
- ``feather2023-early``: our ``feather2023`` preset in our engine (batched,
  truncated network), stopped at the target — measured.
- ``feather2023-early-published-loop``: the same trajectories (steps to target)
  times the per-step time of the published loop (batch 1, whole network to the
  logits, two forwards per step) — extrapolated.
- ``feather2023-published``: the published loop for its fixed 24,000 steps —
  extrapolated from its per-step time; not run, so ``reached`` is unknown.
- ``plenoptic``: plenoptic 2.1.1 ``Metamer`` on the network truncated at the
  layer, its defaults (Adam lr 0.01 amsgrad, range penalty 0.1) with the
  normalised-L2 loss, batch 1, ``synthesize`` in chunks of ``--check-every``.

P2 — seconds per synthesis step of our engine vs a bare forward+backward of
the truncated network (same batch), interleaved; the ratio is the overhead.

Usage (plenoptic lives in the bench venv, see bench/README.md)::

    .venv/bench/bin/python bench/synthesis.py [--quick] [--part p1,p2] [--photos ...]
        [--layers ...] [--budget-steps 600] [--budget-seconds 300] [--methods ...]

Prints tables, ratios, and one JSON line per method x layer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # plenoptic's progress bar

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    LAYERS,
    MODEL,
    PHOTOS,
    TargetCheck,
    load_references,
    machine_line,
    median,
    set_threads,
    shared_null,
    truncated_network,
)
from metamers.models import LOGITS, PixelModel, load_model
from metamers.synthesis import MetamerSynthesis, get_preset, item_seed
from metamers.synthesis.objectives import normalized_l2
from metamers.synthesis.starts import starting_points

PUBLISHED_STEPS = 24_000
METHODS = ("fast", "feather2023", "plenoptic")


@dataclass
class ItemRun:
    """One photo's outcome: steps and seconds to the target (or spent, if not reached)."""

    item: str
    steps: int
    seconds: float
    reached: bool | None


@dataclass
class MethodRun:
    """One method at one layer."""

    method: str
    layer: str
    items: list[ItemRun]
    total_seconds: float
    budget_steps: int
    note: str = ""
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The JSON line (unreached items count with what they spent: censored)."""
        reached = [i.reached for i in self.items]
        return {
            "method": self.method,
            "layer": self.layer,
            "n": len(self.items),
            "reached": None if None in reached else int(sum(reached)),
            "median_steps": median([i.steps for i in self.items]),
            "median_seconds": _round(median([i.seconds for i in self.items])),
            "total_seconds": _round(self.total_seconds),
            "censored": any(r is False for r in reached),
            "budget_steps": self.budget_steps,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# ----------------------------------------------------------------------- P1 methods
def run_engine(
    method: str,
    model: PixelModel,
    layer: str,
    refs: torch.Tensor,
    ids: list[str],
    settings,
    check: TargetCheck,
    budget_seconds: float,
) -> MethodRun:
    """Our engine, all photos in one batch, per-item stop at the target."""
    synthesis = MetamerSynthesis(model, layer, refs, settings=settings, item_ids=ids)
    synthesis.setup(item_seeds=[item_seed(0, i) for i in ids])
    finished: dict[int, float] = {}

    def on_done(indices: list[int]) -> None:
        for i in indices:
            finished[i] = synthesis.elapsed - check.seconds

    def out_of_time(s: MetamerSynthesis) -> None:
        if s.elapsed - check.seconds > budget_seconds:
            raise TimeoutError

    try:
        synthesis.synthesize(stop_criterion=check, on_items_done=on_done, callback=out_of_time)
    except TimeoutError:
        pass
    total = synthesis.elapsed - check.seconds
    items = [
        ItemRun(
            ids[i],
            int(synthesis.steps[i]),
            finished.get(i, total),
            synthesis.stop_reasons[i] == "criterion",
        )
        for i in range(len(ids))
    ]
    return MethodRun(method, layer, items, total, settings.max_steps)


def published_step_seconds(
    model: PixelModel, layer: str, ref: torch.Tensor, start: torch.Tensor, steps: int
) -> float:
    """Median seconds per step of the published loop, written out here.

    Batch 1; each step runs the whole network to the logits twice (the
    robustness attacker's forward, whose graph is discarded, and the custom
    loss's forward with the latent at ``layer``), one backward, a
    normalised-gradient step of norm ``lr`` and a clamp to [0, 1].
    """
    with torch.inference_mode():
        target = model.activations(ref[None], [layer])[layer].clone()
    x, lr, times = start[None].clone(), 1.0, []
    for _ in range(steps + 1):
        started = time.perf_counter()
        x = x.detach().requires_grad_(True)
        model(x)  # first forward, as in the published attacker loop (graph built, unused)
        acts = model.activations(x, [layer, LOGITS])  # second forward, to the logits
        loss = normalized_l2(acts[layer], target).sum()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x = (x - lr * grad / norm).clamp(0.0, 1.0)
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))  # the first step warms up


class TruncatedAt(nn.Module):
    """plenoptic's model contract: image tensor in, the layer's activations out."""

    def __init__(self, model: PixelModel, layer: str) -> None:
        super().__init__()
        self.model, self.layer = model, layer
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.activations(x, [self.layer])[self.layer]


def _plenoptic_loss(representation: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return normalized_l2(representation, target).sum()


def run_plenoptic(
    model: PixelModel,
    layer: str,
    refs: torch.Tensor,
    ids: list[str],
    starts: torch.Tensor,
    check: TargetCheck,
    budget_steps: int,
    check_every: int,
    budget_seconds: float,
) -> MethodRun:
    """plenoptic ``Metamer`` per photo, ``synthesize`` in chunks, target checked between chunks."""
    import plenoptic as po

    items, per_item = [], budget_seconds / len(ids)
    for i, item in enumerate(ids):
        metamer = po.Metamer(
            refs[i : i + 1], TruncatedAt(model, layer), loss_function=_plenoptic_loss
        )
        metamer.setup(initial_image=starts[i : i + 1])
        steps, seconds, reached = 0, 0.0, False
        while steps < budget_steps and seconds < per_item and not reached:
            started = time.perf_counter()
            metamer.synthesize(min(check_every, budget_steps - steps), stop_criterion=0.0)
            seconds += time.perf_counter() - started
            steps = len(metamer.losses) - 1
            reached = bool(check(None, metamer.metamer.detach(), torch.tensor([i]))[0])
        items.append(ItemRun(item, steps, seconds, reached))
    return MethodRun(
        "plenoptic",
        layer,
        items,
        sum(i.seconds for i in items),
        budget_steps,
        note=f"plenoptic {po.__version__}, Adam lr 0.01 amsgrad, range penalty 0.1, batch 1",
    )


def published_runs(early: MethodRun, step_seconds: float) -> list[MethodRun]:
    """The published loop: stopped at the target (same steps) and as published (24,000 steps)."""
    stopped = [ItemRun(i.item, i.steps, i.steps * step_seconds, i.reached) for i in early.items]
    fixed = [
        ItemRun(i.item, PUBLISHED_STEPS, PUBLISHED_STEPS * step_seconds, None) for i in early.items
    ]
    note = f"extrapolated: {step_seconds:.3f} s/step of the published loop"
    return [
        MethodRun(
            "feather2023-early-published-loop",
            early.layer,
            stopped,
            sum(i.seconds for i in stopped),
            early.budget_steps,
            note,
        ),
        MethodRun(
            "feather2023-published",
            early.layer,
            fixed,
            sum(i.seconds for i in fixed),
            PUBLISHED_STEPS,
            note,
        ),
    ]


def run_p1(model: PixelModel, args: argparse.Namespace) -> list[MethodRun]:
    """Every requested method at every requested layer."""
    refs = load_references(model, args.photos)
    null = shared_null(
        model, LAYERS if set(args.layers) <= set(LAYERS) else args.layers, args.null_pairs
    )
    print(f"null: {null.describe()} (cache {null.path})")
    starts = starting_points(
        get_preset("feather2023"), refs, [item_seed(0, i) for i in args.photos], (0.0, 1.0)
    )
    runs: list[MethodRun] = []
    for layer in args.layers:
        check = TargetCheck(model, layer, refs, null, max_loss=args.max_loss)
        print(
            f"\n{layer}: thresholds "
            + ", ".join(f"{k} > {v:.3f}" for k, v in check.thresholds.items())
        )
        for method in args.methods:
            started = time.perf_counter()
            runs += _run_method(method, model, layer, refs, starts, check, args)
            print(f"  {method:12s} done in {time.perf_counter() - started:7.1f} s", flush=True)
    return runs


def _run_method(method, model, layer, refs, starts, check, args) -> list[MethodRun]:
    ids, k = list(args.photos), args.check_every
    if method in ("fast", "fast-long"):
        steps = (
            args.budget_steps if method == "fast-long" else min(args.budget_steps, args.fast_steps)
        )
        settings = get_preset("fast", max_steps=steps, stop_check_every=k)
        return [run_engine(method, model, layer, refs, ids, settings, check, args.budget_seconds)]
    if method == "feather2023":
        settings = get_preset("feather2023", max_steps=args.budget_steps, stop_check_every=k)
        early = run_engine(
            "feather2023-early", model, layer, refs, ids, settings, check, args.budget_seconds
        )
        step_s = published_step_seconds(model, layer, refs[0], starts[0], args.published_steps)
        return [early, *published_runs(early, step_s)]
    if method == "plenoptic":
        try:
            return [
                run_plenoptic(
                    model,
                    layer,
                    refs,
                    ids,
                    starts,
                    check,
                    args.budget_steps,
                    k,
                    args.budget_seconds,
                )
            ]
        except ImportError:
            print("  plenoptic not importable here: run with .venv/bench/bin/python (README)")
            return []
    raise SystemExit(f"unknown method {method!r}")


def print_p1(runs: list[MethodRun]) -> None:
    """Table per layer and ratios of the other methods' time to ``fast``'s."""
    print(
        f"\n{'layer':9s} {'method':34s} {'reached':>8s} {'med steps':>10s} {'med s':>9s} {'total s':>10s}"
    )
    for run in runs:
        r = run.record()
        reached = "?" if r["reached"] is None else f"{r['reached']}/{r['n']}"
        cens = "+" if r["censored"] else ""
        print(
            f"{run.layer:9s} {run.method:34s} {reached:>8s} {r['median_steps']:>9.0f}{cens:1s} "
            f"{r['median_seconds']:>9.1f} {r['total_seconds']:>10.1f}  {run.note}"
        )
    print("\n'+': some items did not reach the target within the budget (a lower bound).")
    print("Ratios: their time / ours (fast); total = all photos, median = per photo.")
    for layer in dict.fromkeys(r.layer for r in runs):
        ours = next((r for r in runs if r.layer == layer and r.method == "fast"), None)
        if ours is None:
            continue
        for other in (r for r in runs if r.layer == layer and r.method != "fast"):
            a, b = ours.record(), other.record()
            total = b["total_seconds"] / max(a["total_seconds"], 1e-9)
            med = (b["median_seconds"] or math.nan) / max(a["median_seconds"] or math.nan, 1e-9)
            print(
                f"  {layer:9s} {other.method:34s} total x{total:8.1f}  median x{med:8.1f}  "
                f"reach {a['reached']}/{a['n']} vs {b['reached']}/{b['n']}"
            )


# ----------------------------------------------------------------------------- P2
def run_p2(model: PixelModel, args: argparse.Namespace) -> list[dict]:
    """Seconds per step: engine vs bare forward+backward of the truncated network, interleaved."""
    refs = load_references(model, args.photos)
    rows = []
    for layer in args.layers:
        settings = get_preset("fast", max_steps=10**9, stop_check_every=10**9)
        synthesis = MetamerSynthesis(model, layer, refs, settings=settings)
        synthesis.setup(item_seeds=[item_seed(0, i) for i in args.photos])
        net = truncated_network(model, layer)
        with torch.inference_mode():
            target = net(refs).clone()
        x = synthesis.x.clone()
        engine_times, bare_times = [], []
        synthesis.synthesize(max_steps=1)
        _bare_steps(net, x, target, 1)
        for _ in range(args.p2_reps):
            started = synthesis.elapsed
            synthesis.synthesize(max_steps=args.p2_steps)
            engine_times.append((synthesis.elapsed - started) / args.p2_steps)
            bare_times.append(_bare_steps(net, x, target, args.p2_steps) / args.p2_steps)
        ratios = [e / b for e, b in zip(engine_times, bare_times)]
        row = {
            "part": "p2",
            "layer": layer,
            "batch": len(args.photos),
            "engine_s_per_step": round(float(np.median(engine_times)), 4),
            "bare_s_per_step": round(float(np.median(bare_times)), 4),
            "ratio_median": round(float(np.median(ratios)), 3),
            "ratio_of_minima": round(min(engine_times) / min(bare_times), 3),
        }
        print(
            f"P2 {layer:9s} batch {row['batch']}: engine {row['engine_s_per_step']:.3f} s/step, "
            f"bare {row['bare_s_per_step']:.3f} s/step, ratio {row['ratio_median']:.3f} "
            f"(of minima {row['ratio_of_minima']:.3f})",
            flush=True,
        )
        rows.append(row)
    return rows


def _bare_steps(net: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int) -> float:
    """Seconds for ``steps`` plain forward+backward passes to the input (no update)."""
    started = time.perf_counter()
    for _ in range(steps):
        leaf = x.detach().requires_grad_(True)
        loss = normalized_l2(net(leaf), target).sum()
        torch.autograd.grad(loss, leaf)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 photos, 1 layer, tiny budgets")
    parser.add_argument("--part", default="p1,p2", help="p1, p2 or both")
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of {METHODS} + fast-long")
    parser.add_argument("--budget-steps", type=int, default=600, help="steps per item per method")
    parser.add_argument("--budget-seconds", type=float, default=300.0, help="per method x layer")
    parser.add_argument("--fast-steps", type=int, default=get_preset("fast").max_steps)
    parser.add_argument("--check-every", type=int, default=25)
    parser.add_argument("--max-loss", type=float, default=0.1, help="0.1 = 20 dB SNR")
    parser.add_argument("--null-pairs", type=int, default=2000)
    parser.add_argument("--published-steps", type=int, default=4, help="steps timed")
    parser.add_argument("--p2-steps", type=int, default=5)
    parser.add_argument("--p2-reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.layers = "astronaut,coffee", "blocks.1"
        args.budget_steps, args.budget_seconds, args.check_every = 50, 60.0, 25
        args.published_steps, args.p2_steps, args.p2_reps = 2, 2, 2
    for name in ("photos", "layers", "methods", "part"):
        setattr(args, name, [v for v in getattr(args, name).split(",") if v])
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    warnings.filterwarnings("ignore", message="Loss has converged")
    model = load_model(MODEL)
    print(machine_line())
    records: list[dict] = []
    if "p2" in args.part:
        records += run_p2(model, args)
    if "p1" in args.part:
        runs = run_p1(model, args)
        print_p1(runs)
        records += [run.record() for run in runs]
    print(f"\n{machine_line()}")
    for record in records:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
