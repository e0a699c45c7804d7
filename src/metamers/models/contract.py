"""The model contract, checked with errors that say what to change.

See ``docs/model-contract.md``. A model is a :class:`~metamers.models.base.PixelModel`:

1. takes a batch ``(N, *input_shape)`` in ``input_range`` and returns a tensor
   with the same batch size;
2. is differentiable with respect to its input (finite, non-zero gradient);
3. is deterministic and treats batch items independently (eval mode: no
   dropout, no batch statistics);
4. has no trainable parameters and keeps the input's dtype and device.
"""

from __future__ import annotations

import torch

from metamers.errors import ModelError
from metamers.models.base import PixelModel


def validate_model(model: object, *, atol: float = 1e-4) -> PixelModel:
    """Check that ``model`` follows the model contract; return it unchanged.

    Parameters
    ----------
    model
        The candidate model.
    atol
        Tolerance for the determinism and batch-independence checks.

    Raises
    ------
    ModelError
        Naming the first broken rule and how to fix it.
    """
    if not isinstance(model, PixelModel):
        raise ModelError(
            f"expected a metamers.models.PixelModel, got {type(model).__name__}; wrap your network: "
            "PixelModel(net, name=..., input_shape=(3, 224, 224), preprocess=Normalize(mean, std))"
        )
    if any(p.requires_grad for p in model.parameters()):
        raise ModelError(f"{model.name} has trainable parameters; call model.requires_grad_(False)")
    x = model.example_input(batch_size=2).requires_grad_(True)
    out = model(x)
    _check_output(model, x, out)
    if out.requires_grad:
        out.float().square().sum().backward()
    grad = x.grad
    if grad is None or not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
        raise ModelError(
            f"{model.name} is not differentiable with respect to its input "
            "(no, zero or non-finite gradient); avoid detach(), argmax or integer ops in forward"
        )
    with torch.no_grad():
        again = model(x)
        alone = model(x[:1])
    if not torch.allclose(out, again, atol=atol):
        raise ModelError(f"{model.name} is not deterministic; put it in eval mode (no dropout)")
    if not torch.allclose(out[:1], alone, atol=atol, rtol=1e-3):
        raise ModelError(
            f"{model.name} mixes batch items (batch statistics?); put BatchNorm in eval mode"
        )
    return model


def _check_output(model: PixelModel, x: torch.Tensor, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{model.name} must return a tensor, got {type(out).__name__}")
    if out.shape[0] != x.shape[0]:
        raise ModelError(f"{model.name} changed the batch size from {x.shape[0]} to {out.shape[0]}")
    if out.dtype != x.dtype or out.device != x.device:
        raise ModelError(
            f"{model.name} changed dtype/device from {x.dtype}/{x.device} to {out.dtype}/{out.device}"
        )
    if not torch.isfinite(out).all():
        raise ModelError(f"{model.name} returned non-finite values on a valid input")
