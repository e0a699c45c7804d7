"""The synthesis loop against outputs recorded from the loop before it kept its state on the device.

``tests/data/synthesis_golden.json`` holds, for seeded runs (a tiny conv net and the
zoo's ``mnist_cnn_s0``; every optimiser and schedule; every stop rule; NaN recovery;
continuing, retiring and resuming), each item's metamer digest, loss history, steps,
status and stop reason, as the per-step loop (host sync every step) produced them on
this CPU. The loop must reproduce them to the bit. ``python tests/test_synthesis_golden.py``
rewrites the file (only do that for a deliberate change of results).

CPU float kernels differ between CPU kinds, thread counts and torch versions, so
the comparison runs only where the recording was made (same torch version, CPU
capability and thread count); elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from metamers.models import PixelModel
from metamers.synthesis import MetamerSynthesis, get_preset

from conftest import make_tiny_model

GOLDEN = Path(__file__).parent / "data" / "synthesis_golden.json"
SMOOTH = {"objective": "mse", "range_mode": "penalty"}


class NaNOnCalls(nn.Module):
    """NaN in item 0's output on the listed forward calls (``None``: whenever 3 items are in)."""

    def __init__(self, calls: set[int] | None) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count += 1
        always = self.calls is None and self.count > 1 and x.shape[0] == 3
        if always or (self.calls is not None and self.count in self.calls):
            x = x.clone()
            x[0] = math.nan
        return x


def _tiny(extra: nn.Module | None = None) -> PixelModel:
    model = make_tiny_model()
    if extra is not None:
        model.net.relu2 = nn.Sequential(nn.ReLU(), extra)
    return model


def _refs(n: int = 3, shape=(3, 32, 32), seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _synth(model, layer, refs, run_kw=None, **settings) -> MetamerSynthesis:
    run_kw = dict(run_kw or {})
    sync = run_kw.pop("sync_every", None)
    s = get_preset("fast", **({"init": "noise"} | settings))
    synthesis = MetamerSynthesis(model, layer, refs, settings=s, sync_every=sync).setup(seed=3)
    return synthesis.synthesize(**run_kw)


def _stop_item1_at_20(synthesis, stimuli, indices):
    return (indices == 1) & (synthesis.steps[indices] >= 20)


def _chunked_retire_resume(tmp: Path, sync_every: int | None = None, **run_kw) -> MetamerSynthesis:
    model, refs = _tiny(), _refs(4)
    settings = get_preset("fast", max_steps=40, init="noise", loss_threshold=0.3)
    first = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=sync_every)
    first.setup(seed=5)
    first.retire([2])
    first.synthesize(max_steps=7, **run_kw).synthesize(max_steps=6, **run_kw)
    first.save(tmp / "state.safetensors")
    second = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=sync_every)
    return second.load(tmp / "state.safetensors").synthesize(**run_kw)


def _mnist(**settings) -> Callable[..., MetamerSynthesis]:
    def run(**run_kw) -> MetamerSynthesis:
        from metamers.models import load_model

        model = load_model("mnist_cnn_s0")
        refs = _refs(2, model.input_shape, seed=2)
        return _synth(model, "relu2", refs, run_kw, **settings)

    return run


def _case(layer="relu2", model=None, **settings) -> Callable[..., MetamerSynthesis]:
    def run(**run_kw) -> MetamerSynthesis:
        return _synth(model() if model else _tiny(), layer, _refs(), run_kw, **settings)

    return run


CASES: dict[str, Callable[..., MetamerSynthesis]] = {
    "adam_cosine": _case(max_steps=30),
    "sgd_cosine": _case(max_steps=30, optimizer="sgd"),
    "ng_halving": _case(
        max_steps=30, optimizer="normalized_gradient", schedule="halving", halving_every=10
    ),
    "lbfgs_constant": _case(max_steps=30, optimizer="lbfgs", schedule="constant", **SMOOTH),
    "adam_plateau_schedule": _case(
        max_steps=40, schedule="plateau", plateau_patience=3, plateau_tol=0.05
    ),
    "threshold": _case(max_steps=200, loss_threshold=0.25),
    "plateau_stop": _case(max_steps=300, stop_plateau_steps=3, stop_plateau_tol=0.08),
    "fc_layer_mse": _case(layer="fc", max_steps=20, objective="mse"),
    "nan_restart": _case(max_steps=30, model=lambda: _tiny(NaNOnCalls({4, 5, 9}))),
    "nan_failed": _case(max_steps=20, max_failures=2, model=lambda: _tiny(NaNOnCalls(None))),
    "mnist_adam": _mnist(max_steps=25),
    "mnist_feather": _mnist(
        max_steps=25, optimizer="normalized_gradient", lr=1.0, schedule="halving", halving_every=8
    ),
}
CRITERION_CASES = {"criterion": _case(max_steps=45, stop_check_every=10)}


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:20]


def outcome(synthesis: MetamerSynthesis) -> dict:
    return {
        "metamers": [digest(synthesis.x[i]) for i in range(synthesis.n_items)],
        "losses": [synthesis.losses(i).tolist() for i in range(synthesis.n_items)],
        "steps": synthesis.steps.tolist(),
        "status": [synthesis.status_of(i) for i in range(synthesis.n_items)],
        "stop_reasons": list(synthesis.stop_reasons),
        "failures": synthesis.failures.tolist(),
        "lr_scale": synthesis.lr_scale.tolist(),
        "optimizer": {k: digest(v) for k, v in sorted(synthesis._optimizer.state.items())},
        "schedule": {k: digest(v) for k, v in sorted(synthesis._schedule.state.items())},
    }


def run_synthesis(name: str, tmp: Path, **run_kw) -> MetamerSynthesis:
    """Case ``name`` run to its end (``sync_every`` goes to the constructor)."""
    if name in CASES:
        return CASES[name](**run_kw)
    if name in CRITERION_CASES:
        return CRITERION_CASES[name](stop_criterion=_stop_item1_at_20, **run_kw)
    return _chunked_retire_resume(tmp, **run_kw)


def run_case(name: str, tmp: Path, **run_kw) -> dict:
    return outcome(run_synthesis(name, tmp, **run_kw))


ALL = [*CASES, *CRITERION_CASES, "chunked_retire_resume"]


def machine() -> dict:
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


@pytest.fixture(scope="module")
def golden() -> dict:
    recorded = json.loads(GOLDEN.read_text())
    if recorded["machine"] != machine():
        pytest.skip(f"recorded on {recorded['machine']}, this is {machine()}")
    return recorded["cases"]


@pytest.mark.parametrize("name", ALL)
def test_loop_reproduces_the_recorded_per_step_loop(golden, name, tmp_path):
    assert run_case(name, tmp_path) == golden[name]


# No item stops on a loss rule while others go on: syncing every k steps changes nothing.
SAME_AT_ANY_SYNC = [
    n for n in ALL if n not in {"threshold", "plateau_stop", "nan_failed", "chunked_retire_resume"}
]


@pytest.mark.parametrize("name", SAME_AT_ANY_SYNC)
def test_syncing_every_k_steps_reproduces_the_per_step_loop(golden, name, tmp_path):
    assert run_case(name, tmp_path, sync_every=7) == golden[name]


if __name__ == "__main__":
    import tempfile

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        cases = {}
        for name in ALL:
            torch.manual_seed(0)
            cases[name] = run_case(name, Path(tmp))
            print(name, cases[name]["stop_reasons"], cases[name]["steps"])
    GOLDEN.write_text(json.dumps({"machine": machine(), "cases": cases}, indent=1) + "\n")
