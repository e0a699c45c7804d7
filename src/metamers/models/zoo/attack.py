"""Projected gradient descent (PGD) under an L∞ budget, and accuracy under it.

Madry et al.'s attack: start at a uniformly random point of the ε-ball,
take ``steps`` signed-gradient ascent steps on the cross-entropy, project
back onto the ball and the valid pixel range after each step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PGDConfig:
    """An L∞ PGD attack.

    Attributes
    ----------
    epsilon
        L∞ radius in pixel units (images in ``[0, 1]``).
    steps
        Number of signed-gradient steps.
    step_size
        Size of each step (L∞).
    random_start
        Start at a uniform random point of the ball (else at the clean image).
    """

    epsilon: float = 0.1
    steps: int = 10
    step_size: float = 0.025
    random_start: bool = True

    def as_dict(self) -> dict:
        """The attack's settings, for manifests."""
        return {"norm": "Linf", **asdict(self)}


TRAIN_ATTACK = PGDConfig(epsilon=0.1, steps=4, step_size=0.03)
"""Attack used inside adversarial training (cheap: 4 steps)."""

EVAL_ATTACK = PGDConfig(epsilon=0.1, steps=10, step_size=0.025)
"""Attack used to measure robustness on the held-out digits."""


def pgd_attack(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    config: PGDConfig,
    *,
    generator: torch.Generator | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Adversarial versions of ``images`` within ``config.epsilon`` (L∞) of them.

    Parameters
    ----------
    net
        Maps pixel-space images to logits (put it in eval mode first).
    images
        ``(N, C, H, W)`` clean images in ``input_range``.
    targets
        ``(N,)`` true classes; the attack raises their cross-entropy.
    config
        Radius, steps and step size.
    generator
        Random source for the random start (for reproducible attacks).
    input_range
        Valid pixel range that adversarial images are clamped to.

    Returns
    -------
    torch.Tensor
        Detached adversarial images, same shape as ``images``.
    """
    low, high = input_range
    images = images.detach()
    delta = torch.zeros_like(images)
    if config.random_start:
        noise = torch.rand(images.shape, generator=generator, dtype=images.dtype)
        delta = (2 * noise.to(images.device) - 1) * config.epsilon
    adversarial = (images + delta).clamp(low, high)
    for _ in range(config.steps):
        adversarial.requires_grad_(True)
        loss = nn.functional.cross_entropy(net(adversarial), targets)
        (grad,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            adversarial = adversarial + config.step_size * grad.sign()
            adversarial = images + (adversarial - images).clamp(-config.epsilon, config.epsilon)
            adversarial = adversarial.clamp(low, high)
    return adversarial.detach()


def accuracy(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int = 250,
) -> float:
    """Fraction of ``images`` that ``net`` classifies as ``targets``.

    Parameters
    ----------
    net
        Maps pixel-space images to logits (put it in eval mode first); run
        without gradients.
    images
        ``(N, C, H, W)`` images.
    targets
        ``(N,)`` true classes.
    batch_size
        Images per forward pass.
    """
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = net(images[start : start + batch_size])
            correct += int((logits.argmax(1) == targets[start : start + batch_size]).sum())
    return correct / len(images)


def robust_correct(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    config: PGDConfig = EVAL_ATTACK,
    *,
    seed: int = 0,
    batch_size: int = 250,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Whether each PGD adversarial version of ``images`` is still classified right.

    The per-stimulus outcomes behind :func:`robust_accuracy`, for paired comparisons
    of two networks on the same stimuli; same parameters.

    Returns
    -------
    torch.Tensor
        ``(N,)`` booleans.
    """
    generator = torch.Generator().manual_seed(seed)
    correct = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        y = targets[start : start + batch_size]
        adversarial = pgd_attack(net, x, y, config, generator=generator, input_range=input_range)
        with torch.no_grad():
            correct.append(net(adversarial).argmax(1) == y)
    return torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)


def robust_accuracy(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    config: PGDConfig = EVAL_ATTACK,
    *,
    seed: int = 0,
    batch_size: int = 250,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Accuracy on PGD adversarial versions of ``images`` (seeded random start).

    Parameters
    ----------
    net
        Maps pixel-space images to logits (put it in eval mode first).
    images
        ``(N, C, H, W)`` clean images in ``[0, 1]``.
    targets
        ``(N,)`` true classes, which the attack moves away from.
    config
        The attack (default :data:`EVAL_ATTACK`: ε = 0.1, 10 steps of 0.025).
    seed
        Seed of the random starts, drawn batch after batch from one generator.
    batch_size
        Images attacked at once.
    input_range
        Valid stimulus range the attack stays in (``(-1, 1)`` for waveforms).
    """
    correct = robust_correct(
        net, images, targets, config, seed=seed, batch_size=batch_size, input_range=input_range
    )
    return int(correct.sum()) / len(images)
