"""Findings: the questions a metamer study answers, as tables with bootstrap CIs over stimuli.

A study's per-stimulus tables (recognition by observers, the representation
test, acceptance, loss trajectories) and a description of its generators and
observers (:class:`Catalogue`: architecture, training, seed, ensemble members,
synthesis condition, layers in order of depth) are turned into one table per
question (``docs/findings.md``):

1. ``depth``: recognisability of accepted metamers by held-out observers at each
   generation depth, and the late − early difference.
2. ``robust``: robust − standard generator of one architecture, per depth, judged
   by observers of *other* architectures.
3. ``ensemble``: ensemble metamers − the single-model metamers of its members, judged
   by held-out seeds of the member architectures and by architectures outside it.
4. ``seeds``: same architecture (other seed) − other architectures, as observers of
   one generator's metamers.
5. ``measures``: every contrast of 1–4 and 6 measured by recognisability and by the
   representation test side by side (effect / bootstrap SE), plus their agreement.
6. ``conditions``: synthesis conditions of one model (starts, optimisers): acceptance
   rate, steps until the SNR criterion is met, recognisability and the share of
   decisions drawn to one class (a start's bias).

Every interval is a percentile bootstrap over reference stimuli (a stimulus is
resampled with all its observers and conditions: a paired, clustered bootstrap),
so a difference between two conditions measured on the same stimuli is paired.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DEPTH_NAMES = {3: ("early", "middle", "late"), 2: ("early", "late")}
MIN_SE = 1e-9
"""A bootstrap SE below this (every resample gave the same difference) gets no z."""


@dataclass(frozen=True)
class GeneratorFacts:
    """What the analysis needs to know about one generator.

    Attributes
    ----------
    name
        The generator as the tables name it (``MetamerResult.generator``).
    architectures
        Architecture of each generating model (one; several for an ensemble).
    training
        ``standard`` or ``robust`` (an ensemble: its members' if they agree).
    seed
        Training seed of the model (``None``: unknown, or an ensemble).
    layers
        Generation layers as the tables name them, in order of depth.
    models
        The generating model names (one; several for an ensemble).
    condition
        Synthesis settings that differ from the study's (empty for the main condition).
    """

    name: str
    architectures: tuple[str, ...]
    training: str
    seed: int | None
    layers: tuple[str, ...]
    models: tuple[str, ...]
    condition: dict[str, Any] = field(default_factory=dict)

    @property
    def is_ensemble(self) -> bool:
        """Whether several models generate jointly."""
        return len(self.models) > 1

    def depth(self, layer: str) -> str:
        """``early``/``middle``/``late`` (or ``depth N``) of one of its layers.

        Parameters
        ----------
        layer
            One of :attr:`layers`.
        """
        index = self.layers.index(layer)
        names = DEPTH_NAMES.get(len(self.layers))
        return names[index] if names else f"depth {index + 1}"


@dataclass(frozen=True)
class ObserverFacts:
    """An observer: its name in the tables, architecture, training and seed.

    Attributes
    ----------
    name
        The observer as the tables name it (the model name).
    architecture, training, seed
        As for :class:`GeneratorFacts`.
    """

    name: str
    architecture: str
    training: str
    seed: int | None


@dataclass(frozen=True)
class Catalogue:
    """The generators and observers of a study.

    Attributes
    ----------
    generators, observers
        Their facts.
    """

    generators: tuple[GeneratorFacts, ...]
    observers: tuple[ObserverFacts, ...]

    def generator(self, name: str) -> GeneratorFacts:
        """The facts of one generator.

        Parameters
        ----------
        name
            The generator as the tables name it.
        """
        return next(g for g in self.generators if g.name == name)

    def held_out(self, generator: GeneratorFacts) -> list[ObserverFacts]:
        """Observers that are none of the generator's own models."""
        return [o for o in self.observers if o.name not in generator.models]


def bootstrap_difference(
    a: pd.Series, b: pd.Series, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of ``a``, of ``b`` and of ``a − b``, with paired bootstrap CIs over stimuli.

    The stimuli of either series are resampled together; in each resample each
    mean is taken over the drawn stimuli that the series has (a stimulus whose
    metamer was rejected in one condition simply does not count there).

    Parameters
    ----------
    a, b
        One value per stimulus (index: stimulus id); NaNs are dropped.
    n_boot, seed, level
        Resamples, their seed and the coverage of the percentile CIs.

    Returns
    -------
    dict
        ``a``, ``b``, ``diff``, ``ci_low``, ``ci_high`` (of the difference),
        ``se`` (bootstrap SD of the difference), ``z`` (``diff / se``),
        ``p`` (two-sided bootstrap p-value of no difference), ``n_a``, ``n_b``;
        NaN where a side has no value.
    """
    a, b = a.dropna(), b.dropna()
    ids = a.index.union(b.index)
    values = np.stack([a.reindex(ids).to_numpy(float), b.reindex(ids).to_numpy(float)])
    result = {
        "a": float(a.mean()) if len(a) else np.nan,
        "b": float(b.mean()) if len(b) else np.nan,
    }
    result |= {"n_a": len(a), "n_b": len(b)}
    empty = {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "se": np.nan, "z": np.nan}
    if not len(a) or not len(b):
        return result | empty | {"p": np.nan}
    rng = np.random.default_rng(seed)
    draws = values[:, rng.integers(0, len(ids), (n_boot, len(ids)))]  # (2, n_boot, n)
    with warnings.catch_warnings():  # a resample may draw none of one side's stimuli
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(draws, axis=2)
    diffs = means[0] - means[1]
    diffs = diffs[~np.isnan(diffs)]
    tail = (1.0 - level) / 2.0
    diff = result["a"] - result["b"]
    se = float(diffs.std(ddof=1)) if diffs.size > 1 else np.nan
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()) if diffs.size else np.nan
    return result | {
        "diff": diff,
        "ci_low": float(np.quantile(diffs, tail)),
        "ci_high": float(np.quantile(diffs, 1 - tail)),
        "se": se,
        "z": diff / se if se > MIN_SE else np.nan,  # no spread: a z would be meaningless
        "p": float(min(1.0, p)),
    }


def per_stimulus(
    table: pd.DataFrame,
    value: str,
    generators: Sequence[str],
    layers: Sequence[str] | None,
    observers: Sequence[str],
) -> pd.Series:
    """Mean of ``value`` per stimulus over the chosen generators, layers and observers.

    Parameters
    ----------
    table
        A per-stimulus table with ``generator``, ``layer``, ``stimulus_id``,
        ``observer`` and ``value`` columns (recognition, or the representation test).
    value
        The column to average (``correct_vs_label``, ``passed``).
    generators, observers
        The rows to keep.
    layers
        Generation layers to keep (``None``: all).

    Returns
    -------
    pandas.Series
        Indexed by stimulus id; stimuli with no row are absent.
    """
    rows = table["generator"].isin(generators) & table["observer"].isin(observers)
    if layers is not None:
        rows &= table["layer"].isin(layers)
    chosen = table.loc[rows, ["stimulus_id", value]].astype({value: float})
    return chosen.groupby("stimulus_id")[value].mean()


@dataclass
class Measures:
    """The per-stimulus tables the questions are asked of.

    Attributes
    ----------
    recognition
        :func:`~metamers.evaluation.recognition.recognition_table` rows of accepted
        metamers (``correct_vs_label`` is the recognisability).
    representation
        :func:`~metamers.evaluation.representation.representation_table` rows
        (``passed``); averaged over each observer's layers per stimulus.
    acceptance
        :func:`~metamers.validation.validate_results` rows (``accepted_all_models``).
    losses
        Loss trajectories: ``generator, layer, stimulus, step, loss``.
    n_boot, seed
        Bootstrap resamples and seed of every CI.
    """

    recognition: pd.DataFrame
    representation: pd.DataFrame | None = None
    acceptance: pd.DataFrame | None = None
    losses: pd.DataFrame | None = None
    n_boot: int = 1000
    seed: int = 0

    def tables(self) -> dict[str, pd.DataFrame]:
        """The two measures as ``(generator, layer, stimulus_id, observer, value)`` tables."""
        out = {"recognisability": self.recognition.rename(columns={"correct_vs_label": "value"})}
        if self.representation is not None and not self.representation.empty:
            keys = ["generator", "layer", "stimulus_id", "observer"]
            passed = self.representation.astype({"passed": float})
            out["representation test"] = (
                passed.groupby(keys, sort=False)["passed"].mean().rename("value").reset_index()
            )
        return out


@dataclass(frozen=True)
class Contrast:
    """A comparison of two cells, each a set of (generators, layers) judged by observers.

    Attributes
    ----------
    question, name
        Which question it answers and a short description.
    a, b
        ``(generators, layers or None)`` of each side.
    observers
        The observers judging side ``a`` (and ``b`` unless ``observers_b`` is given).
    observers_b
        Other observers for side ``b`` (the same metamers judged by two observer sets).
    """

    question: str
    name: str
    a: tuple[tuple[str, ...], tuple[str, ...] | None]
    b: tuple[tuple[str, ...], tuple[str, ...] | None]
    observers: tuple[str, ...]
    observers_b: tuple[str, ...] | None = None

    def measure(self, table: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
        """The contrast on one measure's table (see :func:`bootstrap_difference`).

        Parameters
        ----------
        table
            ``generator, layer, stimulus_id, observer, value`` rows.
        n_boot, seed
            Bootstrap resamples and their seed.
        """
        a = per_stimulus(table, "value", self.a[0], self.a[1], self.observers)
        b = per_stimulus(table, "value", self.b[0], self.b[1], self.observers_b or self.observers)
        return bootstrap_difference(a, b, n_boot=n_boot, seed=seed)


def depth_contrasts(catalogue: Catalogue) -> list[Contrast]:
    """Question 1: late − early for every single-model generator, by its held-out observers."""
    contrasts = []
    for g in catalogue.generators:
        if g.is_ensemble or g.condition or len(g.layers) < 2:
            continue
        observers = tuple(o.name for o in catalogue.held_out(g))
        contrasts.append(
            Contrast(
                "1",
                f"{g.name} ({g.training}): {g.depth(g.layers[-1])} − {g.depth(g.layers[0])}",
                ((g.name,), (g.layers[-1],)),
                ((g.name,), (g.layers[0],)),
                observers,
            )
        )
    return contrasts


def robust_contrasts(catalogue: Catalogue) -> list[Contrast]:
    """Question 2: robust − standard generator of one architecture, per depth.

    Judged by observers of other architectures (either training), so that
    neither side is judged by its own kind of model.
    """
    contrasts = []
    plain = [g for g in catalogue.generators if not g.is_ensemble and not g.condition]
    for robust in (g for g in plain if g.training == "robust"):
        standard = next(
            (
                g
                for g in plain
                if g.training == "standard"
                and g.architectures == robust.architectures
                and len(g.layers) == len(robust.layers)
            ),
            None,
        )
        if standard is None:
            continue
        observers = tuple(
            o.name for o in catalogue.observers if o.architecture not in robust.architectures
        )
        for depth, (r_layer, s_layer) in enumerate(zip(robust.layers, standard.layers)):
            contrasts.append(
                Contrast(
                    "2",
                    f"{robust.name} − {standard.name}, {robust.depth(robust.layers[depth])}",
                    ((robust.name,), (r_layer,)),
                    ((standard.name,), (s_layer,)),
                    observers,
                )
            )
    return contrasts


def ensemble_contrasts(catalogue: Catalogue) -> list[Contrast]:
    """Question 3: ensemble − its members' single-model metamers, per depth and observer set.

    The single-model side pools the members' own metamers (one value per stimulus:
    their mean). Observer sets: held-out standard models of the member
    architectures (inside), and of the other architectures (outside).
    """
    contrasts = []
    singles = {
        g.models[0]: g
        for g in catalogue.generators
        if not g.is_ensemble and not g.condition and g.seed is not None
    }
    for ens in (g for g in catalogue.generators if g.is_ensemble and not g.condition):
        members = [singles[m] for m in ens.models if m in singles]
        if len(members) != len(ens.models):
            continue
        standard = [
            o for o in catalogue.observers if o.name not in ens.models and o.training == "standard"
        ]
        groups = {
            "inside": [o.name for o in standard if o.architecture in ens.architectures],
            "outside": [o.name for o in standard if o.architecture not in ens.architectures],
        }
        for depth, layer in enumerate(ens.layers):
            single_layers = tuple(m.layers[depth] for m in members)
            for where, observers in groups.items():
                if not observers:
                    continue
                contrasts.append(
                    Contrast(
                        "3",
                        f"{ens.name} − its members alone, {ens.depth(layer)}, "
                        f"observers {where} the ensemble",
                        ((ens.name,), (layer,)),
                        (tuple(m.name for m in members), single_layers),
                        tuple(observers),
                    )
                )
    return contrasts


def seed_contrasts(catalogue: Catalogue) -> list[Contrast]:
    """Question 4: observers of the same architecture (other seed) − of other architectures.

    Only standard observers of the generator's own training, per generator and depth.
    """
    contrasts = []
    for g in catalogue.generators:
        if g.is_ensemble or g.condition:
            continue
        held = [o for o in catalogue.held_out(g) if o.training == g.training]
        same = tuple(o.name for o in held if o.architecture in g.architectures)
        other = tuple(o.name for o in held if o.architecture not in g.architectures)
        if not same or not other:
            continue
        for layer in g.layers:
            cell = ((g.name,), (layer,))
            name = f"{g.name}, {g.depth(layer)}: same architecture − other architectures"
            contrasts.append(Contrast("4", name, cell, cell, same, other))
    return contrasts


def condition_contrasts(catalogue: Catalogue) -> list[Contrast]:
    """Question 6: each synthesis condition − the main condition of the same model, per depth."""
    contrasts = []
    for cond in (g for g in catalogue.generators if g.condition and not g.is_ensemble):
        main = next(
            (
                g
                for g in catalogue.generators
                if not g.condition and g.models == cond.models and len(g.layers) == len(cond.layers)
            ),
            None,
        )
        if main is None:
            continue
        observers = tuple(o.name for o in catalogue.held_out(cond))
        for c_layer, m_layer in zip(cond.layers, main.layers):
            contrasts.append(
                Contrast(
                    "6",
                    f"{cond.name} − {main.name}, {cond.depth(c_layer)}",
                    ((cond.name,), (c_layer,)),
                    ((main.name,), (m_layer,)),
                    observers,
                )
            )
    return contrasts


def contrast_table(
    contrasts: Sequence[Contrast], measures: Measures, measure: str = "recognisability"
) -> pd.DataFrame:
    """One row per contrast on one measure: both sides, the difference, its CI, SE, z and p.

    Parameters
    ----------
    contrasts
        From the ``*_contrasts`` functions.
    measures
        The study's per-stimulus tables.
    measure
        ``recognisability`` or ``representation test``.
    """
    table = measures.tables().get(measure)
    rows = []
    for contrast in contrasts:
        stats = contrast.measure(table, measures.n_boot, measures.seed) if table is not None else {}
        rows.append({"question": contrast.question, "contrast": contrast.name, **stats})
    return pd.DataFrame(rows)


def depth_table(catalogue: Catalogue, measures: Measures) -> pd.DataFrame:
    """Question 1's curve: recognisability by held-out observers per generator and depth.

    Parameters
    ----------
    catalogue
        The study's generators and observers.
    measures
        The study's per-stimulus tables.

    Returns
    -------
    pandas.DataFrame
        ``generator, training, kind, depth, layer, recognisability, ci_low, ci_high,
        n, accepted_fraction, accepted_n``.
    """
    rows = []
    for g in catalogue.generators:
        observers = [o.name for o in catalogue.held_out(g)]
        for layer in g.layers:
            rows.append(
                {
                    "generator": g.name,
                    "training": g.training,
                    "kind": _kind(g),
                    "depth": g.depth(layer),
                    "layer": layer,
                    **recognisability(measures, g.name, layer, observers),
                    **acceptance_rate(measures.acceptance, g.name, layer),
                }
            )
    return pd.DataFrame(rows)


def recognisability(
    measures: Measures, generator: str, layer: str, observers: Sequence[str]
) -> dict[str, Any]:
    """Mean recognisability of one generator layer's metamers by ``observers``, with its CI.

    Parameters
    ----------
    measures
        The study's per-stimulus tables.
    generator, layer
        The metamers (as the tables name them).
    observers
        Whose decisions count (averaged per stimulus first).

    Returns
    -------
    dict
        ``recognisability``, ``ci_low``, ``ci_high`` (bootstrap over stimuli) and ``n``.
    """
    from metamers.evaluation.recognition import bootstrap_mean

    values = per_stimulus(measures.recognition, "correct_vs_label", [generator], [layer], observers)
    stats = bootstrap_mean(values.to_numpy(), n_boot=measures.n_boot, seed=measures.seed)
    return {
        "recognisability": stats["mean"],
        "ci_low": stats["ci_low"],
        "ci_high": stats["ci_high"],
        "n": stats["n"],
    }


def _kind(g: GeneratorFacts) -> str:
    if g.condition:
        return "condition"
    return "ensemble" if g.is_ensemble else "model"


def acceptance_rate(acceptance: pd.DataFrame | None, generator: str, layer: str) -> dict[str, Any]:
    """Accepted fraction (Wilson 95 % CI) of one generator's metamers at one layer.

    Parameters
    ----------
    acceptance
        Acceptance rows (one per metamer and generating model); ``None``: unknown.
    generator, layer
        The generator (as the tables name it) and its generation layer.
    """
    if acceptance is None or acceptance.empty:
        return {"accepted_fraction": np.nan, "accepted_n": 0}
    rows = acceptance[
        (acceptance["generator"] == generator) & (acceptance["generation_layer"] == layer)
    ]
    per_metamer = rows.groupby("stimulus_id")["accepted_all_models"].first()
    n, k = len(per_metamer), int(per_metamer.sum())
    low, high = wilson_interval(k, n)
    return {
        "accepted_fraction": k / n if n else np.nan,
        "accepted_ci_low": low,
        "accepted_ci_high": high,
        "accepted_n": n,
    }


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (NaNs when ``n`` is 0).

    Parameters
    ----------
    k, n
        Successes and trials.
    z
        Normal quantile (1.96: 95 %).
    """
    if n == 0:
        return np.nan, np.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def steps_to_criterion(
    losses: pd.DataFrame, acceptance: pd.DataFrame, generator: str, layer: str
) -> pd.Series:
    """Per metamer: the first step whose loss meets the SNR part of the acceptance rule.

    With the ``normalized_l2`` objective at one layer of one model, the SNR of
    the activations is ``−20·log10(loss)`` dB, so the SNR criterion is met once
    the loss falls below ``10**(−threshold / 20)``. Spearman and Pearson are not
    tracked during synthesis, so this is when the SNR test is first passed, a
    lower bound on the steps to full acceptance. Metamers that never meet it are
    NaN.

    Parameters
    ----------
    losses
        ``generator, layer, stimulus, step, loss``.
    acceptance
        Acceptance rows with ``snr_db_threshold``.
    generator, layer
        The generator (single model, ``normalized_l2``) and its layer.
    """
    rows = acceptance[
        (acceptance["generator"] == generator) & (acceptance["generation_layer"] == layer)
    ]
    if rows.empty or "snr_db_threshold" not in rows:
        return pd.Series(dtype=float)
    limit = 10 ** (-float(rows["snr_db_threshold"].iloc[0]) / 20)
    mine = losses[(losses["generator"] == generator) & (losses["layer"] == layer)]
    below = mine[mine["loss"] < limit]
    first = below.groupby("stimulus")["step"].min()
    return first.reindex(sorted(set(mine["stimulus"]))).astype(float)


def class_pull(
    recognition: pd.DataFrame, generator: str, layer: str, observers: Sequence[str]
) -> dict[str, Any]:
    """The class observers most often choose for metamers of *other* classes, and how often.

    A start that is another stimulus can pull metamers towards its own class;
    this is measured without knowing the start: for each class ``c``, the share
    of decisions on metamers of references not labelled ``c`` that say ``c``;
    the largest share and its class are returned (chance level about
    ``error rate / (classes − 1)``).

    Parameters
    ----------
    recognition
        Recognition rows with ``reference_choice`` … ``metamer_choice`` and the label
        (``correct_vs_label``); the reference's class is the observer's choice on the
        reference.
    generator, layer, observers
        Which metamers and which observers' decisions.
    """
    rows = recognition[
        (recognition["generator"] == generator)
        & (recognition["layer"] == layer)
        & recognition["observer"].isin(observers)
    ]
    if rows.empty:
        return {"pull_class": None, "pull_share": np.nan}
    shares = {
        c: float((rows.loc[rows["reference_choice"] != c, "metamer_choice"] == c).mean())
        for c in sorted(set(rows["metamer_choice"]))
    }
    best = max(shares, key=shares.get)
    return {"pull_class": str(best), "pull_share": shares[best]}


def conditions_table(catalogue: Catalogue, measures: Measures) -> pd.DataFrame:
    """Question 6: per synthesis condition of a model and depth, everything a condition changes.

    Parameters
    ----------
    catalogue
        The study's generators and observers.
    measures
        The study's per-stimulus tables (losses and acceptance needed).

    Returns
    -------
    pandas.DataFrame
        ``generator, condition, depth, layer, accepted_fraction`` (+ CI, n),
        ``steps_median`` (+ CI) of :func:`steps_to_criterion` over metamers that
        meet it, ``reached`` (their share), ``recognisability`` (+ CI, n) by
        held-out observers, ``pull_class`` and ``pull_share`` (:func:`class_pull`).
    """
    models_with_conditions = {g.models for g in catalogue.generators if g.condition}
    rows = []
    for g in catalogue.generators:
        if g.is_ensemble or g.models not in models_with_conditions:
            continue
        observers = [o.name for o in catalogue.held_out(g)]
        for layer in g.layers:
            row: dict[str, Any] = {
                "generator": g.name,
                "condition": _describe(g.condition),
                "depth": g.depth(layer),
                "layer": layer,
                **acceptance_rate(measures.acceptance, g.name, layer),
            }
            if measures.losses is not None and measures.acceptance is not None:
                steps = steps_to_criterion(measures.losses, measures.acceptance, g.name, layer)
                reached = steps.dropna()
                stats = _bootstrap_median(reached.to_numpy(), measures.n_boot, measures.seed)
                row |= {
                    "steps_median": stats[0],
                    "steps_ci_low": stats[1],
                    "steps_ci_high": stats[2],
                    "reached": len(reached) / len(steps) if len(steps) else np.nan,
                }
            row |= recognisability(measures, g.name, layer, observers)
            row |= class_pull(measures.recognition, g.name, layer, observers)
            rows.append(row)
    return pd.DataFrame(rows)


def _describe(condition: dict[str, Any]) -> str:
    if not condition:
        return "main"
    return ", ".join(f"{k}={v}" for k, v in condition.items() if k != "init_source")


def _bootstrap_median(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    if values.size == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, values.size, (n_boot, values.size))], axis=1)
    return (
        float(np.median(values)),
        float(np.quantile(medians, 0.025)),
        float(np.quantile(medians, 0.975)),
    )


