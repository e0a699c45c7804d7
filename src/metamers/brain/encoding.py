"""Voxelwise (targetwise) encoding models: every layer, every split, every target at once.

:func:`fit_encoding` maps each layer's features to all targets of a
:class:`~metamers.brain.data.NeuralData` with cross-validated ridge
(:mod:`metamers.brain.ridge`), fitting the repetition mean and, for the
noise correction, each single repetition (1 + R fits per target per split,
all in one batched solve). It returns one tidy row per target × layer ×
split with the signed r, r², the reliabilities and the corrected r², and
the reporting columns of :func:`report_scores` (the clipping rule recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamers.brain.data import NeuralData
from metamers.brain.presets import Preset, get_preset
from metamers.brain.ridge import fit_ridge
from metamers.brain.scores import (
    corrected_reliability,
    noise_corrected_r2,
    pearson_columns,
    split_half_reliability,
)
from metamers.brain.splits import Splits
from metamers.errors import ConfigError
from metamers.io import write_json_atomic, write_table

ProgressFn = Callable[[str, int, int], None]


@dataclass
class EncodingResult:
    """The scores of one model's layers against one dataset.

    Attributes
    ----------
    scores
        One row per target × layer × split (see :func:`fit_encoding`).
    layers
        Layer names in model order.
    splits
        The splits used.
    preset
        The preset (settings) used.
    settings
        Everything else that was decided (model, backend, reporting rule, data).
    """

    scores: pd.DataFrame
    layers: list[str]
    splits: Splits
    preset: Preset
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> list[Path]:
        """Write ``scores`` (Parquet + CSV), ``splits.json`` and ``encoding.json`` into ``out``.

        Parameters
        ----------
        out
            Output folder (created).
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = write_table(self.scores, out / "scores")
        written.append(self.splits.save(out / "splits.json"))
        record = {
            "layers": self.layers,
            "preset": self.preset.to_dict(),
            "settings": self.settings,
        }
        write_json_atomic(out / "encoding.json", record)
        written.append(out / "encoding.json")
        return written


def check_features(features: Mapping[str, np.ndarray], n_stimuli: int) -> dict[str, np.ndarray]:
    """Each layer's features as a finite ``(stimuli, features)`` float64 array.

    Parameters
    ----------
    features
        ``{layer: array}``, one row per stimulus (more dimensions are flattened).
    n_stimuli
        The number of stimuli every layer must have.
    """
    if not features:
        raise ConfigError("no layers to map")
    out = {}
    for layer, array in features.items():
        array = np.asarray(array, dtype=np.float64)
        array = array.reshape(array.shape[0], -1)
        if array.shape[0] != n_stimuli:
            raise ConfigError(
                f"layer {layer!r} has features for {array.shape[0]} stimuli; the responses "
                f"cover {n_stimuli}"
            )
        if not np.isfinite(array).all():
            raise ConfigError(f"layer {layer!r} has NaN or infinite features")
        out[str(layer)] = array
    return out


def fit_encoding(
    features: Mapping[str, np.ndarray],
    data: NeuralData,
    *,
    stimulus_ids: Sequence[str] | None = None,
    preset: str | Preset = "default",
    splits: Splits | None = None,
    backend: str = "auto",
    device: str | None = None,
    model: str = "model",
    progress: ProgressFn | None = None,
) -> EncodingResult:
    """Fit and score an encoding model of every layer for every target.

    Parameters
    ----------
    features
        ``{layer: (stimuli, features)}`` in model layer order.
    data
        The responses.
    stimulus_ids
        The feature rows' stimulus ids (default: ``data``'s order). The data
        are reordered to them; ids the data lack are an error.
    preset
        :data:`~metamers.brain.presets.PRESETS` name or a :class:`Preset`.
    splits
        Splits to use (default: the preset's draw over ``data``'s canonical
        stimulus order, before any reordering, of the stimuli with features).
    backend, device
        Ridge backend and torch device (see :func:`~metamers.brain.ridge.fit_ridge`).
    model
        The model's name, in every row.
    progress
        Called as ``progress(layer, split_index, n_splits)`` after each split.

    Returns
    -------
    EncodingResult
        Rows with ``model, layer, split, target``, the target table's columns,
        ``alpha, alpha_edge, r, r2, data_reliability_raw, data_reliability,
        prediction_reliability_raw, prediction_reliability, r2_corrected``, and
        the reporting columns ``r_reported, r2_reported, r2_corrected_reported``.
    """
    preset = get_preset(preset)
    canonical = data.stimulus_ids
    if stimulus_ids is not None:
        data = data.align(stimulus_ids)
    layers = check_features(features, data.n_stimuli)
    if preset.noise_correction:
        data.require_repetitions(2)
    if splits is None:  # the preset's draw over the data's own order (the published one)
        present = set(data.stimulus_ids)
        splits = preset.make_splits([s for s in canonical if s in present])
    indices = splits.indices(data.stimulus_ids)
    frames = []
    for layer, x in layers.items():
        for number, (train, test) in enumerate(indices):
            frames.append(
                _score_split(x, data, train, test, preset, backend, device).assign(
                    layer=layer, split=number
                )
            )
            if progress is not None:
                progress(layer, number + 1, len(indices))
    scores = pd.concat(frames, ignore_index=True)
    scores = _with_targets(scores, data, model)
    scores = report_scores(scores, preset.negative_r)
    settings = {
        "model": model,
        "backend": backend,
        "reporting": {"negative_r": preset.negative_r, "corrected_max": preset.corrected_max},
        "data": data.describe(),
    }
    return EncodingResult(scores, list(layers), splits, preset, settings)


