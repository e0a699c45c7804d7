"""Recognisability: do observer models classify metamers as they classify the references?

Following Feather et al. (2023): each observer classifies each (accepted)
metamer; accuracy is measured against the reference's own label and against
the generating model's label for the reference, 1000-way or 16-way
(Geirhos categories) for ImageNet models. Confidence intervals come from a
bootstrap over stimuli.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from metamers.decisions import LabelSpace, classify
from metamers.models import PixelModel
from metamers.stimuli import Target
from metamers.synthesis.results import MetamerResult


def _true_targets(
    results: Sequence[MetamerResult],
    targets: Mapping[str, Target | int | None],
    observer: PixelModel,
    labels: LabelSpace,
) -> np.ndarray:
    """True labels mapped into ``labels``; NaN where none, or where not in the observer's classes.

    A :class:`~metamers.stimuli.Target` counts only for an observer of its label
    space: a labelled stimulus the observer cannot be compared with is NaN, with
    a warning naming the stimuli when the observer's label space is known
    (``"folders"`` targets for an ``"imagenet"`` observer). A plain ``int`` is
    taken to be in the observer's own classes.
    """
    values = []
    foreign: dict[str | None, list[str]] = {}
    for result in results:
        target = targets.get(result.stimulus_id)
        if isinstance(target, Target):
            if target.label_space != observer.label_space or observer.label_space is None:
                if observer.label_space is not None:
                    foreign.setdefault(target.label_space, []).append(result.stimulus_id)
                values.append(np.nan)
                continue
            target = target.index
        mapped = labels.target(observer, None if target is None else int(target))
        values.append(np.nan if mapped is None else float(mapped))
    for space, ids in foreign.items():
        ids = list(dict.fromkeys(ids))
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        where = f"label space {space!r}" if space else "a label space not recorded"
        count = f"{len(ids)} stimul{'us is' if len(ids) == 1 else 'i are'}"
        warnings.warn(
            f"observer {observer.name} decides in label space {observer.label_space!r} but "
            f"{count} labelled in {where} ({shown}); their correct_vs_label is NaN. "
            "Label them in the observer's space "
            "(ImageNet WordNet-id or class-name folders, or a labels file: --labels FILE)",
            UserWarning,
            stacklevel=3,
        )
    return np.asarray(values)


def recognition_table(
    results: Sequence[MetamerResult],
    observers: Sequence[PixelModel],
    generators: dict[str, PixelModel] | None = None,
    *,
    targets: Mapping[str, Target | int | None] | None = None,
    labels: LabelSpace | None = None,
) -> pd.DataFrame:
    """One row per metamer × observer: decisions and whether they are correct.

    Parameters
    ----------
    results
        Metamers (typically only the accepted ones).
    observers
        Models that classify them (the generator may be among them). Observers
        that are not classifiers (``is_classifier`` false, e.g. ``silero_vad``)
        have no decisions and get no rows: they serve the representation test.
    generators
        Generating models by name, to label the references (single-model metamers);
        when missing, ``correct_vs_generator`` is NaN.
    targets
        True label per stimulus id: a :class:`~metamers.stimuli.Target` (index
        and label space, e.g. ``StimulusSet.targets()``), compared only by
        observers of that label space (others get NaN, with a warning when
        their label space is known), or an ``int`` in the observers' own classes.
    labels
        The label space of every decision (default ``LabelSpace()``: 16-way
        for ImageNet observers, as published; each model's own classes otherwise).

    Returns
    -------
    pandas.DataFrame
        Columns ``generator, layer, stimulus_id, observer, label_space,
        metamer_choice, reference_choice, correct_vs_label, correct_vs_generator,
        agrees_with_reference``.
    """
    results = list(results)
    if not results:
        return pd.DataFrame()
    metamers = torch.stack([r.metamer for r in results])
    references = torch.stack([r.reference for r in results])
    labels = labels or LabelSpace()
    frames = []
    for observer in (o for o in observers if o.is_classifier):
        truth = _true_targets(results, targets or {}, observer, labels)
        generator_labels = _generator_labels(results, generators or {}, observer, labels)
        on_metamer = classify(observer, metamers, labels)
        on_reference = classify(observer, references, labels)
        frames.append(
            pd.DataFrame(
                {
                    "generator": [r.generator for r in results],
                    "layer": [r.layer for r in results],
                    "stimulus_id": [r.stimulus_id for r in results],
                    "observer": observer.name,
                    "label_space": labels.describe(observer),
                    "metamer_choice": on_metamer,
                    "reference_choice": on_reference,
                    "correct_vs_label": _compare(on_metamer, truth),
                    "correct_vs_generator": _compare(on_metamer, generator_labels),
                    "agrees_with_reference": (on_metamer == on_reference).astype(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _compare(choices: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(targets), np.nan, (choices == targets).astype(float))


def _generator_labels(
    results: Sequence[MetamerResult],
    generators: dict[str, PixelModel],
    observer: PixelModel,
    labels: LabelSpace,
) -> np.ndarray:
    """The generator's decision on each reference, where it is comparable with the observer's.

    Comparable means both decide in the same label space (e.g. both 16-way, or
    both 1000-way ImageNet); elsewhere NaN.
    """
    decided = np.full(len(results), np.nan)
    for name, model in generators.items():
        if not model.is_classifier or labels.describe(model) != labels.describe(observer):
            continue
        rows = [i for i, r in enumerate(results) if r.models == (name,)]
        if rows:
            refs = torch.stack([results[i].reference for i in rows])
            decided[rows] = classify(model, refs, labels)
    return decided


def bootstrap_mean(
    values: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean with a percentile bootstrap CI and bootstrap SEM (NaNs dropped).

    Parameters
    ----------
    values
        Per-stimulus values (e.g. 0/1 correctness); NaNs are dropped first.
    n_boot
        Bootstrap resamples (with replacement, of the same size as the values).
    seed
        Seed of the resampling generator.
    level
        Coverage of the percentile CI (0.95: the 2.5 % and 97.5 % quantiles of the
        resampled means).

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``sem`` (standard deviation of the
        resampled means; NaN when ``n_boot`` is 1) and ``n`` (values kept); all
        NaN with ``n=0`` when no value is left.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "sem": np.nan, "n": 0}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return {
        "mean": float(values.mean()),
        "ci_low": float(np.quantile(means, tail)),
        "ci_high": float(np.quantile(means, 1.0 - tail)),
        "sem": float(means.std(ddof=1)) if n_boot > 1 else np.nan,
        "n": int(values.size),
    }


def summarize_recognition(
    table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Accuracy per generator × layer × observer with bootstrap CIs over stimuli.

    Parameters
    ----------
    table
        The table of :func:`recognition_table`.
    n_boot, seed
        Bootstrap resamples and seed of every CI (see :func:`bootstrap_mean`).

    Returns
    -------
    pandas.DataFrame
        One row per ``generator, layer, observer`` with, for each measure
        ``correct_vs_label``, ``correct_vs_generator`` and ``agrees_with_reference``,
        the columns ``{measure}_mean``, ``_ci_low``, ``_ci_high``, ``_sem`` and
        ``_n``; empty for an empty table.
    """
    rows = []
    if table.empty:
        return pd.DataFrame()
    for (generator, layer, observer), group in table.groupby(
        ["generator", "layer", "observer"], sort=False
    ):
        row = {"generator": generator, "layer": layer, "observer": observer}
        for measure in ("correct_vs_label", "correct_vs_generator", "agrees_with_reference"):
            stats = bootstrap_mean(group[measure].to_numpy(), n_boot=n_boot, seed=seed)
            row.update({f"{measure}_{k}": v for k, v in stats.items()})
        rows.append(row)
    return pd.DataFrame(rows)
