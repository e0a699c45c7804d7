"""Scores of an encoding model: Pearson r per target and the noise-corrected r².

The noise correction is the one of Kell et al. 2018 as used by Tuckute,
Feather et al. 2023: ``r²_corrected = r² / (r_v · r_v̂)``, where ``r_v`` is
the Spearman–Brown-corrected median split-half reliability of the measured
responses (training stimuli) and ``r_v̂`` the same for the predictions of
models fitted to each single repetition (test stimuli), each floored at the
critical r of a one-tailed test at ``p < .05`` for its number of stimuli
(0.182 for 83 and 0.183 for 82 stimuli: computed here, not hard-coded).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

FLOOR_P = 0.05


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two ``(stimuli, targets)`` arrays.

    Parameters
    ----------
    a, b
        Same shape.

    Returns
    -------
    numpy.ndarray
        ``(targets,)``; ``nan`` where either column is exactly constant (the
        published "constant prediction" case).

    Examples
    --------
    >>> import numpy as np
    >>> pearson_columns(np.array([[1.0, 1], [2, 1], [3, 1]]), np.array([[2.0, 1], [4, 2], [7, 3]]))
    array([0.99339927,        nan])
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    norms = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / norms
    constant = (np.asarray(a).std(0) == 0) | (np.asarray(b).std(0) == 0)
    r[constant] = np.nan
    return np.clip(r, -1.0, 1.0)


def spearman_brown(r: np.ndarray | float, n: float) -> np.ndarray:
    """Spearman–Brown prophecy: the reliability of ``n`` repetitions from a single one's ``r``.

    Parameters
    ----------
    r
        Split-half (single-repetition) reliability.
    n
        Number of repetitions averaged (3 in NH2015).

    Examples
    --------
    >>> float(spearman_brown(0.5, 3))
    0.75
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n * r / (1 + (n - 1) * r)


def critical_r(n_stimuli: int, p: float = FLOOR_P) -> float:
    """The smallest Pearson r significant at ``p`` (one-tailed) for ``n_stimuli`` pairs.

    Parameters
    ----------
    n_stimuli
        Number of stimuli correlated.
    p
        One-tailed significance level.

    Examples
    --------
    >>> round(critical_r(83), 3), round(critical_r(82), 3)
    (0.182, 0.183)
    """
    df = n_stimuli - 2
    t = stats.t.ppf(1 - p, df)
    return float(t / np.sqrt(df + t**2))


def split_half_reliability(repetitions: np.ndarray) -> np.ndarray:
    """Median over pairs of repetitions of the Pearson r between them, per target.

    Parameters
    ----------
    repetitions
        ``(stimuli, targets, repetitions)``.

    Returns
    -------
    numpy.ndarray
        ``(targets,)``; pairs with an undefined r are left out of the median.
    """
    reps = repetitions.shape[2]
    pairs = [
        pearson_columns(repetitions[:, :, i], repetitions[:, :, j])
        for i, j in itertools.combinations(range(reps), 2)
    ]
    stacked = np.stack(pairs)
    out = np.full(stacked.shape[1], np.nan)
    ok = ~np.isnan(stacked).all(0)
    out[ok] = np.nanmedian(stacked[:, ok], axis=0)
    return out


def corrected_reliability(raw: np.ndarray, n_repetitions: int, n_stimuli: int) -> np.ndarray:
    """Spearman–Brown-corrected reliability floored at the critical r of ``n_stimuli``.

    Parameters
    ----------
    raw
        Median split-half reliabilities (``nan`` where undefined: set to the floor).
    n_repetitions
        Repetitions averaged.
    n_stimuli
        Stimuli the reliabilities were computed on.
    """
    floor = critical_r(n_stimuli)
    corrected = spearman_brown(raw, n_repetitions)
    return np.where(np.isnan(corrected) | (corrected < floor), floor, corrected)


def noise_corrected_r2(r2: np.ndarray, data_rel: np.ndarray, pred_rel: np.ndarray) -> np.ndarray:
    """``r² / (r_v · r_v̂)``: can exceed 1 (it is an estimate).

    Parameters
    ----------
    r2
        Squared test correlation of the model fitted to the repetition mean.
    data_rel, pred_rel
        Corrected, floored reliabilities of the data and of the predictions.
    """
    return np.asarray(r2) / (np.asarray(data_rel) * np.asarray(pred_rel))
