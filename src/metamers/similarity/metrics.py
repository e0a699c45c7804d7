"""Row-wise similarity between activation vectors: Spearman, Pearson, dB SNR, cosine.

Every metric takes two batches of activations, ``(N, ...)`` and ``(N, ...)``,
flattens each row and returns one value per row, ``(N,)``. Computation is in
float64 so that results agree with :mod:`scipy.stats` to ~1e-12.

The zero rule (published procedure, Feather et al. 2023): a pair in which
*either* member's activation vector is "zero" scores 0 on every metric. What
"zero" means is the ``zero_test`` setting of every function here:
``"all"`` (default) — every element exactly 0, which happens for some crops
after a ReLU; ``"sum"`` — the elements sum to exactly 0, the test the
published code applied. For non-negative (post-ReLU) activations the two are
the same; for signed activations ``"sum"`` also zeroes vectors whose positive
and negative parts cancel, which ``"all"`` (the stated intent) does not. A
correlation that is otherwise undefined (a constant, non-zero row) also scores
0 rather than NaN, so that a null's maximum is always a number.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SIMILARITY_METRICS = ("spearman", "pearson", "snr_db")
"""The three metrics of the published acceptance test, in report order."""

SNR_VARIANTS = ("conventional", "published")

ZERO_TESTS = ("all", "sum")
"""When an activation vector counts as zero: every element 0 (ours), or its sum 0 (published)."""

_UNIT_TOLERANCE = 1e-12
"""Correlations within this of ±1 are set to exactly ±1.

Round-off differs between the direct and the Gram-matrix computation; without
snapping, a perfect rank match could score 1.0 one way and 1 − 2e-16 the
other, and "exceeds the null maximum" would be decided by round-off.
"""


def _as_rows(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(
            f"activation batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    if a.ndim < 2:
        raise ValueError(f"expected (N, ...) batches of activations, got shape {tuple(a.shape)}")
    return a.detach().flatten(1).double(), b.detach().flatten(1).double()


def check_zero_test(zero_test: str) -> str:
    """Return ``zero_test`` if it is one of :data:`ZERO_TESTS`, else raise a one-line ValueError.

    Parameters
    ----------
    zero_test
        The name of a zero test, ``"all"`` or ``"sum"``.

    Raises
    ------
    ValueError
        Any other name.
    """
    if zero_test not in ZERO_TESTS:
        raise ValueError(f"unknown zero test {zero_test!r}; use one of {ZERO_TESTS}")
    return zero_test


def zero_rows(x: torch.Tensor, zero_test: str = "all") -> torch.Tensor:
    """Rows of ``(N, ...)`` activations that count as zero under ``zero_test``, ``(N,)`` bool.

    Parameters
    ----------
    x
        ``(N, ...)`` activations, flattened per row.
    zero_test
        ``"all"``: every element is exactly 0. ``"sum"``: the elements sum to
        exactly 0 (in float64), the published test.

    Returns
    -------
    torch.Tensor
        ``(N,)`` bool.
    """
    check_zero_test(zero_test)
    rows = x.detach().flatten(1)
    if zero_test == "all":
        return ~(rows != 0).any(dim=1)
    return rows.double().sum(dim=1) == 0


def all_zero_pairs(a: torch.Tensor, b: torch.Tensor, zero_test: str = "all") -> torch.Tensor:
    """Rows where either member's activations count as zero (:func:`zero_rows`), ``(N,)`` bool.

    Parameters
    ----------
    a, b
        ``(N, ...)`` activations of the two members of each pair.
    zero_test
        ``"all"`` (every element 0) or ``"sum"`` (elements sum to 0).
    """
    return zero_rows(a, zero_test) | zero_rows(b, zero_test)


def rank_average(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks (1-based) with ties given their average rank, as ``scipy.stats.rankdata``.

    Parameters
    ----------
    x
        ``(N, D)`` values.

    Returns
    -------
    torch.Tensor
        ``(N, D)`` float64 ranks.
    """
    x = x.detach().flatten(1)
    n, d = x.shape
    sorted_x, order = torch.sort(x, dim=1)
    starts_group = torch.ones_like(sorted_x, dtype=torch.bool)
    starts_group[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]
    ends_group = torch.ones_like(starts_group)
    ends_group[:, :-1] = starts_group[:, 1:]
    position = torch.arange(d, device=x.device).expand(n, d)
    # First and last sorted position of each element's tie group, by running max / min.
    first = torch.where(starts_group, position, 0).cummax(dim=1).values
    last = torch.where(ends_group, position, d).flip(1).cummin(dim=1).values.flip(1)
    average = (first + last).double() / 2 + 1
    return torch.empty_like(average).scatter_(1, order, average)


