"""Compare the representations of several models' layers on one stimulus set (RSA or CKA).

Each model is run once over the stimuli (streamed in batches, stopping after
its deepest requested layer); each layer is reduced at once to an ``N x N``
summary (an RDM for RSA, a Gram matrix for CKA) and its features are dropped,
so memory holds one model's features at a time. The (model, layer) ×
(model, layer) similarity matrix is a :class:`pandas.DataFrame` whose index and
columns are a ``(model, layer)`` MultiIndex.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from metamers.errors import ConfigError, MetamersError
from metamers.extraction import Extractor
from metamers.io import atomic_path, write_table
from metamers.models import PixelModel, load_model
from metamers.similarity.cka import KERNELS, Kernel, cka_from_grams, gram_matrix
from metamers.similarity.rdm import (
    DISTANCES,
    RSA_METHODS,
    Distance,
    RSAMethod,
    compare_rdms,
    compute_rdm,
)
from metamers.stimuli import resolve_stimuli
from metamers.stimuli.sets import StimulusSet

Method = Literal["rsa", "cka"]
METHODS: tuple[str, ...] = ("rsa", "cka")
ModelSpec = str | PixelModel
ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True)
class ComparisonSettings:
    """How two layers are compared.

    Attributes
    ----------
    method
        ``"rsa"`` (correlate RDMs) or ``"cka"`` (centred kernel alignment).
    distance
        RDM distance for RSA: ``"correlation"``, ``"cosine"`` or ``"euclidean"``.
    rsa_method
        How RDMs are correlated: ``"spearman"``, ``"pearson"`` or ``"kendall"``.
    kernel
        CKA kernel: ``"linear"`` or ``"rbf"``.
    unbiased
        CKA with the unbiased HSIC estimator.
    bandwidth_factor
        RBF bandwidth as a multiple of the median distance.
    """

    method: Method = "rsa"
    distance: Distance = "correlation"
    rsa_method: RSAMethod = "spearman"
    kernel: Kernel = "linear"
    unbiased: bool = False
    bandwidth_factor: float = 1.0

    def __post_init__(self) -> None:
        for value, allowed, name in (
            (self.method, METHODS, "method"),
            (self.distance, DISTANCES, "distance"),
            (self.rsa_method, RSA_METHODS, "rsa_method"),
            (self.kernel, KERNELS, "kernel"),
        ):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")

    def summarise(self, features: np.ndarray) -> np.ndarray:
        """Reduce ``(N, D)`` features to the ``(N, N)`` matrix the method compares.

        Parameters
        ----------
        features
            ``(N, D)`` features of one layer, one row per stimulus.

        Returns
        -------
        numpy.ndarray
            ``(N, N)``: the RDM under :attr:`distance` for RSA, the Gram matrix under
            :attr:`kernel` (uncentred) for CKA.
        """
        if self.method == "rsa":
            return compute_rdm(features, self.distance)
        return gram_matrix(features, self.kernel, bandwidth_factor=self.bandwidth_factor)

    def similarity(self, summary_a: np.ndarray, summary_b: np.ndarray) -> float:
        """Similarity of two layers from their summaries.

        Parameters
        ----------
        summary_a, summary_b
            ``(N, N)`` summaries of two layers from :meth:`summarise`, over the same
            stimuli in the same order.

        Returns
        -------
        float
            The RDM correlation (RSA, in [-1, 1]) or the CKA (in [0, 1]).
        """
        if self.method == "rsa":
            return compare_rdms(summary_a, summary_b, self.rsa_method)
        return cka_from_grams(summary_a, summary_b, unbiased=self.unbiased)

    def describe(self) -> dict[str, object]:
        """The settings that matter for ``method``, for metadata and titles."""
        if self.method == "rsa":
            return {"method": "rsa", "distance": self.distance, "rsa_method": self.rsa_method}
        described: dict[str, object] = {
            "method": "cka",
            "kernel": self.kernel,
            "unbiased": self.unbiased,
        }
        if self.kernel == "rbf":
            described["bandwidth_factor"] = self.bandwidth_factor
        return described


@dataclass(frozen=True)
class LayerSummary:
    """One layer reduced to an ``(N, N)`` matrix over the stimuli ``ids``."""

    model: str
    layer: str
    matrix: np.ndarray
    ids: tuple[str, ...]

    def restricted(self, ids: Sequence[str]) -> np.ndarray:
        """The matrix over a subset of the stimuli, in the order of ``ids``.

        Parameters
        ----------
        ids
            Stimulus ids, each one of :attr:`ids`.

        Returns
        -------
        numpy.ndarray
            ``(len(ids), len(ids))`` rows and columns of :attr:`matrix`; the matrix
            itself when ``ids`` equals :attr:`ids`.
        """
        if tuple(ids) == self.ids:
            return self.matrix
        position = {stimulus_id: i for i, stimulus_id in enumerate(self.ids)}
        order = np.array([position[i] for i in ids])
        return self.matrix[np.ix_(order, order)]


def compare_models(
    models: Sequence[ModelSpec] | Mapping[str, ModelSpec],
    layers_per_model: Sequence[str] | Mapping[str, Sequence[str]],
    stimuli: StimulusSet | str,
    method: Method = "rsa",
    *,
    distance: Distance = "correlation",
    rsa_method: RSAMethod = "spearman",
    kernel: Kernel = "linear",
    unbiased: bool = False,
    bandwidth_factor: float = 1.0,
    batch_size: int = 16,
    device: str | None = None,
    loader: Callable[[str], PixelModel] | None = None,
    limit: int | None = None,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """The (model × layer) × (model × layer) similarity matrix on one stimulus set.

    Parameters
    ----------
    models
        Model names (loaded with :func:`metamers.models.load_model`) or loaded
        :class:`~metamers.models.PixelModel` objects; a mapping gives each one a
        label (use it to compare a model with a second copy of itself).
    layers_per_model
        Layer names read from every model, or a mapping ``{label: layers}``.
    stimuli
        A stimulus set, or its spec string (e.g. ``"bundled:photos"``).
    method
        ``"rsa"`` or ``"cka"``.
    distance, rsa_method
        RSA only: RDM distance and RDM correlation (see :func:`metamers.similarity.rsa`).
    kernel, unbiased, bandwidth_factor
        CKA only (see :func:`metamers.similarity.cka`).
    batch_size
        Stimuli per forward pass.
    device
        Where named models are loaded (default: CPU).
    loader
        Loads a model from its name, one at a time (default:
        ``load_model(name, device=device)``); use it to pass loading options.
    limit
        Only the first ``limit`` stimuli.
    progress
        Called as ``progress(model_label, n_stimuli_done)`` after each batch.

    Returns
    -------
    pandas.DataFrame
        Symmetric matrix; index and columns are a ``(model, layer)`` MultiIndex.
        ``attrs`` holds the settings, the stimulus spec and the stimulus ids used.

    Examples
    --------
    >>> matrix = compare_models(  # doctest: +SKIP
    ...     ["efficientnet_lite0", "efficientnet_lite1"], ["blocks.1", "blocks.3"],
    ...     "bundled:photos", method="cka")
    """
    settings = ComparisonSettings(method, distance, rsa_method, kernel, unbiased, bandwidth_factor)
    labelled = _label_models(models)
    layers = _layers_by_label(layers_per_model, list(labelled))
    stimulus_set = resolve_stimuli(stimuli) if isinstance(stimuli, str) else stimuli
    stimulus_set = stimulus_set.limit(limit)
    summaries: list[LayerSummary] = []
    load = loader or partial(load_model, device=device)
    for label, spec in labelled.items():
        model = load(spec) if isinstance(spec, str) else spec
        summaries.extend(
            summarise_model(
                model, layers[label], stimulus_set, settings, label, batch_size, progress
            )
        )
    matrix = similarity_matrix(summaries, settings)
    matrix.attrs.update(settings.describe(), stimuli=stimulus_set.spec)
    return matrix


def summarise_model(
    model: PixelModel,
    layers: Sequence[str],
    stimuli: StimulusSet,
    settings: ComparisonSettings,
    label: str | None = None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
) -> list[LayerSummary]:
    """Extract ``layers`` of ``model`` in one streamed pass and reduce each to its summary.

    Parameters
    ----------
    model
        The model to run.
    layers
        Layer names of ``model`` to summarise (checked with
        :meth:`~metamers.models.PixelModel.check_layers`).
    stimuli
        The stimuli, streamed through the model in batches.
    settings
        Decides the summary (RDM or Gram matrix, see
        :meth:`ComparisonSettings.summarise`).
    label
        The model's label in the summaries (default: ``model.name``).
    batch_size
        Stimuli per forward pass.
    progress
        Called as ``progress(label, n_stimuli_done)`` after each batch.

    Returns
    -------
    list of LayerSummary
        One per layer, in the order of ``layers``.
    """
    label = label or model.name
    layers = model.check_layers(layers)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    ids: list[str] = []
    for chunk, arrays in Extractor(model, batch_size=batch_size).iter_batches(stimuli, layers):
        ids.extend(stimulus.id for stimulus in chunk)
        for name, array in arrays.items():
            parts[name].append(array)
        if progress is not None:
            progress(label, len(ids))
    summaries = []
    for name in layers:
        features = np.concatenate(parts.pop(name))
        summaries.append(LayerSummary(label, name, settings.summarise(features), tuple(ids)))
    return summaries


def similarity_matrix(
    summaries: Sequence[LayerSummary], settings: ComparisonSettings
) -> pd.DataFrame:
    """Pairwise similarities of layer summaries on the stimuli they all share.

    Stimuli missing from some summaries are left out with a warning.

    Parameters
    ----------
    summaries
        Layer summaries from :func:`summarise_model`, possibly of several models.
    settings
        The settings the summaries were made with (decides the similarity).

    Returns
    -------
    pandas.DataFrame
        Symmetric ``len(summaries)``-square matrix with a ``(model, layer)``
        MultiIndex; ``attrs["stimulus_ids"]`` lists the stimuli compared on.

    Raises
    ------
    ConfigError
        ``summaries`` is empty.
    MetamersError
        Fewer than 3 stimuli are shared by every summary.
    """
    ids = _shared_ids(summaries)
    matrices = [summary.restricted(ids) for summary in summaries]
    size = len(matrices)
    values = np.full((size, size), np.nan)
    for i in range(size):
        for j in range(i, size):
            values[i, j] = values[j, i] = settings.similarity(matrices[i], matrices[j])
    index = pd.MultiIndex.from_tuples(
        [(summary.model, summary.layer) for summary in summaries], names=["model", "layer"]
    )
    frame = pd.DataFrame(values, index=index, columns=index.copy())
    frame.attrs["stimulus_ids"] = list(ids)
    return frame


def _label_models(models: Sequence[ModelSpec] | Mapping[str, ModelSpec]) -> dict[str, ModelSpec]:
    if isinstance(models, Mapping):
        labelled = {str(label): spec for label, spec in models.items()}
    else:
        names = [spec if isinstance(spec, str) else spec.name for spec in models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                f"model(s) {duplicates} given twice; pass a mapping {{label: model}} to compare "
                "copies of one model"
            )
        labelled = dict(zip(names, models, strict=True))
    if not labelled:
        raise ConfigError("no models to compare")
    return labelled


def _layers_by_label(
    layers_per_model: Sequence[str] | Mapping[str, Sequence[str]], labels: list[str]
) -> dict[str, list[str]]:
    if isinstance(layers_per_model, str):
        raise ConfigError("layers must be a list of names or a mapping {model: [layers]}")
    if not isinstance(layers_per_model, Mapping):
        return {label: list(layers_per_model) for label in labels}
    unknown = sorted(set(layers_per_model) - set(labels))
    missing = [label for label in labels if label not in layers_per_model]
    if unknown or missing:
        raise ConfigError(
            f"layers are given for {sorted(layers_per_model)} but the models are {labels}"
        )
    return {label: list(layers_per_model[label]) for label in labels}


def _shared_ids(summaries: Sequence[LayerSummary]) -> list[str]:
    if not summaries:
        raise ConfigError("no layers to compare")
    common = set(summaries[0].ids).intersection(*(summary.ids for summary in summaries))
    ids = [stimulus_id for stimulus_id in summaries[0].ids if stimulus_id in common]
    dropped = sorted(set().union(*(summary.ids for summary in summaries)) - common)
    if dropped:
        warnings.warn(f"comparing on the shared stimuli only; left out {dropped}", stacklevel=3)
    if len(ids) < 3:
        raise MetamersError(f"only {len(ids)} stimuli are shared by every model; need at least 3")
    return ids


def plot_similarity_matrix(matrix: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Heat map of a similarity matrix from :func:`compare_models`.

    Lines separate models; cells carry their values when the matrix is small.
    The figure is built without pyplot (Agg canvas), so it is safe in scripts and threads.

    Parameters
    ----------
    matrix
        The matrix from :func:`compare_models`; ``attrs["method"]`` chooses the
        colour scale (``[-1, 1]`` for RSA, ``[0, 1]`` for CKA).
    title
        The figure title (default: the settings in ``matrix.attrs``).

    Returns
    -------
    matplotlib.figure.Figure
        The heat map figure.
    """
    labels = [f"{model}\n{layer}" for model, layer in matrix.index]
    size = len(labels)
    side = max(4.0, 0.55 * size + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    is_rsa = matrix.attrs.get("method") == "rsa"
    image = ax.imshow(
        matrix.to_numpy(dtype=float),
        cmap="RdBu_r" if is_rsa else "viridis",
        vmin=-1.0 if is_rsa else 0.0,
        vmax=1.0,
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="RSA" if is_rsa else "CKA")
    ax.set_xticks(range(size), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(size), labels, fontsize=7)
    models = list(matrix.index.get_level_values(0))
    for position in range(1, size):
        if models[position] != models[position - 1]:
            ax.axhline(position - 0.5, color="white", linewidth=1.5)
            ax.axvline(position - 0.5, color="white", linewidth=1.5)
    if size <= 12:
        for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
            dark = abs(value) > 0.6 if is_rsa else value < 0.5
            color = "white" if dark else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title or _title(matrix.attrs), fontsize=9)
    return fig


