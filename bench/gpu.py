"""Does a GPU earn its keep? Issue 20's table in one command, as JSON lines.

Parts (``--parts``, default all but ``study``):

- ``step``: seconds per step of the published loop (batch 1, the whole network
  to the logits twice per step, as published), of our engine at each batch
  size (fp32, bf16 autocast, and ``torch.compile`` with ``--compile``) and of
  the bare truncated forward+backward at the same batch; the engine/bare
  ratio and image-steps/s against the published loop.
- ``reach``: wall time until all N references reach ``loss <= --target`` at
  each layer: our ``fast`` preset (one batch, per-item stop; on CUDA also
  under bf16 autocast, with the fp32 loss of its results) vs plenoptic's
  ``Metamer`` run batched (all N images in one object, its defaults; skipped
  when plenoptic is not importable), and how many had reached it by the time
  the first of the two finished. Target checks are excluded from the time.
- ``queue``: continuous batching in ``generate_metamers``: loss evaluations
  the items needed, forward rows run, and slot-steps (capacity x iterations)
  against what fixed batches would take (each batch as long as its slowest
  item), per sync interval.
- ``study``: the wall time of a whole study (``metamers run``: N photos x the
  layers x ``fast``, nulls, evaluation, report; one generate task per layer
  with every photo, so its queue keeps the batch full).

On CUDA the defaults are the issue's: EfficientNet-Lite0, the 18 bundled
photos, ``blocks.1,blocks.3,blocks.5``, batches 1, 4, 16, 64, 256. Without
CUDA (or with ``--tiny``) a tiny configuration runs instead (the zoo's
``mnist_cnn_s0``, a few digits, two layers, batches 1 and 4, a few steps), so
the script stays tested (``tests/test_synthesis_gpu_bench.py``).

Usage::

    python bench/gpu.py [--tiny] [--parts step,reach,queue,study] [--compile]
        [--batches 1,4,16,64,256] [--layers ...] [--json out.jsonl]

Every row is printed as one JSON line (and appended to ``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # plenoptic's progress bar

import torch

from metamers.models import LOGITS, PixelModel, load_model
from metamers.stimuli import StimulusSet, resolve_stimuli
from metamers.synthesis import MetamerSynthesis, generate_metamers, get_preset, item_seed
from metamers.synthesis.objectives import normalized_l2

CUDA_DEFAULTS = {
    "model": "efficientnet_lite0",
    "stimuli": "bundled:photos",
    "n": 18,
    "layers": "blocks.1,blocks.3,blocks.5",
    "batches": "1,4,16,64,256",
    "steps": 50,
    "budget_steps": 2000,
    "budget_seconds": 60.0,
    "queue_n": 400,
    "queue_steps": 1000,
}
TINY_DEFAULTS = {
    "model": "mnist_cnn_s0",
    "stimuli": "bundled:mnist",
    "n": 3,
    "layers": "relu1",
    "batches": "1,3",
    "steps": 2,
    "budget_steps": 30,
    "budget_seconds": 10.0,
    "queue_n": 6,
    "queue_steps": 30,
}
PARTS = ("step", "reach", "queue", "study")


# ------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    """Wait for the device (CUDA work is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, calls: int) -> float:
    """Wall seconds per call of ``fn`` (one warm-up call first, device synchronised)."""
    fn()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - started) / calls