def _correlate_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / denominator
    return _snap_unit(torch.where(denominator > 0, r, torch.zeros_like(r)))


def _snap_unit(r: torch.Tensor) -> torch.Tensor:
    return torch.where((r.abs() - 1).abs() < _UNIT_TOLERANCE, r.sign(), r.clamp(-1.0, 1.0))


def pearson(a: torch.Tensor, b: torch.Tensor, *, zero_test: str = "all") -> torch.Tensor:
    """Row-wise Pearson r, ``(N, ...)`` vs ``(N, ...)`` → ``(N,)`` float64.

    ``zero_test`` (``"all"`` or ``"sum"``) decides which rows count as zero
    (score 0; see the module docstring).

    Parameters
    ----------
    a, b
        ``(N, ...)`` activations of equal shape; each row is flattened.
    zero_test
        ``"all"`` or ``"sum"``.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float64 in ``[-1, 1]``; 0 for a pair with a zero row or a
        constant row.

    Raises
    ------
    ValueError
        The batches differ in shape or have no batch dimension, or an unknown
        ``zero_test``.
    """
    check_zero_test(zero_test)
    a2, b2 = _as_rows(a, b)
    return _zero_rule(_correlate_rows(a2, b2), a2, b2, zero_test)


def spearman(a: torch.Tensor, b: torch.Tensor, *, zero_test: str = "all") -> torch.Tensor:
    """Row-wise Spearman ρ (Pearson r of average-tie ranks, as ``scipy.stats.spearmanr``).

    ``zero_test`` (``"all"`` or ``"sum"``) decides which rows count as zero
    (score 0; see the module docstring).

    Parameters
    ----------
    a, b
        ``(N, ...)`` activations of equal shape; each row is flattened.
    zero_test
        ``"all"`` or ``"sum"``.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float64 in ``[-1, 1]``; 0 for a pair with a zero row or a
        constant row.

    Raises
    ------
    ValueError
        The batches differ in shape or have no batch dimension, or an unknown
        ``zero_test``.
    """
    check_zero_test(zero_test)
    a2, b2 = _as_rows(a, b)
    return _zero_rule(_correlate_rows(rank_average(a2), rank_average(b2)), a2, b2, zero_test)


def snr_db(
    signal: torch.Tensor,
    test: torch.Tensor,
    *,
    variant: str = "conventional",
    zero_test: str = "all",
) -> torch.Tensor:
    """Row-wise signal-to-noise ratio of ``test`` against ``signal``, in dB.

    ``conventional``: ``20·log10(||s|| / ||s − m||)`` (an amplitude ratio in
    decibels). ``published``: ``10·log10(||s|| / ||s − m||)``, the variant used
    by Feather et al. 2023 — exactly half the conventional value. Acceptance is
    unaffected by the choice (metamer and null scale alike); this package
    reports the conventional one.

    Parameters
    ----------
    signal
        ``(N, ...)`` reference activations ``s``.
    test
        ``(N, ...)`` activations ``m`` to compare (metamer, or the second member of a null pair).
    variant
        ``"conventional"`` (default) or ``"published"``.
    zero_test
        ``"all"`` (default) or ``"sum"`` (published): which rows count as zero.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float64; ``+inf`` where ``m == s`` exactly; 0 under the zero rule.
    """
    if variant not in SNR_VARIANTS:
        raise ValueError(f"unknown SNR variant {variant!r}; use one of {SNR_VARIANTS}")
    check_zero_test(zero_test)
    s, m = _as_rows(signal, test)
    factor = 20.0 if variant == "conventional" else 10.0
    ratio = s.norm(dim=1) / (s - m).norm(dim=1)
    return _zero_rule(factor * torch.log10(ratio), s, m, zero_test)


