"""Optimisers whose state is held per item.

Each optimiser keeps its state as tensors whose first dimension indexes items
(not the active batch), and updates only the items it is given. Removing a
finished item from the active batch, or restarting one item, therefore never
disturbs the others, and a batched run equals one-at-a-time runs.

All optimisers *descend*: ``step`` returns the new stimuli for the given items.
``idx=None`` means every item, in order: the optimiser may then update its
state and ``x`` in place (the engine's fast path while no item has stopped).

Internal module: use it through metamers.synthesis (``SynthesisSettings.optimizer``); not part of the public API.
"""

from __future__ import annotations

import torch

from metamers.synthesis.settings import SynthesisSettings


def _per_item(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(n,)`` values to broadcast against ``(n, ...)`` tensors."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def _rows(tensor: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """The state rows of items ``idx``: the tensor itself (not a copy) for all items."""
    return tensor if idx is None else tensor[idx]


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
        self, idx: torch.Tensor | None, x: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor
    ) -> torch.Tensor:
        """Return the updated ``x`` for items ``idx`` (``x``, ``grad``: ``(n, ...)``; ``lr``: ``(n,)``).

        With ``idx=None`` (every item) ``x`` may be updated in place and returned.
        ``grad`` may be overwritten.
        """
        raise NotImplementedError

    def reset(self, idx: torch.Tensor) -> None:
        """Zero the state of items ``idx`` (after a restart)."""
        for tensor in self.state.values():
            tensor[idx] = 0


class NormalizedGradient(ItemOptimizer):
    """Published step: ``x - lr * g / ||g||`` per item, so each update has L2 norm ``lr``."""

    def step(self, idx, x, grad, lr):
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
        scaled = grad.mul_(_per_item(lr / norm, x))
        return x.sub_(scaled) if idx is None else x - scaled


class SGD(ItemOptimizer):
    """Gradient descent with heavy-ball momentum: ``v = m v + g; x -= lr v``."""

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum

    def init_state(self, x):
        self.state = {"velocity": torch.zeros_like(x)}

    def step(self, idx, x, grad, lr):
        velocity = _rows(self.state["velocity"], idx).mul_(self.momentum).add_(grad)
        if idx is not None:
            self.state["velocity"][idx] = velocity
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

    def step(self, idx, x, grad, lr):
        st = self.state
        m = _rows(st["exp_avg"], idx).mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v = _rows(st["exp_avg_sq"], idx).mul_(self.beta2)
        v.addcmul_(grad, grad, value=1 - self.beta2)
        t = _rows(st["t"], idx).add_(1)
        if idx is not None:
            st["exp_avg"][idx], st["exp_avg_sq"][idx], st["t"][idx] = m, v, t
        # x - lr * m_hat / (sqrt(v_hat) + eps), with one stimulus-sized buffer
        denom = v.sqrt().div_(_per_item((1 - self.beta2**t).sqrt(), v)).add_(self.eps)
        update = torch.div(m, denom, out=denom).mul_(_per_item(lr / (1 - self.beta1**t), m))
        return x.sub_(update) if idx is None else x - update


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
    search does on the same problem.
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

    def step(self, idx, x, grad, lr):
        if idx is None:
            idx = torch.arange(x.shape[0], device=x.device)
        st = self.state
        flat_x, g = x.flatten(1).float(), grad.flatten(1).float()
        self._remember(idx, flat_x, g)
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
        st["prev_x"][idx], st["prev_g"][idx] = flat_x, g
        st["has_prev"][idx] = True
        return x - _per_item(lr, x) * r.reshape(x.shape).to(x.dtype)

    def _remember(self, idx: torch.Tensor, flat_x: torch.Tensor, g: torch.Tensor) -> None:
        st = self.state
        s = flat_x - st["prev_x"][idx]
        y = g - st["prev_g"][idx]
        ys = (s * y).sum(1)
        scale = s.norm(dim=1) * y.norm(dim=1)
        keep = st["has_prev"][idx] & (ys > self.CURVATURE_TOL * scale)
        if not bool(keep.any()):
            return
        items, pos = idx[keep], st["pos"][idx][keep]
        st["s"][items, pos] = s[keep]
        st["y"][items, pos] = y[keep]
        st["rho"][items, pos] = 1.0 / ys[keep]
        st["pos"][items] = (pos + 1) % self.history
        st["count"][items] = (st["count"][items] + 1).clamp_max(self.history)


def make_optimizer(settings: SynthesisSettings) -> ItemOptimizer:
    """The optimiser named by ``settings.optimizer``."""
    if settings.optimizer == "normalized_gradient":
        return NormalizedGradient()
    if settings.optimizer == "sgd":
        return SGD(settings.momentum)
    if settings.optimizer == "adam":
        return Adam(settings.betas)
    return LBFGS(settings.lbfgs_history)
