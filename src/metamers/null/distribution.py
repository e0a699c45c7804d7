"""Null distributions: similarity of random pairs of *different* natural stimuli, per layer.

A null answers "how similar are a model's activations for two unrelated
natural stimuli?". Each pair holds augmented views (random resized crop,
flip, colour jitter) of two different source stimuli — never two crops of
one photo. Views are run through the model in batches (one forward per view,
stopping at the deepest requested layer, all layers in one pass). By default
pairs are formed among the views of a batch, each view serving in about
``pairs_per_view`` = 8 pairs; ``pairs_per_view=1`` is the published pairing,
each pair two fresh views used in no other pair.

Sampling is prefix-consistent: every batch draws its full set of pairs and
the last batch is cut, so the null of ``N`` pairs is the first ``N`` pairs of
a larger null with the same seed and settings, and a cached larger null serves
a smaller request.

The maximum of a null grows with its number of pairs, so every criterion
built from it reports that number, and the number of distinct stimuli and
stimulus pairs it rests on.

A null saves and loads itself (:meth:`NullDistribution.save`,
:meth:`NullDistribution.load`); the cache is made of such files.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metamers.errors import ConfigError, LayerError, StimulusError
from metamers.io import check_writable_dir
from metamers.models import PixelModel
from metamers.null.augment import Augmentation, augmented_view, prepare_source
from metamers.null.cache import (
    STALE_POLICIES,
    NullCacheError,
    NullCacheWarning,
    cache_path,
    find_larger,
    load_arrays,
    one_line,
    resolve_cache_dir,
    save_arrays,
)
from metamers.similarity.metrics import (
    SIMILARITY_METRICS,
    ZERO_TESTS,
    check_zero_test,
    indexed_similarities,
)
from metamers.stimuli import StimulusSet

MIN_RECOMMENDED_STIMULI = 100
"""Below this many distinct source stimuli a null gets a :class:`SmallNullWarning`."""

DEFAULT_PAIRS_PER_VIEW = 8
"""Default number of pairs each augmented view serves in (1 = the published pairing)."""

DEFAULT_ZERO_TEST = "all"
"""Default zero test of the null's pairs (``"sum"`` = the published test)."""

ProgressCallback = Callable[[int, int], None]


class SmallNullWarning(UserWarning):
    """A null rests on few distinct stimuli: its maximum is a weak criterion."""