def _title(attrs: Mapping[str, object]) -> str:
    shown = [f"{k}={v}" for k, v in attrs.items() if k not in ("stimulus_ids", "stimuli")]
    return ", ".join(shown) + (f"\nstimuli: {attrs['stimuli']}" if "stimuli" in attrs else "")


def save_similarity_matrix(
    matrix: pd.DataFrame, out_dir: str | Path, *, stem: str = "similarity"
) -> dict[str, Path]:
    """Write ``STEM.csv``, ``STEM.parquet`` and the heat map ``STEM.png`` atomically.

    Read them back with ``pandas.read_parquet`` or
    ``pandas.read_csv(path, header=[0, 1], index_col=[0, 1])``.

    Parameters
    ----------
    matrix
        The matrix from :func:`compare_models`.
    out_dir
        The folder written into (created if missing).
    stem
        File name without suffix.

    Returns
    -------
    dict
        ``{"csv": path, "parquet": path, "png": path}``.
    """
    folder = Path(out_dir)
    paths = {suffix: folder / f"{stem}.{suffix}" for suffix in ("csv", "parquet", "png")}
    write_table(matrix, folder / stem, index=True)
    figure = plot_similarity_matrix(matrix)
    with atomic_path(paths["png"]) as tmp:
        figure.savefig(tmp, format="png", dpi=150)
    return paths
