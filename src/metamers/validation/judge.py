"""The one judgement of stimuli against references and a null distribution.

:func:`judge` measures a model's activations for stimuli and their references
at some layers, compares each similarity with the null through a
:class:`~metamers.null.criterion.NullCriterion`, and, if asked, compares the
model's decisions in a :class:`~metamers.decisions.LabelSpace`. Acceptance of
metamers (:func:`metamers.validation.accept`), the acceptance stop of
synthesis (:class:`metamers.validation.AcceptanceStop`) and the
representation test of observers (:func:`metamers.evaluation.representation_table`)
all call it, so the same folder gets the same verdict on every path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from metamers.decisions import LabelSpace
from metamers.errors import ConfigError
from metamers.models import LOGITS, PixelModel
from metamers.null.criterion import NullCriterion
from metamers.null.distribution import NullDistribution
from metamers.similarity.metrics import SIMILARITY_METRICS, similarities
from metamers.stimuli.fit import fit_to_input

Similarities = dict[str, dict[str, np.ndarray]]


def measure(
    model: PixelModel,
    stimuli: torch.Tensor,
    references: torch.Tensor,
    layers: Sequence[str],
    *,
    with_logits: bool = False,
    batch_size: int = 16,
    zero_test: str = "all",
) -> tuple[Similarities, torch.Tensor | None, torch.Tensor | None]:
    """Similarity of stimuli to their references at several layers, one forward per batch.

    Parameters
    ----------
    model
        The model whose activations are compared.
    stimuli, references
        ``(N, ...)`` batches of equal shape, at any resolution
        (:func:`~metamers.stimuli.fit.fit_to_input` fits them to the model).
    layers
        Layers to measure.
    with_logits
        Also return the logits of both batches.
    batch_size
        Pairs per forward pass.
    zero_test
        How an all-zero activation is recognised (scores 0): ``"all"`` or the
        published ``"sum"`` (see :func:`metamers.similarity.metrics.similarities`).

    Returns
    -------
    values
        ``{layer: {metric: (N,)}}`` (the reference is the SNR's signal).
    logits_stimuli, logits_references
        ``(N, classes)`` when ``with_logits``, else ``None``.
    """
    if stimuli.shape != references.shape:
        raise ConfigError(
            f"stimuli {tuple(stimuli.shape)} and references {tuple(references.shape)} differ"
        )
    layers = model.check_layers(layers)
    wanted = list(dict.fromkeys([*layers, *([LOGITS] if with_logits else [])]))
    values: dict[str, dict[str, list[np.ndarray]]] = {
        layer: {m: [] for m in SIMILARITY_METRICS} for layer in layers
    }
    logits: list[tuple[torch.Tensor, torch.Tensor]] = []
    for start in range(0, stimuli.shape[0], batch_size):
        pair = torch.cat(
            [
                fit_to_input(stimuli[start : start + batch_size].detach(), model.input_shape),
                fit_to_input(references[start : start + batch_size].detach(), model.input_shape),
            ]
        ).to(model.device, torch.float32)
        with torch.inference_mode():
            acts = model.activations(pair, wanted)
        for layer in layers:
            ours, theirs = acts[layer].chunk(2)
            for metric, value in similarities(theirs, ours, zero_test=zero_test).items():
                values[layer][metric].append(value.cpu().numpy())
        if with_logits:
            logits.append(acts[LOGITS].float().cpu().chunk(2))
    table = {
        layer: {metric: np.concatenate(parts) for metric, parts in per.items()}
        for layer, per in values.items()
    }
    if not with_logits:
        return table, None, None
    return table, torch.cat([m for m, _ in logits]), torch.cat([r for _, r in logits])


def check_null_for_model(null: NullDistribution, model: PixelModel, layers: Sequence[str]) -> None:
    """Raise unless ``null`` was computed for this model's weights and covers ``layers``.

    Parameters
    ----------
    null
        The null distribution to be used with ``model``.
    model
        The model; its weight fingerprint must equal the null's
        ``model_fingerprint``.
    layers
        The layers the null will be compared at.

    Raises
    ------
    ConfigError
        The null was computed for other weights.
    LayerError
        The null does not cover every one of ``layers``.
    """
    if null.model_fingerprint != model.fingerprint():
        raise ConfigError(
            f"the null was computed for {null.model} with weights {null.model_fingerprint}, "
            f"but {model.name} has weights {model.fingerprint()}; compute a null for this model"
        )
    null.check_layers(layers)


def judge(
    model: PixelModel,
    stimuli: torch.Tensor,
    references: torch.Tensor,
    layers: Sequence[str],
    null: NullDistribution,
    *,
    criterion: NullCriterion | None = None,
    labels: LabelSpace | None = None,
    check_label: bool = True,
    stimulus_ids: Sequence[str] | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Judge stimuli against their references and a null: the one pass/fail rule.

    A stimulus *passes* at a layer when each of Spearman ρ, Pearson r and dB
    SNR of its activations vs its reference's passes ``criterion`` against the
    null at that layer and, with ``check_label``, the model decides the same
    label for both in ``labels``.

    Parameters
    ----------
    model
        The judging model (the generator for acceptance, an observer for the
        representation test).
    stimuli, references
        ``(N, ...)`` stimuli and their references, at any resolution.
    layers
        Layers to judge at (the null must cover them, for this model's weights).
    null
        The model's null distribution.
    criterion
        Default :class:`~metamers.null.criterion.NullCriterion` (``> max``).
    labels
        Label space of the label test (default ``LabelSpace()``: 16-way for
        ImageNet models, as published; the model's own classes otherwise).
    check_label
        Require the label test (acceptance); ``False`` judges similarities only
        (representation test). A model that is not a classifier has no decision
        to match, so only its similarities are judged.
    stimulus_ids
        A name per stimulus (default ``"0"``, ``"1"``, ...).
    batch_size
        Pairs per forward pass.

    Returns
    -------
    pandas.DataFrame
        One row per stimulus × layer: ``stimulus_id, model, layer``; for each
        metric its value, ``_null_max``, ``_threshold``, ``_p`` and ``_pass``;
        ``p_value`` (largest of the three); with ``check_label`` the decisions
        and their names, ``label_match`` and ``label_space``; ``passed``,
        ``failed`` (failed tests, comma-separated), ``criterion`` (described)
        and its settings (``criterion_kind``, ...), ``null_pairs`` and
        ``null_stimuli``.

    Examples
    --------
    >>> from metamers.models import load_model
    >>> from metamers.null import compute_null
    >>> from metamers.stimuli import resolve_stimuli
    >>> model = load_model("mnist_cnn_s0")
    >>> digits = resolve_stimuli("bundled:mnist")
    >>> null = compute_null(model, ["logits"], digits.limit(200), 400, use_cache=False)
    >>> x = torch.stack([digits.load(s, model.input_shape) for s in digits.limit(3)])
    >>> judge(model, (x + 0.01).clamp(0, 1), x, ["logits"], null)["passed"].tolist()
    [True, True, True]
    >>> judge(model, x.flip(0), x, ["logits"], null)["failed"].tolist()[0]
    'label,spearman,pearson,snr_db'
    """
    criterion = criterion or NullCriterion()
    labels = labels or LabelSpace()
    check_label = check_label and model.is_classifier
    layers = list(dict.fromkeys(model.check_layers(layers)))
    check_null_for_model(null, model, layers)
    criterion.check(null)
    n = stimuli.shape[0]
    ids = [str(i) for i in (stimulus_ids if stimulus_ids is not None else range(n))]
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} stimulus ids for {n} stimuli")
    values, logits_s, logits_r = measure(
        model,
        stimuli,
        references,
        layers,
        with_logits=check_label,
        batch_size=batch_size,
        zero_test=null.zero_test,
    )
    label_columns = _label_columns(model, labels, logits_s, logits_r) if check_label else {}
    frames = [
        _layer_frame(model, layer, ids, values[layer], null, criterion, label_columns)
        for layer in layers
    ]
    return pd.concat(frames, ignore_index=True)