def measures_table(contrasts: Sequence[Contrast], measures: Measures) -> pd.DataFrame:
    """Question 5: every contrast by recognisability and by the representation test.

    Parameters
    ----------
    contrasts
        The contrasts of questions 1–4 and 6.
    measures
        The study's per-stimulus tables.

    Returns
    -------
    pandas.DataFrame
        ``question, contrast`` and, per measure, the difference, its CI and
        ``z`` (difference / bootstrap SE: how sharply the measure separates the
        two conditions), plus ``sharper`` (the measure with the larger ``|z|``)
        and ``agree`` (whether the two differences have the same sign).
    """
    names = {"recognisability": "rec", "representation test": "rep"}
    frames = []
    for measure, short in names.items():
        table = contrast_table(contrasts, measures, measure)
        if table.empty or "diff" not in table:
            continue
        keep = table[["question", "contrast", "diff", "ci_low", "ci_high", "z"]]
        frames.append(
            keep.rename(columns={c: f"{short}_{c}" for c in ("diff", "ci_low", "ci_high", "z")})
        )
    if len(frames) < 2:
        return frames[0] if frames else pd.DataFrame()
    joined = frames[0].merge(frames[1], on=["question", "contrast"], how="left", sort=False)
    rec, rep = joined["rec_z"].abs(), joined["rep_z"].abs()
    joined["sharper"] = np.where(
        rec.isna() | rep.isna(), "", np.where(rec >= rep, "recognisability", "representation test")
    )
    joined["agree"] = np.sign(joined["rec_diff"]) == np.sign(joined["rep_diff"])
    return joined


