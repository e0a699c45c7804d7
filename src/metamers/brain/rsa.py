"""Representational similarity between model layers and brain responses, with a noise ceiling.

Per split, each unit and each voxel is z-scored with the training stimuli's
mean and standard deviation; a stimulus × stimulus RDM (correlation
distance, :func:`metamers.similarity.compute_rdm`) is built on the training
and on the test stimuli, for each layer and for each participant (× ROI)
from the repetition-mean responses. Model and brain RDMs are compared over
the upper triangle (default Spearman); each participant's best layer is
chosen on the training stimuli and read out on the test stimuli.

The noise ceiling is leave one participant out: each participant's test RDM
against the pool of the others' (lower bound) and of everyone's (upper
bound), with the *same* comparator as the model score. (The published code
compares model and brain by Spearman but computes its ceiling by Pearson.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import squareform

from metamers.brain.data import NeuralData
from metamers.brain.encoding import check_features
from metamers.brain.splits import Splits
from metamers.errors import ConfigError
from metamers.io import write_json_atomic, write_table
from metamers.similarity.rdm import RSA_METHODS, compare_rdms, compute_rdm, upper_triangle

POOLS = ("mean", "ranks")


@dataclass
class RSAResult:
    """Model–brain RSA of one model's layers.

    Attributes
    ----------
    scores
        ``model, layer, split, participant[, roi], rsa_train, rsa_test``.
    best
        Per participant (× ROI) and split: ``best_layer`` (on training stimuli)
        and ``value`` (its test score).
    ceiling
        Per participant (× ROI) and split: ``ceiling_lower``, ``ceiling_upper``.
    settings
        Comparator, pooling, distance, model, data.
    """

    scores: pd.DataFrame
    best: pd.DataFrame
    ceiling: pd.DataFrame
    layers: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per participant (× ROI): median over splits of the best-layer score and the ceiling."""
        keys = [c for c in ("participant", "roi") if c in self.best]
        best = self.best.groupby(keys)["value"].median().rename("rsa")
        ceiling = self.ceiling.groupby(keys)[["ceiling_lower", "ceiling_upper"]].median()
        return pd.concat([best, ceiling], axis=1).reset_index()

    def save(self, out: str | Path) -> list[Path]:
        """Write ``rsa_scores``, ``rsa_best``, ``rsa_ceiling``, ``rsa_summary`` and ``rsa.json``.

        Parameters
        ----------
        out
            Output folder.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in (
            ("rsa_scores", self.scores),
            ("rsa_best", self.best),
            ("rsa_ceiling", self.ceiling),
            ("rsa_summary", self.summary()),
        ):
            written += write_table(table, out / name)
        write_json_atomic(out / "rsa.json", {"layers": self.layers, "settings": self.settings})
        return [*written, out / "rsa.json"]


def zscore_by_training(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Columns z-scored with the training rows' mean and SD; constant columns dropped.

    Parameters
    ----------
    x
        ``(stimuli, units)``.
    train
        Training row indices.
    """
    mean = x[train].mean(0)
    std = x[train].std(0)
    keep = std > 0
    return (x[:, keep] - mean[keep]) / std[keep]


def pool_rdms(vectors: np.ndarray, pool: str = "mean") -> np.ndarray:
    """Pool RDM upper triangles (one per row): their mean, or the mean of their ranks.

    Parameters
    ----------
    vectors
        ``(rdms, pairs)``.
    pool
        ``"mean"`` (the published ceiling) or ``"ranks"`` (rsatoolbox's pooling
        for rank comparators).
    """
    if pool not in POOLS:
        raise ConfigError(f"unknown RDM pooling {pool!r}; choose one of {', '.join(POOLS)}")
    if pool == "ranks":
        vectors = np.apply_along_axis(stats.rankdata, 1, vectors)
    return vectors.mean(0)


def _compare(a: np.ndarray, b: np.ndarray, method: str) -> float:
    return compare_rdms(squareform(a, checks=False), squareform(b, checks=False), method)


def noise_ceiling(vectors: np.ndarray, method: str = "spearman", pool: str = "mean") -> tuple:
    """Leave-one-out noise ceiling of RDMs (one per row, e.g. per participant).

    Parameters
    ----------
    vectors
        ``(rdms, pairs)`` upper triangles.
    method
        Comparator (as :func:`metamers.similarity.compare_rdms`).
    pool
        How the other RDMs are pooled (see :func:`pool_rdms`).

    Returns
    -------
    tuple of numpy.ndarray
        Per RDM: the lower bound (vs the pool of the others) and the upper
        bound (vs the pool of all).
    """
    if len(vectors) < 2:
        raise ConfigError("a leave-one-out noise ceiling needs at least 2 participants")
    everyone = pool_rdms(vectors, pool)
    lower, upper = [], []
    for i in range(len(vectors)):
        others = pool_rdms(np.delete(vectors, i, axis=0), pool)
        lower.append(_compare(vectors[i], others, method))
        upper.append(_compare(vectors[i], everyone, method))
    return np.array(lower), np.array(upper)


