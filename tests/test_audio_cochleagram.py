"""Tests of the differentiable cochleagram (``metamers.audio``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metamers.audio import Cochleagram, CochleagramSettings
from metamers.audio.cochleagram import _Compression

# Input and published output of chcochleagram's ``cochleagram_1`` example (MIT licence), copied
# from the project's shared fixtures (../shared/fixtures/cochleagram_1_reference.npz).
FIXTURE = Path(__file__).parent / "data" / "cochleagram_1_reference.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_published_cochleagram_1(reference: dict[str, np.ndarray], dtype) -> None:
    coch = Cochleagram.feather2023()
    out = coch(torch.tensor(reference["input_sound"], dtype=dtype)[None])
    assert out.shape == (1, 1, 211, 390)
    assert out.dtype == dtype
    expected = reference["output_coch"]
    assert np.abs(out[0, 0].numpy() - expected).max() <= 1e-4


def test_shapes_batch_channel_and_1d() -> None:
    coch = Cochleagram.feather2023()
    x = torch.randn(3, 40000) * 0.1
    batch = coch(x)
    assert batch.shape == (3, 1, 211, 390)
    torch.testing.assert_close(coch(x[:, None]), batch)
    torch.testing.assert_close(coch(x[1]), batch[1:2])
    assert coch.center_frequencies(40000).shape == (211,)
    assert coch.frame_times(40000).shape == (390,)


def test_axes_and_other_lengths() -> None:
    coch = Cochleagram.feather2023()
    cf = coch.center_frequencies(40000)
    assert np.all(np.diff(cf) > 0)
    assert cf[4] == pytest.approx(54.97, abs=0.01)
    assert cf[-5] == pytest.approx(9820.96, abs=0.01)
    times = coch.frame_times(40000)
    assert np.allclose(np.diff(times), 0.005)
    # Not frozen to one length: an odd length and 7 s work; filters cached per length.
    assert coch(torch.zeros(1, 20001)).shape[-1] == coch.n_frames(20001)
    assert coch(torch.zeros(1, 140000)).shape == (1, 1, 211, 1390)
    assert len(coch._cache) == 2


def test_unit_sine_at_centre_gives_quarter() -> None:
    # The documented amplitude convention: half the analytic envelope x filter gain 1/2.
    coch = Cochleagram.feather2023(compression_power=1.0, compression_offset=0.0)
    cf = coch.center_frequencies(40000)[100]
    t = torch.arange(40000, dtype=torch.float64) / 20000
    # Put the sine exactly on an FFT bin near the filter's centre.
    freq = round(cf * 2) / 2
    out = coch(torch.sin(2 * np.pi * freq * t))[0, 0, 100]
    assert out[10:-10].mean().item() == pytest.approx(0.25, rel=1e-2)


def test_feather2019_preset() -> None:
    coch = Cochleagram.feather2019()
    assert coch.settings.power_grad_clip == 1.0
    assert coch(torch.zeros(2, 40000)).shape == (2, 1, 211, 400)
    assert coch.center_frequencies(40000)[4] > 20


def _small(**overrides) -> Cochleagram:
    settings = {
        "sample_rate": 2000,
        "low_hz": 50.0,
        "high_hz": 800.0,
        "n": 4,
        "sample_factor": 2,
        "env_sr": 100,
        "kernel_length": 41,
    }
    settings.update(overrides)
    return Cochleagram(CochleagramSettings(**settings))


def test_gradcheck_small_float64() -> None:
    # gradcheck compares the backward with finite differences, so the backward must be the true
    # derivative: the published conventions (identity ReLU backward, power gradient clipped to
    # +/-5) deliberately are not, so they are switched off here. The input is loud enough that
    # envelopes stay far from the 1e-16 floor of the magnitude and from zero.
    coch = _small(relu_backward="relu", power_grad_clip=None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2000, generator=gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(coch, (x,), fast_mode=True)


def test_gradcheck_published_conventions_away_from_clip() -> None:
    # With a loud input every pre-compression value is positive and above the clip region
    # (x > ~0.018 for the +/-5 clip), where the published backward equals the true derivative.
    coch = _small()
    gen = torch.Generator().manual_seed(1)
    x = (10 * torch.randn(1, 2000, generator=gen, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(coch, (x,), fast_mode=True)


def test_gradient_conventions_change_backward_only() -> None:
    x = torch.tensor([-0.5, 1e-3, 1.0], dtype=torch.float64)
    grads = {}
    for name, identity, clip in [
        ("published", True, 5.0),
        ("relu", False, 5.0),
        ("noclip", True, None),
    ]:
        xi = x.clone().requires_grad_(True)
        y = _Compression.apply(xi, 0.3, 1e-8, identity, clip)
        y.sum().backward()
        grads[name] = xi.grad
        torch.testing.assert_close(y.detach(), (x.clamp_min(0) + 1e-8) ** 0.3)
    # Identity backward: a negative value still passes (clipped) gradient; true ReLU: zero.
    assert grads["published"][0].item() == pytest.approx(5.0)
    assert grads["relu"][0].item() == 0.0
    # The clip engages below ~0.018 and is inactive above it.
    assert grads["published"][1].item() == pytest.approx(5.0)
    assert grads["noclip"][1].item() == pytest.approx(0.3 * (1e-3 + 1e-8) ** -0.7)
    assert grads["published"][2].item() == pytest.approx(0.3)


def test_settings_switch_backward_of_module() -> None:
    # A near-silent input sits in the clip region: the forward is the same, the gradient not.
    x = 1e-6 * torch.randn(1, 2000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    outs, grads = [], []
    for clip in (5.0, None):
        xi = x.clone().requires_grad_(True)
        out = _small(power_grad_clip=clip)(xi)
        out.sum().backward()
        outs.append(out.detach())
        grads.append(xi.grad)
    torch.testing.assert_close(outs[0], outs[1])
    assert grads[1].abs().max() > 10 * grads[0].abs().max()


def test_settings_validation_and_record() -> None:
    with pytest.raises(ValueError, match="relu_backward"):
        CochleagramSettings(relu_backward="leaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple"):
        CochleagramSettings(env_sr=300)
    record = Cochleagram.feather2023().settings.to_dict()
    assert record["relu_backward"] == "identity"
    assert record["power_grad_clip"] == 5.0
    with pytest.raises(ValueError, match="shape"):
        Cochleagram.feather2023()(torch.zeros(2, 2, 40000))


def test_filters_first_built_under_inference_mode_serve_autograd_later():
    from metamers.audio import LogMelSpectrogram

    for front in (Cochleagram.feather2023(sample_factor=1, env_sr=100, kernel_length=2001),
                  LogMelSpectrogram.standard()):  # fmt: skip
        with torch.inference_mode():
            front(torch.zeros(1, 4000))
        x = torch.randn(1, 4000, requires_grad=True)
        front(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