def cell_agreement(catalogue: Catalogue, measures: Measures) -> pd.DataFrame:
    """Question 5's cells: recognisability and representation pass rate per generator layer × observer.

    Parameters
    ----------
    catalogue
        The study's generators and observers.
    measures
        The study's per-stimulus tables.

    Returns
    -------
    pandas.DataFrame
        ``generator, depth, observer, recognisability, representation, n``; cells
        where the two measures disagree most are first (``gap`` = recognisability −
        representation).
    """
    tables = measures.tables()
    if "representation test" not in tables:
        return pd.DataFrame()
    keys = ["generator", "layer", "observer"]
    rec = tables["recognisability"].groupby(keys)["value"].agg(["mean", "size"])
    rep = tables["representation test"].groupby(keys)["value"].mean()
    joined = rec.join(rep.rename("representation"), how="inner").reset_index()
    joined = joined.rename(columns={"mean": "recognisability", "size": "n"})
    depth = {(g.name, layer): g.depth(layer) for g in catalogue.generators for layer in g.layers}
    joined.insert(
        1,
        "depth",
        [depth.get((g, lay), "") for g, lay in zip(joined["generator"], joined["layer"])],
    )
    joined["gap"] = joined["recognisability"] - joined["representation"]
    return joined.reindex(joined["gap"].abs().sort_values(ascending=False).index).reset_index(
        drop=True
    )


def findings_tables(catalogue: Catalogue, measures: Measures) -> dict[str, pd.DataFrame]:
    """Every findings table a study supports (a question without its ingredients is left out).

    Parameters
    ----------
    catalogue
        The study's generators and observers.
    measures
        The study's per-stimulus tables.

    Returns
    -------
    dict
        ``depth`` (question 1's curve), ``contrasts`` (questions 1–4 and 6 on
        recognisability), ``conditions`` (question 6), ``measures`` and
        ``cells`` (question 5); empty tables are left out.
    """
    contrasts = [
        *depth_contrasts(catalogue),
        *robust_contrasts(catalogue),
        *ensemble_contrasts(catalogue),
        *seed_contrasts(catalogue),
        *condition_contrasts(catalogue),
    ]
    tables = {
        "depth": depth_table(catalogue, measures),
        "contrasts": contrast_table(contrasts, measures),
        "conditions": conditions_table(catalogue, measures),
        "measures": measures_table(contrasts, measures),
        "cells": cell_agreement(catalogue, measures),
    }
    return {name: table for name, table in tables.items() if not table.empty}
