"""Model features of the stimuli for brain mapping, from :mod:`metamers.extraction`.

Any model and any layers, images or sounds. Audio conv layers are pooled as
published (``pool="time_mean"``: the mean over the last, time, axis, then
flattened); the pooling is a named option recorded with every result, as is
a permuted-weights control (:func:`metamers.models.controls.permuted_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metamers.errors import ConfigError
from metamers.extraction import Extractor
from metamers.models.base import PixelModel
from metamers.models.controls import permuted_weights
from metamers.stimuli.sets import StimulusSet

POOLS = ("none", "time_mean")


@dataclass
class LayerFeatures:
    """Features of a model's layers for a set of stimuli, and what they are.

    Attributes
    ----------
    features
        ``{layer: (stimuli, features)}`` float32, in the order of ``layers``.
    stimulus_ids
        The rows' stimulus ids.
    model
        The model's name (``NAME:permutedSEED`` for the control).
    info
        Model fingerprint, pooling, permutation seed, activation shapes.
    """

    features: dict[str, np.ndarray]
    stimulus_ids: list[str]
    model: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """Layer names, in order."""
        return list(self.features)


def pool_activation(activation: np.ndarray, pool: str) -> np.ndarray:
    """One batch's activation pooled and flattened to ``(batch, features)``.

    Parameters
    ----------
    activation
        ``(batch, ...)``; for ``"time_mean"`` the last axis is time (it needs at
        least ``(batch, features, time)``; a ``(batch, features)`` layer is kept).
    pool
        ``"none"`` or ``"time_mean"``.

    Examples
    --------
    >>> import numpy as np
    >>> pool_activation(np.ones((2, 3, 4, 5)), "time_mean").shape
    (2, 12)
    """
    if pool not in POOLS:
        raise ConfigError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
    if pool == "time_mean" and activation.ndim >= 3:
        activation = activation.mean(axis=-1)
    return activation.reshape(activation.shape[0], -1)


def layer_features(
    model: PixelModel,
    stimuli: StimulusSet,
    layers: Sequence[str],
    *,
    pool: str = "none",
    permuted_seed: int | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> LayerFeatures:
    """Extract, pool and flatten ``layers`` of ``model`` (or its permuted control) for ``stimuli``.

    Parameters
    ----------
    model
        The model.
    stimuli
        The stimuli whose responses are mapped.
    layers
        Layer names of the model.
    pool
        ``"none"`` or ``"time_mean"`` (the published pooling of audio conv layers).
    permuted_seed
        Map the permuted-weights control with this seed instead of the model.
    batch_size
        Stimuli per forward pass.
    progress
        Called with the number of stimuli done after each batch.
    """
    if pool not in POOLS:
        raise ConfigError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
    if permuted_seed is not None:
        model = permuted_weights(model, seed=int(permuted_seed))
    extractor = Extractor(model, batch_size=batch_size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    shapes: dict[str, list[int]] = {}
    ids: list[str] = []
    for chunk, arrays in extractor.iter_batches(stimuli, layers, flatten=False):
        ids += [s.id for s in chunk]
        for name, array in arrays.items():
            shapes[name] = list(array.shape[1:])
            parts[name].append(pool_activation(array, pool).astype(np.float32))
        if progress is not None:
            progress(len(chunk))
    info = {
        "model": model.name,
        "fingerprint": model.fingerprint(),
        "pool": pool,
        "permuted_seed": permuted_seed,
        "activation_shapes": shapes,
        "stimuli": stimuli.spec,
        "stimuli_fingerprint": stimuli.fingerprint(),
    }
    features = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    return LayerFeatures(features, ids, model.name, info)