def _score_split(
    x: np.ndarray,
    data: NeuralData,
    train: np.ndarray,
    test: np.ndarray,
    preset: Preset,
    backend: str,
    device: str | None,
) -> pd.DataFrame:
    n_targets, reps = data.n_targets, data.n_repetitions
    mean = data.mean()
    blocks = [mean]
    if preset.noise_correction:
        blocks += [data.responses[:, :, i] for i in range(reps)]
    y = np.concatenate(blocks, axis=1)
    alphas = preset.alpha_grid if isinstance(preset.alphas, str) else preset.alpha_grid()
    fit = fit_ridge(x[train], y[train], x[test], alphas, backend=backend, device=device)
    predictions = fit.predictions
    if preset.upper_edge == "mean":
        predictions = _mean_at_upper_edge(predictions, fit.edge == "upper", y[train])
    r = pearson_columns(predictions[:, :n_targets], mean[test])
    table = {
        "target": np.arange(n_targets),
        "alpha": fit.alpha[:n_targets],
        "alpha_edge": fit.edge[:n_targets],
        "r": r,
        "r2": r**2,
    }
    if preset.noise_correction:
        rep_predictions = predictions[:, n_targets:].reshape(len(test), reps, n_targets)
        data_raw = split_half_reliability(data.responses[train])
        pred_raw = split_half_reliability(rep_predictions.transpose(0, 2, 1))
        data_rel = corrected_reliability(data_raw, reps, len(train))
        pred_rel = corrected_reliability(pred_raw, reps, len(test))
        table |= {
            "data_reliability_raw": data_raw,
            "data_reliability": data_rel,
            "prediction_reliability_raw": pred_raw,
            "prediction_reliability": pred_rel,
            "r2_corrected": noise_corrected_r2(r**2, data_rel, pred_rel),
        }
    return pd.DataFrame(table)


def _mean_at_upper_edge(
    predictions: np.ndarray, at_edge: np.ndarray, y_train: np.ndarray
) -> np.ndarray:
    if not at_edge.any():
        return predictions
    out = predictions.copy()
    out[:, at_edge] = y_train[:, at_edge].mean(0)
    return out


def _with_targets(scores: pd.DataFrame, data: NeuralData, model: str) -> pd.DataFrame:
    targets = data.targets.copy()
    targets.columns = [str(c) for c in targets.columns]
    if "participant" not in targets:
        targets["participant"] = data.participants()
    targets = targets.rename(columns={c: f"target_{c}" for c in targets if c in scores})
    merged = scores.join(targets, on="target")
    front = ["model", "layer", "split", "target"]
    merged.insert(0, "model", model)
    rest = [c for c in merged.columns if c not in front]
    return merged[front + rest]


def report_scores(scores: pd.DataFrame, negative_r: str = "zero") -> pd.DataFrame:
    """Add the reporting columns: the explicit, recorded clipping step.

    ``r_reported``: ``r``, with an undefined r (constant prediction) set to 0
    and, under ``negative_r="zero"`` (Tuckute, Feather et al.), a negative r
    set to 0; ``r2_reported = r_reported²``; ``r2_corrected_reported`` its
    noise-corrected value. The clip of the corrected r² at 1 happens after
    the median over splits (:func:`metamers.brain.selection.target_medians`).

    Parameters
    ----------
    scores
        A table of :func:`fit_encoding` (``r`` and, with a noise correction,
        the reliabilities).
    negative_r
        ``"zero"`` or ``"square"`` (Feather et al.: a negative r squared as it is).
    """
    if negative_r not in ("zero", "square"):
        raise ConfigError("negative_r must be 'zero' or 'square'")
    out = scores.copy()
    r = out["r"].fillna(0.0).to_numpy()
    if negative_r == "zero":
        r = np.maximum(r, 0.0)
    out["r_reported"] = r
    out["r2_reported"] = r**2
    if "data_reliability" in out:
        out["r2_corrected_reported"] = noise_corrected_r2(
            r**2, out["data_reliability"], out["prediction_reliability"]
        )
    out.attrs["negative_r"] = negative_r
    return out
