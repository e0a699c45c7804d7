"""Acceptance of metamers against their generators' nulls, and the full layer matrix.

A metamer generated at layer ``L`` is *accepted* (Feather et al. 2023) when

1. the generating model's label for the metamer equals its label for the
   reference (in an explicit :class:`~metamers.decisions.LabelSpace`: 16-way
   for ImageNet models by default, as published), and
2. Spearman ρ, Pearson r and dB SNR of metamer vs reference activations at
   ``L`` each pass the :class:`~metamers.null.criterion.NullCriterion` (beyond
   the **maximum** of the null at ``L`` by default).

Both are decided by :func:`metamers.validation.judge`. Every table records the
label space, the criterion and the null's size, so a stored validation can be
checked against the settings of a later request (:func:`check_validation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from metamers.decisions import LabelSpace
from metamers.defaults import NULL_STIMULI
from metamers.errors import ConfigError
from metamers.models import PixelModel
from metamers.null.criterion import NullCriterion
from metamers.null.distribution import NullDistribution, compute_null
from metamers.similarity.metrics import SIMILARITY_METRICS
from metamers.stimuli import StimulusSet, resolve_stimuli
from metamers.synthesis.jobs import LayerJob
from metamers.synthesis.results import MetamerResult
from metamers.validation.judge import check_null_for_model, judge, measure

NullSource = NullDistribution | Mapping[str, NullDistribution] | Callable[..., NullDistribution]
"""One null, ``{model name: null}``, or ``get(model, layers) -> NullDistribution``."""

ModelSource = Mapping[str, PixelModel] | Callable[[str], PixelModel] | None
"""``{name: model}``, ``load(name) -> model``, or ``None`` for :func:`metamers.models.load_model`."""

SETTINGS_COLUMNS = ("label_space", "criterion_kind", "criterion_q", "criterion_alpha",
                    "criterion_inclusive", "null_pairs")  # fmt: skip
"""Columns of a validation table that say under which settings it was made."""


def accept(
    model: PixelModel,
    metamers: torch.Tensor,
    references: torch.Tensor,
    layer: str,
    null: NullDistribution,
    *,
    stimulus_ids: Sequence[str] | None = None,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Acceptance test of metamers generated at ``layer`` (one row per metamer).

    Parameters
    ----------
    model
        The generating model.
    metamers, references
        ``(N, ...)`` stimuli (fitted to the model's input by the judgement).
    layer
        Generation layer ``L`` (the null must cover it).
    null
        Null distribution of this model, covering ``layer``.
    stimulus_ids
        Names for the rows (default ``0..N-1``).
    labels
        Label space of the label test (default ``LabelSpace()``).
    criterion
        Default :class:`NullCriterion` (``> max``).
    batch_size
        Pairs per forward pass.

    Returns
    -------
    pandas.DataFrame
        The :func:`~metamers.validation.judge` columns, with ``accepted``.
    """
    table = judge(
        model,
        metamers,
        references,
        [layer],
        null,
        criterion=criterion,
        labels=labels,
        check_label=True,
        stimulus_ids=stimulus_ids,
        batch_size=batch_size,
    )
    table["accepted"] = table["passed"]
    return table


