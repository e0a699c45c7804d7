"""Per-item objectives between activations and their targets.

Each objective maps ``(activations, targets)`` of shape ``(N, ...)`` to a loss
of shape ``(N,)``: one value per item, so items can be optimised, stopped and
recovered independently in one batch.

Internal module: use it through metamers.synthesis (``SynthesisSettings.objective``); not part of the public API.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metamers.errors import ConfigError

EPS = 1e-12

ObjectiveFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def normalized_l2(acts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Published objective: ``||a - a_ref||_2 / ||a_ref||_2`` per item (activations flattened).

    Parameters
    ----------
    acts
        ``(N, ...)`` activations of the stimuli being optimised.
    target
        ``(N, ...)`` target activations (of the references), same shape.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float32 losses.
    """
    a, t = acts.flatten(1).float(), target.flatten(1).float()
    return (a - t).norm(dim=1) / t.norm(dim=1).clamp_min(EPS)


def mse(acts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item.

    Parameters
    ----------
    acts
        ``(N, ...)`` activations of the stimuli being optimised.
    target
        ``(N, ...)`` target activations (of the references), same shape.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float32 losses.
    """
    a, t = acts.flatten(1).float(), target.flatten(1).float()
    return (a - t).pow(2).mean(dim=1)


def cosine(acts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - cos(a, a_ref)`` per item.

    Parameters
    ----------
    acts
        ``(N, ...)`` activations of the stimuli being optimised.
    target
        ``(N, ...)`` target activations (of the references), same shape.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float32 losses.
    """
    a, t = acts.flatten(1).float(), target.flatten(1).float()
    return 1.0 - torch.nn.functional.cosine_similarity(a, t, dim=1, eps=1e-8)


OBJECTIVES: dict[str, ObjectiveFn] = {
    "normalized_l2": normalized_l2,
    "mse": mse,
    "cosine": cosine,
}


def get_objective(name: str) -> ObjectiveFn:
    """The objective called ``name``.

    Parameters
    ----------
    name
        A key of :data:`OBJECTIVES`: ``"normalized_l2"``, ``"mse"`` or ``"cosine"``.

    Raises
    ------
    ConfigError
        An unknown name.
    """
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def range_penalty(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Mean squared excursion outside ``[low, high]`` per item.

    Parameters
    ----------
    x
        ``(N, ...)`` stimuli.
    low, high
        The valid range (the model's input range).

    Returns
    -------
    torch.Tensor
        ``(N,)``: the mean over elements of the squared distance to the range
        (0 inside it).
    """
    flat = x.flatten(1)
    return (torch.relu(flat - high).pow(2) + torch.relu(low - flat).pow(2)).mean(dim=1)