@dataclass
class NullDistribution:
    """Similarities of random pairs of different natural stimuli at several layers.

    Attributes
    ----------
    model, model_fingerprint
        The model's name and weights fingerprint.
    layers
        Layers, in the order of the columns of ``values``.
    values
        ``{metric: (n_pairs, n_layers)}`` float64 for Spearman, Pearson and dB SNR
        (conventional ``20·log10``; see :func:`metamers.similarity.metrics.snr_db`).
    first, second
        ``(n_pairs,)`` indices into ``stimulus_ids`` of each pair's source stimuli
        (always different).
    stimulus_ids
        The pool the pairs were drawn from.
    stimuli_spec, stimuli_fingerprint
        The pool's spec string and fingerprint.
    augmentation
        The augmentation parameters (:meth:`Augmentation.as_dict`).
    seed
        Seed of the sampling.
    n_views
        Number of augmented views (forward passes) the pairs were formed from.
    pairs_per_view
        The pairing: ``1`` = every view in exactly one pair (published, ``n_views
        = 2·n_pairs``); ``k > 1`` = pairs formed among the views of a batch, each
        view in about ``k`` pairs (default 8).
    zero_test
        Which activations counted as zero, making their pair score 0: ``"all"``
        (every element 0; default) or ``"sum"`` (the published ``sum == 0``).
    first_view, second_view
        ``(n_pairs,)`` indices (``0 … n_views−1``) of each pair's two views;
        ``None`` for a null built by hand.
    path
        The file this null was read from or written to (cache or :meth:`save`).
    from_cache
        Whether this object was read from a file rather than computed.
    key
        The cache key it was computed under (:func:`null_key`).
    """

    model: str
    model_fingerprint: str
    layers: tuple[str, ...]
    values: dict[str, np.ndarray]
    first: np.ndarray
    second: np.ndarray
    stimulus_ids: tuple[str, ...]
    stimuli_spec: str
    stimuli_fingerprint: str
    augmentation: dict
    seed: int
    n_views: int
    pairs_per_view: int = DEFAULT_PAIRS_PER_VIEW
    zero_test: str = DEFAULT_ZERO_TEST
    first_view: np.ndarray | None = field(default=None, repr=False)
    second_view: np.ndarray | None = field(default=None, repr=False)
    path: Path | None = None
    from_cache: bool = False
    key: dict = field(default_factory=dict, repr=False)

    @property
    def n_pairs(self) -> int:
        """Number of pairs (the ``N`` every criterion depends on)."""
        return int(self.first.shape[0])

    @property
    def pool_size(self) -> int:
        """Number of stimuli in the pool the pairs were drawn from."""
        return len(self.stimulus_ids)

    @property
    def n_stimuli(self) -> int:
        """Number of distinct source stimuli that appear in at least one pair."""
        return int(np.unique(np.concatenate([self.first, self.second])).size)

    @property
    def n_distinct_pairs(self) -> int:
        """Number of distinct unordered pairs of source stimuli."""
        low = np.minimum(self.first, self.second).astype(np.int64)
        high = np.maximum(self.first, self.second).astype(np.int64)
        return int(np.unique(low * self.pool_size + high).size)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names held."""
        return tuple(self.values)

    def __repr__(self) -> str:
        """A summary (model, layers, sizes, pairing), never the arrays of values."""
        pairing = (
            "published" if self.pairs_per_view == 1 else f"pairs_per_view={self.pairs_per_view}"
        )
        source = f", path={str(self.path)!r}" if self.path is not None else ""
        return (
            f"NullDistribution(model={self.model!r}, layers={list(self.layers)!r}, "
            f"n_pairs={self.n_pairs}, n_stimuli={self.n_stimuli}, pool_size={self.pool_size}, "
            f"metrics={list(self.metrics)!r}, pairing={pairing!r}, seed={self.seed}{source})"
        )

    def describe(self) -> str:
        """One line: pairs, distinct stimuli and pairs, and any non-default setting."""
        text = (
            f"null of {self.n_pairs} pairs ({self.n_views} augmented views) from "
            f"{self.n_stimuli} distinct stimuli, {self.n_distinct_pairs} distinct stimulus pairs"
        )
        if self.pairs_per_view == 1:
            text += ", published pairing (every view in one pair)"
        elif self.pairs_per_view != DEFAULT_PAIRS_PER_VIEW:
            text += f", pairs_per_view={self.pairs_per_view}"
        if self.zero_test != DEFAULT_ZERO_TEST:
            text += f", zero test {self.zero_test!r}"
        return text

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this null to ``path`` (a self-describing ``.npz``), atomically.

        The file holds the values, the pairs' stimulus and view indices, and as
        JSON metadata the model and its weights fingerprint, the layers, the
        stimulus ids, spec and fingerprint, the augmentation, seed, sizes,
        pairing, zero test and cache key. No pickles: read it with :meth:`load`
        (or ``numpy.load(path, allow_pickle=False)``).

        Parameters
        ----------
        path
            Destination; its folder is created.

        Returns
        -------
        Path
            ``path``.
        """
        path = Path(path)
        meta = {
            "kind": "metamers null distribution",
            "key": self.key,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "layers": list(self.layers),
            "metrics": list(self.metrics),
            "n_pairs": self.n_pairs,
            "stimulus_ids": list(self.stimulus_ids),
            "stimuli_spec": self.stimuli_spec,
            "stimuli_fingerprint": self.stimuli_fingerprint,
            "augmentation": self.augmentation,
            "seed": int(self.seed),
            "n_views": int(self.n_views),
            "pairs_per_view": int(self.pairs_per_view),
            "zero_test": self.zero_test,
        }
        arrays = {f"values_{m}": np.asarray(v, dtype=np.float64) for m, v in self.values.items()}
        arrays["first"], arrays["second"] = self.first, self.second
        if self.first_view is not None and self.second_view is not None:
            arrays["first_view"], arrays["second_view"] = self.first_view, self.second_view
        save_arrays(path, meta, arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NullDistribution:
        """Read a null written by :meth:`save` (or found in the cache).

        Parameters
        ----------
        path
            A ``.npz`` file written by :meth:`save`.

        Returns
        -------
        NullDistribution
            With ``path`` set and ``from_cache`` true. Check that it fits your
            model (``model_fingerprint``) and layers (:meth:`check_layers`)
            before using it.

        Raises
        ------
        NullCacheError
            The file is missing, unreadable, inconsistent (corrupt) or was
            written by another format version (stale); one line.
        """
        return _load_null(Path(path), "null file")

    def _with_layer_order(self, layers: Sequence[str]) -> None:
        """Reorder the columns in place to ``layers`` (a permutation of ``self.layers``)."""
        order = [self.layers.index(layer) for layer in layers]
        self.values = {m: v[:, order] for m, v in self.values.items()}
        self.layers = tuple(layers)

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise :class:`LayerError` unless the null covers every layer in ``layers``.

        Parameters
        ----------
        layers
            Layer names of the null's model.

        Raises
        ------
        LayerError
            A layer the null was not computed at; the message names the command
            that computes it.
        """
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise LayerError(
                f"the null for {self.model} covers layers {list(self.layers)}, not {missing}; "
                f"recompute it with these layers (e.g. `metamers null {self.model} "
                f"--layers {','.join(dict.fromkeys([*self.layers, *missing]))}`)"
            )

    def column(self, layer: str, metric: str) -> np.ndarray:
        """The ``(n_pairs,)`` null values of ``metric`` at ``layer``.

        Parameters
        ----------
        layer
            One of :attr:`layers`.
        metric
            One of :attr:`metrics` (``"spearman"``, ``"pearson"`` or ``"snr_db"``).

        Raises
        ------
        LayerError
            The null does not cover ``layer``.
        ConfigError
            The null does not hold ``metric``.
        """
        self.check_layers([layer])
        if metric not in self.values:
            raise ConfigError(f"the null holds metrics {self.metrics}, not {metric!r}")
        return self.values[metric][:, self.layers.index(layer)]

    def max(self, layer: str, metric: str) -> float:
        """Maximum of the null (the published acceptance threshold).

        Parameters
        ----------
        layer, metric
            Which null column (see :meth:`column`).
        """
        return float(np.max(self.column(layer, metric)))

    def quantile(self, layer: str, metric: str, q: float) -> float:
        """The ``q``-quantile (``0 ≤ q ≤ 1``) of the null.

        Parameters
        ----------
        layer, metric
            Which null column (see :meth:`column`).
        q
            The quantile, e.g. 0.99 (numpy's default linear interpolation).
        """
        return float(np.quantile(self.column(layer, metric), q))

    def p_value(self, layer: str, metric: str, value: np.ndarray | float) -> np.ndarray:
        """Empirical one-sided p-value ``(1 + #{null ≥ value}) / (N + 1)``.

        Parameters
        ----------
        layer, metric
            Which null column (see :meth:`column`).
        value
            Similarities, any shape.

        Returns
        -------
        numpy.ndarray
            p-values of the shape of ``value``, in ``[1 / (N + 1), 1]``; ``N`` is
            :attr:`n_pairs`.
        """
        column = np.sort(self.column(layer, metric))
        value = np.asarray(value, dtype=np.float64)
        at_least = column.size - np.searchsorted(column, value, side="left")
        return (1.0 + at_least) / (column.size + 1.0)

    def summary(self) -> pd.DataFrame:
        """Tidy quantiles: one row per layer × metric (min, median, 99 %, max, pairs, stimuli)."""
        rows = []
        for metric, table in self.values.items():
            for j, layer in enumerate(self.layers):
                column = table[:, j]
                rows.append(
                    {
                        "layer": layer,
                        "metric": metric,
                        "min": float(np.min(column)),
                        "median": float(np.median(column)),
                        "q99": float(np.quantile(column, 0.99)),
                        "max": float(np.max(column)),
                        "n_pairs": self.n_pairs,
                        "n_stimuli": self.n_stimuli,
                        "n_distinct_pairs": self.n_distinct_pairs,
                    }
                )
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """Every value, tidy: one row per pair × layer × metric."""
        frames = []
        for metric, table in self.values.items():
            for j, layer in enumerate(self.layers):
                frames.append(
                    pd.DataFrame(
                        {
                            "pair": np.arange(self.n_pairs),
                            "first": np.asarray(self.stimulus_ids)[self.first],
                            "second": np.asarray(self.stimulus_ids)[self.second],
                            "layer": layer,
                            "metric": metric,
                            "value": table[:, j],
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True)


def null_key(
    model: PixelModel,
    layers: Sequence[str],
    stimuli: StimulusSet,
    n_pairs: int,
    seed: int,
    augmentation: Augmentation,
    batch_size: int,
    pairs_per_view: int,
    zero_test: str = DEFAULT_ZERO_TEST,
) -> dict:
    """The cache key: everything the null's values depend on (JSON-normalised).

    Parameters
    ----------
    model
        The model (its name and weight fingerprint enter the key).
    layers
        The measured layers (order and duplicates do not matter).
    stimuli
        The stimulus pool (its content fingerprint enters the key).
    n_pairs, seed, augmentation, batch_size, pairs_per_view, zero_test
        The settings of :func:`compute_null`.

    Returns
    -------
    dict
        A JSON round-tripped dict, also listing :data:`SIMILARITY_METRICS`.
    """
    key = {
        "model": model.name,
        "model_fingerprint": model.fingerprint(),
        "layers": sorted(set(layers)),
        "stimuli": stimuli.fingerprint(),
        "augmentation": augmentation.as_dict(),
        "n_pairs": int(n_pairs),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "pairs_per_view": int(pairs_per_view),
        "zero_test": zero_test,
        "metrics": list(SIMILARITY_METRICS),
    }
    return json.loads(json.dumps(key))


def compute_null(
    model: PixelModel,
    layers: Sequence[str],
    stimuli: StimulusSet,
    n_pairs: int,
    *,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    batch_size: int = 32,
    pairs_per_view: int = DEFAULT_PAIRS_PER_VIEW,
    zero_test: str = DEFAULT_ZERO_TEST,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    on_stale: str = "recompute",
    progress: ProgressCallback | None = None,
) -> NullDistribution:
    """Compute (or load from the cache) the null distribution of a model at some layers.

    Parameters
    ----------
    model
        The model whose activations are compared.
    layers
        Layers to measure (all in one forward pass per batch).
    stimuli
        Pool of natural stimuli; at least 2. Pairs always join two different stimuli.
    n_pairs
        Number of pairs ``N``. The null's maximum grows with ``N``. The ``N``
        pairs are the first ``N`` of any larger null under the same settings,
        so when the cache holds no ``N``-pair null but a larger one, its first
        ``N`` pairs are returned (``from_cache``; ``key`` and ``n_pairs`` are
        this request's, ``path`` the larger null's file).
    seed
        Seed of the view sources, augmentation and pairing.
    augmentation
        Training-style augmentation (default :class:`Augmentation`; none for audio).
    batch_size
        Views per forward pass.
    pairs_per_view
        The pairing. ``1``: the published pairing — every pair is two fresh
        views of two different stimuli, used in no other pair (``2·N`` views,
        ``batch_size // 2`` pairs per batch). ``k > 1`` (default 8): pairs are
        formed among the views of a batch, each view serving in ``k`` pairs on
        average (``batch_size·k/2`` pairs per batch, at most the number of
        valid pairs in the batch): ``k`` times fewer forwards, but pairs that
        share a view are not independent.
    zero_test
        ``"all"`` (default): a pair scores 0 when either activation is all
        zeros. ``"sum"``: when either sums to zero (the published test).
    cache_dir
        Cache folder (default ``$METAMERS_CACHE/null`` or ``~/.cache/metamers/null``).
    use_cache
        Read and write the cache.
    on_stale
        ``"recompute"`` (warn and overwrite) or ``"raise"`` for a corrupt or stale cache file.
    progress
        Called as ``progress(pairs_done, n_pairs)`` after every batch.

    Returns
    -------
    NullDistribution

    Raises
    ------
    StimulusError
        Fewer than 2 stimuli in the pool.
    LayerError
        An unknown layer.
    NullCacheError
        A corrupt or stale cache file with ``on_stale="raise"``.
    """
    layers = list(dict.fromkeys(model.check_layers(layers)))
    _check_arguments(stimuli, n_pairs, batch_size, pairs_per_view, zero_test, on_stale)
    if augmentation is None:
        augmentation = Augmentation() if model.modality == "image" else Augmentation.none()
    if augmentation.enabled and model.modality != "image":
        raise ConfigError("augmentation is only defined for images; use Augmentation.none()")
    key = null_key(
        model, layers, stimuli, n_pairs, seed, augmentation, batch_size, pairs_per_view, zero_test
    )
    path = cache_path(resolve_cache_dir(cache_dir), model.name, key) if use_cache else None
    null = _read_cache(path, key, layers, on_stale) if path is not None else None
    if null is None and path is not None and not path.exists():
        null = _read_larger(path.parent, model.name, key, layers)
    if null is None:
        if path is not None:
            check_writable_dir(path.parent)  # before the work, not after it
        null = _sample_null(
            model,
            layers,
            stimuli,
            n_pairs,
            seed,
            augmentation,
            batch_size,
            pairs_per_view,
            zero_test,
            progress,
        )
        null.key = key
        if path is not None:
            null.path = null.save(path)
    _warn_if_small(null)
    return null


def _check_arguments(
    stimuli: StimulusSet,
    n_pairs: int,
    batch_size: int,
    pairs_per_view: int,
    zero_test: str,
    on_stale: str,
) -> None:
    if len(stimuli) < 2:
        raise StimulusError(
            f"a null needs at least 2 different stimuli, {stimuli.spec!r} has {len(stimuli)}; "
            "give a larger set with --stimuli"
        )
    if n_pairs < 1:
        raise ConfigError(f"the number of null pairs must be at least 1, got {n_pairs}")
    if batch_size < 2:
        raise ConfigError(f"null batch size must be at least 2, got {batch_size}")
    if pairs_per_view < 1:
        raise ConfigError(f"pairs_per_view must be at least 1, got {pairs_per_view}")
    if zero_test not in ZERO_TESTS:
        raise ConfigError(f"zero_test must be one of {ZERO_TESTS}, got {zero_test!r}")
    if on_stale not in STALE_POLICIES:
        raise ConfigError(f"on_stale must be one of {STALE_POLICIES}, got {on_stale!r}")


def _warn_if_small(null: NullDistribution) -> None:
    if null.n_stimuli < MIN_RECOMMENDED_STIMULI:
        warnings.warn(
            f"{null.describe()}: fewer than {MIN_RECOMMENDED_STIMULI} distinct stimuli, so its "
            "maximum is a weak acceptance criterion (the published nulls used 10^4-10^6 pairs "
            "of ImageNet training images); pass a larger stimulus set",
            SmallNullWarning,
            stacklevel=3,
        )


def _sample_null(
    model: PixelModel,
    layers: list[str],
    stimuli: StimulusSet,
    n_pairs: int,
    seed: int,
    augmentation: Augmentation,
    batch_size: int,
    pairs_per_view: int,
    zero_test: str,
    progress: ProgressCallback | None,
) -> NullDistribution:
    loader = view_loader(model, stimuli, augmentation)
    root = np.random.SeedSequence(seed)
    sources = _source_schedule(np.random.default_rng(root.spawn(1)[0]), len(stimuli))
    fresh = _pair_schedule(sources) if pairs_per_view == 1 else None
    per_batch = max(1, batch_size * pairs_per_view // 2)
    values = {m: np.empty((n_pairs, len(layers))) for m in SIMILARITY_METRICS}
    first = np.empty(n_pairs, dtype=np.int32)
    second = np.empty(n_pairs, dtype=np.int32)
    first_view = np.empty(n_pairs, dtype=np.int32)
    second_view = np.empty(n_pairs, dtype=np.int32)
    done, n_views, batch_index = 0, 0, 0
    while done < n_pairs:
        batch_seed = np.random.SeedSequence([seed, 1, batch_index])
        rng = np.random.default_rng(batch_seed)
        if fresh is not None:
            source, i, j = _fresh_pairs(fresh, batch_size // 2)
        else:
            source = _batch_sources(sources, batch_size, rng)
            i, j = _pick_pairs(source, per_batch, rng)
        # Every batch draws (and runs) its full set of pairs and the last one is cut,
        # so the first N pairs of a larger null are the N-pair null, bit for bit.
        i, j = i[: n_pairs - done], j[: n_pairs - done]
        view_seeds = batch_seed.generate_state(source.size, dtype=np.uint64) >> np.uint64(1)
        views = torch.stack([loader(int(s), int(v)) for s, v in zip(source, view_seeds)])
        with torch.inference_mode():
            activations = model.activations(views.to(model.device), layers)
            ii, jj = torch.as_tensor(i), torch.as_tensor(j)
            for col, layer in enumerate(layers):
                batch_values = indexed_similarities(activations[layer], ii, jj, zero_test=zero_test)
                for metric, value in batch_values.items():
                    values[metric][done : done + len(i), col] = value.cpu().numpy()
        first[done : done + len(i)], second[done : done + len(i)] = source[i], source[j]
        first_view[done : done + len(i)] = n_views + i
        second_view[done : done + len(i)] = n_views + j
        done += len(i)
        n_views += 2 * len(i) if fresh is not None else source.size
        batch_index += 1
        if progress is not None:
            progress(done, n_pairs)
    return NullDistribution(
        model=model.name,
        model_fingerprint=model.fingerprint(),
        layers=tuple(layers),
        values=values,
        first=first,
        second=second,
        stimulus_ids=tuple(stimuli.ids),
        stimuli_spec=stimuli.spec,
        stimuli_fingerprint=stimuli.fingerprint(),
        augmentation=augmentation.as_dict(),
        seed=int(seed),
        n_views=n_views,
        pairs_per_view=int(pairs_per_view),
        zero_test=zero_test,
        first_view=first_view,
        second_view=second_view,
    )


_RAW_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_RAW_CACHE_SIZE = 256


def _load_raw_cached(
    stimuli: StimulusSet, index: int, input_shape: tuple[int, ...], scale: float | None
) -> torch.Tensor:
    """Decoded (and shrunk) source, kept in a small process-wide LRU: decoding is slow."""
    stimulus = stimuli[index]
    key = (stimuli.fingerprint(), stimulus.id, input_shape, scale)
    if key in _RAW_CACHE:
        _RAW_CACHE.move_to_end(key)
        return _RAW_CACHE[key]
    raw = prepare_source(stimuli.load_raw(stimulus), input_shape, scale)
    _RAW_CACHE[key] = raw
    while len(_RAW_CACHE) > _RAW_CACHE_SIZE:
        _RAW_CACHE.popitem(last=False)
    return raw


def view_loader(
    model: PixelModel, stimuli: StimulusSet, augmentation: Augmentation
) -> Callable[[int, int], torch.Tensor]:
    """``load(stimulus_index, view_seed) -> view`` of ``model.input_shape``.

    The views a null is built from (``compute_null`` uses it): the stimulus itself when
    ``augmentation`` is disabled, else an augmented view drawn with ``view_seed``.

    Parameters
    ----------
    model
        The model; its input shape is the shape of every view.
    stimuli
        The stimulus pool indexed by ``stimulus_index``.
    augmentation
        The augmentation (see :class:`~metamers.null.augment.Augmentation`);
        augmented sources are decoded once and kept in a small process-wide
        cache.
    """
    transform = augmentation.transform(model.input_shape) if augmentation.enabled else None

    def load(index: int, view_seed: int) -> torch.Tensor:
        if transform is None:
            return stimuli.load_for(stimuli[index], model)
        source = _load_raw_cached(stimuli, index, model.input_shape, augmentation.max_source_scale)
        return augmented_view(source, transform, view_seed)

    return load


def _source_schedule(rng: np.random.Generator, n_stimuli: int) -> Iterator[int]:
    """Endless stream of stimulus indices: one random permutation after another (balanced use)."""
    while True:
        yield from rng.permutation(n_stimuli).tolist()


def _batch_sources(sources: Iterator[int], batch_size: int, rng: np.random.Generator) -> np.ndarray:
    source = np.array([next(sources) for _ in range(batch_size)], dtype=np.int64)
    if np.unique(source).size < 2:
        # Only possible at a permutation boundary with tiny batches: force a second stimulus.
        other = next(s for s in sources if s != source[0])
        source[rng.integers(1, batch_size)] = other
    return source


def _pair_schedule(sources: Iterator[int]) -> Iterator[tuple[int, int]]:
    """Endless stream of pairs of two different stimuli, each draw of ``sources`` used once.

    Consecutive draws form a pair; a draw equal to the pair's first member (only
    possible across a permutation boundary) is held back for the next pair.
    """
    held: deque[int] = deque()
    while True:
        first = held.popleft() if held else next(sources)
        for second in sources:
            if second != first:
                yield first, second
                break
            held.append(second)


def _fresh_pairs(
    pairs: Iterator[tuple[int, int]], n_pairs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The published pairing for one batch: ``n_pairs`` pairs on ``2·n_pairs`` fresh views.

    Returns the views' source stimuli ``(2·n_pairs,)`` and the pairs' view
    indices ``i = 0, 2, 4, …`` and ``j = i + 1``: a perfect matching of the
    batch's views, every view in exactly one pair, never two views of one stimulus.
    """
    source = np.array([next(pairs) for _ in range(n_pairs)], dtype=np.int64).reshape(-1)
    i = np.arange(0, 2 * n_pairs, 2)
    return source, i, i + 1


def _pick_pairs(
    source: np.ndarray, n_wanted: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct view pairs with different source stimuli, in random member order."""
    i, j = np.triu_indices(source.size, k=1)
    valid = source[i] != source[j]
    i, j = i[valid], j[valid]
    chosen = rng.choice(i.size, size=min(n_wanted, i.size), replace=False)
    i, j = i[chosen], j[chosen]
    swap = rng.random(i.size) < 0.5
    return np.where(swap, j, i), np.where(swap, i, j)


def _read_cache(path: Path, key: dict, layers: list[str], on_stale: str) -> NullDistribution | None:
    if not path.exists():
        return None
    try:
        null = _load_null(path, "null cache file")
        if null.key != key:
            raise NullCacheError(f"stale null cache file {path}: it was computed for another key")
    except NullCacheError as exc:
        if on_stale == "raise":
            raise NullCacheError(
                f"{exc}; delete it or recompute with on_stale='recompute'"
            ) from exc
        warnings.warn(f"{exc}; recomputing", NullCacheWarning, stacklevel=3)
        return None
    null._with_layer_order(layers)
    return null


def _read_larger(
    cache_dir: Path, model_name: str, key: dict, layers: list[str]
) -> NullDistribution | None:
    """The first ``key["n_pairs"]`` pairs of a cached larger null under the same key, if any."""
    path = find_larger(cache_dir, model_name, key) if cache_dir.is_dir() else None
    if path is None:
        return None
    try:
        larger = _load_null(path, "null cache file")
    except NullCacheError:
        return None  # an unreadable larger file is not this request's business
    if {**larger.key, "n_pairs": key["n_pairs"]} != key or larger.n_pairs <= key["n_pairs"]:
        return None
    null = _first_pairs(larger, int(key["n_pairs"]), int(key["batch_size"]))
    null.key = key
    null._with_layer_order(layers)
    return null


def _first_pairs(null: NullDistribution, n_pairs: int, batch_size: int) -> NullDistribution:
    """The null of the first ``n_pairs`` pairs of ``null`` (sampled with ``batch_size``).

    What :func:`_sample_null` returns for ``n_pairs``: the values and indices of
    the first pairs, and the views of the batches they were drawn from.
    """
    first_view, second_view = null.first_view, null.second_view
    if first_view is not None and second_view is not None:
        first_view, second_view = first_view[:n_pairs], second_view[:n_pairs]
    if null.pairs_per_view == 1:
        n_views = 2 * n_pairs
    elif first_view is not None and second_view is not None:
        last = int(max(first_view.max(), second_view.max()))
        n_views = (last // batch_size + 1) * batch_size
    else:
        n_views = null.n_views
    return NullDistribution(
        model=null.model,
        model_fingerprint=null.model_fingerprint,
        layers=null.layers,
        values={m: v[:n_pairs].copy() for m, v in null.values.items()},
        first=null.first[:n_pairs].copy(),
        second=null.second[:n_pairs].copy(),
        stimulus_ids=null.stimulus_ids,
        stimuli_spec=null.stimuli_spec,
        stimuli_fingerprint=null.stimuli_fingerprint,
        augmentation=dict(null.augmentation),
        seed=null.seed,
        n_views=n_views,
        pairs_per_view=null.pairs_per_view,
        zero_test=null.zero_test,
        first_view=None if first_view is None else first_view.copy(),
        second_view=None if second_view is None else second_view.copy(),
        path=null.path,
        from_cache=True,
    )


def _load_null(path: Path, what: str) -> NullDistribution:
    """Read and check a file written by :meth:`NullDistribution.save` (the one reader)."""
    if not path.is_file():
        raise NullCacheError(f"no {what} at {path}")
    meta, arrays = load_arrays(path, what)
    try:
        null = _null_from_arrays(meta, arrays)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise NullCacheError(f"corrupt {what} {path}: {one_line(exc)}") from exc
    null.path, null.from_cache = path, True
    return null


def _null_from_arrays(meta: dict, arrays: dict[str, np.ndarray]) -> NullDistribution:
    """A :class:`NullDistribution` from a file's metadata and arrays, checked for consistency."""
    layers = tuple(str(layer) for layer in meta["layers"])
    n_pairs = int(meta["n_pairs"])
    shape = (n_pairs, len(layers))
    values = {m: arrays[f"values_{m}"] for m in meta["metrics"]}
    first, second = arrays["first"], arrays["second"]
    first_view, second_view = arrays.get("first_view"), arrays.get("second_view")
    stimulus_ids = tuple(str(i) for i in meta["stimulus_ids"])
    n_views = int(meta["n_views"])
    pairs_per_view = int(meta["pairs_per_view"])
    zero_test = check_zero_test(meta["zero_test"])
    key = meta["key"]
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"bad layer list {list(layers)}")
    if any(v.shape != shape or v.dtype.kind != "f" for v in values.values()):
        raise ValueError(f"value arrays are not float arrays of shape {shape}")
    indices = [first, second] + ([first_view, second_view] if first_view is not None else [])
    if any(a.shape != (n_pairs,) or a.dtype.kind not in "iu" for a in indices):
        raise ValueError(f"index arrays are not integer arrays of shape ({n_pairs},)")
    if np.any(first == second) or not _within(first, second, bound=len(stimulus_ids)):
        raise ValueError("a pair joins a stimulus with itself or one outside the pool")
    if first_view is not None and (
        np.any(first_view == second_view) or not _within(first_view, second_view, bound=n_views)
    ):
        raise ValueError("a pair joins a view with itself or one outside the views")
    if pairs_per_view < 1:
        raise ValueError(f"pairs_per_view {pairs_per_view} < 1")
    missing = [m for m in SIMILARITY_METRICS if m not in values]
    if missing:
        raise ValueError(f"it lacks the metrics {missing}")
    if not isinstance(key, dict) or (
        key and (sorted(key["layers"]) != sorted(layers) or key["n_pairs"] != n_pairs)
    ):
        raise ValueError("its layers or size disagree with its cache key")
    return NullDistribution(
        model=str(meta["model"]),
        model_fingerprint=str(meta["model_fingerprint"]),
        layers=layers,
        values={m: v.astype(np.float64) for m, v in values.items()},
        first=first,
        second=second,
        stimulus_ids=stimulus_ids,
        stimuli_spec=str(meta["stimuli_spec"]),
        stimuli_fingerprint=str(meta["stimuli_fingerprint"]),
        augmentation=dict(meta["augmentation"]),
        seed=int(meta["seed"]),
        n_views=n_views,
        pairs_per_view=pairs_per_view,
        zero_test=zero_test,
        first_view=first_view,
        second_view=second_view,
        key=key,
    )


def _within(first: np.ndarray, second: np.ndarray, bound: int) -> bool:
    both = np.concatenate([first, second])
    return bool(both.size == 0 or (both.min() >= 0 and both.max() < bound))
