"""Synthesis settings and the named presets (``feather2023``, ``fast``).

A preset is a :class:`SynthesisSettings` instance; every field can be
overridden (``get_preset("fast", lr=0.02)``). The settings are what a run's
output folder is keyed on, so two runs with equal settings give equal metamers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metamers.errors import ConfigError

Objective = Literal["normalized_l2", "mse", "cosine"]
OptimizerName = Literal["normalized_gradient", "sgd", "adam", "lbfgs"]
ScheduleName = Literal["halving", "cosine", "plateau", "constant"]
InitName = Literal[
    "noise", "uniform", "constant", "pink", "reference_noise", "stimulus", "blur", "downsample"
]


class SynthesisSettings(BaseModel):
    """Every setting of a metamer synthesis.

    Attributes
    ----------
    objective
        Per-item loss at each generation layer: ``normalized_l2`` (published,
        ``||a - a_ref|| / ||a_ref||``), ``mse`` or ``cosine`` (``1 - cos``).
        Several layers or models are summed (ensembles: weighted by ``model_weights``).
    optimizer
        ``normalized_gradient`` (published: each item's update has L2 norm
        ``lr``), ``sgd`` (with ``momentum``), ``adam`` or ``lbfgs`` (no line search).
    lr
        Initial step size (the update norm for ``normalized_gradient``).
    schedule
        ``halving`` (published: ``lr * 0.5**(step // halving_every)``),
        ``cosine`` (to ``lr * lr_min_factor`` at ``max_steps``), ``plateau``
        (per item: times ``plateau_factor`` after ``plateau_patience`` steps
        without relative improvement ``plateau_tol``) or ``constant``.
    max_steps
        Update budget per item; an item stops when it has taken this many.
    init
        Starting point: ``noise`` (published ``N(init_mean, init_std^2)``,
        defaults per modality), ``uniform``, ``constant`` (``init_value``),
        ``pink`` (1/f noise), ``reference_noise`` (reference plus white noise
        at ``init_snr_db``), ``stimulus`` (``init_source``, another stimulus),
        ``blur`` (Gaussian blur of the reference, ``init_sigma`` px) or
        ``downsample`` (reference reduced by ``init_factor`` and enlarged back).
    range_mode
        ``clamp`` (published: clamp to the input range after every step) or
        ``penalty`` (a soft squared penalty of weight ``range_penalty`` on the
        excursion; the stored result is clamped).
    fake_relu
        ``auto`` (published: on when a generation layer is a ReLU-like
        module), ``on`` (error if it is not) or ``off``.
    loss_threshold, stop_plateau_steps, stop_plateau_tol
        Per-item early stops: loss below the threshold, or no relative
        improvement of ``stop_plateau_tol`` in the best loss over
        ``stop_plateau_steps`` steps.
    stop_check_every
        How often (in steps) a pluggable stop criterion is consulted.
    max_failures
        Non-finite loss/gradient restarts allowed per item before it is marked failed.
    checkpoint_every
        Steps between checkpoints in :func:`~metamers.synthesis.generate_metamers`.
    amp
        bf16 autocast for the forward pass (CUDA; CPU bf16 is slow).
    model_weights
        Ensemble weight per model (default: equal weights of 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Objective = "normalized_l2"
    optimizer: OptimizerName = "adam"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.999)
    lbfgs_history: int = Field(10, ge=1)
    schedule: ScheduleName = "cosine"
    max_steps: int = Field(300, ge=0)
    halving_every: int = Field(3000, ge=1)
    lr_min_factor: float = Field(0.01, ge=0, le=1)
    plateau_patience: int = Field(50, ge=1)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_tol: float = Field(1e-3, ge=0)
    init: InitName = "noise"
    init_mean: float | None = None
    init_std: float | None = None
    init_value: float | None = None
    init_snr_db: float = 10.0
    init_sigma: float = Field(4.0, gt=0)
    init_factor: int = Field(8, ge=1)
    init_source: str | None = None
    range_mode: Literal["clamp", "penalty"] = "clamp"
    range_penalty: float = Field(10.0, ge=0)
    fake_relu: Literal["auto", "on", "off"] = "auto"
    loss_threshold: float | None = None
    stop_plateau_steps: int | None = Field(None, ge=1)
    stop_plateau_tol: float = Field(1e-3, ge=0)
    stop_check_every: int = Field(50, ge=1)
    max_failures: int = Field(4, ge=0)
    checkpoint_every: int = Field(200, ge=1)
    amp: bool = False
    model_weights: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> SynthesisSettings:
        if self.init == "stimulus" and not self.init_source:
            raise ValueError("init='stimulus' needs init_source (an image or waveform file)")
        return self

    def digest(self) -> str:
        """A short hash of every setting (the output-folder key)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


FEATHER2023 = SynthesisSettings(
    objective="normalized_l2",
    optimizer="normalized_gradient",
    lr=1.0,
    schedule="halving",
    halving_every=3000,
    max_steps=3000 * 8,
    init="noise",
    range_mode="clamp",
    fake_relu="auto",
)
"""Feather et al. 2023: normalised L2, normalised-gradient step 1.0 halving every
3000 steps for 8 rounds (24,000 steps), ``N(0.5, 0.05^2)`` noise start, clamping."""

FAST = SynthesisSettings(
    objective="normalized_l2",
    optimizer="adam",
    lr=0.03,
    betas=(0.9, 0.9),
    schedule="cosine",
    lr_min_factor=0.01,
    max_steps=1000,
    init="noise",
    range_mode="clamp",
    fake_relu="auto",
)
"""Our default, chosen by measurement on EfficientNet-Lite0 (see docs/synthesis.md):
Adam 0.03 with a short second-moment memory (beta2 0.9) and cosine decay over
1,000 steps, from the published noise start (unbiased by the reference)."""

PRESETS: dict[str, SynthesisSettings] = {"feather2023": FEATHER2023, "fast": FAST}


def get_preset(name: str = "fast", **overrides: object) -> SynthesisSettings:
    """A named preset with some settings overridden.

    Parameters
    ----------
    name
        ``fast`` or ``feather2023``.
    **overrides
        Any :class:`SynthesisSettings` field; ``None`` values are ignored.

    Raises
    ------
    ConfigError
        Unknown preset or an invalid setting.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return with_overrides(PRESETS[name], **overrides)


def with_overrides(settings: SynthesisSettings, **overrides: object) -> SynthesisSettings:
    """Return ``settings`` with the non-``None`` ``overrides`` applied and validated.

    Parameters
    ----------
    settings
        The settings to start from (left unchanged).
    **overrides
        Any :class:`SynthesisSettings` fields; ``None`` values are ignored.

    Raises
    ------
    ConfigError
        An invalid value (the first problem, on one line).
    """
    values = settings.model_dump()
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SynthesisSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid synthesis setting {where}: {first['msg']}") from None