def _label_columns(
    model: PixelModel, labels: LabelSpace, logits_s: torch.Tensor, logits_r: torch.Tensor
) -> dict[str, object]:
    decided_s, decided_r = labels.decide(model, logits_s), labels.decide(model, logits_r)
    return {
        "label_space": labels.describe(model),
        "label_reference": decided_r,
        "label_metamer": decided_s,
        "label_reference_name": labels.names(model, decided_r),
        "label_metamer_name": labels.names(model, decided_s),
        "label_match": decided_s == decided_r,
    }


def _layer_frame(
    model: PixelModel,
    layer: str,
    ids: list[str],
    values: dict[str, np.ndarray],
    null: NullDistribution,
    criterion: NullCriterion,
    label_columns: dict[str, object],
) -> pd.DataFrame:
    frame = pd.DataFrame({"stimulus_id": ids, "model": model.name, "layer": layer, **label_columns})
    passed = np.asarray(frame["label_match"] if label_columns else np.ones(len(ids), dtype=bool))
    failed = [np.where(passed, "", "label")]
    p_values = []
    for metric in SIMILARITY_METRICS:
        value = values[metric]
        metric_passes = criterion.passes(value, null, layer, metric)
        frame[metric] = value
        frame[f"{metric}_null_max"] = null.max(layer, metric)
        frame[f"{metric}_threshold"] = criterion.threshold(null, layer, metric)
        frame[f"{metric}_p"] = null.p_value(layer, metric, value)
        frame[f"{metric}_pass"] = metric_passes
        p_values.append(frame[f"{metric}_p"].to_numpy())
        passed = passed & metric_passes
        failed.append(np.where(metric_passes, "", metric))
    frame["p_value"] = np.max(p_values, axis=0)
    frame["passed"] = passed
    frame["failed"] = [",".join(t for t in tests if t) for tests in zip(*failed)]
    frame["criterion"] = criterion.describe(null)
    for column, value in criterion.as_record().items():
        frame[column] = value
    frame["null_pairs"] = null.n_pairs
    frame["null_stimuli"] = null.n_stimuli
    return frame
