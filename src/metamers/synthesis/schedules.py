"""Step-size schedules, evaluated per item.

A schedule gives a multiplier of the base step size for each active item from
that item's own step count (and, for ``plateau``, its own loss history), so
items at different points of their run can share one batch.

Internal module: use it through metamers.synthesis (``SynthesisSettings.schedule``); not part of the public API.
"""

from __future__ import annotations

import math

import torch

from metamers.synthesis.optimizers import reset_rows
from metamers.synthesis.settings import SynthesisSettings


class Schedule:
    """Base schedule: a constant multiplier of 1.

    Attributes
    ----------
    state
        Per-item tensors (first dimension = number of items), saved in checkpoints.
    """

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def init_state(self, n_items: int, device: torch.device) -> None:
        """Allocate per-item state for ``n_items`` items.

        Parameters
        ----------
        n_items
            Number of items in the batch.
        device
            Where the state tensors live (the stimuli's device).
        """

    def factor(self, idx: torch.Tensor | None, steps: torch.Tensor) -> torch.Tensor:
        """Multiplier of the base step size for items ``idx`` at their ``steps``.

        Parameters
        ----------
        idx
            ``(K,)`` positions of the active items in the batch (``None``: every item).
        steps
            ``(K,)`` optimisation steps each of those items has taken.

        Returns
        -------
        torch.Tensor
            ``(K,)`` multipliers.
        """
        return torch.ones(len(steps), device=steps.device)

    def observe(
        self, idx: torch.Tensor | None, losses: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Record the current losses of items ``idx`` (used by loss-driven schedules).

        Parameters
        ----------
        idx
            ``(K,)`` positions of the items in the batch (``None``: every item).
        losses
            ``(K,)`` their losses at the current step.
        mask
            ``(K,)`` bool: only these items' losses count (``None``: all).
        """

    def reset(self, idx: torch.Tensor | None, mask: torch.Tensor | None = None) -> None:
        """Forget the state of items ``idx`` (after a restart).

        Parameters
        ----------
        idx
            Positions of the restarted items in the batch (``None``: every item).
        mask
            ``(K,)`` bool: which of them restart (``None``: all).
        """

    def start(self, idx: torch.Tensor) -> None:
        """Give items ``idx`` the state of a new item (a slot taken by a new item).

        Parameters
        ----------
        idx
            Positions of the new items in the batch.
        """
        reset_rows(self.state, idx)


class Halving(Schedule):
    """Published schedule: ``0.5 ** (step // every)`` (halves before each new round)."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def factor(self, idx: torch.Tensor | None, steps: torch.Tensor) -> torch.Tensor:
        """``0.5 ** (steps // every)`` per item.

        Parameters
        ----------
        idx
            ``(K,)`` positions of the active items in the batch (``None``: every item).
        steps
            ``(K,)`` optimisation steps each of those items has taken.

        Returns
        -------
        torch.Tensor
            ``(K,)`` multipliers.
        """
        return torch.pow(0.5, (steps // self.every).float())


class Cosine(Schedule):
    """Cosine decay from 1 to ``min_factor`` over ``total`` steps."""

    def __init__(self, total: int, min_factor: float) -> None:
        super().__init__()
        self.total = max(total, 1)
        self.min_factor = min_factor

    def factor(self, idx: torch.Tensor | None, steps: torch.Tensor) -> torch.Tensor:
        """``min_factor + (1 - min_factor) (1 + cos(pi min(steps / total, 1))) / 2`` per item.

        Parameters
        ----------
        idx
            ``(K,)`` positions of the active items in the batch (``None``: every item).
        steps
            ``(K,)`` optimisation steps each of those items has taken.

        Returns
        -------
        torch.Tensor
            ``(K,)`` multipliers.
        """
        progress = (steps.float() / self.total).clamp(0, 1)
        cos = 0.5 * (1 + torch.cos(math.pi * progress))
        return self.min_factor + (1 - self.min_factor) * cos


class Plateau(Schedule):
    """Per item: multiply by ``factor`` after ``patience`` steps without relative improvement."""

    def __init__(self, patience: int, factor: float, tol: float, min_factor: float) -> None:
        super().__init__()
        self.patience, self.shrink, self.tol, self.min_factor = patience, factor, tol, min_factor

    def init_state(self, n_items: int, device: torch.device) -> None:
        """Every item starts with best loss ``inf``, no patience used and scale 1.

        Parameters
        ----------
        n_items
            Number of items in the batch.
        device
            Where the state tensors live (the stimuli's device).
        """
        self.state = {
            "best": torch.full((n_items,), math.inf, device=device),
            "since": torch.zeros(n_items, dtype=torch.long, device=device),
            "scale": torch.ones(n_items, device=device),
        }

    def factor(self, idx: torch.Tensor | None, steps: torch.Tensor) -> torch.Tensor:
        """Each item's current scale, at least ``min_factor``.

        Parameters
        ----------
        idx
            ``(K,)`` positions of the active items in the batch (``None``: every item).
        steps
            ``(K,)`` optimisation steps each of those items has taken (unused:
            the scale depends on the loss history only).

        Returns
        -------
        torch.Tensor
            ``(K,)`` multipliers.
        """
        return _at(self.state["scale"], idx).clamp_min(self.min_factor)

    def observe(
        self, idx: torch.Tensor | None, losses: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Track each item's best loss; shrink its scale after ``patience`` steps without gain.

        A loss counts as an improvement when it is below ``best * (1 - tol)``.
        After ``patience`` steps without one, the item's scale is multiplied by
        ``factor`` and the count starts again.

        Parameters
        ----------
        idx
            ``(K,)`` positions of the items in the batch (``None``: every item).
        losses
            ``(K,)`` their losses at the current step.
        mask
            ``(K,)`` bool: only these items' losses count (``None``: all).
        """
        best, since, scale = (_at(self.state[k], idx) for k in ("best", "since", "scale"))
        on = torch.ones_like(losses, dtype=torch.bool) if mask is None else mask
        improved = losses < best * (1 - self.tol)
        new_best = torch.where(improved & on, losses, best)
        new_since = torch.where(on, torch.where(improved, 0, since + 1), since)
        shrink = on & (new_since >= self.patience)
        new_scale = torch.where(shrink, scale * self.shrink, scale)
        new_since = torch.where(shrink, 0, new_since)
        for key, value in (("best", new_best), ("since", new_since), ("scale", new_scale)):
            _put(self.state[key], idx, value)

    def reset(self, idx: torch.Tensor | None, mask: torch.Tensor | None = None) -> None:
        """Restart the patience count of items ``idx`` (best loss and scale are kept).

        Parameters
        ----------
        idx
            Positions of the restarted items in the batch (``None``: every item).
        mask
            ``(K,)`` bool: which of them restart (``None``: all).
        """
        reset_rows({"since": self.state["since"]}, idx, mask)

    def start(self, idx: torch.Tensor) -> None:
        """A new item's state: best loss ``inf``, no patience used, scale 1.

        Parameters
        ----------
        idx
            Positions of the new items in the batch.
        """
        reset_rows(self.state, idx, values={"best": math.inf, "scale": 1.0})


def _at(tensor: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return tensor if idx is None else tensor[idx]


def _put(tensor: torch.Tensor, idx: torch.Tensor | None, value: torch.Tensor) -> None:
    if idx is None:
        tensor.copy_(value)
    else:
        tensor[idx] = value


def make_schedule(settings: SynthesisSettings) -> Schedule:
    """The schedule named by ``settings.schedule``.

    Parameters
    ----------
    settings
        The synthesis settings: ``schedule`` (``"halving"``, ``"cosine"``,
        ``"plateau"``, anything else constant) and that schedule's own fields
        (``halving_every``; ``max_steps`` and ``lr_min_factor``; ``plateau_*``
        and ``lr_min_factor``).
    """
    if settings.schedule == "halving":
        return Halving(settings.halving_every)
    if settings.schedule == "cosine":
        return Cosine(settings.max_steps, settings.lr_min_factor)
    if settings.schedule == "plateau":
        return Plateau(
            settings.plateau_patience,
            settings.plateau_factor,
            settings.plateau_tol,
            settings.lr_min_factor,
        )
    return Schedule()
