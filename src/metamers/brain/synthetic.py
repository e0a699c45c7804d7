"""Planted ground truth: responses that are a known linear function of features, plus noise.

Each target's reliable response (the same on every repetition) is
``sqrt(f) · (X w)/sd + sqrt(1 − f) · u`` with ``u`` a stimulus-specific part
no feature explains: ``f`` is the explainable variance of the reliable
response, what a noise-corrected r² estimates. Each repetition adds
independent noise of standard deviation ``noise``. Used by the tests, the
benchmark and the documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metamers.brain.data import NeuralData


@dataclass
class Planted:
    """A planted dataset.

    Attributes
    ----------
    features
        ``{"planted": X, "random": an unrelated layer}``.
    data
        The responses.
    signal
        ``(stimuli, targets)`` reliable responses (no repetition noise).
    explainable
        ``(targets,)`` the planted explainable variance ``f``.
    """

    features: dict[str, np.ndarray]
    data: NeuralData
    signal: np.ndarray
    explainable: np.ndarray


def planted_dataset(
    *,
    n_stimuli: int = 165,
    n_features: int = 3,
    n_targets: int = 200,
    n_repetitions: int = 3,
    explainable: float | np.ndarray = 0.5,
    noise: float = 1.0,
    participants: int = 1,
    rois: tuple[str, ...] = (),
    seed: int = 0,
) -> Planted:
    """Features and responses with a planted linear relation.

    Parameters
    ----------
    n_stimuli, n_features, n_targets, n_repetitions
        Sizes.
    explainable
        Explainable variance of each target's reliable response (scalar or per target).
    noise
        Standard deviation of each repetition's noise (the reliable response has SD 1).
    participants
        Targets are divided evenly among this many participants (``p0``, ``p1``, ...).
    rois
        ROI labels assigned to targets in turn (column ``roi``).
    seed
        Seed of ``numpy.random.default_rng``.

    Examples
    --------
    >>> planted = planted_dataset(n_targets=4, seed=1)
    >>> planted.data.responses.shape, planted.features["planted"].shape
    ((165, 4, 3), (165, 3))
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_stimuli, n_features))
    linear = x @ rng.normal(size=(n_features, n_targets))
    linear = (linear - linear.mean(0)) / linear.std(0)
    unique = rng.normal(size=(n_stimuli, n_targets))
    unique = (unique - unique.mean(0)) / unique.std(0)
    share = np.broadcast_to(np.asarray(explainable, dtype=np.float64), (n_targets,))
    signal = np.sqrt(share) * linear + np.sqrt(1 - share) * unique
    responses = signal[:, :, None] + noise * rng.normal(size=(*signal.shape, n_repetitions))
    targets = pd.DataFrame(
        {
            "target_id": [f"t{i}" for i in range(n_targets)],
            "participant": [f"p{i * participants // n_targets}" for i in range(n_targets)],
        }
    )
    if rois:
        targets["roi"] = [rois[i % len(rois)] for i in range(n_targets)]
    data = NeuralData(
        responses,
        [f"sound{i:03d}" for i in range(n_stimuli)],
        targets,
        meta={"dataset": "planted", "seed": seed, "noise": noise},
    )
    features = {"planted": x, "random": rng.normal(size=(n_stimuli, 2 * n_features + 10))}
    return Planted(features, data, signal, np.array(share))
