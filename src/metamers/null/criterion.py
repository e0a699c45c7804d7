"""How a similarity value meets a null distribution: the one place a value meets a threshold.

Every pass/fail decision against a null — acceptance of a metamer, the stop
criterion of synthesis, the representation test of an observer layer — goes
through :meth:`NullCriterion.passes`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metamers.defaults import CRITERION_KINDS as CRITERION_KINDS
from metamers.defaults import DEFAULT_NULL_PAIRS as DEFAULT_NULL_PAIRS
from metamers.errors import ConfigError
from metamers.null.distribution import NullDistribution


@dataclass(frozen=True)
class NullCriterion:
    """How a similarity value is compared with a null.

    Parameters
    ----------
    kind
        ``"max"`` (published: beyond the null's maximum), ``"quantile"``
        (beyond the null's ``q``-quantile) or ``"p_value"`` (empirical
        ``(1 + #{null ≥ value}) / (N + 1)`` below ``alpha``).
    q
        Quantile for ``kind="quantile"``.
    alpha
        Significance level for ``kind="p_value"``.
    inclusive
        A value equal to the threshold passes (``≥``, the published code's
        comparison). The default is strict (``>``): a metamer must be *more*
        similar than every natural pair, not as similar as the most similar
        one. Only for ``"max"`` and ``"quantile"``.

    Examples
    --------
    >>> NullCriterion().kind, NullCriterion.feather2023().inclusive
    ('max', True)
    """

    kind: str = "max"
    q: float = 0.999
    alpha: float = 0.001
    inclusive: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CRITERION_KINDS:
            raise ConfigError(f"unknown criterion {self.kind!r}; use one of {CRITERION_KINDS}")
        if not 0.0 < self.q <= 1.0 or not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"need 0 < q <= 1 and 0 < alpha < 1, got q={self.q}, a={self.alpha}")
        if self.inclusive and self.kind == "p_value":
            raise ConfigError("inclusive comparison is defined for 'max' and 'quantile' only")

    @classmethod
    def feather2023(cls) -> NullCriterion:
        """The published rule: value ``≥`` the null's maximum."""
        return cls(kind="max", inclusive=True)

    def check(self, null: NullDistribution) -> None:
        """Raise :class:`ConfigError` when the null is too small for this criterion.

        Parameters
        ----------
        null
            The null the criterion will be applied to; only its size matters, and
            only for ``kind="p_value"`` (its smallest p is ``1 / (n_pairs + 1)``).

        Raises
        ------
        ConfigError
            The null is too small to reach ``p < alpha``.
        """
        if self.kind == "p_value" and self.alpha <= 1.0 / (null.n_pairs + 1):
            raise ConfigError(
                f"a {null.n_pairs}-pair null cannot give p < {self.alpha} (smallest p is "
                f"1/{null.n_pairs + 1}); compute more pairs or raise alpha"
            )

    def threshold(self, null: NullDistribution, layer: str, metric: str) -> float:
        """The value a similarity is compared with (for ``p_value``, the equivalent order statistic).

        Parameters
        ----------
        null
            The null distribution (must cover ``layer``).
        layer, metric
            Which null column to compare with.

        Returns
        -------
        float
            The null's maximum (``"max"``), its ``q``-quantile (``"quantile"``), or
            the null value a similarity must exceed to reach ``p < alpha``
            (``"p_value"``; ``-inf`` when every value passes).
        """
        column = null.column(layer, metric)
        if self.kind == "max":
            return float(column.max())
        if self.kind == "quantile":
            return float(np.quantile(column, self.q))
        # p < alpha  <=>  #{null >= v} <= k  <=>  v > the (k+1)-th largest null value.
        k = int(np.ceil(self.alpha * (column.size + 1) - 1)) - 1
        return float(np.sort(column)[::-1][k]) if k < column.size else float("-inf")

    def passes(
        self, values: np.ndarray | float, null: NullDistribution, layer: str, metric: str
    ) -> np.ndarray:
        """Whether each value passes against the null of ``metric`` at ``layer``.

        Parameters
        ----------
        values
            Similarities, any shape.
        null
            The null distribution (must cover ``layer``).
        layer, metric
            Which null column to compare with.

        Returns
        -------
        numpy.ndarray
            Booleans of the shape of ``values``; NaN never passes.
        """
        values = np.asarray(values, dtype=np.float64)
        if self.kind == "p_value":
            return null.p_value(layer, metric, values) < self.alpha
        threshold = self.threshold(null, layer, metric)
        return values >= threshold if self.inclusive else values > threshold

    def describe(self, null: NullDistribution) -> str:
        """E.g. ``"> max of a 2000-pair null (18 stimuli)"``.

        Parameters
        ----------
        null
            The null the criterion is applied to (its size and stimulus count are
            named).
        """
        rule = {"max": "max", "quantile": f"q{self.q:g}", "p_value": f"p<{self.alpha:g}"}[self.kind]
        sign = ">=" if self.inclusive else ">"
        return f"{sign} {rule} of a {null.n_pairs}-pair null ({null.n_stimuli} stimuli)"

    def as_record(self) -> dict[str, Any]:
        """The settings as table columns (``criterion_kind``, ``criterion_q``, ...)."""
        return {f"criterion_{key}": value for key, value in asdict(self).items()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NullCriterion:
        """Inverse of :meth:`as_record` (extra keys are ignored).

        Parameters
        ----------
        record
            A mapping holding ``criterion_kind``, ``criterion_q``,
            ``criterion_alpha`` and ``criterion_inclusive`` (numpy scalars read back
            from a table are accepted).

        Raises
        ------
        KeyError
            A ``criterion_*`` key is missing.
        ConfigError
            The values do not form a valid criterion.
        """
        fields = ("kind", "q", "alpha", "inclusive")
        return cls(**{f: _plain(record[f"criterion_{f}"]) for f in fields})


def _plain(value: Any) -> Any:
    """A numpy scalar read back from a table, as the Python value."""
    return value.item() if isinstance(value, np.generic) else value
