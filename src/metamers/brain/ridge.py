"""Ridge regression to many targets at once, each with its own leave-one-out alpha.

One eigendecomposition of the training stimuli's centred Gram matrix serves
every target and every alpha. For each alpha the exact leave-one-out
residuals of ridge with an unpenalised intercept come in closed form,

    e = G⁻¹ y / diag(G⁻¹),   G⁻¹ = Q diag(1 / (λ + α)) Qᵀ,

with ``Q, λ`` the eigenvectors and eigenvalues of ``Xc Xcᵀ`` restricted to
the complement of the constant vector (the intercept). Each target takes the
alpha with the smallest mean squared LOO error (the first in grid order on
ties), as scikit-learn's ``RidgeCV(alpha_per_target=True)`` does with its
default efficient leave-one-out; predictions are
``(X_test − x̄) Xcᵀ G⁻¹ (y − ȳ) + ȳ``.

Backends: ``"torch"`` (float64, CPU or CUDA: one implementation) and
``"himalaya"`` (its ``RidgeCV``, k-fold CV: a fast path, not a replica).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metamers.errors import ConfigError

BACKENDS = ("auto", "torch", "himalaya")
TARGET_CHUNK = 16384
ALPHA_BLOCK = 8


@dataclass
class RidgeFit:
    """Per-target ridge fits of one split.

    Attributes
    ----------
    alphas
        The alpha grid, in the order searched.
    alpha_index
        ``(targets,)`` index of each target's alpha in ``alphas``.
    alpha
        ``(targets,)`` each target's alpha.
    predictions
        ``(test stimuli, targets)`` predictions.
    loo_mse
        ``(alphas, targets)`` mean squared LOO error (``None`` for himalaya).
    """

    alphas: np.ndarray
    alpha_index: np.ndarray
    alpha: np.ndarray
    predictions: np.ndarray
    loo_mse: np.ndarray | None = None

    @property
    def edge(self) -> np.ndarray:
        """``(targets,)`` ``"upper"``/``"lower"`` where the alpha is the grid's largest/smallest."""
        out = np.full(self.alpha_index.shape, "", dtype=object)
        if len(self.alphas) > 1:
            out[self.alpha == self.alphas.min()] = "lower"
            out[self.alpha == self.alphas.max()] = "upper"
        return out


