"""Deterministic CPU training of zoo models on the fixed MNIST split.

Reproducibility: one CPU thread, ``torch.use_deterministic_algorithms``, and
every random draw (initialisation, data order, translations, PGD starts)
from generators seeded by the spec's seed. Retrained weights are often
byte-identical, but CPU matmul kernels do not promise it; accuracy agrees to
within a fraction of a point.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from metamers.models.base import Normalize
from metamers.models.zoo.architectures import build_net
from metamers.models.zoo.attack import EVAL_ATTACK, TRAIN_ATTACK, accuracy, robust_accuracy
from metamers.models.zoo.attack import pgd_attack as _pgd
from metamers.models.zoo.specs import ZooSpec
from metamers.stimuli.mnist import mnist_split

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def mnist_normalize() -> Normalize:
    """The zoo models' first stage: the usual MNIST mean/std normalisation."""
    return Normalize((MNIST_MEAN,), (MNIST_STD,))


@dataclass(frozen=True)
class TrainResult:
    """A trained network and how it did.

    Attributes
    ----------
    net
        The trained network (eval mode), without its normalisation stage.
    accuracy
        Held-out accuracy (fraction).
    robust_accuracy
        Held-out accuracy under ``attack.EVAL_ATTACK``.
    seconds
        Wall-clock training time.
    final_loss
        Mean training loss over the last epoch.
    """

    net: nn.Module
    accuracy: float
    robust_accuracy: float
    seconds: float
    final_loss: float


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """One thread, deterministic kernels, seeded global RNG; all restored afterwards.

    Parameters
    ----------
    seed
        Seed of torch's global CPU generator inside the block (forked, so the
        caller's generator state is untouched).
    """
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero fill), independently.

    Parameters
    ----------
    images
        ``(N, C, S, S)`` square images.
    max_shift
        The largest shift in pixels along each axis; the row and column shifts
        are drawn uniformly from ``-max_shift .. max_shift``. 0 returns ``images``
        unchanged.
    generator
        The random source of the shifts.

    Returns
    -------
    torch.Tensor
        Shifted images of the same shape.
    """
    if max_shift == 0:
        return images
    size = images.shape[-1]
    padded = nn.functional.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack(
        [
            padded[i, :, top : top + size, left : left + size]
            for i, (top, left) in enumerate(offsets.tolist())
        ]
    )


def train_zoo_net(
    spec: ZooSpec, *, progress: Callable[[int, float], None] | None = None
) -> TrainResult:
    """Train one zoo network from scratch and measure it on the held-out digits.

    Parameters
    ----------
    spec
        The recipe (architecture, seed, epochs, ...).
    progress
        Called as ``progress(epoch, mean_loss)`` after each epoch.

    Returns
    -------
    TrainResult
    """
    data = mnist_split()
    start = time.perf_counter()
    with deterministic(spec.seed):
        net = build_net(spec.arch)
        model = nn.Sequential(mnist_normalize(), net)
        generator = torch.Generator().manual_seed(spec.seed)
        final_loss = _fit(model, spec, data.train_images, data.train_targets, generator, progress)
        model.eval()
        seconds = time.perf_counter() - start
        clean = accuracy(model, data.held_out_images, data.held_out_targets)
        robust = robust_accuracy(model, data.held_out_images, data.held_out_targets, EVAL_ATTACK)
    net.requires_grad_(False)
    return TrainResult(net, clean, robust, seconds, final_loss)


def _fit(
    model: nn.Sequential,
    spec: ZooSpec,
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None,
) -> float:
    steps_per_epoch = -(-len(images) // spec.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch
    )
    mean_loss = float("nan")
    for epoch in range(spec.epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for batch in order.split(spec.batch_size):
            x = random_shift(images[batch], spec.max_shift, generator)
            y = targets[batch]
            if spec.robust:
                model.eval()
                x = _pgd(model, x, y, TRAIN_ATTACK, generator=generator)
            model.train()
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach().item() * len(batch)
        mean_loss = total / len(images)
        if progress is not None:
            progress(epoch + 1, mean_loss)
    return mean_loss