def references(model: PixelModel, spec: str, n: int) -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` stimuli of ``spec`` fitted to the model, on its device."""
    stimuli = resolve_stimuli(spec).limit(n)
    refs = torch.stack([stimuli.load(s, model.input_shape) for s in stimuli])
    return refs.to(model.device), [s.id for s in stimuli]


def cycled(refs: torch.Tensor, batch: int) -> torch.Tensor:
    """``batch`` references, the given ones repeated."""
    index = torch.arange(batch, device=refs.device) % refs.shape[0]
    return refs[index]


# --------------------------------------------------------------------------- step
def published_step(model: PixelModel, layer: str, ref: torch.Tensor) -> Callable[[], None]:
    """One step of the published loop: batch 1, two forwards to the logits, normalised step."""
    with torch.inference_mode():
        target = model.activations(ref[None], [layer])[layer].clone()
    state = {"x": (0.5 + 0.05 * torch.randn_like(ref[None])).clamp(0, 1)}

    def step() -> None:
        x = state["x"].detach().requires_grad_(True)
        model(x)  # the attacker's forward, whose graph is discarded
        acts = model.activations(x, [layer, LOGITS])
        loss = normalized_l2(acts[layer], target).sum()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            state["x"] = (x - grad / norm).clamp(0.0, 1.0)
        loss.item()  # the published loop logs the loss every step

    return step


def bare_step(model: PixelModel, layer: str, refs: torch.Tensor) -> Callable[[], None]:
    """The floor: forward to the layer and backward to the input, nothing else."""
    with torch.inference_mode():
        target = model.activations(refs, [layer])[layer].clone()
    x = refs.clone()

    def step() -> None:
        leaf = x.detach().requires_grad_(True)
        acts = model.activations(leaf, [layer])[layer]
        torch.autograd.grad(normalized_l2(acts, target).sum(), leaf)

    return step


def engine_steps(
    model: PixelModel,
    layer: str,
    refs: torch.Tensor,
    steps: int,
    amp: bool,
    backend: str | None,
    sync_every: int | None = None,
) -> Callable[[], None]:
    """``steps`` iterations of our engine (``fast``; no item stops) per call."""
    settings = get_preset("fast", max_steps=10**9, amp=amp)
    synthesis = MetamerSynthesis(
        model,
        layer,
        refs,
        settings=settings,
        item_ids=[str(i) for i in range(len(refs))],
        compile=backend,
        sync_every=sync_every,
    )
    synthesis.setup(seed=0)
    return lambda: synthesis.synthesize(max_steps=steps)


def part_step(model: PixelModel, refs: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    rows = []
    device = model.device
    for layer in args.layers:
        published = seconds_per_call(published_step(model, layer, refs[0]), device, args.steps)
        rows.append(
            {
                "part": "step",
                "method": "published",
                "layer": layer,
                "batch": 1,
                "s_per_step": published,
            }
        )
        for batch in args.batches:
            batch_refs = cycled(refs, batch)
            bare = seconds_per_call(bare_step(model, layer, batch_refs), device, args.steps)
            variants = [("fp32", False, None, None)]
            if device.type == "cuda":  # what a host sync every step costs; bf16
                variants += [("fp32-sync-every-step", False, None, 1), ("bf16", True, None, None)]
            for backend in args.compile:
                variants.append((f"fp32+compile-{backend}", False, backend, None))
            for name, amp, backend, sync in variants:
                run = engine_steps(model, layer, batch_refs, args.steps, amp, backend, sync)
                engine = seconds_per_call(run, device, 2) / args.steps
                rows.append(
                    {
                        "part": "step",
                        "method": f"engine-{name}",
                        "layer": layer,
                        "batch": batch,
                        "s_per_step": engine,
                        "bare_s_per_step": bare,
                        "ratio_to_bare": engine / bare,
                        "image_steps_per_s": batch / engine,
                        "vs_published": (batch / engine) / (1 / published),
                    }
                )
    return rows


# -------------------------------------------------------------------------- reach
def reach_ours(
    model: PixelModel,
    layer: str,
    refs: torch.Tensor,
    ids: list[str],
    args: argparse.Namespace,
    amp: bool = False,
) -> dict:
    settings = get_preset("fast", loss_threshold=args.target, max_steps=args.budget_steps, amp=amp)
    synthesis = MetamerSynthesis(model, layer, refs, settings=settings, item_ids=ids)
    synthesis.setup(item_seeds=[item_seed(0, i) for i in ids])
    reached_at: dict[int, float] = {}
    started = time.perf_counter()

    def on_done(items: list[int]) -> None:
        now = time.perf_counter() - started
        for i in items:
            if synthesis.stop_reasons[i] == "threshold":
                reached_at[i] = now

    def out_of_time(s: MetamerSynthesis) -> None:
        if time.perf_counter() - started > args.budget_seconds:
            raise TimeoutError

    try:
        synthesis.synthesize(on_items_done=on_done, callback=out_of_time)
    except TimeoutError:
        pass
    synchronize(model.device)
    steps = [len(synthesis.losses(i)) - 1 for i in range(len(ids))]
    method = "fast-bf16" if amp else "fast"
    row = _reach_row(method, layer, reached_at, len(ids), time.perf_counter() - started, steps)
    # quality: the fp32 loss of what was reached (bf16 runs compute losses from bf16 activations)
    with torch.inference_mode():
        target = model.activations(refs, [layer])[layer]
        final = normalized_l2(model.activations(synthesis.metamers, [layer])[layer], target)
    row["final_loss_fp32_median"] = float(final.median())
    return row


def reach_plenoptic(
    model: PixelModel, layer: str, refs: torch.Tensor, ids: list[str], args: argparse.Namespace
) -> dict | None:
    try:
        import plenoptic as po
    except ImportError:
        return None
    from torch import nn

    class TruncatedAt(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model.activations(x, [layer])[layer]

    with torch.inference_mode():
        target = model.activations(refs, [layer])[layer].clone()
    starts = torch.stack(
        [
            (
                0.5
                + 0.05
                * torch.randn(
                    refs.shape[1:], generator=torch.Generator().manual_seed(item_seed(0, i) % 2**63)
                )
            ).clamp(0, 1)
            for i in ids
        ]
    ).to(refs.device)

    def loss_fn(representation: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return normalized_l2(representation, reference).sum()

    metamer = po.Metamer(refs, TruncatedAt().eval(), loss_function=loss_fn)
    metamer.setup(initial_image=starts)
    reached_at: dict[int, float] = {}
    spent, steps = 0.0, 0
    while len(reached_at) < len(ids) and steps < args.budget_steps:
        if spent > args.budget_seconds:
            break
        synchronize(refs.device)
        started = time.perf_counter()
        metamer.synthesize(args.check_every, stop_criterion=0.0)
        synchronize(refs.device)
        spent += time.perf_counter() - started
        steps += args.check_every
        with torch.inference_mode():
            acts = model.activations(metamer.metamer.detach(), [layer])[layer]
            losses = normalized_l2(acts, target).tolist()
        for i, value in enumerate(losses):
            if value <= args.target and i not in reached_at:
                reached_at[i] = spent
    row = _reach_row("plenoptic-batched", layer, reached_at, len(ids), spent, [steps] * len(ids))
    row["note"] = f"plenoptic {po.__version__}, defaults (Adam lr 0.01 amsgrad), batch {len(ids)}"
    return row


def _reach_row(method, layer, reached_at, n, seconds, steps) -> dict:
    return {
        "part": "reach",
        "method": method,
        "layer": layer,
        "n": n,
        "reached": len(reached_at),
        "seconds_to_all": max(reached_at.values()) if len(reached_at) == n else None,
        "seconds_run": seconds,
        "reached_at": sorted(reached_at.values()),
        "median_steps": sorted(steps)[len(steps) // 2],
    }


def part_reach(model, refs, ids, args) -> list[dict]:
    rows = []
    for layer in args.layers:
        ours = reach_ours(model, layer, refs, ids, args)
        rows.append(ours)
        if model.device.type == "cuda":
            rows.append(reach_ours(model, layer, refs, ids, args, amp=True))
        theirs = reach_plenoptic(model, layer, refs, ids, args)
        if theirs is None:
            print("  plenoptic not importable: its rows are skipped", file=sys.stderr)
            continue
        rows.append(theirs)
        first = min(r["seconds_to_all"] or r["seconds_run"] for r in (ours, theirs))
        for row in (ours, theirs):
            row["reached_when_first_done"] = sum(t <= first for t in row["reached_at"])
    return rows


# -------------------------------------------------------------------------- queue
def repeated(stimuli: StimulusSet, n: int) -> StimulusSet:
    """``n`` items: the set's stimuli, repeated under new ids (so with their own seeds)."""
    if len(stimuli) >= n:
        return stimuli.limit(n)
    copies = [
        dataclasses.replace(s, id=f"{s.id}-{k}")
        for k in range(-(-n // len(stimuli)))
        for s in stimuli
    ]
    return dataclasses.replace(stimuli, stimuli=copies[:n])


def part_queue(model: PixelModel, args: argparse.Namespace) -> list[dict]:
    """Continuous batching: work counted, against fixed batches of the same capacity."""
    stimuli = repeated(resolve_stimuli(args.queue_stimuli or args.stimuli), args.queue_n)
    settings = get_preset(
        "fast",
        loss_threshold=args.queue_target,
        max_steps=args.queue_steps,
        checkpoint_every=10**6,
    )
    capacity = args.queue_batch or max(args.batches)
    rows = []
    for sync_every in args.sync_every:
        with tempfile.TemporaryDirectory() as out:
            synchronize(model.device)
            started = time.perf_counter()
            results = generate_metamers(
                model,
                ",".join(args.layers),
                stimuli,
                out,
                settings,
                batch_size=capacity,
                sync_every=sync_every,
            )
            synchronize(model.device)
            seconds = time.perf_counter() - started
        work = results.work
        fixed = 0
        for layer in args.layers:
            evals = [len(r.losses) for r in results if r.layer == layer]
            fixed += sum(
                capacity * max(evals[i : i + capacity]) for i in range(0, len(evals), capacity)
            )
        rows.append(
            {
                "part": "queue",
                "layers": args.layers,
                "items": len(results),
                "capacity": capacity,
                "sync_every": sync_every,
                "seconds": seconds,
                **work,
                "rows_per_evaluation": work["rows_evaluated"] / work["evaluations"],
                "slot_steps_per_evaluation": work["slot_steps"] / work["evaluations"],
                "fixed_batches_slot_steps_per_evaluation": fixed / work["evaluations"],
                "item_steps": {
                    "min": min(len(r.losses) for r in results) - 1,
                    "max": max(len(r.losses) for r in results) - 1,
                },
            }
        )
    return rows


# -------------------------------------------------------------------------- study
STUDY = """name: gpu-bench
seed: 0
models:
  generators:
    - name: {model}
      layers: [{layers}]
stimuli:
  spec: {stimuli}
  limit: {n}
  chunk: {n}
synthesis:
  preset: fast
null:
  pairs: 2000
evaluation:
  features: true
  similarity: [cka]
"""


def part_study(args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "study.yaml"
        config.write_text(
            STUDY.format(
                model=args.model, layers=", ".join(args.layers), stimuli=args.stimuli, n=args.n
            )
        )
        started = time.perf_counter()
        done = subprocess.run(
            ["metamers", "run", str(config), "--out", str(Path(folder) / "study")],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
    return [
        {
            "part": "study",
            "model": args.model,
            "layers": args.layers,
            "n": args.n,
            "seconds": seconds,
            "returncode": done.returncode,
            "tail": done.stdout[-300:] + done.stderr[-300:],
        }
    ]


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the CPU configuration")
    parser.add_argument("--parts", default="step,reach,queue", help=f"of {PARTS}")
    parser.add_argument("--model")
    parser.add_argument("--stimuli")
    parser.add_argument("--n", type=int, help="references (step and reach)")
    parser.add_argument("--layers")
    parser.add_argument("--batches")
    parser.add_argument("--steps", type=int, help="timed steps per measurement")
    parser.add_argument("--target", type=float, default=0.1, help="loss to reach (0.1 = 20 dB)")
    parser.add_argument("--check-every", type=int, default=25, help="plenoptic chunk")
    parser.add_argument("--budget-steps", type=int)
    parser.add_argument("--budget-seconds", type=float)
    parser.add_argument(
        "--queue-n", type=int, help="items per layer of the queue part (the set repeated)"
    )
    parser.add_argument("--queue-stimuli", help="their set (default --stimuli)")
    parser.add_argument("--queue-steps", type=int, help="max_steps of the queue part")
    parser.add_argument("--queue-target", type=float, default=0.1)
    parser.add_argument("--queue-batch", type=int, help="capacity (default: the largest batch)")
    parser.add_argument("--sync-every", default="1,10,50", help="sync intervals of the queue part")
    parser.add_argument(
        "--compile",
        help="also time the engine under these torch.compile backends, comma-separated "
        "(inductor, cudagraphs, inductor:reduce-overhead)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--json", help="append the rows to this file")
    args = parser.parse_args(argv)
    tiny = args.tiny or not torch.cuda.is_available()
    for key, value in (TINY_DEFAULTS if tiny else CUDA_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.tiny = tiny
    args.parts = [p for p in args.parts.split(",") if p]
    args.layers = [v for v in args.layers.split(",") if v]
    args.batches = [int(v) for v in args.batches.split(",") if v]
    args.sync_every = [int(v) for v in args.sync_every.split(",") if v]
    args.compile = [v for v in (args.compile or "").split(",") if v]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    return args


def machine() -> dict:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "part": "machine",
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load": [round(v, 1) for v in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cpu" if args.tiny else "cuda"
    model = load_model(args.model, device=device)
    rows = [machine() | {"model": args.model, "tiny": args.tiny}]
    refs, ids = references(model, args.stimuli, args.n)
    if "step" in args.parts:
        rows += part_step(model, refs, args)
    if "reach" in args.parts:
        rows += part_reach(model, refs, ids, args)
    if "queue" in args.parts:
        rows += part_queue(model, args)
    if "study" in args.parts:
        rows += part_study(args)
    for row in rows:
        line = json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(line + "\n")
    return rows


if __name__ == "__main__":
    main()