def _groups(data: NeuralData, roi: str | None) -> list[tuple[dict[str, str], np.ndarray]]:
    participants = data.participants()
    labels = None
    if roi is not None:
        if roi not in data.targets:
            raise ConfigError(f"no target column {roi!r} for ROIs")
        labels = data.targets[roi].to_numpy()
    out = []
    for participant in sorted(set(participants.tolist())):
        mask = participants == participant
        if labels is None:
            out.append(({"participant": participant}, mask))
            continue
        for value in pd.unique(labels[mask]):
            if pd.isna(value):
                continue
            sub = mask & (labels == value)
            out.append(({"participant": participant, "roi": str(value)}, sub))
    return out


def brain_rsa(
    features: Mapping[str, np.ndarray],
    data: NeuralData,
    splits: Splits,
    *,
    stimulus_ids: Sequence[str] | None = None,
    method: str = "spearman",
    pool: str = "mean",
    distance: str = "correlation",
    roi: str | None = None,
    model: str = "model",
) -> RSAResult:
    """RSA of every layer against every participant (× ROI), with a noise ceiling.

    Parameters
    ----------
    features
        ``{layer: (stimuli, features)}`` in model layer order.
    data
        The responses (the repetition mean is used).
    splits
        The same splits as the encoding (:meth:`Preset.make_splits`).
    stimulus_ids
        The feature rows' stimulus ids (default: ``data``'s order).
    method
        RDM comparator for the model score *and* the ceiling.
    pool
        Pooling of the other participants' RDMs for the ceiling.
    distance
        RDM distance (see :func:`metamers.similarity.compute_rdm`).
    roi
        A target column: one brain RDM per participant × value of it.
    model
        The model's name, in every row.
    """
    if method not in RSA_METHODS:
        raise ConfigError(f"unknown RSA method {method!r}; choose one of {', '.join(RSA_METHODS)}")
    if stimulus_ids is not None:
        data = data.align(stimulus_ids)
    layers = check_features(features, data.n_stimuli)
    groups = _groups(data, roi)
    mean = data.mean()
    rows, ceilings = [], []
    for number, (train, test) in enumerate(splits.indices(data.stimulus_ids)):
        brain = {}
        for key, mask in groups:
            z = zscore_by_training(mean[:, mask], train)
            brain[tuple(key.items())] = (
                upper_triangle(compute_rdm(z[train], distance)),
                upper_triangle(compute_rdm(z[test], distance)),
            )
        for layer, x in layers.items():
            z = zscore_by_training(x, train)
            model_train = compute_rdm(z[train], distance)
            model_test = compute_rdm(z[test], distance)
            for key, (rdm_train, rdm_test) in brain.items():
                rows.append(
                    {"model": model, "layer": layer, "split": number, **dict(key)}
                    | {
                        "rsa_train": compare_rdms(
                            model_train, squareform(rdm_train, checks=False), method
                        ),
                        "rsa_test": compare_rdms(
                            model_test, squareform(rdm_test, checks=False), method
                        ),
                    }
                )
        ceilings += _split_ceiling(brain, number, method, pool)
    scores = pd.DataFrame(rows)
    settings = {
        "model": model,
        "method": method,
        "ceiling_method": method,
        "pool": pool,
        "distance": distance,
        "roi": roi,
        "data": data.describe(),
    }
    return RSAResult(scores, _best_layers(scores), pd.DataFrame(ceilings), list(layers), settings)


def _split_ceiling(brain: dict, number: int, method: str, pool: str) -> list[dict]:
    by_roi: dict[str | None, list] = {}
    for key, (_, rdm_test) in brain.items():
        info = dict(key)
        by_roi.setdefault(info.get("roi"), []).append((info, rdm_test))
    rows = []
    for members in by_roi.values():
        if len(members) < 2:
            continue
        lower, upper = noise_ceiling(np.stack([m[1] for m in members]), method, pool)
        for (info, _), low, high in zip(members, lower, upper, strict=True):
            rows.append(info | {"split": number, "ceiling_lower": low, "ceiling_upper": high})
    return rows


def _best_layers(scores: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("model", "participant", "roi", "split") if c in scores]
    index = scores.groupby(keys)["rsa_train"].idxmax()
    best = scores.loc[index.dropna().astype(int), [*keys, "layer", "rsa_test"]]
    return best.rename(columns={"layer": "best_layer", "rsa_test": "value"}).reset_index(drop=True)
