"""What a finished metamer is, as stored on disk and read back.

This record is the interface between synthesis and everything downstream
(validation, evaluation, studies, report). ``load_results(DIR)`` returns
these for a ``metamers generate`` output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class MetamerResult:
    """One finished metamer.

    Attributes
    ----------
    stimulus_id
        Id of the reference stimulus in its set.
    models
        Generating model names (one, or several for an ensemble metamer).
    layers
        Generation layer for each model (same length as ``models``).
    metamer
        The exact float tensor, ``(C, H, W)`` or ``(T,)``, in the models' input range.
    reference
        The reference stimulus as the generator saw it (same shape as ``metamer``).
    losses
        Objective value per step.
    settings
        Every synthesis setting, the seed, versions and timing.
    path
        Folder holding this metamer's files.
    status
        ``done``, or ``failed`` (non-finite loss persisted; the tensor is its
        last finite state and must not be used as a metamer).
    label
        Name of the generator in tables, when it is not the model name(s): set
        by a study for a generator with its own synthesis settings or an ensemble
        (not stored with the metamer).
    """

    stimulus_id: str
    models: tuple[str, ...]
    layers: tuple[str, ...]
    metamer: torch.Tensor
    reference: torch.Tensor
    losses: np.ndarray
    settings: dict = field(default_factory=dict)
    path: Path | None = None
    status: str = "done"
    label: str | None = None

    @property
    def generator(self) -> str:
        """Display name of the generator: its ``label`` when it has one (a study's synthesis
        condition or ensemble), else the model name(s): ``lite0`` or ``lite0+lite1``."""
        return self.label or "+".join(self.models)

    @property
    def layer(self) -> str:
        """Display name of the generation layer(s)."""
        return "+".join(dict.fromkeys(self.layers))

    @property
    def model_loads(self) -> dict[str, dict]:
        """How each generating model was loaded, by model name, as recorded.

        Each value is a :func:`metamers.models.registry.load_spec` (the name to
        load, ``file:`` path, weights file and its SHA-256, ``random_weights``
        and seed); models given to :func:`~metamers.synthesis.generate_metamers`
        as objects rather than loaded by name record none and are left out.
        """
        loads = self.settings.get("model_loads") or [None] * len(self.models)
        return {name: dict(spec) for name, spec in zip(self.models, loads) if spec}
