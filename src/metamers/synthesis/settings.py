"""Synthesis settings and the named presets (``feather2023``, ``fast``).

A preset is a :class:`SynthesisSettings` instance; every field can be
overridden (``get_preset("fast", lr=0.02)``). Changing a preset's optimiser
without giving ``lr`` also takes that optimiser's own measured step size
(:data:`OPTIMIZER_LR`), since step sizes do not carry over between optimisers.
Every numeric setting is checked for finiteness and range. The settings are what a run's
output folder is keyed on, so two runs with equal settings give equal metamers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metamers.errors import ConfigError

Objective = Literal["normalized_l2", "mse", "cosine"]
OptimizerName = Literal["normalized_gradient", "sgd", "adam", "lbfgs"]
ScheduleName = Literal["halving", "cosine", "plateau", "constant"]
Beta = Annotated[float, Field(ge=0, lt=1)]
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
        Initial step size (the update norm for ``normalized_gradient``). When a
        preset's optimiser is changed without an ``lr``, the optimiser's own
        default (:data:`OPTIMIZER_LR`).
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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    objective: Objective = "normalized_l2"
    optimizer: OptimizerName = "adam"
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    betas: tuple[Beta, Beta] = (0.9, 0.999)
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
    init_std: float | None = Field(None, ge=0)
    init_value: float | None = None
    init_snr_db: float = 10.0
    init_sigma: float = Field(4.0, gt=0)
    init_factor: int = Field(8, ge=1)
    init_source: str | None = None
    range_mode: Literal["clamp", "penalty"] = "clamp"
    range_penalty: float = Field(10.0, ge=0)
    fake_relu: Literal["auto", "on", "off"] = "auto"
    loss_threshold: float | None = Field(None, ge=0)
    stop_plateau_steps: int | None = Field(None, ge=1)
    stop_plateau_tol: float = Field(1e-3, ge=0)
    stop_check_every: int = Field(50, ge=1)
    max_failures: int = Field(4, ge=0)
    checkpoint_every: int = Field(200, ge=1)
    amp: bool = False
    model_weights: tuple[Annotated[float, Field(ge=0)], ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> SynthesisSettings:
        if self.init == "stimulus" and not self.init_source:
            raise ValueError("init='stimulus' needs init_source (an image or waveform file)")
        if self.model_weights is not None and not any(w > 0 for w in self.model_weights):
            raise ValueError("model_weights: at least one weight must be positive")
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

OPTIMIZER_LR: dict[str, float] = {
    "adam": FAST.lr,
    "sgd": 10.0,
    "normalized_gradient": 3.0,
    "lbfgs": 1.0,
}
"""Each optimiser's default step size, taken when a preset's optimiser is changed
without an ``lr`` (``get_preset("fast", optimizer="sgd")`` runs SGD at 10, not
Adam's 0.03). Measured: the step size at which each falls fastest in 200 steps
of the ``fast`` schedule on a tiny random conv net, the MNIST CNN and
EfficientNet-Lite0 (a value within 1.5x of the best fall on each; Adam keeps the
``fast`` preset's 0.03, chosen on Lite0). See docs/synthesis.md; re-run with
``python bench/optimizer_step_sizes.py``. A preset keeps its own ``lr`` for its
own optimiser (``feather2023``: normalised gradient at 1.0, halved every 3,000
steps)."""


def get_preset(name: str = "fast", **overrides: object) -> SynthesisSettings:
    """A named preset with some settings overridden.

    Parameters
    ----------
    name
        ``fast`` or ``feather2023``.
    **overrides
        Any :class:`SynthesisSettings` field; ``None`` values are ignored. An
        ``optimizer`` other than the preset's, without ``lr``, brings its own
        step size (:data:`OPTIMIZER_LR`).

    Raises
    ------
    ConfigError
        Unknown preset or an invalid setting (one line naming the setting).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return with_overrides(PRESETS[name], **overrides)


def with_overrides(settings: SynthesisSettings, **overrides: object) -> SynthesisSettings:
    """Return ``settings`` with the non-``None`` ``overrides`` applied and validated.

    A changed ``optimizer`` without an ``lr`` takes that optimiser's default step
    size (:data:`OPTIMIZER_LR`) instead of keeping the step size of the old one.

    Parameters
    ----------
    settings
        The settings to start from (left unchanged).
    **overrides
        Any :class:`SynthesisSettings` fields; ``None`` values are ignored.

    Raises
    ------
    ConfigError
        An invalid value: unknown, of the wrong type, not finite or out of range
        (the first problem, on one line naming the setting and the value given).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    values = settings.model_dump() | given
    optimizer = given.get("optimizer", settings.optimizer)
    if "lr" not in given and optimizer != settings.optimizer and optimizer in OPTIMIZER_LR:
        values["lr"] = OPTIMIZER_LR[optimizer]
    try:
        return SynthesisSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across settings names them itself
            raise ConfigError(f"invalid synthesis settings: {message}") from None
        where = ".".join(str(p) for p in first["loc"])
        got = f" (got {first['input']!r})" if "input" in first else ""
        raise ConfigError(f"invalid synthesis setting {where}: {message}{got}") from None
