"""Optimisers whose state is held per item.

Each optimiser keeps its state as tensors whose first dimension indexes items
(not the active batch), and updates only the items it is given. Removing a
finished item from the active batch, or restarting one item, therefore never
disturbs the others, and a batched run equals one-at-a-time runs.

All optimisers *descend*: ``step`` returns the new stimuli for the given items.
``idx=None`` means every item, in order: the optimiser may then update its
state and ``x`` in place (the engine's fast path while no item has stopped).
A ``mask`` (``(n,)`` bool over the given items) updates only the items it
marks, with tensor operations (no host sync): the state rows of the others
are left as they were and the stimuli returned for them are meaningless (the
engine keeps their old stimuli). An item's values are the same bits with or
without a mask.

Internal module: use it through metamers.synthesis (``SynthesisSettings.optimizer``); not part of the public API.
"""

from __future__ import annotations

import torch

from metamers.synthesis.settings import SynthesisSettings


def _per_item(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(n,)`` values to broadcast against ``(n, ...)`` tensors."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def _rows(tensor: torch.Tensor, idx: torch.Tensor | None, mask: torch.Tensor | None = None):
    """The state rows of items ``idx``: the tensor itself (not a copy) for all items, unmasked.

    With a ``mask`` the rows are always a copy, so they can be changed before
    :func:`_store` writes back only the masked ones.
    """
    if idx is None:
        return tensor if mask is None else tensor.clone()
    return tensor[idx]


def _store(
    tensor: torch.Tensor,
    idx: torch.Tensor | None,
    rows: torch.Tensor,
    mask: torch.Tensor | None,
) -> None:
    """Write ``rows`` back as the state of items ``idx`` (only where ``mask``)."""
    if mask is not None:
        old = tensor if idx is None else tensor[idx]
        rows = torch.where(_per_item(mask, rows), rows, old)
    if idx is None:
        if rows is not tensor:
            tensor.copy_(rows)
    else:
        tensor[idx] = rows


def reset_rows(
    state: dict[str, torch.Tensor],
    idx: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    values: dict[str, float] | None = None,
) -> None:
    """Set the state rows of items ``idx`` (where ``mask``) to their start values (default 0).

    Parameters
    ----------
    state
        Per-item state tensors (first dimension = item).
    idx
        Positions of the items (``None``: every item).
    mask
        ``(len(idx),)`` bool: which of them to reset (``None``: all).
    values
        Start value per state name (others: 0).
    """
    for name, tensor in state.items():
        rows = _rows(tensor, idx, mask)
        value = (values or {}).get(name, 0)
        fill = torch.ones_like(rows, dtype=torch.bool) if mask is None else _per_item(mask, rows)
        _store(tensor, idx, rows.masked_fill(fill, value), None)


class ItemOptimizer:
    """Base class: per-item state and the update rule.

    Attributes
    ----------
    state
        Per-item tensors (first dimension = number of items), saved in checkpoints.
    """

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def init_state(self, x: torch.Tensor) -> None:
        """Allocate state for all items of ``x`` (``(N, ...)``)."""

    def step(
        self,
        idx: torch.Tensor | None,
        x: torch.Tensor,
        grad: torch.Tensor,
        lr: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the updated ``x`` for items ``idx`` (``x``, ``grad``: ``(n, ...)``; ``lr``: ``(n,)``).

        With ``idx=None`` (every item) and no ``mask``, ``x`` may be updated in
        place and returned. ``grad`` may be overwritten. With a ``mask`` only
        the marked items' state changes (see the module docstring).
        """
        raise NotImplementedError

    def reset(self, idx: torch.Tensor | None, mask: torch.Tensor | None = None) -> None:
        """Zero the state of items ``idx`` (where ``mask``): after a restart, or for a new item."""
        reset_rows(self.state, idx, mask)


class NormalizedGradient(ItemOptimizer):
    """Published step: ``x - lr * g / ||g||`` per item, so each update has L2 norm ``lr``."""

    def step(self, idx, x, grad, lr, mask=None):
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
        scaled = grad.mul_(_per_item(lr / norm, x))
        return x.sub_(scaled) if idx is None and mask is None else x - scaled


class SGD(ItemOptimizer):
    """Gradient descent with heavy-ball momentum: ``v = m v + g; x -= lr v``."""

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum

    def init_state(self, x):
        self.state = {"velocity": torch.zeros_like(x)}

    def step(self, idx, x, grad, lr, mask=None):
        velocity = _rows(self.state["velocity"], idx, mask).mul_(self.momentum).add_(grad)
        if idx is not None or mask is not None:
            _store(self.state["velocity"], idx, velocity, mask)
            return x - _per_item(lr, x) * velocity
        return x.sub_(velocity * _per_item(lr, x))


class Adam(ItemOptimizer):
    """Adam with bias correction and a step counter per item."""

    def __init__(self, betas: tuple[float, float], eps: float = 1e-8) -> None:
        super().__init__()
        self.beta1, self.beta2 = betas
        self.eps = eps

    def init_state(self, x):
        self.state = {
            "exp_avg": torch.zeros_like(x),
            "exp_avg_sq": torch.zeros_like(x),
            "t": torch.zeros(x.shape[0], device=x.device),
        }

    def step(self, idx, x, grad, lr, mask=None):
        st = self.state
        m = _rows(st["exp_avg"], idx, mask).mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v = _rows(st["exp_avg_sq"], idx, mask).mul_(self.beta2)
        v.addcmul_(grad, grad, value=1 - self.beta2)
        t = _rows(st["t"], idx, mask).add_(1)
        if idx is not None or mask is not None:
            for name, rows in (("exp_avg", m), ("exp_avg_sq", v), ("t", t)):
                _store(st[name], idx, rows, mask)
        # x - lr * m_hat / (sqrt(v_hat) + eps), with one stimulus-sized buffer
        denom = v.sqrt().div_(_per_item((1 - self.beta2**t).sqrt(), v)).add_(self.eps)
        update = torch.div(m, denom, out=denom).mul_(_per_item(lr / (1 - self.beta1**t), m))
        return x.sub_(update) if idx is None and mask is None else x - update


class LBFGS(ItemOptimizer):
    """Limited-memory BFGS per item, fixed step ``lr`` (no line search).

    The first step of an item (and the first after a restart) is
    ``lr * min(1, 1/||g||_1)`` along ``-g``, as in ``torch.optim.LBFGS``.

    A curvature pair ``(s, y)`` is kept when ``s . y > CURVATURE_TOL * ||s|| ||y||``:
    a scale-free test (``torch.optim.LBFGS`` uses an absolute ``s . y > 1e-10``,
    which rejects every pair of an objective with small gradients, such as
    ``mse`` averaged over many activations, and leaves plain gradient descent
    at the tiny first step).

    Without a line search L-BFGS suits smooth objectives (``mse``, with
    ``range_mode="penalty"``). On the published ``normalized_l2`` (a norm, with
    no curvature along the way to its minimum) under clamping, it converges
    and then may wander off again, as ``torch.optim.LBFGS`` without line
    search does on the same problem. Even on smooth objectives, once an item
    has converged its float32 gradients are mostly rounding noise and a
    single step can raise its loss by orders of magnitude; stop rules
    (``loss_threshold``, ``stop_plateau_steps``) end such items before they
    wander.
    """

    CURVATURE_TOL = 1e-6

    def __init__(self, history: int) -> None:
        super().__init__()
        self.history = history

    def init_state(self, x):
        n, d = x.shape[0], x[0].numel()
        zeros = torch.zeros((n, self.history, d), device=x.device)
        self.state = {
            "s": zeros,
            "y": zeros.clone(),
            "rho": torch.zeros((n, self.history), device=x.device),
            "count": torch.zeros(n, dtype=torch.long, device=x.device),
            "pos": torch.zeros(n, dtype=torch.long, device=x.device),
            "prev_x": torch.zeros((n, d), device=x.device),
            "prev_g": torch.zeros((n, d), device=x.device),
            "has_prev": torch.zeros(n, dtype=torch.bool, device=x.device),
        }

    def step(self, idx, x, grad, lr, mask=None):
        if idx is None:
            idx = torch.arange(x.shape[0], device=x.device)
        st = self.state
        flat_x, g = x.flatten(1).float(), grad.flatten(1).float()
        self._remember(idx, flat_x, g, mask)
        count, pos = st["count"][idx], st["pos"][idx]
        s_hist, y_hist, rho = st["s"][idx], st["y"][idx], st["rho"][idx]
        rows = torch.arange(len(idx), device=x.device)
        q = g.clone()
        alphas = []
        for k in range(self.history):
            j = (pos - 1 - k) % self.history
            valid = (k < count).float()
            alpha = rho[rows, j] * (s_hist[rows, j] * q).sum(1) * valid
            q -= alpha[:, None] * y_hist[rows, j]
            alphas.append(alpha)
        newest = (pos - 1) % self.history
        y_new, s_new = y_hist[rows, newest], s_hist[rows, newest]
        gamma = (s_new * y_new).sum(1) / (y_new * y_new).sum(1).clamp_min(1e-30)
        first = count == 0
        gamma = torch.where(
            first, torch.clamp(1.0 / g.abs().sum(1).clamp_min(1e-30), max=1.0), gamma
        )
        r = gamma[:, None] * q
        for k in reversed(range(self.history)):
            j = (pos - 1 - k) % self.history
            valid = (k < count).float()
            beta = rho[rows, j] * (y_hist[rows, j] * r).sum(1)
            r += s_hist[rows, j] * ((alphas[k] - beta) * valid)[:, None]
        _store(st["prev_x"], idx, flat_x, mask)
        _store(st["prev_g"], idx, g, mask)
        _store(st["has_prev"], idx, torch.ones_like(st["has_prev"][idx]), mask)
        return x - _per_item(lr, x) * r.reshape(x.shape).to(x.dtype)

    def _remember(
        self, idx: torch.Tensor, flat_x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None
    ) -> None:
        """Keep the newest curvature pair of each item that passes the test (tensor ops only)."""
        st = self.state
        s = flat_x - st["prev_x"][idx]
        y = g - st["prev_g"][idx]
        ys = (s * y).sum(1)
        scale = s.norm(dim=1) * y.norm(dim=1)
        keep = st["has_prev"][idx] & (ys > self.CURVATURE_TOL * scale)
        if mask is not None:
            keep &= mask
        pos = st["pos"][idx]
        st["s"][idx, pos] = torch.where(keep[:, None], s, st["s"][idx, pos])
        st["y"][idx, pos] = torch.where(keep[:, None], y, st["y"][idx, pos])
        st["rho"][idx, pos] = torch.where(keep, 1.0 / ys, st["rho"][idx, pos])
        st["pos"][idx] = torch.where(keep, (pos + 1) % self.history, pos)
        count = st["count"][idx]
        st["count"][idx] = torch.where(keep, (count + 1).clamp_max(self.history), count)


def make_optimizer(settings: SynthesisSettings) -> ItemOptimizer:
    """The optimiser named by ``settings.optimizer``."""
    if settings.optimizer == "normalized_gradient":
        return NormalizedGradient()
    if settings.optimizer == "sgd":
        return SGD(settings.momentum)
    if settings.optimizer == "adam":
        return Adam(settings.betas)
    return LBFGS(settings.lbfgs_history)
