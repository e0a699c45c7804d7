"""Map one or more models (or their permuted controls) to a dataset, write every output.

The one library path behind ``metamers brain fit|rsa`` and a study's
``brain:`` section: the same splits for every model and for RSA, one
subfolder per model (:func:`metamers.io.path_name` of its name), and a
comparison figure and summary table over all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metamers.brain.data import NeuralData
from metamers.brain.encoding import EncodingResult, fit_encoding
from metamers.brain.features import LayerFeatures
from metamers.brain.outputs import write_encoding_outputs, write_rsa_outputs
from metamers.brain.plots import plot_layer_curves, plot_rsa, save_figure
from metamers.brain.presets import Preset, get_preset
from metamers.brain.rsa import RSAResult, brain_rsa
from metamers.brain.splits import Splits
from metamers.io import path_name, write_table

ProgressFn = Callable[[str, int, int], None]


def shared_splits(data: NeuralData, stimulus_ids: Sequence[str], preset: Preset) -> Splits:
    """The preset's splits over the data's stimuli that the model sees, in the data's order.

    With every stimulus of a published dataset, these are the published draws.

    Parameters
    ----------
    data
        The responses (their stimulus order is the canonical one).
    stimulus_ids
        The stimuli with features.
    preset
        The preset.
    """
    seen = set(map(str, stimulus_ids))
    return preset.make_splits([s for s in data.stimulus_ids if s in seen])


def map_encoding(
    features: Sequence[LayerFeatures],
    data: NeuralData,
    out: str | Path,
    *,
    preset: str | Preset = "default",
    backend: str = "auto",
    device: str | None = None,
    roi: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, EncodingResult], pd.DataFrame]:
    """Encoding models of every model's layers, written to ``out/<model>/``, compared in ``out``.

    Parameters
    ----------
    features
        One :class:`LayerFeatures` per model (e.g. a model and its permuted control).
    data
        The responses.
    out
        Output folder.
    preset
        Preset name or object.
    backend, device
        Ridge backend and device.
    roi
        A target column of ROI labels (curves and best layers per ROI).
    progress
        ``progress(model/layer, split, n_splits)``.

    Returns
    -------
    tuple
        ``{model: EncodingResult}`` and the summary table (also ``out/summary``):
        per model, the best layer of the mean curve and the split-half and
        leave-one-participant-out best-layer scores (mean ± SEM over participants).
    """
    out = Path(out)
    preset = get_preset(preset)
    results, curves, rows = {}, [], []
    splits = shared_splits(data, features[0].stimulus_ids, preset)
    out.mkdir(parents=True, exist_ok=True)
    splits.save(out / "splits.json")
    for item in features:
        report = None if progress is None else _prefixed(progress, item.model)
        result = fit_encoding(
            item.features,
            data,
            stimulus_ids=item.stimulus_ids,
            preset=preset,
            splits=splits,
            backend=backend,
            device=device,
            model=item.model,
            progress=report,
        )
        result.settings["features"] = item.info
        tables = write_encoding_outputs(result, out / path_name(item.model), roi=roi)
        results[item.model] = result
        curves.append(tables["curves"])
        rows.append(_summary_row(item.model, tables))
    layers = features[0].layers
    save_figure(plot_layer_curves(pd.concat(curves), layers), out / "corrected_r2_by_layer.png")
    summary = pd.DataFrame(rows)
    write_table(summary, out / "summary")
    return results, summary


def _prefixed(progress: ProgressFn, model: str) -> Callable[[str, int, int], None]:
    return lambda layer, done, total: progress(f"{model}/{layer}", done, total)


def _summary_row(model: str, tables: dict[str, pd.DataFrame]) -> dict:
    mean = tables["curves_summary"].set_index("layer")["mean"]
    best = tables["best_layer"]["value"]
    row = {
        "model": model,
        "best_layer_of_mean_curve": str(mean.idxmax()),
        "mean_curve_max": float(mean.max()),
        "split_half_mean": float(best.mean()),
        "split_half_sem": float(best.sem()) if len(best) > 1 else np.nan,
        "participants": len(best),
    }
    if "best_layer_lopo" in tables:
        lopo = tables["best_layer_lopo"]
        row |= {
            "lopo_mean": float(lopo["value"].mean()),
            "lopo_sem": float(lopo["value"].sem()),
            "lopo_layers": ",".join(sorted(set(lopo["best_layer"]))),
        }
    return row


def map_rsa(
    features: Sequence[LayerFeatures],
    data: NeuralData,
    out: str | Path,
    *,
    preset: str | Preset = "default",
    method: str = "spearman",
    pool: str = "mean",
    roi: str | None = None,
) -> tuple[dict[str, RSAResult], pd.DataFrame]:
    """RSA of every model's layers, written to ``out/<model>/``, compared in ``out``.

    Parameters
    ----------
    features
        One :class:`LayerFeatures` per model.
    data
        The responses.
    out
        Output folder.
    preset
        The preset whose splits are used (the same as the encoding's).
    method, pool, roi
        As for :func:`~metamers.brain.rsa.brain_rsa`.

    Returns
    -------
    tuple
        ``{model: RSAResult}`` and the summary (per model × participant [× ROI]).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = shared_splits(data, features[0].stimulus_ids, get_preset(preset))
    splits.save(out / "splits.json")
    results, summaries, scores = {}, [], []
    for item in features:
        result = brain_rsa(
            item.features,
            data,
            splits,
            stimulus_ids=item.stimulus_ids,
            method=method,
            pool=pool,
            roi=roi,
            model=item.model,
        )
        result.settings["features"] = item.info
        write_rsa_outputs(result, out / path_name(item.model))
        results[item.model] = result
        summaries.append(result.summary().assign(model=item.model))
        scores.append(result.scores)
    first = next(iter(results.values()))
    save_figure(
        plot_rsa(pd.concat(scores), first.ceiling, features[0].layers), out / "rsa_by_layer.png"
    )
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["model", *[c for c in summary.columns if c != "model"]]]
    write_table(summary, out / "rsa_summary")
    return results, summary
