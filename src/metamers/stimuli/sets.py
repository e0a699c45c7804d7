"""Stimulus sets: bundled photos, image and sound folders and file lists, behind one spec string.

A *spec* names a set: ``bundled:photos``, a folder (optionally with one
sub-folder per class), a single file, or a comma-separated list of files.
Sound files (``.wav``, ``.flac``, ``.ogg``) make an audio set
(``modality="audio"``, see :mod:`metamers.stimuli.sounds`); a set holds
images or sounds, not both.

Class sub-folders named by ImageNet WordNet ids (``n07920052/``, the layout of
ImageNet validation sets) or ImageNet class names (``espresso/``) label their
stimuli with ImageNet indices (``label_space="imagenet"``); sub-folders named
by integers (``0/`` ... ``9/``) with those integers, and other names with
their alphabetical position (both ``label_space="folders"``). A labels file
(:func:`apply_labels`, ``resolve_stimuli(spec, labels=PATH)``) sets the
labels of any set.

The built-in ``bundled:`` sets (``photos`` from :mod:`metamers.stimuli.bundled`,
``mnist`` from :mod:`metamers.stimuli.mnist`, ``words``, ``words-noisy`` and
``words-null`` from :mod:`metamers.stimuli.words`, built on first use) are registered when this module
is imported, before any of yours (:func:`register_bundled`), which cannot take
their names. Those modules supply records and loaders and do not import this
one.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

from metamers.errors import StimulusError
from metamers.stimuli.bundled import load_packaged, photo_records
from metamers.stimuli.images import IMAGE_SUFFIXES, fit_image, load_image
from metamers.stimuli.labels_file import file_labels
from metamers.stimuli.mnist import held_out_records, load_digit
from metamers.stimuli.sounds import (
    DEFAULT_RMS,
    DEFAULT_SAMPLE_RATE,
    SOUND_SUFFIXES,
    SoundLoader,
    model_sample_rate,
)


@dataclass(frozen=True)
class Stimulus:
    """One natural stimulus.

    Attributes
    ----------
    id
        Short unique name within its set (used in file names and tables).
    source
        Where it comes from: a file path or ``package:name``.
    label
        Human-readable class name, or ``None`` when no label is clear.
    target
        Class index in the set's ``label_space`` (e.g. an ImageNet index), or ``None``.
    """

    id: str
    source: str
    label: str | None = None
    target: int | None = None


class Target(NamedTuple):
    """A stimulus's true label and the label space its index is in.

    Evaluation compares ``index`` with a model's decision only when
    ``label_space`` is the model's own (e.g. both ``"imagenet"``).
    """

    index: int
    label_space: str | None


@dataclass
class StimulusSet(Sequence[Stimulus]):
    """An ordered, named collection of stimuli and the means to load them.

    Attributes
    ----------
    spec
        The spec string this set was resolved from.
    stimuli
        The stimuli, in order.
    loader
        Callable returning the raw tensor of a stimulus (``(C, H, W)`` images
        in ``[0, 1]``; ``(T,)`` waveforms in ``[-1, 1]``).
    label_space
        What ``Stimulus.target`` indexes: ``"imagenet"``, ``"folders"``,
        ``"mnist"``, ... or ``None``.
    modality
        ``"image"`` or ``"audio"``.
    labels_file
        The labels file applied to the set (its labels replace the spec's),
        or ``None``.
    """

    spec: str
    stimuli: list[Stimulus]
    loader: Callable[[Stimulus], torch.Tensor]
    label_space: str | None = None
    modality: str = "image"
    labels_file: str | None = None
    skip_bad: bool = False
    _bad: set[str] = field(default_factory=set, repr=False)

    def __len__(self) -> int:
        return len(self.stimuli)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return replace(self, stimuli=self.stimuli[index])
        return self.stimuli[index]

    @property
    def ids(self) -> list[str]:
        """Stimulus ids, in order."""
        return [s.id for s in self.stimuli]

    def limit(self, n: int | None) -> StimulusSet:
        """Return the first ``n`` stimuli (all when ``n`` is ``None``).

        Parameters
        ----------
        n
            How many stimuli to keep, from the start; ``None`` keeps the set as it is.
        """
        return self if n is None else self[:n]

    def select(self, ids: Sequence[str]) -> StimulusSet:
        """Return the stimuli with the given ids, in the given order.

        Parameters
        ----------
        ids
            Stimulus ids of this set (repeats are kept).

        Raises
        ------
        StimulusError
            An id that is not in the set.
        """
        by_id = {s.id: s for s in self.stimuli}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StimulusError(f"no stimulus with id(s) {missing} in {self.spec}")
        return replace(self, stimuli=[by_id[i] for i in ids])

    def fingerprint(self) -> str:
        """A short hash of the set's identity (spec, ids, sources), for cache keys.

        With a labels file, its labels are part of the identity too: other
        labels give another fingerprint.
        """
        lines = [self.spec, *(f"{s.id}\t{s.source}" for s in self.stimuli)]
        if self.labels_file is not None:
            lines.append(f"labels\t{self.label_space}")
            lines += [f"{s.id}\t{s.target}\t{s.label}" for s in self.stimuli]
        if isinstance(self.loader, SoundLoader):
            lines.append(f"rms\t{self.loader.rms}")
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    def targets(self) -> dict[str, Target | None]:
        """Each stimulus's true label with the set's label space (``None`` where unlabelled)."""
        return {
            s.id: None if s.target is None else Target(s.target, self.label_space)
            for s in self.stimuli
        }

    def load_raw(self, stimulus: Stimulus) -> torch.Tensor:
        """Load one stimulus as its raw tensor (no resizing).

        Parameters
        ----------
        stimulus
            One of the set's stimuli.

        Returns
        -------
        torch.Tensor
            ``(C, H, W)`` in ``[0, 1]`` for images, ``(T,)`` in ``[-1, 1]`` for waveforms.

        Raises
        ------
        StimulusError
            The stimulus cannot be decoded.
        """
        return self.loader(stimulus)

    def load(
        self,
        stimulus: Stimulus,
        input_shape: tuple[int, ...],
        *,
        sample_rate: int | None = None,
    ) -> torch.Tensor:
        """Load one stimulus fitted to a model's ``input_shape``.

        Images are centre-square-cropped and resized (see
        :func:`~metamers.stimuli.images.fit_image`); waveforms are centre-cropped or
        zero-padded (:func:`~metamers.stimuli.audio.fit_waveform`). Sound files are
        resampled to ``sample_rate``, fitted to the length, demeaned and scaled to the
        set's RMS, reading only the frames needed
        (:func:`~metamers.stimuli.sounds.load_sound`).

        Parameters
        ----------
        stimulus
            One of the set's stimuli.
        input_shape
            The model's input shape without the batch dimension: ``(C, H, W)`` or
            ``(T,)``.
        sample_rate
            The model's sample rate for sound files
            (:func:`~metamers.stimuli.sounds.model_sample_rate`); ``None`` uses the
            set's (20,000 Hz, the published rate, unless resolved with another).

        Raises
        ------
        StimulusError
            The stimulus cannot be decoded.
        """
        if self.modality == "audio":
            from metamers.stimuli.audio import fit_waveform

            if isinstance(self.loader, SoundLoader) and len(input_shape) == 1:
                return self.loader.fitted(stimulus, input_shape[0], sample_rate)
            return fit_waveform(self.load_raw(stimulus), input_shape)
        raw = self.load_raw(stimulus)
        return fit_image(raw, input_shape)  # type: ignore[arg-type]

    def load_for(self, stimulus: Stimulus, model: Any) -> torch.Tensor:
        """Load one stimulus fitted to a model: its input shape and, for sounds, its sample rate.

        Parameters
        ----------
        stimulus
            One of the set's stimuli.
        model
            A model with an ``input_shape`` (and an ``info["sample_rate"]`` for audio,
            see :func:`~metamers.stimuli.sounds.model_sample_rate`).
        """
        return self.load(stimulus, model.input_shape, sample_rate=self._rate_for(model))

    def batches_for(
        self, model: Any, batch_size: int
    ) -> Iterator[tuple[list[Stimulus], torch.Tensor]]:
        """:meth:`batches` fitted to a model (its input shape and, for sounds, its sample rate).

        Parameters
        ----------
        model
            A model with an ``input_shape`` (see :meth:`load_for`).
        batch_size
            Stimuli per batch.
        """
        return self.batches(model.input_shape, batch_size, sample_rate=self._rate_for(model))

    def _rate_for(self, model: Any) -> int | None:
        """The model's sample rate for sounds; a set of the wrong modality is refused."""
        takes = "audio" if len(model.input_shape) == 1 else "image"
        if takes != self.modality:
            kinds = {"audio": "sounds", "image": "images"}
            name = getattr(model, "name", "the model")
            raise StimulusError(
                f"{self.spec} holds {kinds[self.modality]}, but {name} takes {kinds[takes]} "
                f"(input shape {tuple(model.input_shape)})"
            )
        return model_sample_rate(model) if self.modality == "audio" else None

    def batches(
        self,
        input_shape: tuple[int, ...],
        batch_size: int,
        *,
        sample_rate: int | None = None,
    ) -> Iterator[tuple[list[Stimulus], torch.Tensor]]:
        """Yield ``(stimuli, tensor)`` batches fitted to ``input_shape``.

        With ``skip_bad`` set, undecodable stimuli are skipped with a warning;
        otherwise the first one raises :class:`StimulusError`.

        Parameters
        ----------
        input_shape
            The model's input shape without the batch dimension (see :meth:`load`).
        batch_size
            Stimuli per batch; the last batch may be smaller.
        sample_rate
            The model's sample rate for sound files (see :meth:`load`).

        Yields
        ------
        tuple
            The batch's stimuli and their ``(B, *input_shape)`` tensor.
        """
        chunk: list[Stimulus] = []
        tensors: list[torch.Tensor] = []
        for stimulus in self.stimuli:
            try:
                tensors.append(self.load(stimulus, input_shape, sample_rate=sample_rate))
            except StimulusError as exc:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping {stimulus.id}: {exc}", stacklevel=2)
                self._bad.add(stimulus.id)
                continue
            chunk.append(stimulus)
            if len(chunk) == batch_size:
                yield chunk, torch.stack(tensors)
                chunk, tensors = [], []
        if chunk:
            yield chunk, torch.stack(tensors)


BundledFactory = Callable[[], StimulusSet]
"""A callable that returns a bundled :class:`StimulusSet` (called on each resolve)."""


def _by_source(load: Callable[[str], torch.Tensor], stimulus: Stimulus) -> torch.Tensor:
    return load(stimulus.source)


def _records_set(
    spec: str,
    records: Callable[[], list[tuple[str, str, str | None, int | None]]],
    load: Callable[[str], torch.Tensor],
    label_space: str,
) -> StimulusSet:
    stimuli = [Stimulus(id=i, source=src, label=lab, target=t) for i, src, lab, t in records()]
    return StimulusSet(
        spec=spec, stimuli=stimuli, loader=partial(_by_source, load), label_space=label_space
    )


def _word_set(name: str, kind: str, split: str) -> StimulusSet:
    from metamers.stimuli.words import WordCorpusSettings, word_records

    records = word_records(kind, split)
    stimuli = [Stimulus(id=i, source=src, label=w, target=t) for i, src, w, t in records]
    settings = WordCorpusSettings()
    return StimulusSet(
        spec=f"bundled:{name}",
        stimuli=stimuli,
        loader=SoundLoader(settings.sample_rate, settings.rms),
        label_space="words",
        modality="audio",
    )


_BUILTIN_SETS: dict[str, BundledFactory] = {
    "photos": partial(_records_set, "bundled:photos", photo_records, load_packaged, "imagenet"),
    "mnist": partial(_records_set, "bundled:mnist", held_out_records, load_digit, "mnist"),
    "words": partial(_word_set, "words", "clean", "test"),
    "words-noisy": partial(_word_set, "words-noisy", "noisy", "test"),
    "words-null": partial(_word_set, "words-null", "noisy", "validation"),
}
"""The built-in catalogue, registered when this module is imported (before any user set)."""
_USER_SETS: dict[str, BundledFactory] = {}


def register_bundled(name: str, factory: BundledFactory) -> None:
    """Register a stimulus set of your own under ``bundled:NAME``.

    The built-in sets (``photos``, ``mnist``) are registered first and cannot
    be replaced: pick another name. Registering a name you registered before
    replaces your earlier factory.

    Parameters
    ----------
    name
        The name after ``bundled:``.
    factory
        Called with no arguments on each resolve; returns the set.

    Raises
    ------
    StimulusError
        ``name`` is a built-in set's.
    """
    if name in _BUILTIN_SETS:
        raise StimulusError(
            f"bundled:{name} is a built-in stimulus set; register yours under another name"
        )
    _USER_SETS[name] = factory


def bundled_names() -> list[str]:
    """Names of the bundled stimulus sets, built-in and your own."""
    return sorted(_BUILTIN_SETS | _USER_SETS)


def resolve_stimuli(
    spec: str,
    *,
    skip_bad: bool = False,
    labels: str | Path | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    sample_rate: int | None = None,
    rms: float | None = DEFAULT_RMS,
) -> StimulusSet:
    """Resolve a stimulus spec string to a :class:`StimulusSet`.

    Parameters
    ----------
    spec
        ``bundled:NAME``, a folder, an image or sound file, or comma-separated files.
    skip_bad
        Skip undecodable files with a warning instead of failing.
    labels
        A labels file (CSV of stimulus → label, see :func:`apply_labels`) whose labels replace
        the spec's; the folder's own names are then not read as labels.
    ids, limit
        Keep only these stimuli (:meth:`StimulusSet.select`), then only the
        first ``limit``; the labels file needs rows only for those kept.
    sample_rate
        Sound files: the rate (Hz) of :meth:`StimulusSet.load_raw` and the default of
        :meth:`StimulusSet.load`; ``None`` is 20,000 Hz, the published rate.
    rms
        Sound files: the RMS after mean removal (0.1, the published level); ``None``
        keeps each file's level.

    Raises
    ------
    StimulusError
        Unknown bundled name, missing path, a set with no stimuli, class
        sub-folders of which only some name ImageNet classes, images mixed with sounds,
        an unknown id,
        or a labels file that cannot be read or does not label every stimulus kept.
    """
    spec = spec.strip()
    if spec.startswith("bundled:"):
        name = spec.removeprefix("bundled:")
        factories = _BUILTIN_SETS | _USER_SETS
        if name not in factories:
            raise StimulusError(
                f"unknown bundled stimulus set {name!r}; available: {', '.join(sorted(factories))}"
            )
        result = factories[name]()
    else:
        sounds = SoundLoader(sample_rate or DEFAULT_SAMPLE_RATE, rms)
        paths = [Path(p.strip()) for p in spec.split(",") if p.strip()]
        if len(paths) == 1 and paths[0].is_dir():
            result = _folder_set(spec, paths[0], sounds, folder_labels=labels is None)
        else:
            result = _file_list_set(spec, paths, sounds)
    if not len(result):
        raise StimulusError(f"stimulus set {spec!r} is empty")
    if ids is not None:
        result = result.select(ids)
    result = result.limit(limit)
    if labels is not None:
        result = apply_labels(result, labels)
    result.skip_bad = skip_bad
    return result


def apply_labels(stimuli: StimulusSet, path: str | Path) -> StimulusSet:
    """The set with every stimulus labelled from a labels file.

    The file is a CSV of stimulus → label: ``stimulus,label`` (an ImageNet
    WordNet id, class name or index) or ImageNet's ``LOC_val_solution.csv``;
    see :mod:`metamers.stimuli.labels_file` for both layouts.

    Parameters
    ----------
    stimuli
        Any stimulus set; its own labels are replaced.
    path
        The labels file.

    Returns
    -------
    StimulusSet
        A copy with each stimulus's ``label`` and ``target`` from the file,
        ``label_space`` the file's (``"imagenet"`` unless it declares another)
        and ``labels_file`` set, so that the fingerprint follows the labels.

    Raises
    ------
    StimulusError
        The file is missing or unreadable, a stimulus has no row, or a label
        names no class of the label space (the message names the stimuli).
    """
    space, labels = file_labels(stimuli.stimuli, path)
    labelled = [
        replace(s, target=target, label=label)
        for s, (target, label) in zip(stimuli.stimuli, labels, strict=True)
    ]
    return replace(stimuli, stimuli=labelled, label_space=space, labels_file=str(path))


def _load_path(stimulus: Stimulus) -> torch.Tensor:
    return load_image(stimulus.source)


def _is_sound(path: Path) -> bool:
    return path.suffix.lower() in SOUND_SUFFIXES


def _modality(spec: str, paths: Sequence[Path]) -> str:
    """``"audio"`` when every path is a sound file, ``"image"`` when none is."""
    sounds = [p for p in paths if _is_sound(p)]
    if not sounds:
        return "image"
    if len(sounds) == len(paths):
        return "audio"
    others = [p.name for p in paths if not _is_sound(p)]
    raise StimulusError(
        f"stimulus set {spec!r} mixes sounds ({_few([p.name for p in sounds], 3)}) with "
        f"other files ({_few(others, 3)}); give images or sounds, not both"
    )


def _typed_set(
    spec: str, stimuli: list[Stimulus], sounds: SoundLoader, label_space: str | None = None
) -> StimulusSet:
    if _modality(spec, [Path(s.source) for s in stimuli]) == "audio":
        return StimulusSet(
            spec=spec, stimuli=stimuli, loader=sounds, label_space=label_space, modality="audio"
        )
    return StimulusSet(spec=spec, stimuli=stimuli, loader=_load_path, label_space=label_space)


def _file_list_set(spec: str, paths: list[Path], sounds: SoundLoader) -> StimulusSet:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise StimulusError(f"stimulus path not found: {', '.join(missing)}")
    stimuli = [
        Stimulus(id=_unique_id(p.stem, i, paths), source=str(p)) for i, p in enumerate(paths)
    ]
    return _typed_set(spec, stimuli, sounds)


def _unique_id(stem: str, index: int, paths: list[Path]) -> str:
    clashes = sum(p.stem == stem for p in paths)
    return stem if clashes == 1 else f"{stem}-{index}"


def _folder_set(
    spec: str, folder: Path, sounds: SoundLoader, *, folder_labels: bool = True
) -> StimulusSet:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    stimuli: list[Stimulus] = []
    if classes:
        names = [c.name for c in classes]
        space, targets, labels = (
            folder_class_labels(names, folder)
            if folder_labels
            else ("folders", list(range(len(names))), names)
        )
        for class_dir, target, label in zip(classes, targets, labels, strict=True):
            for path in _stimulus_files_in(class_dir):
                stimuli.append(
                    Stimulus(
                        id=f"{class_dir.name}/{path.stem}",
                        source=str(path),
                        label=label,
                        target=target,
                    )
                )
        return _typed_set(spec, stimuli, sounds, space)
    stimuli = [Stimulus(id=p.stem, source=str(p)) for p in _stimulus_files_in(folder)]
    return _typed_set(spec, stimuli, sounds)


def _stimulus_files_in(folder: Path) -> list[Path]:
    """The folder's image and sound files (a set of both is refused later)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES + SOUND_SUFFIXES and not p.name.startswith(".")
    )


def folder_class_labels(
    names: Sequence[str], folder: Path | str = ""
) -> tuple[str, list[int], list[str]]:
    """The label space, targets and labels of class sub-folders named ``names``.

    Every name an ImageNet WordNet id or class name (any synonym,
    case-insensitive, ``_`` as a space): ``"imagenet"``, ImageNet indices and
    class names. Every name an integer: ``"folders"``, those integers and the
    names. Otherwise ``"folders"``, alphabetical positions and the names.

    Parameters
    ----------
    names
        Sub-folder names, in alphabetical order.
    folder
        The folder holding them (named in errors).

    Raises
    ------
    StimulusError
        Some names map to ImageNet classes and others do not (the error names
        the unmapped ones), or a name is ambiguous among ImageNet classes.
    """
    if all(_INTEGER.fullmatch(n) for n in names):
        return "folders", [int(n) for n in names], list(names)
    from metamers.labels import imagenet_class_names, imagenet_index

    try:
        indices = {n: imagenet_index(n) for n in names}
    except ValueError as exc:
        raise StimulusError(f"{folder}: {exc}") from None
    unmapped = [n for n in names if indices[n] is None]
    if len(unmapped) == len(names):
        return "folders", list(range(len(names))), list(names)
    if unmapped:
        mapped = [n for n in names if indices[n] is not None]
        raise StimulusError(
            f"{folder}: sub-folders {_few(mapped)} name ImageNet classes but {_few(unmapped)} "
            "do not; name every class folder by an ImageNet WordNet id (n07920052) or class "
            "name, or give a labels file (--labels FILE)"
        )
    class_names = imagenet_class_names()
    targets = [int(indices[n]) for n in names]  # type: ignore[arg-type]
    return "imagenet", targets, [class_names[t] for t in targets]


_INTEGER = re.compile(r"[0-9]+")


def _few(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
