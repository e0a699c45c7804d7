"""Acceptance of metamers against a null distribution, as published, and the full layer matrix.

A metamer generated at layer ``L`` is *accepted* (Feather et al. 2023) when

1. the generating model's label for the metamer equals its label for the
   reference (1000-way argmax, or the 16-way Geirhos choice), and
2. Spearman ρ, Pearson r and dB SNR of metamer vs reference activations at
   ``L`` each exceed the **maximum** of the null at ``L``.

The maximum of a null grows with its number of pairs ``N``, so every table
carries ``N`` and the number of distinct stimuli the null rests on. A
quantile or empirical p-value criterion is offered beside the published one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from metamers.errors import ConfigError, LayerError
from metamers.labels import sixteen_way_choice, sixteen_way_names
from metamers.models import LOGITS, PixelModel
from metamers.null.distribution import NullDistribution
from metamers.similarity.metrics import SIMILARITY_METRICS, similarities

CRITERION_KINDS = ("max", "quantile", "p_value")


@dataclass(frozen=True)
class NullCriterion:
    """How a similarity value is compared with a null.

    Attributes
    ----------
    kind
        ``"max"`` (published: value > null maximum), ``"quantile"`` (value >
        the null's ``q``-quantile) or ``"p_value"`` (empirical
        ``(1 + #{null ≥ value}) / (N + 1)`` below ``alpha``).
    q
        Quantile for ``kind="quantile"``.
    alpha
        Significance level for ``kind="p_value"``.
    """

    kind: str = "max"
    q: float = 0.999
    alpha: float = 0.001

    def __post_init__(self) -> None:
        if self.kind not in CRITERION_KINDS:
            raise ConfigError(f"unknown criterion {self.kind!r}; use one of {CRITERION_KINDS}")
        if not 0.0 < self.q <= 1.0 or not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"need 0 < q <= 1 and 0 < alpha < 1, got q={self.q}, a={self.alpha}")

    def check(self, null: NullDistribution) -> None:
        """Raise :class:`ConfigError` when the null is too small for this criterion."""
        if self.kind == "p_value" and self.alpha <= 1.0 / (null.n_pairs + 1):
            raise ConfigError(
                f"a {null.n_pairs}-pair null cannot give p < {self.alpha} (smallest p is "
                f"1/{null.n_pairs + 1}); compute more pairs or raise alpha"
            )

    def threshold(self, null: NullDistribution, layer: str, metric: str) -> float:
        """Value a similarity must exceed (for ``p_value``, the equivalent order statistic)."""
        column = null.column(layer, metric)
        if self.kind == "max":
            return float(column.max())
        if self.kind == "quantile":
            return float(np.quantile(column, self.q))
        # p < alpha  <=>  #{null >= v} <= k  <=>  v > the (k+1)-th largest null value.
        k = int(np.ceil(self.alpha * (column.size + 1) - 1)) - 1
        return float(np.sort(column)[::-1][k]) if k < column.size else float("-inf")

    def describe(self, null: NullDistribution) -> str:
        """E.g. ``"> max of a 2000-pair null (18 stimuli)"``."""
        rule = {"max": "max", "quantile": f"q{self.q:g}", "p_value": f"p<{self.alpha:g}"}[self.kind]
        return f"> {rule} of a {null.n_pairs}-pair null ({null.n_stimuli} stimuli)"


def model_labels(model: PixelModel, logits: torch.Tensor, sixteen_way: bool = False) -> np.ndarray:
    """The model's decision per stimulus: 1000-way argmax, or the 16-way Geirhos choice."""
    if sixteen_way:
        if model.label_space != "imagenet" or logits.shape[-1] != 1000:
            raise ConfigError(
                f"16-way labels need an ImageNet model; {model.name} has label space "
                f"{model.label_space!r}"
            )
        return sixteen_way_choice(logits).cpu().numpy()
    return logits.argmax(dim=1).cpu().numpy()


def label_names(model: PixelModel, labels: np.ndarray, sixteen_way: bool) -> list[str | None]:
    """Human-readable names for labels from :func:`model_labels` (``None`` when unknown)."""
    names = sixteen_way_names() if sixteen_way else model.class_names
    if not names:
        return [None] * len(labels)
    return [names[int(i)] if 0 <= int(i) < len(names) else None for i in labels]


def measure(
    model: PixelModel,
    metamers: torch.Tensor,
    references: torch.Tensor,
    layers: Sequence[str],
    *,
    with_logits: bool = False,
    batch_size: int = 16,
) -> tuple[dict[str, dict[str, np.ndarray]], torch.Tensor | None, torch.Tensor | None]:
    """Similarity of metamers to references at several layers, in one forward per batch.

    Returns
    -------
    values
        ``{layer: {metric: (N,)}}`` (reference is the SNR's signal).
    logits_metamer, logits_reference
        ``(N, classes)`` when ``with_logits``, else ``None``.
    """
    if metamers.shape != references.shape:
        raise ConfigError(
            f"metamers {tuple(metamers.shape)} and references {tuple(references.shape)} differ"
        )
    if tuple(metamers.shape[1:]) != model.input_shape:
        raise ConfigError(
            f"stimuli of shape {tuple(metamers.shape[1:])} do not fit {model.name} "
            f"(input shape {model.input_shape})"
        )
    wanted = list(dict.fromkeys([*layers, *([LOGITS] if with_logits else [])]))
    values = {layer: {m: [] for m in SIMILARITY_METRICS} for layer in layers}
    logits: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, metamers.shape[0], batch_size):
            m = metamers[start : start + batch_size].to(model.device, torch.float32)
            r = references[start : start + batch_size].to(model.device, torch.float32)
            acts = model.activations(torch.cat([m, r]), wanted)
            n = m.shape[0]
            for layer in layers:
                for metric, value in similarities(acts[layer][n:], acts[layer][:n]).items():
                    values[layer][metric].append(value.cpu().numpy())
            if with_logits:
                logits.append(acts[LOGITS].float().cpu())
    table = {
        layer: {metric: np.concatenate(parts) for metric, parts in per.items()}
        for layer, per in values.items()
    }
    if not with_logits:
        return table, None, None
    return table, *_split_logits(torch.cat(logits), metamers.shape[0], batch_size)


def _split_logits(
    logits: torch.Tensor, n_total: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo the per-batch ``[metamers, references]`` concatenation."""
    metamer_parts, reference_parts, offset = [], [], 0
    for start in range(0, n_total, batch_size):
        n = min(batch_size, n_total - start)
        metamer_parts.append(logits[offset : offset + n])
        reference_parts.append(logits[offset + n : offset + 2 * n])
        offset += 2 * n
    return torch.cat(metamer_parts), torch.cat(reference_parts)


def check_null_for_model(null: NullDistribution, model: PixelModel, layers: Sequence[str]) -> None:
    """Raise unless ``null`` was computed for this model's weights and covers ``layers``."""
    if null.model_fingerprint != model.fingerprint():
        raise ConfigError(
            f"the null was computed for {null.model} with weights {null.model_fingerprint}, "
            f"but {model.name} has weights {model.fingerprint()}; compute a null for this model"
        )
    null.check_layers(layers)


def accept(
    model: PixelModel,
    metamers: torch.Tensor,
    references: torch.Tensor,
    layer: str,
    null: NullDistribution,
    *,
    stimulus_ids: Sequence[str] | None = None,
    sixteen_way: bool = False,
    criterion: NullCriterion | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Published acceptance test of metamers generated at ``layer`` (one row per metamer).

    Parameters
    ----------
    model
        The generating model.
    metamers, references
        ``(N, *input_shape)`` stimuli.
    layer
        Generation layer ``L`` (the null must cover it).
    null
        Null distribution of this model, covering ``layer``.
    stimulus_ids
        Names for the rows (default ``0..N-1``).
    sixteen_way
        Compare 16-way (Geirhos) labels instead of 1000-way argmax (ImageNet models).
    criterion
        Default :class:`NullCriterion` ``("max")``, the published rule.

    Returns
    -------
    pandas.DataFrame
        Per metamer: labels and whether they match, each metric's value, the
        null's maximum, the threshold used, the empirical p-value and whether it
        passed, ``accepted`` and ``failed`` (the failed tests, comma-separated:
        ``label``, ``spearman``, ``pearson``, ``snr_db``; empty when accepted),
        plus the null's size (``null_pairs``, ``null_stimuli``).
    """
    criterion = criterion or NullCriterion()
    check_null_for_model(null, model, [layer])
    criterion.check(null)
    values, logits_m, logits_r = measure(
        model, metamers, references, [layer], with_logits=True, batch_size=batch_size
    )
    n = metamers.shape[0]
    ids = list(stimulus_ids) if stimulus_ids is not None else [str(i) for i in range(n)]
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} stimulus ids for {n} metamers")
    labels_m = model_labels(model, logits_m, sixteen_way)
    labels_r = model_labels(model, logits_r, sixteen_way)
    frame = pd.DataFrame(
        {
            "stimulus_id": ids,
            "model": model.name,
            "layer": layer,
            "label_space": "16-way" if sixteen_way else "1000-way",
            "label_reference": labels_r,
            "label_metamer": labels_m,
            "label_reference_name": label_names(model, labels_r, sixteen_way),
            "label_metamer_name": label_names(model, labels_m, sixteen_way),
            "label_match": labels_m == labels_r,
        }
    )
    failed = [np.where(frame["label_match"], "", "label")]
    for metric in SIMILARITY_METRICS:
        value = values[layer][metric]
        threshold = criterion.threshold(null, layer, metric)
        p_value = null.p_value(layer, metric, value)
        passed = p_value < criterion.alpha if criterion.kind == "p_value" else value > threshold
        frame[metric] = value
        frame[f"{metric}_null_max"] = null.max(layer, metric)
        frame[f"{metric}_threshold"] = threshold
        frame[f"{metric}_p"] = p_value
        frame[f"{metric}_pass"] = passed
        failed.append(np.where(passed, "", metric))
    frame["accepted"] = frame["label_match"] & np.logical_and.reduce(
        [frame[f"{m}_pass"] for m in SIMILARITY_METRICS]
    )
    frame["failed"] = [",".join(t for t in tests if t) for tests in zip(*failed)]
    frame["criterion"] = criterion.describe(null)
    frame["null_pairs"] = null.n_pairs
    frame["null_stimuli"] = null.n_stimuli
    return frame


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
    generation_layers
        Generation layer of each metamer (``N`` names).
    measured_layers
        Layers to measure (the null must cover them all).

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
                        "exceeds_null_max": value > column.max(),
                        "diagonal": [g == layer for g in generation_layers],
                        "null_pairs": null.n_pairs,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


NullSource = NullDistribution | Mapping[str, NullDistribution] | Callable[..., NullDistribution]


def null_getter(nulls: NullSource) -> Callable[[PixelModel, list[str]], NullDistribution]:
    """Normalise a null source to ``get(model, layers) -> NullDistribution``.

    Accepts one null, a mapping from model name to null, or a callable
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


class AcceptanceStop:
    """Per-item stop criterion for synthesis: which current metamers pass the acceptance test.

    A plain callable ``(metamers, references, layer) -> BoolTensor``: ``True``
    where the metamer is accepted at ``layer`` (label match, unless disabled,
    and all three metrics beyond the null's criterion). ``layer`` may be one
    name for the whole batch, a sequence of one name per item, or ``None`` for
    the single layer given at construction.

    Parameters
    ----------
    model
        The generating model.
    null
        Its null distribution (covering every layer the stop will be asked about).
    layer
        Default layer.
    criterion
        Default :class:`NullCriterion` (``"max"``).
    check_label
        Also require the label test (the published rule); ``False`` checks the similarities only.
    sixteen_way
        Compare 16-way labels (ImageNet models).
    """

    def __init__(
        self,
        model: PixelModel,
        null: NullDistribution,
        layer: str | None = None,
        *,
        criterion: NullCriterion | None = None,
        check_label: bool = True,
        sixteen_way: bool = False,
    ) -> None:
        self.model = model
        self.null = null
        self.layer = layer
        self.criterion = criterion or NullCriterion()
        self.check_label = check_label
        self.sixteen_way = sixteen_way
        check_null_for_model(null, model, [layer] if layer else [])
        self.criterion.check(null)

    def __call__(
        self,
        metamers: torch.Tensor,
        references: torch.Tensor,
        layer: str | Sequence[str] | None = None,
    ) -> torch.Tensor:
        layers = self._layers_per_item(layer, metamers.shape[0])
        accepted = torch.zeros(metamers.shape[0], dtype=torch.bool)
        for name in dict.fromkeys(layers):
            index = torch.tensor([i for i, item_layer in enumerate(layers) if item_layer == name])
            accepted[index] = self._accepted_at(metamers[index], references[index], name)
        return accepted.to(metamers.device)

    def _layers_per_item(self, layer: str | Sequence[str] | None, n: int) -> list[str]:
        layer = layer if layer is not None else self.layer
        if layer is None:
            raise LayerError("AcceptanceStop needs a layer (at construction or per call)")
        layers = [layer] * n if isinstance(layer, str) else list(layer)
        if len(layers) != n:
            raise LayerError(f"{len(layers)} layers given for {n} metamers")
        self.null.check_layers(list(dict.fromkeys(layers)))
        return layers

    def _accepted_at(self, metamers: torch.Tensor, references: torch.Tensor, layer: str):
        values, logits_m, logits_r = measure(
            self.model,
            metamers.detach(),
            references.detach(),
            [layer],
            with_logits=self.check_label,
        )
        ok = np.ones(metamers.shape[0], dtype=bool)
        if self.check_label:
            ok &= model_labels(self.model, logits_m, self.sixteen_way) == model_labels(
                self.model, logits_r, self.sixteen_way
            )
        for metric in SIMILARITY_METRICS:
            value = values[layer][metric]
            if self.criterion.kind == "p_value":
                ok &= self.null.p_value(layer, metric, value) < self.criterion.alpha
            else:
                ok &= value > self.criterion.threshold(self.null, layer, metric)
        return torch.from_numpy(ok)


ModelSource = Mapping[str, PixelModel] | Callable[[str], PixelModel] | None


def check_generator_weights(results: Sequence, model: PixelModel) -> None:
    """Refuse a generating model whose weights differ from those its metamers recorded.

    Metamers written by :func:`metamers.synthesis.generate_metamers` record each
    generating model's :meth:`~metamers.models.PixelModel.fingerprint`; results
    without that record (or of other models) are not checked.

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
    results: Sequence,
    nulls: NullSource,
    *,
    models: ModelSource = None,
    sixteen_way: bool = False,
    criterion: NullCriterion | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Acceptance test for stored metamers (:class:`~metamers.synthesis.results.MetamerResult`).

    Results are grouped by generating model; one null per model is asked for,
    covering every generation layer of that model's metamers. An ensemble
    metamer (several models) gets one row per generating model, and
    ``accepted_all_models`` says whether every one of them accepts it.

    Parameters
    ----------
    results
        ``MetamerResult`` records (e.g. from ``metamers.synthesis.load_results(DIR)``).
    nulls
        One null, ``{model_name: null}``, or ``get(model, layers) -> NullDistribution``
        (see :func:`null_provider`).
    models
        ``{name: PixelModel}`` or ``load(name) -> PixelModel``; default
        :func:`metamers.models.load_model`.
    sixteen_way, criterion, batch_size
        As in :func:`accept`.

    Returns
    -------
    pandas.DataFrame
        The :func:`accept` columns plus ``result_index``, ``generator`` and
        ``accepted_all_models``; one row per result × generating model.

    Raises
    ------
    ConfigError
        No results, or a generating model whose weights differ from the ones
        recorded with its metamers (:func:`check_generator_weights`).
    """
    if not results:
        raise ConfigError("no metamers to validate")
    get_null = null_getter(nulls)
    get_model = _model_getter(models)
    items: dict[str, list[tuple[int, str]]] = {}
    for index, result in enumerate(results):
        if len(result.models) != len(result.layers):
            raise ConfigError(
                f"result {index} has {len(result.models)} models, {len(result.layers)} layers"
            )
        for name, layer in zip(result.models, result.layers):
            items.setdefault(name, []).append((index, layer))
    frames = []
    for name, entries in items.items():
        model = get_model(name)
        check_generator_weights([results[i] for i, _ in entries], model)
        layers = list(dict.fromkeys(layer for _, layer in entries))
        null = get_null(model, layers)
        check_null_for_model(null, model, layers)
        for layer in layers:
            indices = [i for i, item_layer in entries if item_layer == layer]
            frame = accept(
                model,
                fit_to_model(torch.stack([results[i].metamer for i in indices]), model),
                fit_to_model(torch.stack([results[i].reference for i in indices]), model),
                layer,
                null,
                stimulus_ids=[results[i].stimulus_id for i in indices],
                sixteen_way=sixteen_way,
                criterion=criterion,
                batch_size=batch_size,
            )
            frame.insert(0, "result_index", indices)
            frame.insert(1, "generator", [results[i].generator for i in indices])
            frames.append(frame)
    table = pd.concat(frames, ignore_index=True).sort_values(["result_index", "model"])
    table["accepted_all_models"] = table.groupby("result_index")["accepted"].transform("all")
    return table.reset_index(drop=True)


def _model_getter(models: ModelSource) -> Callable[[str], PixelModel]:
    if models is None:
        from metamers.models import load_model

        return load_model
    if isinstance(models, Mapping):

        def from_mapping(name: str) -> PixelModel:
            if name not in models:
                raise ConfigError(f"no model given for {name}; have {sorted(models)}")
            return models[name]

        return from_mapping
    return models


def null_provider(
    stimuli,
    n_pairs: int,
    **null_options,
) -> Callable[[PixelModel, list[str]], NullDistribution]:
    """``get(model, layers)`` computing (or loading from the cache) each model's null.

    Parameters
    ----------
    stimuli
        :class:`~metamers.stimuli.StimulusSet` of natural stimuli for the pairs.
    n_pairs
        Number of pairs ``N``.
    **null_options
        Passed to :func:`~metamers.null.distribution.compute_null` (seed, cache_dir, ...).
    """
    from metamers.null.distribution import compute_null

    def get(model: PixelModel, layers: list[str]) -> NullDistribution:
        return compute_null(model, layers, stimuli, n_pairs, **null_options)

    return get


def fit_to_model(x: torch.Tensor, model: PixelModel) -> torch.Tensor:
    """Resize a batch to ``model.input_shape`` (ensemble metamers live at the largest model's size).

    Bilinear with antialiasing for images, linear for waveforms, as the synthesis engine does.
    """
    shape = model.input_shape
    if tuple(x.shape[1:]) == shape:
        return x
    if x.ndim == 2 and len(shape) == 1:
        return F.interpolate(x[:, None], size=shape[0], mode="linear", align_corners=False)[:, 0]
    if x.ndim == 4 and len(shape) == 3 and x.shape[1] == shape[0]:
        return F.interpolate(
            x, size=shape[1:], mode="bilinear", antialias=True, align_corners=False
        )
    raise ConfigError(f"stimuli of shape {tuple(x.shape[1:])} do not fit {model.name} ({shape})")


def acceptance_stop_factory(
    nulls: NullSource,
    *,
    criterion: NullCriterion | None = None,
    check_label: bool = True,
    sixteen_way: bool = False,
) -> Callable[[object], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Stop-criterion factory for ``metamers.synthesis`` (``generate_metamers(stop_criterion=...)``).

    Given a ``MetamerSynthesis`` (read by duck typing: ``models``, ``layers``
    — one list of layer names per model — and ``references``), returns the
    engine's per-item criterion ``(stimuli, indices) -> bool mask``: an item
    stops once it is accepted at every generation layer of every model.

    Parameters
    ----------
    nulls
        One null, ``{model name: null}``, or ``get(model, layers)`` (see :func:`null_provider`).
    criterion, check_label, sixteen_way
        As in :class:`AcceptanceStop`.
    """
    get_null = null_getter(nulls)

    def factory(synthesis) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        checks = []
        for model, layers in zip(synthesis.models, synthesis.layers):
            stop = AcceptanceStop(
                model,
                get_null(model, list(layers)),
                criterion=criterion,
                check_label=check_label,
                sixteen_way=sixteen_way,
            )
            stop.null.check_layers(list(layers))
            checks.append((model, list(layers), stop))

        def criterion_fn(stimuli: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
            references = synthesis.references[indices.to(synthesis.references.device)]
            accepted = torch.ones(stimuli.shape[0], dtype=torch.bool, device=stimuli.device)
            for model, layers, stop in checks:
                metamers, refs = fit_to_model(stimuli, model), fit_to_model(references, model)
                for layer in layers:
                    accepted &= stop(metamers, refs, layer).to(stimuli.device)
            return accepted

        return criterion_fn

    return factory