def check_alphas(alphas: Sequence[float]) -> np.ndarray:
    """Alphas as a 1-D float64 array; each must be positive and finite.

    Parameters
    ----------
    alphas
        The grid.
    """
    grid = np.asarray(alphas, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ConfigError("ridge alphas must be a non-empty list of positive, finite numbers")
    return grid


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device of the torch backend: ``"auto"``/``None`` means CUDA when available.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` or ``None``.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class GramDecomposition:
    """The eigendecomposition of one split's training stimuli, shared by all targets.

    Attributes
    ----------
    eigvals
        ``(n - 1,)`` eigenvalues of ``Xc Xcᵀ`` on the complement of the constant
        vector (values below round-off set to exactly 0).
    eigvecs
        ``(n, n - 1)`` their eigenvectors, each orthogonal to the constant vector.
    test_map
        ``(test, n - 1)`` ``(X_test − x̄) Xcᵀ Q`` (columns of zero eigenvalues set to 0).
    """

    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    test_map: torch.Tensor

    @classmethod
    def of(
        cls, x_train: np.ndarray | torch.Tensor, x_test: np.ndarray | torch.Tensor, device
    ) -> GramDecomposition:
        """Decompose ``x_train`` (centred on its own mean) and map ``x_test`` alike.

        Parameters
        ----------
        x_train, x_test
            ``(n, features)`` and ``(test, features)`` arrays.
        device
            The torch device.
        """
        xtr = torch.as_tensor(np.asarray(x_train), dtype=torch.float64).to(device)
        xte = torch.as_tensor(np.asarray(x_test), dtype=torch.float64).to(device)
        mean = xtr.mean(0)
        xtr = xtr - mean
        xte = xte - mean
        n = xtr.shape[0]
        gram = xtr @ xtr.T
        basis = _constant_complement(n, device)
        eigvals, rotation = torch.linalg.eigh(basis.T @ gram @ basis)
        eigvecs = basis @ rotation
        scale = float(eigvals.abs().max()) if eigvals.numel() else 0.0
        eigvals = torch.where(eigvals > scale * n * 1e-13, eigvals, torch.zeros_like(eigvals))
        test_map = (xte @ xtr.T) @ eigvecs
        test_map[:, eigvals == 0] = 0.0
        return cls(eigvals, eigvecs, test_map)


def _constant_complement(n: int, device) -> torch.Tensor:
    """``(n, n - 1)`` orthonormal basis of the vectors orthogonal to the constant vector."""
    seed = torch.eye(n, dtype=torch.float64, device=device)
    seed[:, 0] = 1.0
    q, _ = torch.linalg.qr(seed)
    return q[:, 1:]


def ridge_loo(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    alphas: Sequence[float] | Callable[[np.ndarray], np.ndarray],
    *,
    device: str | torch.device | None = "cpu",
    keep_loo: bool = False,
) -> RidgeFit:
    """Fit every column of ``y_train`` with its own leave-one-out alpha; predict ``x_test``.

    Parameters
    ----------
    x_train
        ``(n, features)`` training stimuli.
    y_train
        ``(n, targets)`` training responses.
    x_test
        ``(m, features)`` test stimuli.
    alphas
        The grid, searched in this order (the first wins a tie), or a function
        of the training Gram matrix's eigenvalues that returns it.
    device
        torch device (``"auto"``: CUDA when available).
    keep_loo
        Return the ``(alphas, targets)`` LOO error curves.

    Returns
    -------
    RidgeFit
        Alphas and predictions.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 5)); y = x @ rng.normal(size=(5, 3))
    >>> fit = ridge_loo(x[:30], y[:30], x[30:], [1e-3, 1.0, 1e3])
    >>> bool(np.allclose(fit.predictions, y[30:], atol=1e-2)), fit.alpha.tolist()
    (True, [0.001, 0.001, 0.001])
    """
    device = pick_device(device)
    y = np.asarray(y_train, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if len(y) != len(x_train) or len(x_train) < 3:
        raise ConfigError(
            f"ridge needs at least 3 training stimuli with one response row each "
            f"(got {len(x_train)} stimuli, {len(y)} response rows)"
        )
    decomposition = GramDecomposition.of(x_train, x_test, device)
    grid = check_alphas(alphas(decomposition.eigvals.cpu().numpy()) if callable(alphas) else alphas)
    parts = [
        _fit_chunk(decomposition, y[:, start : start + TARGET_CHUNK], grid, device, keep_loo)
        for start in range(0, y.shape[1], TARGET_CHUNK)
    ]
    index = np.concatenate([p[0] for p in parts])
    return RidgeFit(
        alphas=grid,
        alpha_index=index,
        alpha=grid[index],
        predictions=np.concatenate([p[1] for p in parts], axis=1),
        loo_mse=np.concatenate([p[2] for p in parts], axis=1) if keep_loo else None,
    )


def _fit_chunk(
    dec: GramDecomposition, y: np.ndarray, grid: np.ndarray, device, keep_loo: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    yt = torch.as_tensor(y, dtype=torch.float64, device=device)
    y_mean = yt.mean(0)
    z = dec.eigvecs.T @ (yt - y_mean)
    q2 = dec.eigvecs**2
    n = dec.eigvecs.shape[0]
    representative = saturated_alphas(dec.eigvals.cpu().numpy(), grid)
    computed = np.unique(representative)
    curves = torch.empty((len(computed), yt.shape[1]), dtype=torch.float64, device=device)
    for start in range(0, len(computed), ALPHA_BLOCK):
        block = torch.as_tensor(grid[computed[start : start + ALPHA_BLOCK]], device=device)
        inverse = 1.0 / (dec.eigvals[None, :] + block[:, None])  # (alphas, r)
        diagonal = inverse @ q2.T  # (alphas, n): diag of G⁻¹ per alpha
        # LOO residuals e = diag(1/d) Q diag(w) z: one small matrix per alpha, one matmul
        maps = dec.eigvecs[None, :, :] * inverse[:, None, :] / diagonal[:, :, None]
        residuals = (maps.reshape(-1, maps.shape[2]) @ z).reshape(len(block), n, -1)
        curves[start : start + len(block)] = residuals.square().sum(1) / n
    rows = torch.as_tensor(np.searchsorted(computed, representative), device=device)
    mse = curves[rows]
    index = torch.argmin(mse, dim=0)
    chosen = torch.as_tensor(grid, device=device)[index]
    predictions = dec.test_map @ (z / (dec.eigvals[:, None] + chosen[None, :])) + y_mean
    return (
        index.cpu().numpy(),
        predictions.cpu().numpy(),
        mse.cpu().numpy() if keep_loo else None,
    )


def saturated_alphas(eigvals: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each alpha, the first alpha in grid order with the same LOO curve in float64.

    An alpha so large that ``λ + α == α`` for every eigenvalue (or, without a
    zero eigenvalue, so small that ``λ + α == λ`` for every one) gives a LOO
    curve that differs from its neighbours' only by rounding: such alphas are
    evaluated once and tie, and the first in grid order wins the tie (as in
    scikit-learn, whose rounding noise decides those ties instead).

    Parameters
    ----------
    eigvals
        The Gram eigenvalues (zeros allowed).
    grid
        The alphas, in search order.

    Returns
    -------
    numpy.ndarray
        ``(alphas,)`` index of each alpha's representative.

    Examples
    --------
    >>> saturated_alphas(np.array([1.0, 2.0]), np.array([1e30, 1e20, 1.0, 1e-30, 1e-40])).tolist()
    [0, 0, 2, 3, 3]
    """
    representative = np.arange(len(grid))
    positive = eigvals[eigvals > 0]
    if positive.size == 0:
        return representative
    high = np.flatnonzero(positive.max() + grid == grid)
    if high.size:
        representative[high] = high[0]
    if positive.size == eigvals.size:
        low = np.flatnonzero(positive.min() + grid == positive.min())
        if low.size:
            representative[low] = low[0]
    return representative


def ridge_himalaya(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    alphas: Sequence[float],
    *,
    device: str | torch.device | None = "cpu",
    n_folds: int = 5,
) -> RidgeFit:
    """The same fit through himalaya (``KernelRidgeCV`` or ``RidgeCV``, k-fold CV, per target).

    himalaya does not fit an intercept by default: X and y are centred on the
    training means first. Its k-fold selection picks other alphas than the
    exact leave-one-out for many targets: a fast path, not a replica.

    Parameters
    ----------
    x_train, y_train, x_test, alphas
        As for :func:`ridge_loo`.
    device
        ``"cpu"`` (himalaya's torch backend) or a CUDA device (``torch_cuda``).
    n_folds
        Folds of himalaya's cross-validation.
    """
    try:
        from himalaya.backend import set_backend
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV
    except ImportError:  # pragma: no cover - himalaya is an optional dependency
        raise ConfigError("the himalaya backend needs `pip install himalaya`") from None
    from sklearn.model_selection import KFold

    grid = check_alphas(alphas)
    device = pick_device(device)
    backend = set_backend("torch_cuda" if device.type == "cuda" else "numpy", on_error="raise")
    x_mean = np.asarray(x_train, dtype=np.float64).mean(0)
    y = np.asarray(y_train, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    y_mean = y.mean(0)
    folds = KFold(n_splits=n_folds)
    batches = {"n_targets_batch": 4096, "n_alphas_batch": 10}  # bounded memory
    x_fit = np.asarray(x_train, dtype=np.float64) - x_mean
    x_new = np.asarray(x_test, dtype=np.float64) - x_mean
    if len(x_fit) < x_fit.reshape(len(x_fit), -1).shape[1]:
        # the dual, on precomputed linear kernels: no (features x targets) weights are formed
        model = KernelRidgeCV(
            alphas=grid, kernel="precomputed", cv=folds, fit_intercept=False, solver_params=batches
        )
        model.fit(x_fit @ x_fit.T, y - y_mean)
        predictions = backend.to_numpy(model.predict(x_new @ x_fit.T))
    else:
        model = RidgeCV(alphas=grid, cv=folds, fit_intercept=False, solver_params=batches)
        model.fit(x_fit, y - y_mean)
        predictions = backend.to_numpy(model.predict(x_new))
    best = np.asarray(backend.to_numpy(model.best_alphas_), dtype=np.float64)
    index = np.abs(np.log(grid)[:, None] - np.log(best)[None, :]).argmin(0)
    return RidgeFit(grid, index, grid[index], np.asarray(predictions) + y_mean)


def fit_ridge(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    alphas: Sequence[float] | Callable[[np.ndarray], np.ndarray],
    *,
    backend: str = "auto",
    device: str | torch.device | None = None,
) -> RidgeFit:
    """Dispatch to a backend: ``"torch"`` (exact LOO) or ``"himalaya"``; ``"auto"`` is torch.

    ``"auto"`` runs the exact path on CUDA when a GPU is there and the problem
    is large (more than 10⁵ target × alpha pairs), else on the CPU.

    Parameters
    ----------
    x_train, y_train, x_test, alphas
        As for :func:`ridge_loo`.
    backend
        One of :data:`BACKENDS`.
    device
        torch device; ``None`` lets ``"auto"`` choose.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown ridge backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "himalaya":
        if callable(alphas):
            alphas = alphas(_centred_gram_eigvals(x_train))
        return ridge_himalaya(x_train, y_train, x_test, alphas, device=device or "cpu")
    if device is None:
        n_alphas = 100 if callable(alphas) else len(alphas)
        size = np.asarray(y_train).reshape(len(y_train), -1).shape[1] * n_alphas
        device = "cuda" if torch.cuda.is_available() and size > 100_000 else "cpu"
    return ridge_loo(x_train, y_train, x_test, alphas, device=device)


def _centred_gram_eigvals(x: np.ndarray) -> np.ndarray:
    centred = np.asarray(x, dtype=np.float64) - np.asarray(x, dtype=np.float64).mean(0)
    return np.linalg.eigvalsh(centred @ centred.T)
