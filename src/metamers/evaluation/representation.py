"""The representation test: is a metamer also metameric for another model's layers?

For an observer model and each of its layers, the metamer's activations are
compared with the reference's (Spearman, Pearson, dB SNR) and judged against
the null distribution of *that observer layer* (random pairs of different
natural stimuli). A metamer passes at an observer layer when all three
similarities exceed the null's maximum there — the published acceptance
criterion, applied to a model that did not generate the metamer. This answers
"up to which stage of model B is a metamer of model A's layer L still a
metamer?".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from metamers.evaluation.recognition import bootstrap_mean, fit_to_model
from metamers.models import PixelModel
from metamers.null.distribution import NullDistribution
from metamers.similarity.metrics import SIMILARITY_METRICS, similarities
from metamers.synthesis.results import MetamerResult


def observer_similarities(
    observer: PixelModel,
    layers: Sequence[str],
    metamers: torch.Tensor,
    references: torch.Tensor,
    *,
    batch_size: int = 16,
) -> dict[str, dict[str, np.ndarray]]:
    """Metamer-vs-reference similarity at each observer layer: ``{layer: {metric: (N,)}}``."""
    layers = observer.check_layers(layers)
    out: dict[str, dict[str, list[np.ndarray]]] = {
        layer: {m: [] for m in SIMILARITY_METRICS} for layer in layers
    }
    for start in range(0, metamers.shape[0], batch_size):
        pair = torch.cat(
            [
                fit_to_model(metamers[start : start + batch_size], observer),
                fit_to_model(references[start : start + batch_size], observer),
            ]
        ).to(observer.device)
        with torch.inference_mode():
            acts = observer.activations(pair, layers)
        for layer, act in acts.items():
            metamer_act, reference_act = act.chunk(2)
            for metric, values in similarities(reference_act, metamer_act).items():
                out[layer][metric].append(values.cpu().numpy())
    return {
        layer: {m: np.concatenate(v) for m, v in per_metric.items()}
        for layer, per_metric in out.items()
    }


def representation_table(
    results: Sequence[MetamerResult],
    observer: PixelModel,
    null: NullDistribution,
    layers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per metamer × observer layer: similarities, null maxima, p-values and pass.

    Parameters
    ----------
    results
        The metamers to test.
    observer
        The model whose layers judge them.
    null
        The observer's null distribution; it must cover ``layers``.
    layers
        Observer layers (default: every layer the null covers).
    """
    results = list(results)
    layers = list(layers or null.layers)
    null.check_layers(layers)
    if not results:
        return pd.DataFrame()
    metamers = torch.stack([r.metamer for r in results])
    references = torch.stack([r.reference for r in results])
    values = observer_similarities(observer, layers, metamers, references)
    frames = []
    for layer in layers:
        frame = pd.DataFrame(
            {
                "generator": [r.generator for r in results],
                "layer": [r.layer for r in results],
                "stimulus_id": [r.stimulus_id for r in results],
                "observer": observer.name,
                "observer_layer": layer,
                "null_pairs": null.n_pairs,
            }
        )
        passes = np.ones(len(results), dtype=bool)
        p_values = []
        for metric in SIMILARITY_METRICS:
            value = values[layer][metric]
            threshold = null.max(layer, metric)
            frame[metric] = value
            frame[f"{metric}_null_max"] = threshold
            frame[f"{metric}_p"] = null.p_value(layer, metric, value)
            p_values.append(frame[f"{metric}_p"].to_numpy())
            passes &= value > threshold
        frame["p_value"] = np.max(p_values, axis=0)
        frame["passed"] = passes
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def summarize_representation(
    table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Pass fraction per generator × layer × observer × observer layer, with CI and p-value.

    The p-value is a one-sided binomial test of the number of passing metamers
    against the chance rate of a natural pair passing, ``1 / (N_null + 1)``
    per metric (taken once: the conservative choice).
    """
    if table.empty:
        return pd.DataFrame()
    rows = []
    keys = ["generator", "layer", "observer", "observer_layer"]
    for key, group in table.groupby(keys, sort=False):
        passed = group["passed"].to_numpy(dtype=float)
        stats = bootstrap_mean(passed, n_boot=n_boot, seed=seed)
        chance = 1.0 / (int(group["null_pairs"].iloc[0]) + 1.0)
        test = binomtest(int(passed.sum()), passed.size, chance, alternative="greater")
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "pass_fraction": stats["mean"],
                "ci_low": stats["ci_low"],
                "ci_high": stats["ci_high"],
                "n": stats["n"],
                "chance": chance,
                "p_value": float(test.pvalue),
                "median_item_p": float(group["p_value"].median()),
            }
        )
    return pd.DataFrame(rows)
