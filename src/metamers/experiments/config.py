"""The experiment configuration: one YAML file, validated by pydantic, one-line errors.

Every block has defaults that reproduce the published designs of Feather et
al. (2023) where they apply (fixation, image and mask 300 ms; 16 practice
trials with feedback; 12 screening trials passed at 7; breaks at a quarter,
half and three quarters of the main block), so an empty file is a valid
configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metamers.errors import ConfigError

__all__ = ["TASKS", "ExperimentConfig", "load_config", "parse_config"]

TASKS = ("image16", "naway", "words")
"""Image 16-way categorisation, an N-way button choice (images or sounds), typed words."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Block):
    """Presentation of an image trial, in milliseconds (the published 300/300/300)."""

    fixation_ms: int = Field(300, ge=0, le=10_000)
    image_ms: int = Field(300, ge=16, le=10_000)
    mask_ms: int = Field(300, ge=0, le=10_000)


class Practice(_Block):
    """Practice trials (natural stimuli held out of the main block), with feedback."""

    trials: int = Field(16, ge=0, le=200)
    feedback: bool = True


class Screening(_Block):
    """Screening trials without feedback; a participant below ``pass_min`` correct is let go."""

    trials: int = Field(12, ge=0, le=200)
    pass_min: int = Field(7, ge=0)
    metamer_fraction: float = Field(0.5, ge=0, le=1)
    condition: str | None = None
    """Condition of the screening metamers (default: the first metamer condition)."""

    @model_validator(mode="after")
    def _pass_within(self) -> Screening:
        if self.pass_min > self.trials:
            raise ValueError(f"pass_min {self.pass_min} exceeds the {self.trials} screening trials")
        return self


class Catch(_Block):
    """Catch trials: clean natural stimuli mixed into the main block (attention checks)."""

    trials: int = Field(16, ge=0, le=400)


class HeadphoneCheck(_Block):
    """The antiphase-tone headphone check (Woods et al. 2017) before an audio experiment."""

    trials: int = Field(6, ge=0, le=30)
    pass_min: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _pass_within(self) -> HeadphoneCheck:
        if self.pass_min > self.trials:
            raise ValueError(f"pass_min {self.pass_min} exceeds the {self.trials} check trials")
        return self


class Audio(_Block):
    """How sounds are prepared and checked."""

    sample_rate: int = Field(20_000, ge=8_000, le=96_000)
    rms: float = Field(0.05, gt=0, le=0.3)
    headphone_check: HeadphoneCheck = HeadphoneCheck()
    calibration: bool = True


class Completion(_Block):
    """What a participant gets at the end (codes are shown and sent to the recruiter)."""

    code: str = Field("COMPLETE", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    screened_out_code: str = Field("SCREENED", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    prolific_url: str = Field(
        "https://app.prolific.com/submissions/complete?cc={code}", pattern=r"^https://"
    )


class Exclusions(_Block):
    """Which participants the analysis keeps."""

    catch_min: float = Field(0.75, ge=0, le=1)
    """Minimum proportion correct on catch trials."""
    require_screening: bool = True
    require_complete: bool = True


class Design(_Block):
    """Which stimuli enter the main block."""

    complete_only: bool = True
    """Keep only stimuli with an accepted metamer in every condition (a full Latin square)."""
    natural: bool = True
    """Natural references as a condition of their own."""
    max_stimuli: int | None = Field(None, ge=1)


class ExperimentConfig(_Block):
    """An experiment, as written in its YAML file.

    Attributes
    ----------
    title, consent, instructions, debrief
        Texts shown to participants (plain text; blank lines separate paragraphs).
    task
        ``image16``, ``naway`` or ``words`` (the CLI's ``--task`` overrides it).
    choices
        The response options of an ``naway`` task (default: the stimuli's labels).
    vocabulary
        The words a ``words`` participant may type (default: the stimuli's words);
        each stimulus word is added when missing.
    seed
        Seed of every random choice made when building and assigning.
    breaks
        Breaks in the main block (3: at a quarter, half and three quarters).
    fullscreen
        Ask the browser for full screen before the trials.
    image_px
        Displayed image size in CSS pixels.
    max_body_bytes
        The largest request body the server accepts.
    """

    title: str = Field("Recognition experiment", max_length=200)
    consent: str = Field(
        "This study is part of a research project. Taking part is voluntary and you may stop "
        "at any time. Your answers are stored without your name.",
        max_length=20_000,
    )
    instructions: str = Field(
        "Each trial shows a stimulus briefly. Choose what you saw or heard. Guess if unsure.",
        max_length=20_000,
    )
    debrief: str = Field("Thank you for taking part.", max_length=20_000)
    task: Literal["image16", "naway", "words"] = "image16"
    choices: list[str] | None = Field(None, min_length=2, max_length=64)
    vocabulary: list[str] | None = Field(None, min_length=2, max_length=5000)
    seed: int = Field(0, ge=0)
    timing: Timing = Timing()
    practice: Practice = Practice()
    screening: Screening = Screening()
    catch: Catch = Catch()
    breaks: int = Field(3, ge=0, le=20)
    design: Design = Design()
    audio: Audio = Audio()
    completion: Completion = Completion()
    exclusions: Exclusions = Exclusions()
    fullscreen: bool = True
    image_px: int = Field(256, ge=32, le=2048)
    max_body_bytes: int = Field(65_536, ge=1024, le=10_000_000)


def parse_config(data: object, label: str = "experiment config") -> ExperimentConfig:
    """Validate a parsed YAML mapping.

    Parameters
    ----------
    data
        The mapping (``None`` gives the defaults).
    label
        How to name the source in an error.

    Raises
    ------
    ConfigError
        One line naming the first bad key, e.g. ``exp.yaml: screening.pass_min: ...``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the file must hold a mapping of settings")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {_first_error(exc)}") from None


def load_config(path: str | Path | None) -> ExperimentConfig:
    """Read and validate an experiment YAML file (``None``: every default).

    Parameters
    ----------
    path
        The YAML file.

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, or holds a bad setting (one line).
    """
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    return parse_config(data, str(path))


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    error = errors[0]
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{loc}: {message} (got {shown}){more}"
