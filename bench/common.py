"""Shared pieces of the synthesis and null benchmarks (not part of the package or its tests).

- :func:`shared_null`: the ONE null every P1 method is judged against (cached).
- :class:`TargetCheck`: "is this stimulus a good, validated metamer?" — the
  published acceptance test (1000-way label match, Spearman, Pearson and dB SNR
  above the null maximum at the generation layer) AND normalised loss
  ``<= max_loss`` (0.1, i.e. >= 20 dB SNR). One full forward per check, timed
  apart so that every method's wall time excludes it.
- :func:`truncated_network`: the bare network up to a layer, for the overhead floor.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import torch
from torch import nn

from metamers.decisions import LabelSpace
from metamers.models import PixelModel
from metamers.null import NullDistribution, SmallNullWarning, compute_null
from metamers.similarity.metrics import SIMILARITY_METRICS
from metamers.stimuli import resolve_stimuli
from metamers.synthesis.objectives import normalized_l2
from metamers.validation import judge

MODEL = "efficientnet_lite0"
LAYERS = ("blocks.1", "blocks.3", "blocks.5")
PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
NULL_STIMULI = "bundled:photos"


def set_threads(n: int) -> None:
    """Pin torch's intra-op threads (the benchmarks' machine setting)."""
    torch.set_num_threads(n)


def machine_line() -> str:
    """Date, CPU count, torch threads and the load average (the machine is shared)."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{datetime.now(UTC).isoformat(timespec='minutes')} | {platform.processor() or 'cpu'} "
        f"{os.cpu_count()} cores | torch {torch.__version__}, {torch.get_num_threads()} threads | "
        f"load average {load}"
    )


def load_references(model: PixelModel, ids: Sequence[str]) -> torch.Tensor:
    """``(N, C, H, W)`` bundled photos fitted to the model's input."""
    stimuli = resolve_stimuli(NULL_STIMULI).select(list(ids))
    by_id = {s.id: s for s in stimuli}
    return torch.stack([stimuli.load(by_id[i], model.input_shape) for i in ids])


def shared_null(model: PixelModel, layers: Sequence[str], n_pairs: int) -> NullDistribution:
    """The null of distinct-stimulus pairs from the bundled photos (cached by ``compute_null``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        return compute_null(model, list(layers), resolve_stimuli(NULL_STIMULI), n_pairs, seed=0)


class TargetCheck:
    """Whether stimuli are good, validated metamers of their references at one layer.

    Parameters
    ----------
    model
        The generating model.
    layer
        The generation layer.
    references
        ``(N, C, H, W)`` references; checks name items by index into it.
    null
        A null covering ``layer`` (its maxima are the thresholds).
    max_loss
        Largest normalised L2 loss accepted (0.1 = 20 dB SNR).

    Attributes
    ----------
    seconds
        Time spent in checks so far (to subtract from a method's wall time).
    """

    def __init__(
        self,
        model: PixelModel,
        layer: str,
        references: torch.Tensor,
        null: NullDistribution,
        max_loss: float = 0.1,
    ) -> None:
        self.model, self.layer, self.max_loss = model, layer, max_loss
        self.references, self.null = references, null
        with torch.inference_mode():
            self.target = model.activations(references, [layer])[layer].clone()
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, synthesis, stimuli: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``(n,)`` bool: item ``indices[k]`` with stimulus ``stimuli[k]`` meets the target.

        The engine's stop-criterion protocol (``synthesis`` is not needed here).
        """
        started = time.perf_counter()
        ok = self.evaluate(stimuli, indices)["reached"]
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return torch.tensor(ok)

    def evaluate(self, stimuli: torch.Tensor, indices: torch.Tensor) -> dict[str, np.ndarray]:
        """Every part of the test: label match, the metrics, the loss and ``reached``.

        The label and null tests are the package's one judgement
        (:func:`metamers.validation.judge`, 1000-way labels); the loss bound is the
        benchmark's own target on top.
        """
        indices = torch.as_tensor(indices).long()
        stimuli = stimuli.detach().clamp(0.0, 1.0)
        table = judge(
            self.model,
            stimuli,
            self.references[indices],
            [self.layer],
            self.null,
            labels=LabelSpace("native"),
        )
        with torch.inference_mode():
            acts = self.model.activations(stimuli, [self.layer])[self.layer]
            loss = normalized_l2(acts, self.target[indices]).cpu().numpy()
        return {
            "label": table["label_match"].to_numpy(),
            "loss": loss,
            **{m: table[m].to_numpy() for m in SIMILARITY_METRICS},
            "reached": table["passed"].to_numpy() & (loss <= self.max_loss),
        }


def truncated_network(model: PixelModel, layer: str) -> nn.Module:
    """The plain network from pixels to ``layer`` (EfficientNet ``blocks.K``), no hooks."""
    net = model.net
    if not layer.startswith("blocks."):
        raise ValueError(f"truncation is written for EfficientNet blocks.K layers, not {layer!r}")
    depth = int(layer.split(".")[1])
    return nn.Sequential(model.preprocess, net.conv_stem, net.bn1, *net.blocks[: depth + 1]).eval()


def median(values: Sequence[float]) -> float | None:
    """Median, or ``None`` for no values."""
    return float(np.median(values)) if len(values) else None
