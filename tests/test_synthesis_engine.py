"""The batched synthesis object on tiny models: convergence, equivalences, recovery, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from metamers.errors import ConfigError, LayerError, ModelError
from metamers.models import PixelModel
from metamers.synthesis import MetamerSynthesis, get_preset
from metamers.synthesis.objectives import cosine, mse, normalized_l2
from metamers.synthesis.settings import FEATHER2023


def tiny_model(size: int = 16, seed: int = 0, input_range=(0.0, 1.0), extra=None) -> PixelModel:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)]
    layers += [nn.ReLU()] + ([extra] if extra is not None else [nn.Identity()])
    layers += [nn.Flatten(), nn.LazyLinear(10)]
    net = nn.Sequential(*layers)
    net(torch.zeros(1, 3, size, size))
    return PixelModel(net, name=f"tiny{size}", input_shape=(3, size, size), input_range=input_range)


@pytest.fixture(scope="module")
def model() -> PixelModel:
    return tiny_model()


@pytest.fixture(scope="module")
def refs() -> torch.Tensor:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def run(model, layer, refs, steps=60, seed=0, item_seeds=None, **overrides) -> MetamerSynthesis:
    settings = get_preset("fast", max_steps=steps, **({"init": "noise"} | overrides))
    synthesis = MetamerSynthesis(model, layer, refs, settings=settings)
    return synthesis.setup(seed=seed, item_seeds=item_seeds).synthesize()


# L-BFGS without a line search needs a smooth problem (mse with the range
# penalty; on normalized_l2 under clamping it converges, then may wander off
# again, as torch.optim.LBFGS without line search does). Even there, once it has
# converged, float32 gradients are mostly rounding noise and one step can throw
# an item off again (on an AVX2 CPU with 2 threads, item 1 rose 200x at step
# 199 of 200); whether that happens by a given step depends on the last bits of
# the kernels. So for L-BFGS the test asserts the lowest loss reached, which
# falls >= 100x for every item of 6 seeds on 1 or 2 threads; the others must
# end low.
SMOOTH = {"objective": "mse", "range_mode": "penalty"}


@pytest.mark.parametrize(
    ("optimizer", "lr", "schedule", "extra"),
    [
        ("adam", 0.02, "cosine", {}),
        ("sgd", 0.5, "cosine", {}),
        ("lbfgs", 1.0, "constant", SMOOTH),
        ("normalized_gradient", 1.0, "halving", {}),
        ("adam", 0.02, "plateau", {}),
    ],
)
def test_loss_falls_by_orders_of_magnitude(model, refs, optimizer, lr, schedule, extra):
    synthesis = run(
        model,
        "3",
        refs,
        steps=200,
        optimizer=optimizer,
        lr=lr,
        schedule=schedule,
        halving_every=40,
        **extra,
    )
    for i in range(3):
        losses = synthesis.losses(i)
        reached = losses.min() if optimizer == "lbfgs" else losses[-1]
        assert reached < losses[0] / 30, (optimizer, losses[0], reached)
    assert torch.all((synthesis.metamers >= 0) & (synthesis.metamers <= 1))
    assert synthesis.stop_reasons == ["max_steps"] * 3


def test_batched_equals_one_at_a_time(model, refs):
    seeds = [11, 22, 33]
    batched = run(model, "3", refs, steps=40, item_seeds=seeds)
    for i in range(3):
        single = run(model, "3", refs[i : i + 1], steps=40, item_seeds=[seeds[i]])
        torch.testing.assert_close(single.metamers[0], batched.metamers[i], atol=1e-4, rtol=0)
        assert single.losses(0) == pytest.approx(batched.losses(i), rel=1e-3, abs=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "adam", "schedule": "plateau", "plateau_patience": 3},
        {"optimizer": "lbfgs", "lr": 1.0, "schedule": "constant"},
        {"optimizer": "sgd", "lr": 0.5, "schedule": "cosine"},
    ],
)
def test_resume_equals_uninterrupted(model, refs, tmp_path, overrides):
    settings = get_preset("fast", max_steps=30, init="noise", **overrides)
    whole = MetamerSynthesis(model, "3", refs, settings=settings).setup(seed=5).synthesize()
    part = MetamerSynthesis(model, "3", refs, settings=settings).setup(seed=5)
    part.synthesize(max_steps=12)
    part.save(tmp_path / "state.safetensors")
    resumed = MetamerSynthesis(model, "3", refs, settings=settings)
    resumed.load(tmp_path / "state.safetensors").synthesize()
    torch.testing.assert_close(resumed.metamers, whole.metamers, atol=0, rtol=0)
    assert [resumed.losses(i).tolist() for i in range(3)] == [
        whole.losses(i).tolist() for i in range(3)
    ]


def test_calling_synthesize_again_continues(model, refs):
    whole = run(model, "3", refs, steps=20)
    parts = MetamerSynthesis(
        model, "3", refs, settings=get_preset("fast", max_steps=20, init="noise")
    ).setup()
    parts.synthesize(max_steps=7)
    assert parts.steps.tolist() == [7, 7, 7]
    parts.synthesize()
    torch.testing.assert_close(parts.metamers, whole.metamers, atol=0, rtol=0)


def test_load_refuses_other_weights(model, refs, tmp_path):
    synthesis = run(model, "3", refs, steps=2)
    synthesis.save(tmp_path / "s.safetensors")
    other = tiny_model(seed=9)
    fresh = MetamerSynthesis(other, "3", refs, settings=synthesis.settings)
    with pytest.raises(ModelError, match="fingerprint"):
        fresh.load(tmp_path / "s.safetensors")


def test_truncated_forward_matches_full_forward(model, refs):
    truncated = model.activations(refs, ["3"])["3"]
    full = model.activations(refs, ["3", "logits"])["3"]
    torch.testing.assert_close(truncated, full, atol=0, rtol=0)


def test_feather2023_preset_and_step_rule():
    assert (FEATHER2023.lr, FEATHER2023.halving_every, FEATHER2023.max_steps) == (1.0, 3000, 24000)
    assert (FEATHER2023.optimizer, FEATHER2023.objective) == (
        "normalized_gradient",
        "normalized_l2",
    )
    wide = tiny_model(input_range=(-1e4, 1e4))  # clamping never bites: pure step rule
    refs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    settings = FEATHER2023.model_copy(update={"halving_every": 3, "max_steps": 9})
    synthesis = MetamerSynthesis(wide, "3", refs, settings=settings).setup(seed=0)
    start = synthesis.x.clone()
    assert start.mean().item() == pytest.approx(0.5, abs=0.005)
    assert start.std().item() == pytest.approx(0.05, abs=0.005)
    snapshots = [start]
    synthesis.synthesize(callback=lambda s: snapshots.append(s.x.clone()))
    for t in range(9):
        norms = (snapshots[t + 1] - snapshots[t]).flatten(1).norm(dim=1)
        expected = 1.0 * 0.5 ** (t // 3)
        torch.testing.assert_close(norms, torch.full((2,), expected), atol=1e-4, rtol=1e-4)


def test_feather2023_clamps_to_range(model, refs):
    settings = FEATHER2023.model_copy(update={"halving_every": 5, "max_steps": 10})
    synthesis = MetamerSynthesis(model, "3", refs, settings=settings).setup()
    synthesis.synthesize()
    assert synthesis.x.min() >= 0 and synthesis.x.max() <= 1


class NaNOnCalls(nn.Module):
    """Puts NaN into item 0's output on the listed forward calls (or, with ``None``,
    whenever the whole 3-item batch is present after the target pass)."""

    def __init__(self, calls: set[int] | None) -> None:
        super().__init__()
        self.calls, self.count = calls, 0

    def forward(self, x):
        self.count += 1
        always = self.calls is None and self.count > 1 and x.shape[0] == 3
        if always or (self.calls is not None and self.count in self.calls):
            x = x.clone()
            x[0] = math.nan
        return x


def test_nan_restarts_item_from_last_good_state_with_half_step(refs):
    flaky = tiny_model(extra=NaNOnCalls({4, 5}))  # call 1 computes the targets
    clean = tiny_model()
    flaky_run = run(flaky, "5", refs, steps=80)
    clean_run = run(clean, "5", refs, steps=80)
    assert flaky_run.failures.tolist() == [2, 0, 0]
    assert flaky_run.lr_scale.tolist() == [0.25, 1.0, 1.0]
    assert flaky_run.status_of(0) == "done"
    losses = flaky_run.losses(0)
    assert len(losses) == 81 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] / 2
    torch.testing.assert_close(flaky_run.metamers[1:], clean_run.metamers[1:], atol=1e-5, rtol=0)


def test_persistent_nan_marks_item_failed(refs):
    broken = tiny_model(extra=NaNOnCalls(None))
    synthesis = run(broken, "5", refs, steps=20, max_failures=3)
    assert synthesis.status_of(0) == "failed"
    assert synthesis.stop_reasons[0] == "non-finite"
    assert synthesis.failures[0].item() == 4
    assert [synthesis.status_of(i) for i in (1, 2)] == ["done", "done"]


def test_stop_criterion_stops_chosen_items(model, refs):
    calls = []

    def criterion(synthesis, stimuli, indices):
        calls.append((tuple(stimuli.shape), indices.tolist()))
        assert synthesis.references.shape[0] == 3
        return indices == 1

    settings = get_preset("fast", max_steps=50, stop_check_every=10, init="noise")
    synthesis = MetamerSynthesis(model, "3", refs, settings=settings).setup()
    synthesis.synthesize(stop_criterion=criterion)
    assert calls[0] == ((3, 3, 16, 16), [0, 1, 2])
    assert calls[1] == ((2, 3, 16, 16), [0, 2])
    assert synthesis.stop_reasons == ["max_steps", "criterion", "max_steps"]
    assert synthesis.steps.tolist() == [50, 10, 50]


def test_threshold_and_plateau_stops(model, refs):
    by_threshold = run(model, "3", refs, steps=500, loss_threshold=0.05)
    assert set(by_threshold.stop_reasons) == {"threshold"}
    assert all(by_threshold.losses(i)[-1] <= 0.05 for i in range(3))
    by_plateau = run(model, "3", refs, steps=2000, lr=1e-7, stop_plateau_steps=15)
    assert set(by_plateau.stop_reasons) == {"plateau"}
    assert by_plateau.steps.max() < 100


def test_ensemble_with_different_input_sizes(refs):
    small, large = tiny_model(16, seed=0), tiny_model(24, seed=1)
    refs_large = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    per_model = [refs_large[:, :, ::2, ::2][:, :, :16, :16].contiguous(), refs_large]
    settings = get_preset("fast", max_steps=150, init="noise")
    synthesis = MetamerSynthesis([small, large], ["3", "1"], per_model, settings=settings)
    assert synthesis.shape == (3, 24, 24)
    torch.testing.assert_close(synthesis.references, refs_large)
    synthesis.setup().synthesize()
    for i in range(2):
        assert synthesis.losses(i)[-1] < synthesis.losses(i)[0] / 3
    assert synthesis.fake_relu == [["3"], ["1"]]


def test_ensemble_reference_sizes_resized_when_needed():
    small, large = tiny_model(16), tiny_model(24, seed=1)
    refs_wrong = [torch.rand(2, 3, 20, 20), torch.rand(2, 3, 24, 24)]
    synthesis = MetamerSynthesis([small, large], "3", refs_wrong)
    assert synthesis.targets(0)["tiny16"]["3"].shape == (8, 8, 8)
    with pytest.raises(ConfigError, match="same number of items"):
        MetamerSynthesis([small, large], "3", [torch.rand(2, 3, 16, 16), torch.rand(3, 3, 24, 24)])
    with pytest.raises(ConfigError, match="shape"):
        MetamerSynthesis([small, large], "3", [torch.rand(2, 1, 16, 16), torch.rand(2, 3, 24, 24)])


def test_bad_inputs_have_clear_errors(model, refs):
    with pytest.raises(LayerError, match="did you mean"):
        MetamerSynthesis(model, "33", refs)
    with pytest.raises(ConfigError, match="no references"):
        MetamerSynthesis(model, "3", refs[:0])
    with pytest.raises(ConfigError, match="shape"):
        MetamerSynthesis(model, "3", torch.rand(2, 3, 8, 8))
    synthesis = MetamerSynthesis(model, "3", refs)
    with pytest.raises(ConfigError, match="setup"):
        synthesis.synthesize()
    bad_start = torch.full_like(refs, math.nan)
    with pytest.raises(ConfigError, match="non-finite"):
        synthesis.setup(init=bad_start)
    with pytest.raises(LayerError, match="ReLU-like"):
        MetamerSynthesis(model, "2", refs, settings=get_preset("fast", fake_relu="on"))
    with pytest.raises(ConfigError, match="invalid synthesis setting"):
        get_preset("fast", lr=-1.0)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("slow")


def test_objectives_per_item():
    a = torch.randn(4, 5, 6)
    assert normalized_l2(a, a).abs().max() < 1e-6
    assert normalized_l2(2 * a, a) == pytest.approx(torch.ones(4))
    assert mse(a + 1, a) == pytest.approx(torch.ones(4))
    assert cosine(3 * a, a).abs().max() < 1e-6
    assert normalized_l2(a, a).shape == (4,)


@pytest.mark.parametrize(
    "init", ["noise", "uniform", "constant", "pink", "reference_noise", "blur", "downsample"]
)
def test_starting_points_are_in_range_and_seeded(model, refs, init):
    def start(seeds):
        synthesis = MetamerSynthesis(model, "3", refs, settings=get_preset("fast", init=init))
        return synthesis.setup(item_seeds=seeds).x

    first, again = start([1, 2, 3]), start([1, 2, 3])
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert first.min() >= 0 and first.max() <= 1 and first.shape == refs.shape
    if init in ("noise", "uniform", "pink", "reference_noise"):
        assert not torch.equal(first, start([4, 5, 6]))


def test_reference_noise_snr_and_blur_closeness(model, refs):
    def start(**overrides):
        synthesis = MetamerSynthesis(model, "3", refs, settings=get_preset("fast", **overrides))
        return synthesis.setup().x

    noisy = start(init="reference_noise", init_snr_db=40.0)
    assert (noisy - refs).abs().mean() < 0.01
    blurred = start(init="blur", init_sigma=1.0)
    high_freq = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert high_freq(blurred) < high_freq(refs) / 2


@pytest.mark.parametrize("name", ["adam", "sgd", "lbfgs", "normalized_gradient"])
def test_in_place_all_items_step_equals_gathered_step(name):
    from metamers.synthesis.optimizers import make_optimizer

    settings = get_preset("fast", optimizer=name)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=gen)
    grads = [torch.randn(3, 3, 8, 8, generator=gen) for _ in range(3)]
    lr = torch.tensor([0.1, 0.05, 0.02])
    in_place, gathered = make_optimizer(settings), make_optimizer(settings)
    in_place.init_state(x)
    gathered.init_state(x)
    a, b, every = x.clone(), x.clone(), torch.arange(3)
    for g in grads:
        a = in_place.step(None, a, g.clone(), lr)
        b = gathered.step(every, b, g.clone(), lr)
    torch.testing.assert_close(a, b)
    for key in in_place.state:
        torch.testing.assert_close(in_place.state[key], gathered.state[key])
