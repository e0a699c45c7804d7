"""The loop between host syncs: no host reads, stops and restarts as tensor operations."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from metamers.synthesis import MetamerSynthesis, get_preset
from metamers.synthesis.engine import MetamerSynthesis as Engine
from test_synthesis_golden import NaNOnCalls, _refs, _tiny, run_synthesis

HOST_READS = ("tolist", "item", "__bool__", "__int__", "__float__", "cpu", "numpy", "__index__")


@contextlib.contextmanager
def no_host_reads_in_iterate(monkeypatch):
    """Fail on any tensor-to-host read inside ``_iterate`` (criterion-free iterations)."""
    inside = {"now": False}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, _original=original, _name=name, **kwargs):
            if inside["now"]:
                raise AssertionError(f"host read Tensor.{_name} inside the loop")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    iterate = Engine._iterate

    def watched(self, idx, rows, criterion):
        inside["now"] = criterion is None
        try:
            return iterate(self, idx, rows, criterion)
        finally:
            inside["now"] = False

    monkeypatch.setattr(Engine, "_iterate", watched)
    yield


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "normalized_gradient", "lbfgs"])
def test_no_host_read_between_syncs(monkeypatch, optimizer):
    model = _tiny(NaNOnCalls({4, 5, 9}))
    settings = get_preset(
        "fast",
        optimizer=optimizer,
        max_steps=30,
        loss_threshold=0.3,
        schedule="plateau",
        stop_plateau_steps=20,
        init="noise",
    )
    synthesis = MetamerSynthesis(model, "relu2", _refs(), settings=settings, sync_every=8)
    synthesis.setup(seed=1)
    syncs = []
    sync = Engine._sync
    monkeypatch.setattr(Engine, "_sync", lambda self: syncs.append(1) or sync(self))
    with no_host_reads_in_iterate(monkeypatch):
        synthesis.synthesize()
    assert synthesis.failures.tolist()[0] >= 1  # a restart happened between syncs
    assert len(syncs) <= synthesis.iteration // 8 + 2
    assert all(r in {"threshold", "max_steps", "plateau"} for r in synthesis.stop_reasons)


@pytest.mark.parametrize("name", ["threshold", "plateau_stop", "nan_failed"])
def test_loss_stops_between_syncs_stop_at_the_same_step(name, tmp_path):
    per_step = run_synthesis(name, tmp_path)
    synced = run_synthesis(name, tmp_path, sync_every=50)
    assert synced.stop_reasons == per_step.stop_reasons
    assert synced.steps.tolist() == per_step.steps.tolist()
    assert synced.failures.tolist() == per_step.failures.tolist()
    first = int(np.argmin(per_step.steps.tolist()))  # the first to stop: nothing changed before
    np.testing.assert_array_equal(synced.losses(first), per_step.losses(first))
    for i in range(per_step.n_items):
        np.testing.assert_allclose(synced.losses(i), per_step.losses(i), rtol=1e-4)
        torch.testing.assert_close(synced.x[i], per_step.x[i], atol=1e-4, rtol=0)


def test_work_is_counted(tmp_path):
    synthesis = run_synthesis("threshold", tmp_path, sync_every=50)
    needed = sum(len(synthesis.losses(i)) for i in range(synthesis.n_items))
    assert synthesis.evaluations == needed  # no restarts in this case
    assert synthesis.rows_evaluated == 3 * synthesis.iteration  # stopped items rode along
    per_step = run_synthesis("threshold", tmp_path)
    assert per_step.rows_evaluated == per_step.evaluations == needed


def test_save_at_a_sync_and_resume_equals_uninterrupted(tmp_path):
    model, refs = _tiny(), _refs(4)
    settings = get_preset("fast", max_steps=40, init="noise", loss_threshold=0.3)
    whole = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=4)
    whole.setup(seed=5).synthesize()
    cut = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=4).setup(seed=5)
    cut.synthesize(max_steps=12)  # ends at a sync (budget)
    cut.save(tmp_path / "state.safetensors")
    resumed = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=4)
    resumed.load(tmp_path / "state.safetensors").synthesize()
    assert resumed.stop_reasons == whole.stop_reasons
    for i in range(4):
        np.testing.assert_array_equal(resumed.losses(i), whole.losses(i))
    torch.testing.assert_close(resumed.x, whole.x, atol=0, rtol=0)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_compiled_step_gives_the_same_results(optimizer):
    # the "eager" backend runs dynamo's tracing without code generation (fast on CPU);
    # inductor and CUDA graphs are measured by bench/gpu.py on a GPU. Traced Python
    # scalars may round differently: equal to float tolerance.
    model, refs = _tiny(), _refs()
    settings = get_preset(
        "fast", max_steps=8, init="noise", optimizer=optimizer, loss_threshold=0.6
    )
    eager = MetamerSynthesis(model, "relu2", refs, settings=settings, sync_every=4)
    eager.setup(seed=1).synthesize()
    compiled = MetamerSynthesis(
        model, "relu2", refs, settings=settings, sync_every=4, compile="eager"
    )
    compiled.setup(seed=1).synthesize()
    assert compiled.stop_reasons == eager.stop_reasons
    assert compiled.steps.tolist() == eager.steps.tolist()
    torch.testing.assert_close(compiled.x, eager.x, atol=1e-5, rtol=0)
    np.testing.assert_allclose(compiled.losses(0), eager.losses(0), rtol=1e-5)
