"""Continuous batching in generate_metamers: a queue of items feeds a fixed-capacity batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers, get_preset, item_seed, load_results
from metamers.synthesis.batching import CPU_BATCH, choose_batch_size, device_batch_size
from metamers.synthesis.jobs import parse_layer_jobs
from test_synthesis_driver import tiny_model

# items stop at different steps (threshold), so slots free up at different times
SETTINGS = get_preset("fast", max_steps=60, loss_threshold=0.08, checkpoint_every=4, init="noise")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i in range(6):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return resolve_stimuli(str(folder))


def by_id(results):
    return {r.stimulus_id: r for r in results}


@pytest.fixture(scope="module")
def alone(model, stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("alone")
    return by_id(generate_metamers(model, "3", stimuli, out, SETTINGS, batch_size=1))


def test_queue_refills_slots_and_equals_each_item_alone(model, stimuli, alone, tmp_path):
    queued = generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, batch_size=2)
    steps = {r.stimulus_id: r.settings["steps"] for r in queued}
    assert len(set(steps.values())) > 1  # items really finish at different steps
    for stimulus_id, result in by_id(queued).items():
        other = alone[stimulus_id]
        assert result.settings["steps"] == other.settings["steps"]
        assert result.settings["stop_reason"] == other.settings["stop_reason"]
        assert result.settings["seed"] == item_seed(0, stimulus_id)
        torch.testing.assert_close(result.metamer, other.metamer, atol=1e-4, rtol=0)
        np.testing.assert_allclose(result.losses, other.losses, rtol=1e-4)
    work = queued.work
    assert work["evaluations"] == sum(len(r.losses) for r in queued)
    assert work["rows_evaluated"] == work["evaluations"]  # CPU: stopped items leave at once
    # a refilled batch of 2 runs about half the iterations of one item after another
    assert work["slot_steps"] <= 1.1 * work["evaluations"]


@pytest.mark.parametrize("sync_every", [None, 4])
def test_resume_mid_queue_equals_uninterrupted(model, stimuli, tmp_path, sync_every):
    kw = {"batch_size": 2, "sync_every": sync_every}
    whole_run = generate_metamers(model, "3", stimuli, tmp_path / "whole", SETTINGS, **kw)
    whole = by_id(whole_run)
    calls = {"n": 0}

    def interrupt(_event):
        calls["n"] += 1
        if calls["n"] == 70:  # after several items finished and others took their slots
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_metamers(model, "3", stimuli, tmp_path / "cut", SETTINGS, progress=interrupt, **kw)
    assert 0 < len(load_results(tmp_path / "cut")) < 6
    assert list((tmp_path / "cut" / ".checkpoints").rglob("queue.safetensors"))
    resumed = generate_metamers(model, "3", stimuli, tmp_path / "cut", SETTINGS, **kw)
    assert by_id(resumed).keys() == whole.keys()
    for stimulus_id, result in whole.items():
        other = by_id(resumed)[stimulus_id]
        torch.testing.assert_close(other.metamer, result.metamer, atol=0, rtol=0)
        np.testing.assert_array_equal(other.losses, result.losses)
    assert not list((tmp_path / "cut" / ".checkpoints").rglob("*.safetensors"))
    # the resumed run counts only its own work
    assert 0 < resumed.work["slot_steps"] < whole_run.work["slot_steps"]
    assert 0 < resumed.work["evaluations"] < whole_run.work["evaluations"]


def test_sync_every_k_keeps_per_item_results(model, stimuli, alone, tmp_path):
    queued = generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, batch_size=3, sync_every=8)
    for stimulus_id, result in by_id(queued).items():
        other = alone[stimulus_id]
        assert result.settings["steps"] == other.settings["steps"]
        torch.testing.assert_close(result.metamer, other.metamer, atol=1e-4, rtol=0)
    work = queued.work
    # items that stop on the threshold between syncs ride along until the next sync
    assert work["evaluations"] <= work["rows_evaluated"] <= work["evaluations"] + 6 * 7


def test_batch_size_for_the_device(model):
    [job] = parse_layer_jobs("3", 1)
    assert device_batch_size([model], job, SETTINGS, 100) == CPU_BATCH


def test_choose_batch_size_extrapolates_and_confirms():
    gib = 2**30
    calls = []

    def peak(n):  # 1 GiB fixed + 0.1 GiB per item; out of memory above 40 GiB
        calls.append(n)
        used = gib + n * gib // 10
        return None if used > 40 * gib else used

    size = choose_batch_size(peak, free_bytes=40 * gib)
    assert size % 8 == 0 and gib + size * gib / 10 <= 0.85 * 40 * gib
    assert size + 8 > (0.85 * 40 - 1) * 10  # the largest multiple of 8 that fits
    assert calls[:2] == [2, 8] and calls[-1] == size
    assert choose_batch_size(peak, free_bytes=40 * gib, limit=64) == 64
    # a probe that runs out of memory at the guess halves until it fits
    assert choose_batch_size(lambda n: None if n > 16 else n, free_bytes=10**6) == 16
    assert choose_batch_size(lambda n: None, free_bytes=10**6) == 1


def test_admit_errors(model):
    from metamers.errors import ConfigError
    from metamers.synthesis import MetamerSynthesis

    refs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    synthesis = MetamerSynthesis(model, "3", refs, settings=SETTINGS)
    with pytest.raises(ConfigError, match="setup"):
        synthesis.admit([0], refs[:1], ["new"], [1])
    synthesis.setup(seed=0)
    with pytest.raises(ConfigError, match="stopped"):
        synthesis.admit([0], refs[:1], ["new"], [1])  # item 0 is still active
    synthesis.retire([0])
    with pytest.raises(ConfigError, match="unique"):
        synthesis.admit([0], refs[:1], ["1"], [1])  # the id of the item in slot 1
    synthesis.admit([0], refs[1:], ["new"], [7])
    assert synthesis.item_ids == ["new", "1"] and synthesis.seeds[0] == 7
    assert synthesis.status_of(0) == "active" and synthesis.stop_reasons[0] is None
