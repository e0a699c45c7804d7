"""The representation test: is a metamer also metameric for another model's layers?

For an observer model and each of its layers, the metamer's activations are
compared with the reference's (Spearman, Pearson, dB SNR) and judged against
the null distribution of *that observer layer* (random pairs of different
natural stimuli). A metamer passes at an observer layer when all three
similarities pass the null criterion there (beyond the null's maximum by
default) — the published acceptance judgement (:func:`metamers.validation.judge`),
applied to a model that did not generate the metamer. This answers
"up to which stage of model B is a metamer of model A's layer L still a
metamer?".
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from scipy.stats import binomtest

from metamers.evaluation.recognition import bootstrap_mean
from metamers.models import PixelModel
from metamers.null.criterion import NullCriterion
from metamers.null.distribution import NullDistribution
from metamers.synthesis.results import MetamerResult
from metamers.validation import judge


def representation_table(
    results: Sequence[MetamerResult],
    observer: PixelModel,
    null: NullDistribution,
    layers: Sequence[str] | None = None,
    *,
    criterion: NullCriterion | None = None,
    batch_size: int = 16,
) -> pd.DataFrame:
    """One row per metamer × observer layer: similarities, thresholds, p-values and pass.

    Each metamer is judged against its reference at the observer's layers by
    :func:`metamers.validation.judge` without the label test — the acceptance
    rule, applied to a model that did not generate it.

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
    criterion
        How a similarity meets the null (default ``NullCriterion()``: ``> max``).
    batch_size
        Pairs per forward pass.

    Returns
    -------
    pandas.DataFrame
        ``generator, layer, stimulus_id, observer, observer_layer`` and the
        :func:`~metamers.validation.judge` columns (``passed``, ``p_value``, ...).
    """
    results = list(results)
    layers = list(layers or null.layers)
    if not results:
        return pd.DataFrame()
    table = judge(
        observer,
        torch.stack([r.metamer for r in results]),
        torch.stack([r.reference for r in results]),
        layers,
        null,
        criterion=criterion,
        check_label=False,
        batch_size=batch_size,
    )
    table = table.drop(columns=["stimulus_id", "model"]).rename(columns={"layer": "observer_layer"})
    table.insert(0, "generator", [r.generator for r in results] * len(layers))
    table.insert(1, "layer", [r.layer for r in results] * len(layers))
    table.insert(2, "stimulus_id", [r.stimulus_id for r in results] * len(layers))
    table.insert(3, "observer", observer.name)
    return table


def summarize_representation(
    table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Pass fraction per generator × layer × observer × observer layer, with CI and p-value.

    The p-value is a one-sided binomial test of the number of passing metamers
    against the chance rate of a natural pair passing the criterion, per metric
    (taken once: the conservative choice): ``1 / (N_null + 1)`` for the null's
    maximum, ``1 - q`` for a quantile, ``alpha`` for a p-value criterion.

    Parameters
    ----------
    table
        Output of :func:`representation_table`.
    n_boot, seed
        Bootstrap size and seed of the CIs.
    """
    if table.empty:
        return pd.DataFrame()
    rows = []
    keys = ["generator", "layer", "observer", "observer_layer"]
    for key, group in table.groupby(keys, sort=False):
        passed = group["passed"].to_numpy(dtype=float)
        stats = bootstrap_mean(passed, n_boot=n_boot, seed=seed)
        chance = _chance_rate(group.iloc[0])
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


def _chance_rate(row: pd.Series) -> float:
    """Probability that a natural pair passes the row's criterion (per metric)."""
    kind = row.get("criterion_kind", "max")
    if kind == "quantile":
        return max(1.0 - float(row["criterion_q"]), 1.0 / (int(row["null_pairs"]) + 1.0))
    if kind == "p_value":
        return float(row["criterion_alpha"])
    return 1.0 / (int(row["null_pairs"]) + 1.0)