def similarity_matrix(
    model: PixelModel,
    metamers: torch.Tensor,
    references: torch.Tensor,
    generation_layers: Sequence[str],
    measured_layers: Sequence[str],
    null: NullDistribution,
    *,
    stimulus_ids: Sequence[str] | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Metamer-vs-reference similarity at every measured layer, for metamers of every layer.

    Parameters
    ----------
    model
        The generating model.
    metamers, references
        ``(N, ...)`` stimuli.
    generation_layers
        Generation layer of each metamer (``N`` names).
    measured_layers
        Layers to measure (the null must cover them all).
    null
        The model's null distribution.
    stimulus_ids
        Names of the metamers (default ``0..N-1``).
    batch_size
        Pairs per forward pass.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per metamer × measured layer × metric: ``value`` and the
        null's ``null_min``, ``null_median``, ``null_max`` at that layer,
        ``exceeds_null_max`` and ``diagonal`` (measured layer = generation layer).
    """
    n = metamers.shape[0]
    if len(generation_layers) != n:
        raise ConfigError(f"{len(generation_layers)} generation layers for {n} metamers")
    check_null_for_model(null, model, measured_layers)
    values, _, _ = measure(model, metamers, references, measured_layers, batch_size=batch_size)
    ids = list(stimulus_ids) if stimulus_ids is not None else [str(i) for i in range(n)]
    frames = []
    for layer in measured_layers:
        for metric in SIMILARITY_METRICS:
            column = null.column(layer, metric)
            value = values[layer][metric]
            frames.append(
                pd.DataFrame(
                    {
                        "stimulus_id": ids,
                        "model": model.name,
                        "generation_layer": list(generation_layers),
                        "measured_layer": layer,
                        "metric": metric,
                        "value": value,
                        "null_min": float(column.min()),
                        "null_median": float(np.median(column)),
                        "null_max": float(column.max()),
                        "exceeds_null_max": NullCriterion().passes(value, null, layer, metric),
                        "diagonal": [g == layer for g in generation_layers],
                        "null_pairs": null.n_pairs,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def null_getter(nulls: NullSource) -> Callable[[PixelModel, list[str]], NullDistribution]:
    """Normalise a null source to ``get(model, layers) -> NullDistribution``.

    Parameters
    ----------
    nulls
        One null, a mapping from model name to null, or a callable
        ``(model, layers) -> NullDistribution`` (e.g. from :func:`null_provider`).
    """
    if isinstance(nulls, NullDistribution):
        return lambda model, layers: nulls
    if isinstance(nulls, Mapping):

        def from_mapping(model: PixelModel, layers: list[str]) -> NullDistribution:
            if model.name not in nulls:
                raise ConfigError(f"no null given for model {model.name}; have {sorted(nulls)}")
            return nulls[model.name]

        return from_mapping
    return nulls


def null_provider(
    stimuli: StimulusSet | str | None, n_pairs: int, **null_options
) -> Callable[[PixelModel, list[str]], NullDistribution]:
    """``get(model, layers)`` computing (or loading from the cache) each model's null.

    Parameters
    ----------
    stimuli
        Natural stimuli for the pairs: a set, a spec string, or ``None`` for the
        default pool of each model's modality (:data:`metamers.defaults.NULL_STIMULI`:
        ``bundled:photos`` for images, ``bundled:words-null`` for sounds).
    n_pairs
        Number of pairs ``N``.
    **null_options
        Passed to :func:`~metamers.null.compute_null` (seed, cache_dir, ...).
    """
    pools: dict[str, StimulusSet] = {}

    def pool(model: PixelModel) -> StimulusSet:
        if isinstance(stimuli, StimulusSet):
            return stimuli
        spec = stimuli if stimuli is not None else NULL_STIMULI[model.modality]
        if spec not in pools:
            pools[spec] = resolve_stimuli(spec)
        return pools[spec]

    def get(model: PixelModel, layers: list[str]) -> NullDistribution:
        return compute_null(model, layers, pool(model), n_pairs, **null_options)

    return get


def model_getter(
    models: ModelSource, results: Sequence[MetamerResult] = ()
) -> Callable[[str], PixelModel]:
    """Normalise a model source to ``load(name) -> PixelModel``.

    Parameters
    ----------
    models
        ``{name: model}``, a loader, or ``None``: each generator of ``results``
        loaded as its metamers recorded (:func:`recorded_loader`), any other
        name by :func:`metamers.models.load_model`.
    results
        The metamers whose generators are to be loaded (used when ``models``
        is ``None``).
    """
    if models is None:
        return recorded_loader(results)
    if isinstance(models, Mapping):

        def from_mapping(name: str) -> PixelModel:
            if name not in models:
                raise ConfigError(f"no model given for {name}; have {sorted(models)}")
            return models[name]

        return from_mapping
    return models


def recorded_loader(
    results: Sequence[MetamerResult],
    fallback: Callable[[str], PixelModel] | None = None,
    *,
    trust_code: bool = False,
    device: str | torch.device | None = None,
) -> Callable[[str], PixelModel]:
    """``load(name)`` that loads each generator the way its metamers recorded.

    Metamers written by :func:`metamers.synthesis.generate_metamers` record
    how each generating model was loaded
    (:attr:`~metamers.synthesis.MetamerResult.model_loads`: its ``file:``
    path, weights file and SHA-256, ``random_weights`` and seed), so a folder
    made from a ``file:`` model, a ``--weights`` file or random weights can be
    validated and evaluated without repeating those options. A name without
    a recorded load (an older folder, an observer) goes to ``fallback``. Each
    model is loaded once; where a folder records several loads of one model
    (its weights file moved between runs), the first that loads is used.

    Parameters
    ----------
    results
        Stored metamers.
    fallback
        ``load(name)`` for other names (default :func:`metamers.models.load_model`).
    trust_code
        Consent to run a recorded ``file:`` model's code; without it such a
        model is refused (a recorded path is never consent to run code).
    device
        Where to put models loaded from their records.

    Raises
    ------
    ModelError
        (from ``load``) A recorded ``file:`` model without ``trust_code``, or a
        recorded weights file that is missing or has changed.
    """
    from metamers.errors import ModelError
    from metamers.models.registry import load_from_spec, load_model

    specs: dict[str, list[dict]] = {}
    for result in results:
        for name, spec in result.model_loads.items():
            if spec not in specs.setdefault(name, []):
                specs[name].append(spec)
    fallback = fallback or load_model
    loaded: dict[str, PixelModel] = {}

    def from_records(name: str) -> PixelModel:
        errors = []
        for spec in specs[name]:
            try:
                return load_from_spec(spec, trust_code=trust_code, device=device)
            except ModelError as exc:
                errors.append(exc)
        raise errors[0]

    def load(name: str) -> PixelModel:
        if name not in loaded:
            loaded[name] = from_records(name) if name in specs else fallback(name)
        return loaded[name]

    return load


def check_generator_weights(results: Sequence[MetamerResult], model: PixelModel) -> None:
    """Refuse a generating model whose weights differ from those its metamers recorded.

    Metamers written by :func:`metamers.synthesis.generate_metamers` record each
    generating model's :meth:`~metamers.models.PixelModel.fingerprint`; results
    without that record (or of other models) are not checked.

    Parameters
    ----------
    results
        Stored metamers.
    model
        A loaded generating model.

    Raises
    ------
    ConfigError
        A result of ``model.name`` was made with other weights.
    """
    for result in results:
        recorded = dict(zip(result.models, result.settings.get("model_fingerprints", ())))
        if recorded.get(model.name, model.fingerprint()) != model.fingerprint():
            raise ConfigError(
                f"{model.name} loaded here has weights {model.fingerprint()}, but metamer "
                f"{result.stimulus_id} was made with {recorded[model.name]}; load the model "
                "with the weights used to generate it (the same --weights or --random-weights)"
            )


def validate_results(
    results: Sequence[MetamerResult],
    nulls: NullSource,
    *,
    models: ModelSource = None,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Acceptance test for stored metamers, grouped by generating model.

    One null per model is asked for, covering every generation layer of that
    model's metamers. An ensemble metamer gets one row per generating model (a
    joint job ``a+b`` one row per layer), and ``accepted_all_models`` says whether
    it is accepted by every model at every layer it was generated at. Every
    path that validates a folder (``metamers validate``, ``evaluate_directory``,
    a study's validate task) calls this function.

    Parameters
    ----------
    results
        Stored metamers (e.g. ``metamers.synthesis.load_results(DIR)``).
    nulls
        One null, ``{model_name: null}``, or ``get(model, layers)`` (:func:`null_provider`).
    models
        ``{name: PixelModel}`` or ``load(name) -> PixelModel``; default: each
        generator loaded as its metamers recorded (:func:`recorded_loader`),
        else :func:`metamers.models.load_model`.
    labels, criterion, batch_size
        As in :func:`accept`.

    Returns
    -------
    pandas.DataFrame
        The :func:`accept` columns plus ``result_index``, ``generator``,
        ``generation_layer`` and ``accepted_all_models``; one row per result ×
        generating model × generation layer.

    Raises
    ------
    ConfigError
        No results, or a generating model whose weights differ from the ones
        recorded with its metamers (:func:`check_generator_weights`).
    """
    if not results:
        raise ConfigError("no metamers to validate")
    get_null, get_model = null_getter(nulls), model_getter(models, results)
    frames = []
    for name, entries in _entries_by_model(results).items():
        model = get_model(name)
        check_generator_weights([results[i] for i, _ in entries], model)
        layers = list(dict.fromkeys(layer for _, layer in entries))
        null = get_null(model, layers)
        for layer in layers:
            indices = [i for i, item_layer in entries if item_layer == layer]
            frame = accept(
                model,
                torch.stack([results[i].metamer for i in indices]),
                torch.stack([results[i].reference for i in indices]),
                layer,
                null,
                stimulus_ids=[results[i].stimulus_id for i in indices],
                labels=labels,
                criterion=criterion,
                batch_size=batch_size,
            )
            frame.insert(0, "result_index", indices)
            frame.insert(1, "generator", [results[i].generator for i in indices])
            frame.insert(2, "generation_layer", [results[i].layer for i in indices])
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True).sort_values(
        ["result_index", "model", "layer"], kind="stable"
    )
    table["accepted_all_models"] = table.groupby("result_index")["accepted"].transform("all")
    return table.reset_index(drop=True)


