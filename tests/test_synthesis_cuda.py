"""The synthesis loop on CUDA (skipped without a GPU): no host sync between syncs,
results equal to the CPU's to float tolerance, the probed batch size, the queue.

Run on a GPU machine with ``python -m pytest tests/test_synthesis_cuda.py -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.synthesis import MetamerSynthesis, generate_metamers, get_preset
from metamers.synthesis.batching import CPU_BATCH, device_batch_size
from metamers.synthesis.engine import MetamerSynthesis as Engine
from metamers.synthesis.jobs import parse_layer_jobs

from conftest import make_tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SETTINGS = get_preset("fast", max_steps=40, loss_threshold=0.3, init="noise")


def _refs(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _run(device: str, optimizer: str = "adam", **kw) -> MetamerSynthesis:
    model = make_tiny_model().to(device)
    settings = SETTINGS.model_copy(update={"optimizer": optimizer})
    synthesis = MetamerSynthesis(model, "relu2", _refs().to(device), settings=settings, **kw)
    return synthesis.setup(seed=2)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "normalized_gradient", "lbfgs"])
def test_no_device_sync_inside_the_loop(monkeypatch, optimizer):
    synthesis = _run("cuda", optimizer)
    iterate = Engine._iterate

    def strict(self, idx, rows, criterion):
        if criterion is not None:
            return iterate(self, idx, rows, criterion)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return iterate(self, idx, rows, criterion)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(Engine, "_iterate", strict)
    synthesis.synthesize()
    assert set(synthesis.stop_reasons) <= {"threshold", "max_steps"}


def test_cuda_equals_cpu_to_float_tolerance():
    on_gpu = _run("cuda").synthesize()
    on_cpu = _run("cpu", sync_every=10).synthesize()
    assert on_gpu.sync_every == 10
    assert on_gpu.stop_reasons == on_cpu.stop_reasons
    assert on_gpu.steps.tolist() == on_cpu.steps.tolist()
    torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x, atol=1e-3, rtol=0)
    for i in range(on_cpu.n_items):
        np.testing.assert_allclose(on_gpu.losses(i), on_cpu.losses(i), rtol=1e-3)


def test_probed_batch_size_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path))
    model = make_tiny_model().to("cuda")
    [job] = parse_layer_jobs("relu2", 1)
    size = device_batch_size([model], job, SETTINGS, n_items=10_000)
    assert size >= CPU_BATCH
    assert (tmp_path / "batch_sizes.json").is_file()
    assert device_batch_size([model], job, SETTINGS, n_items=10_000) == size


def test_queue_on_cuda(tmp_path):
    from metamers.stimuli import resolve_stimuli

    model = make_tiny_model().to("cuda")
    stimuli = resolve_stimuli("bundled:photos").limit(6)
    results = generate_metamers(model, "relu2", stimuli, tmp_path, SETTINGS, batch_size=2)
    assert len(results) == 6
    work = results.work
    assert work["evaluations"] <= work["rows_evaluated"] <= work["slot_steps"]
