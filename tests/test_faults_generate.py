"""Fault injection for `generate` (issue 14): damaged files and a concurrent run on one folder.

After each fault a re-run finishes with every result present, each one read back
digest-checked (``load_results`` checks every ``metamer.safetensors`` against the
SHA-256 in its record) and equal to an undisturbed run, and nothing that had
finished is computed again (its ``record.json`` is not rewritten).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from metamers.errors import MetamersError
from metamers.models import PixelModel
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import generate_metamers, get_preset, load_results

SETTINGS = get_preset("fast", max_steps=40, checkpoint_every=5, init="noise")
MODEL_CODE = """
import torch
from torch import nn
from metamers.models import PixelModel


def tiny_model():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 8**2, 10),
    )
    return PixelModel(net, name="tiny16", input_shape=(3, 16, 16))
"""


def tiny_model() -> PixelModel:
    namespace = {"torch": torch, "nn": nn, "PixelModel": PixelModel}
    exec(MODEL_CODE, namespace)
    return namespace["tiny_model"]()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png"
        )
    return resolve_stimuli(str(folder))


@pytest.fixture(scope="module")
def undisturbed(model, stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("undisturbed")
    return {r.stimulus_id: r for r in generate_metamers(model, "3", stimuli, out, SETTINGS)}


def finished_records(out):
    return {p: p.stat().st_mtime_ns for p in out.rglob("record.json")}


def check_complete(out, undisturbed, kept: dict, remade: set[str] = frozenset()):
    """Every result present, digest-checked, equal to the undisturbed run; ``kept`` untouched."""
    results = {r.stimulus_id: r for r in load_results(out)}  # raises on a digest mismatch
    assert sorted(results) == sorted(undisturbed)
    for sid, result in results.items():
        if sid in remade:  # made again in a smaller batch: equal to float tolerance
            torch.testing.assert_close(result.metamer, undisturbed[sid].metamer)
            continue
        torch.testing.assert_close(result.metamer, undisturbed[sid].metamer, atol=0, rtol=0)
        np.testing.assert_array_equal(result.losses, undisturbed[sid].losses)
    for path, mtime in kept.items():
        if path.parent.name not in remade:
            assert path.stat().st_mtime_ns == mtime, f"{path} was computed again"


def test_truncated_checkpoint(model, stimuli, undisturbed, tmp_path):
    calls = {"n": 0}

    def interrupt(_event):  # mid-way through the second batch: two metamers finished
        calls["n"] += 1
        if calls["n"] == 60:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, batch_size=2, progress=interrupt)
    kept = finished_records(tmp_path)
    assert len(kept) == 2
    [checkpoint] = (tmp_path / ".checkpoints").rglob("*.safetensors")
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.warns(UserWarning, match="cannot be read"):
        generate_metamers(model, "3", stimuli, tmp_path, SETTINGS, batch_size=2)
    check_complete(tmp_path, undisturbed, kept, remade={"img2", "img3"})  # restarted
    assert not list((tmp_path / ".checkpoints").rglob("*.safetensors"))


def test_truncated_result(model, stimuli, undisturbed, tmp_path):
    generate_metamers(model, "3", stimuli, tmp_path, SETTINGS)
    kept = finished_records(tmp_path)
    damaged = next(p for p in kept if p.parent.name == "img2").parent / "metamer.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:50])
    with pytest.warns(UserWarning, match="damaged"):
        generate_metamers(model, "3", stimuli, tmp_path, SETTINGS)
    check_complete(tmp_path, undisturbed, kept, remade={"img2"})


def test_concurrent_second_generate(model, stimuli, undisturbed, tmp_path):
    started = tmp_path / "started"
    out = tmp_path / "out"
    script = MODEL_CODE + textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from metamers.stimuli import resolve_stimuli
        from metamers.synthesis import generate_metamers, get_preset

        torch.set_num_threads({torch.get_num_threads()})

        def slowly(event):
            Path({str(started)!r}).touch()
            time.sleep(0.01)

        settings = get_preset("fast", max_steps=40, checkpoint_every=5, init="noise")
        stimuli = resolve_stimuli({stimuli.spec!r})
        generate_metamers(tiny_model(), "3", stimuli, {str(out)!r}, settings, progress=slowly)
        """
    )
    first = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.05)
        other = get_preset("fast", max_steps=60, checkpoint_every=5, init="noise")
        with pytest.raises(MetamersError, match="another `metamers generate` is writing"):
            generate_metamers(model, "3", stimuli, out, other)
    finally:
        _, errors = first.communicate(timeout=300)
    assert first.returncode == 0, errors
    kept = finished_records(out)
    assert len(kept) == 4
    assert len(generate_metamers(model, "3", stimuli, out, SETTINGS)) == 4
    results = {r.stimulus_id: r for r in load_results(out)}
    for sid, result in results.items():  # another process: equal to float tolerance
        torch.testing.assert_close(result.metamer, undisturbed[sid].metamer)
        assert result.settings["settings"]["max_steps"] == 40
    assert finished_records(out) == kept


KILL_SETTINGS = get_preset("fast", max_steps=1000, checkpoint_every=25, init="noise")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kill9_during_generate_at_a_seeded_random_moment(model, stimuli, tmp_path, seed):
    """kill -9 while `generate` runs (seeded moment), then re-run: complete, equal, no redo."""
    reference = {
        r.stimulus_id: r
        for r in generate_metamers(
            model, "3", stimuli, tmp_path / "undisturbed", KILL_SETTINGS, batch_size=2
        )
    }
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(
        MODEL_CODE
        + textwrap.dedent(
            f"""
            from metamers.stimuli import resolve_stimuli
            from metamers.synthesis import generate_metamers, get_preset

            torch.set_num_threads({torch.get_num_threads()})
            settings = get_preset("fast", max_steps=1000, checkpoint_every=25, init="noise")
            stimuli = resolve_stimuli({stimuli.spec!r})
            generate_metamers(tiny_model(), "3", stimuli, {str(out)!r}, settings, batch_size=2)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and not _checkpoints(out):
            time.sleep(0.01)
        time.sleep(random.Random(seed).uniform(0.0, 1.0))  # from the first checkpoint on
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, "the run ended before the kill"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    kept = finished_records(out)

    generate_metamers(model, "3", stimuli, out, KILL_SETTINGS, batch_size=2)

    check_complete(out, reference, kept)


def _checkpoints(out) -> list:
    return list(out.glob("**/.checkpoints/*")) if out.exists() else []
