"""Synthesis settings at the boundary: each optimiser's own default step size (issue 15) and
finite, in-range numbers (issue 14, case 6)."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from metamers.cli.app import main
from metamers.errors import ConfigError
from metamers.models import load_model
from metamers.stimuli import resolve_stimuli
from metamers.studies import parse_study
from metamers.synthesis import MetamerSynthesis, get_preset, with_overrides
from metamers.synthesis.settings import FAST, FEATHER2023, OPTIMIZER_LR, SynthesisSettings

OPTIMIZERS = ["adam", "sgd", "normalized_gradient", "lbfgs"]


# ---------------------------------------------------------------- step sizes per optimiser


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_switching_the_optimiser_brings_its_own_step_size(name):
    assert set(OPTIMIZER_LR) == set(OPTIMIZERS)
    settings = get_preset("fast", optimizer=name)
    assert settings.optimizer == name and settings.lr == OPTIMIZER_LR[name]
    assert get_preset("fast", optimizer=name, lr=0.123).lr == 0.123  # an explicit lr wins
    other = get_preset("feather2023", optimizer=name)
    assert other.lr == (FEATHER2023.lr if name == FEATHER2023.optimizer else OPTIMIZER_LR[name])


def test_presets_keep_their_own_step_sizes():
    assert get_preset("fast").lr == FAST.lr == OPTIMIZER_LR["adam"] == 0.03
    assert get_preset("feather2023").lr == 1.0  # published, not the default of the optimiser
    assert get_preset("feather2023", optimizer="normalized_gradient").lr == 1.0
    assert get_preset("fast", max_steps=10).lr == FAST.lr
    # changing other settings of a changed optimiser keeps its step size
    sgd = get_preset("fast", optimizer="sgd", lr=0.5)
    assert with_overrides(sgd, max_steps=5).lr == 0.5
    assert with_overrides(sgd, optimizer="sgd").lr == 0.5
    assert with_overrides(sgd, optimizer="adam").lr == OPTIMIZER_LR["adam"]


@pytest.fixture(scope="module")
def digits():
    """A trained MNIST CNN at a middle layer and four digits."""
    model = load_model("mnist_cnn_s0")
    stimuli = resolve_stimuli("bundled:mnist").limit(4)
    return model, torch.stack([stimuli.load(s, model.input_shape) for s in stimuli])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimisers_default_makes_real_progress(digits, name):
    # At its default step size every optimiser takes each item's loss down >= 10x in
    # 200 fast-schedule steps (measured: 18-2e6x per item at relu2, docs/synthesis.md);
    # at Adam's 0.03 SGD, the normalised gradient and L-BFGS fell only 1.2-10x.
    model, refs = digits
    settings = get_preset("fast", optimizer=name, max_steps=200)
    synthesis = MetamerSynthesis(model, "relu2", refs, settings=settings)
    synthesis.setup(seed=0).synthesize()
    for i in range(len(refs)):
        losses = synthesis.losses(i)
        assert losses[-1] < losses[0] / 10, (name, settings.lr, losses[0], losses[-1])


# ---------------------------------------------------------------- finite, in-range numbers


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("lr", math.inf, "lr: Input should be a finite number (got inf)"),
        ("lr", math.nan, "lr: Input should be a finite number (got nan)"),
        ("lr", -0.1, "lr: Input should be greater than 0 (got -0.1)"),
        ("max_steps", -5, "max_steps: Input should be greater than or equal to 0 (got -5)"),
        ("momentum", math.nan, "momentum: Input should be a finite number"),
        ("betas", (0.9, math.inf), "betas.1: Input should be a finite number"),
        ("betas", (1.5, 0.9), "betas.0: Input should be less than 1"),
        ("lr_min_factor", 2.0, "lr_min_factor: Input should be less than or equal to 1"),
        ("init_mean", -math.inf, "init_mean: Input should be a finite number"),
        ("init_std", -0.1, "init_std: Input should be greater than or equal to 0"),
        ("init_snr_db", math.nan, "init_snr_db: Input should be a finite number"),
        ("loss_threshold", math.inf, "loss_threshold: Input should be a finite number"),
        ("loss_threshold", -1.0, "loss_threshold: Input should be greater than or equal to 0"),
        ("range_penalty", math.inf, "range_penalty: Input should be a finite number"),
        ("plateau_tol", -1e-3, "plateau_tol: Input should be greater than or equal to 0"),
        ("model_weights", (1.0, math.nan), "model_weights.1: Input should be a finite number"),
        ("model_weights", (1.0, -1.0), "model_weights.1: Input should be greater than or"),
    ],
)
def test_numeric_settings_are_finite_and_in_range(setting, value, problem):
    with pytest.raises(ConfigError) as error:
        get_preset("fast", **{setting: value})
    message = str(error.value)
    assert message.startswith(f"invalid synthesis setting {problem}"), message
    assert "\n" not in message


def test_model_weights_need_one_positive_weight():
    with pytest.raises(ConfigError, match="^invalid synthesis settings: model_weights: at least"):
        get_preset("fast", model_weights=(0.0, 0.0))


def test_every_numeric_setting_is_checked_for_finiteness():
    for name in SynthesisSettings.model_fields:
        default = getattr(FAST, name)
        if isinstance(default, bool) or not isinstance(default, float | int | tuple):
            continue
        bad = tuple(math.inf for _ in default) if isinstance(default, tuple) else math.inf
        with pytest.raises(ConfigError, match=f"setting {name}"):
            get_preset("fast", **{name: bad})
    assert json.loads(json.dumps(FAST.model_dump(mode="json"), allow_nan=False))


def test_case6_lr_inf_is_refused(tmp_path, monkeypatch, capsys):
    # `metamers generate ... --lr inf` was accepted and run.json held `Infinity`.
    for value in ("inf", "nan", "-inf"):
        out = tmp_path / value
        argv = ["metamers", "generate", "mnist_cnn_s0", "--layers", "relu2"]
        argv += ["--stimuli", "bundled:mnist", "--limit", "1", "--out", str(out), "--lr", value]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: invalid synthesis setting lr: Input should be "), line
        assert not out.exists()  # refused before anything ran or was written


def test_case6_study_lr_inf_is_refused():
    study = {"name": "s", "models": {"generators": [{"name": "mnist_cnn_s0", "layers": ["relu2"]}]}}
    with pytest.raises(ConfigError, match=r"synthesis\.lr: Input should be a finite number"):
        parse_study({**study, "synthesis": {"lr": math.inf}}, source="study.yaml")