def cosine(a: torch.Tensor, b: torch.Tensor, *, zero_test: str = "all") -> torch.Tensor:
    """Row-wise cosine similarity, ``(N,)`` float64 (0 under the zero rule).

    Parameters
    ----------
    a, b
        ``(N, ...)`` activations of equal shape; each row is flattened.
    zero_test
        ``"all"`` or ``"sum"``: which rows count as zero (see the module docs).

    Raises
    ------
    ValueError
        The batches differ in shape or have no batch dimension, or an unknown
        ``zero_test``.
    """
    check_zero_test(zero_test)
    a2, b2 = _as_rows(a, b)
    denominator = a2.norm(dim=1) * b2.norm(dim=1)
    value = (a2 * b2).sum(dim=1) / denominator
    value = torch.where(denominator > 0, value, torch.zeros_like(value)).clamp(-1.0, 1.0)
    return _zero_rule(value, a2, b2, zero_test)


def _zero_rule(
    values: torch.Tensor, a: torch.Tensor, b: torch.Tensor, zero_test: str = "all"
) -> torch.Tensor:
    """``values`` with 0 where either row of ``a``, ``b`` counts as zero under ``zero_test``."""
    return torch.where(all_zero_pairs(a, b, zero_test), torch.zeros_like(values), values)


METRIC_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "spearman": spearman,
    "pearson": pearson,
    "snr_db": snr_db,
    "cosine": cosine,
}


def similarities(
    reference: torch.Tensor,
    other: torch.Tensor,
    metrics: tuple[str, ...] = SIMILARITY_METRICS,
    *,
    zero_test: str = "all",
) -> dict[str, torch.Tensor]:
    """Several metrics at once, ``{metric: (N,)}``; the reference is the SNR's signal.

    Parameters
    ----------
    reference, other
        ``(N, ...)`` activation batches.
    metrics
        Names from :data:`METRIC_FUNCTIONS`.
    zero_test
        ``"all"`` (default) or ``"sum"`` (published): which rows count as zero
        and make their pair score 0.

    Returns
    -------
    dict[str, torch.Tensor]
        ``{metric: (N,) float64}``.
    """
    unknown = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRIC_FUNCTIONS)}")
    check_zero_test(zero_test)
    return {name: METRIC_FUNCTIONS[name](reference, other, zero_test=zero_test) for name in metrics}


def indexed_similarities(
    activations: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    *,
    zero_test: str = "all",
) -> dict[str, torch.Tensor]:
    """The three published metrics for pairs of rows of one activation batch.

    Each row is ranked and standardised once, however many pairs it takes part
    in, and every pair's value is read off a ``(B, B)`` Gram matrix (one BLAS
    matrix product), so the cost barely grows with the number of pairs. The SNR
    uses ``||a − b||² = ||a||² + ||b||² − 2a·b``, exact enough for pairs of
    *different* stimuli; use :func:`snr_db` for near-identical pairs (metamers).

    Parameters
    ----------
    activations
        ``(B, ...)`` activations of ``B`` stimuli.
    first, second
        ``(M,)`` row indices of each pair's members; ``first`` is the SNR's signal.
    zero_test
        ``"all"`` (default) or ``"sum"`` (published): which rows count as zero
        and make their pairs score 0.

    Returns
    -------
    dict[str, torch.Tensor]
        ``{"spearman", "pearson", "snr_db"}``, each ``(M,)`` float64.
    """
    check_zero_test(zero_test)
    native = activations.detach().flatten(1)
    rows = native.double()
    gram = rows @ rows.T
    squared = gram.diagonal()
    distance = (squared[first] + squared[second] - 2 * gram[first, second]).clamp_min(0)
    values = {
        "spearman": _standardised_gram(rank_average(native))[first, second],
        "pearson": _standardised_gram(rows)[first, second],
        "snr_db": 10.0 * torch.log10(squared[first] / distance),
    }
    zero_row = zero_rows(rows, zero_test)
    zero = zero_row[first] | zero_row[second]
    return {name: torch.where(zero, torch.zeros_like(v), v) for name, v in values.items()}


def _standardised_gram(rows: torch.Tensor) -> torch.Tensor:
    """Correlation matrix of the rows (0 where a row is constant)."""
    centred = rows - rows.mean(dim=1, keepdim=True)
    norm = centred.norm(dim=1, keepdim=True)
    unit = torch.where(norm > 0, centred / norm, torch.zeros_like(centred))
    return _snap_unit(unit @ unit.T)
