"""Presets: the published procedures, reproduced, and a modern default.

============  ==========  ======  ============  ================  =====================
preset        splits      seed    alphas        negative r        corrected r² clipped
============  ==========  ======  ============  ================  =====================
tuckute2023   legacy      0       10^49..10^-50 set to 0          at 1, after median
feather2023   legacy      3882    10^39..10^-40 squared as is     no
default       permutation 0       data-scaled   set to 0          at 1, after median
============  ==========  ======  ============  ================  =====================

All three fit every target with its own exact leave-one-out alpha, centre X
and y on the training means (with an intercept, centring X or not gives the
same fit; Feather et al. centre y only), and noise-correct with the
Spearman–Brown-corrected split-half reliabilities. Clipping is a recorded
reporting step (:func:`metamers.brain.encoding.report_scores`): the stored
``r``, ``r2`` and ``r2_corrected`` are never clipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from metamers.brain.splits import Splits, legacy_splits, random_splits
from metamers.errors import ConfigError

NEGATIVE_R_RULES = ("zero", "square")


@dataclass(frozen=True)
class Preset:
    """How an encoding analysis splits, regularises and reports.

    Parameters
    ----------
    name
        The preset's name.
    split_method
        ``"legacy"`` (the published draw) or ``"permutation"``.
    seed
        Seed of the splits.
    n_splits
        Number of splits.
    n_train, n_test
        Split sizes (``None``: half and the rest).
    alphas
        Alpha grid in search order, or ``"data"``: per split, 8 per decade from
        10³ below the smallest to 10³ above the largest nonzero eigenvalue of
        the training Gram matrix, largest first.
    negative_r
        Reporting rule for a negative (or undefined) test r: ``"zero"`` (r → 0
        before squaring) or ``"square"`` (squared as it is; undefined → 0).
    corrected_max
        Clip the noise-corrected r² at this value after the median over
        splits (``None``: never).
    noise_correction
        Fit each repetition too and correct r² for the reliabilities.
    upper_edge
        ``"keep"``: a target whose best alpha is the grid's largest keeps its
        fit (flagged); ``"mean"``: it is predicted by its training mean (no
        fit; r undefined, reported as 0). Meaningful with the data-scaled grid,
        whose largest alpha lies far above every eigenvalue.
    """

    name: str
    split_method: str = "permutation"
    seed: int = 0
    n_splits: int = 10
    n_train: int | None = None
    n_test: int | None = None
    alphas: tuple[float, ...] | str = "data"
    negative_r: str = "zero"
    corrected_max: float | None = 1.0
    noise_correction: bool = True
    upper_edge: str = "mean"

    def __post_init__(self) -> None:
        if self.negative_r not in NEGATIVE_R_RULES:
            raise ConfigError(f"negative_r must be one of {', '.join(NEGATIVE_R_RULES)}")
        if self.split_method not in ("legacy", "permutation"):
            raise ConfigError("split_method must be 'legacy' or 'permutation'")
        if self.upper_edge not in ("keep", "mean"):
            raise ConfigError("upper_edge must be 'keep' or 'mean'")
        if isinstance(self.alphas, str) and self.alphas != "data":
            raise ConfigError("alphas must be a list of numbers or 'data'")

    def make_splits(self, stimulus_ids: list[str] | tuple[str, ...]) -> Splits:
        """The preset's splits of ``stimulus_ids`` (their order is the canonical order).

        Parameters
        ----------
        stimulus_ids
            The stimuli, in the order the published draws index.
        """
        if self.split_method == "legacy":
            return legacy_splits(
                stimulus_ids,
                n_splits=self.n_splits,
                n_train=self.n_train or 83,
                n_test=self.n_test or 82,
                seed=self.seed,
            )
        return random_splits(
            stimulus_ids,
            n_splits=self.n_splits,
            n_train=self.n_train,
            n_test=self.n_test,
            seed=self.seed,
        )

    def alpha_grid(self, eigvals: np.ndarray | None = None) -> np.ndarray:
        """The alpha grid (for ``"data"``, scaled to a split's Gram eigenvalues).

        Parameters
        ----------
        eigvals
            The training Gram matrix's eigenvalues (needed for ``"data"``).
        """
        if not isinstance(self.alphas, str):
            return np.asarray(self.alphas, dtype=np.float64)
        return data_alphas(np.asarray(eigvals))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings."""
        record = asdict(self)
        if not isinstance(self.alphas, str):
            record["alphas"] = [float(a) for a in self.alphas]
        return record


def data_alphas(eigvals: np.ndarray, *, margin: float = 3.0, per_decade: int = 8) -> np.ndarray:
    """A grid spanning the eigenvalues of the training Gram matrix, largest first.

    Parameters
    ----------
    eigvals
        Eigenvalues (zeros ignored).
    margin
        Decades beyond the smallest and the largest nonzero eigenvalue.
    per_decade
        Grid points per decade.
    """
    positive = eigvals[eigvals > 0]
    if positive.size == 0:
        return np.array([1.0])
    low = np.log10(positive.min()) - margin
    high = np.log10(positive.max()) + margin
    count = int(np.ceil((high - low) * per_decade)) + 1
    return np.logspace(high, low, count)


def _published_grid(limit: int) -> tuple[float, ...]:
    return tuple(10.0**k for k in range(limit - 1, -limit - 1, -1))


PRESETS: dict[str, Preset] = {
    "tuckute2023": Preset(
        name="tuckute2023",
        split_method="legacy",
        seed=0,
        n_splits=10,
        n_train=83,
        n_test=82,
        alphas=_published_grid(50),
        negative_r="zero",
        corrected_max=1.0,
        upper_edge="keep",
    ),
    "feather2023": Preset(
        name="feather2023",
        split_method="legacy",
        seed=3882,
        n_splits=10,
        n_train=83,
        n_test=82,
        alphas=_published_grid(40),
        negative_r="square",
        corrected_max=None,
        upper_edge="keep",
    ),
    "default": Preset(name="default"),
}


def get_preset(preset: str | Preset, **overrides: Any) -> Preset:
    """A preset by name (see :data:`PRESETS`), with fields overridden.

    Parameters
    ----------
    preset
        A name or a :class:`Preset`.
    **overrides
        Fields to change (``None`` values are ignored).

    Examples
    --------
    >>> p = get_preset("tuckute2023")
    >>> len(p.alphas), p.alphas[0], p.alphas[-1], p.seed
    (100, 1e+49, 1e-50, 0)
    >>> len(get_preset("feather2023").alphas)
    80
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(preset, **changes) if changes else preset