def _entries_by_model(results: Sequence[MetamerResult]) -> dict[str, list[tuple[int, str]]]:
    """Per generating model, ``(result index, generation layer)`` for each layer it matched.

    A joint job (``a+b``: one metamer matching several layers of a model) is
    judged at each of its layers; it is accepted only if it passes at all of them.
    """
    entries: dict[str, list[tuple[int, str]]] = {}
    for index, result in enumerate(results):
        if len(result.models) != len(result.layers):
            raise ConfigError(
                f"result {index} has {len(result.models)} models, {len(result.layers)} layers"
            )
        job = LayerJob.from_record(result.layers)
        for name, layers in zip(result.models, job.layers):
            entries.setdefault(name, []).extend((index, layer) for layer in layers)
    return entries


def check_validation(
    table: pd.DataFrame,
    results: Sequence[MetamerResult],
    *,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
    n_pairs: int | None = None,
    models: ModelSource = None,
    source: str = "the stored validation",
) -> None:
    """Raise unless a stored validation table was made for these metamers under these settings.

    Parameters
    ----------
    table
        A table written by :func:`validate_results`.
    results
        The metamers it should describe (same order).
    labels, criterion
        The settings asked for now (defaults as in :func:`accept`).
    n_pairs
        The null size asked for now; ``None`` accepts whatever size was used.
    models
        Where to find the generating models, to describe ``labels`` for each.
    source
        How to name the table in the error (e.g. its path).

    Raises
    ------
    ConfigError
        The table describes other metamers, or was made under other settings;
        the message names both and the command that redoes it.
    """
    missing = [c for c in (*SETTINGS_COLUMNS, "result_index", "stimulus_id") if c not in table]
    if missing:
        raise ConfigError(f"{source} lacks {missing} (written by an older version); re-validate")
    expected = [(i, r.stimulus_id) for i, r in enumerate(results)]
    stored = sorted(set(zip(table["result_index"], table["stimulus_id"].astype(str))))
    if stored != expected:
        raise ConfigError(
            f"{source} describes {len(stored)} other metamers than the {len(results)} here; "
            "re-validate"
        )
    wanted = _wanted_settings(table, results, labels or LabelSpace(), criterion, models)
    for column, value in wanted.items():
        held = sorted(set(table[column].tolist()), key=str)
        if held != [value] and not (isinstance(value, list) and held == sorted(value, key=str)):
            raise ConfigError(
                f"{source} was made with {column}={held}, this request asks for {value}; "
                "re-validate with the same settings"
            )
    if n_pairs is not None and set(table["null_pairs"]) != {n_pairs}:
        raise ConfigError(
            f"{source} used a null of {sorted(set(table['null_pairs']))} pairs, this request "
            f"asks for {n_pairs}; re-validate with the same --pairs"
        )


def _wanted_settings(
    table: pd.DataFrame,
    results: Sequence[MetamerResult],
    labels: LabelSpace,
    criterion: NullCriterion | None,
    models: ModelSource,
) -> dict[str, object]:
    wanted: dict[str, object] = dict((criterion or NullCriterion()).as_record())
    spaces = set()
    get_model = model_getter(models, results)
    for name in dict.fromkeys(n for r in results for n in r.models):
        spaces.add(labels.describe(get_model(name)))
    wanted["label_space"] = sorted(spaces) if len(spaces) > 1 else spaces.pop()
    return wanted


def accepted_mask(table: pd.DataFrame, n_results: int) -> np.ndarray:
    """``(n_results,)`` booleans from a :func:`validate_results` table.

    Parameters
    ----------
    table
        The validation table, with ``result_index`` and ``accepted_all_models``
        columns.
    n_results
        How many metamers were validated (the length of the ``results`` list).

    Returns
    -------
    numpy.ndarray
        ``mask[i]`` is whether metamer ``i`` is accepted by all its generating
        models; ``False`` for a metamer without rows.
    """
    accepted = table.groupby("result_index")["accepted_all_models"].first()
    return np.array([bool(accepted.get(i, False)) for i in range(n_results)])
