"""Experiment bundles: the stimuli a served experiment shows, under opaque ids, and its design.

A bundle is a folder::

    BUNDLE/bundle.json          the manifest (private: labels, conditions, design)
    BUNDLE/stimuli/<id>.png     every image the browser may fetch, re-encoded (no metadata)
    BUNDLE/stimuli/<id>.wav     every sound, at the configured rate and level

Stimulus ids are random hex strings: nothing the browser sees names a label,
a model or a layer. Sources are a ``metamers generate`` output folder (only
metamers accepted by its ``validation.parquet``, with the natural references as
a condition of their own) or a folder of stimulus files, ``ROOT/LABEL/FILE``
(natural stimuli only) or ``ROOT/CONDITION/LABEL/FILE`` (the same item names
across conditions; a condition named ``natural`` is the natural one).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metamers.errors import ConfigError
from metamers.experiments.config import ExperimentConfig
from metamers.io import check_writable_dir, write_bytes_atomic, write_json_atomic

__all__ = ["MANIFEST", "NATURAL", "Item", "build_bundle", "load_manifest"]

MANIFEST = "bundle.json"
STIMULI = "stimuli"
NATURAL = "natural"
FORMAT = 1
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_SOUND_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class Item:
    """One stimulus item: its label and a file in each condition it exists in."""

    name: str
    label: str
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Source:
    modality: str
    conditions: dict[str, dict[str, str]]
    items: list[Item]


def build_bundle(
    source: str | Path,
    out: str | Path,
    config: ExperimentConfig,
    *,
    task: str | None = None,
) -> dict[str, Any]:
    """Build an experiment bundle from metamers (or a stimulus folder).

    Parameters
    ----------
    source
        A ``metamers generate`` folder holding ``validation.parquet`` (run
        ``metamers validate`` first), or a stimulus folder (see the module docstring).
    out
        The bundle folder to write (must be empty or absent).
    config
        The experiment configuration.
    task
        ``image16``, ``naway`` or ``words``; default ``config.task``.

    Returns
    -------
    dict
        The manifest written to ``OUT/bundle.json``.

    Raises
    ------
    ConfigError
        The source is missing, holds no accepted metamers, holds too few items
        for the practice, screening and catch trials asked for, or a label
        outside the task's choices.
    """
    task = task or config.task
    config = config.model_copy(update={"task": task})
    source, out = Path(source), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; give a new folder for the bundle")
    check_writable_dir(out)
    found = _read_source(source)
    if task == "words" and found.modality != "audio":
        raise ConfigError("the words task needs sounds; the source holds images")
    if task == "image16" and found.modality != "image":
        raise ConfigError("the image16 task needs images; use --task words or naway for sounds")
    conditions = {
        k: v for k, v in found.conditions.items() if config.design.natural or k != NATURAL
    }
    items = _complete_items(found.items, list(conditions), config)
    choices, labels = _choices(task, config, items)
    design = _design(items, list(conditions), config)
    writer = _Writer(out, config, found.modality)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "task": task,
        "modality": found.modality,
        "source": str(source.resolve()),
        "config": config.model_dump(mode="json"),
        "choices": choices,
        "conditions": [{"name": k, **conditions[k]} for k in conditions],
        "stimuli": {},
        "items": [],
    }
    for phase in ("practice", "screening", "catch"):
        manifest[phase] = [
            writer.add(
                manifest,
                items[name],
                condition if condition in items[name].files else NATURAL,
                labels[items[name].label],
            )
            for name, condition in design[phase]
        ]
    for name in design["main"]:
        item = items[name]
        ids = {
            c: writer.add(manifest, item, c, labels[item.label])
            for c in conditions
            if c in item.files
        }
        manifest["items"].append({"item": name, "label": labels[item.label], "stimuli": ids})
    manifest["masks"] = writer.masks(manifest) if found.modality == "image" else []
    manifest["headphone"] = writer.headphone(manifest) if found.modality == "audio" else []
    manifest["calibration"] = (
        writer.calibration(manifest)
        if found.modality == "audio" and config.audio.calibration
        else None
    )
    if not manifest["items"]:
        raise ConfigError("no items left for the main block after practice, screening and catch")
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def load_manifest(bundle: str | Path) -> dict[str, Any]:
    """Read a bundle's manifest.

    Parameters
    ----------
    bundle
        A folder written by :func:`build_bundle`.

    Raises
    ------
    ConfigError
        The folder holds no readable ``bundle.json`` of this format.
    """
    path = Path(bundle) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{bundle} is not an experiment bundle (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a bundle of format {FORMAT}; rebuild it")
    return manifest


# ---------------------------------------------------------------- sources


def _read_source(source: Path) -> _Source:
    if not source.is_dir():
        raise ConfigError(f"no such folder: {source}")
    if (source / "catalog.sqlite").is_file():
        raise ConfigError(
            f"{source} is a study; give its generate task folder (STUDY/tasks/generate/KEY) "
            "after `metamers validate` on it"
        )
    if next(source.rglob("record.json"), None) is not None:
        return _read_generate(source)
    return _read_folder(source)


def _read_generate(source: Path) -> _Source:
    import pandas as pd

    from metamers.synthesis import load_results
    from metamers.validation import accepted_mask

    path = source / "validation.parquet"
    if not path.is_file():
        raise ConfigError(f"{source} has no validation.parquet; run `metamers validate {source}`")
    results = load_results(source)
    table = pd.read_parquet(path)
    if not results or sorted(set(table["result_index"])) != list(range(len(results))):
        raise ConfigError(f"{path} describes other metamers; re-run `metamers validate {source}`")
    accepted = [r for r, ok in zip(results, accepted_mask(table, len(results))) if ok]
    if not accepted:
        raise ConfigError(f"no metamer in {source} passed validation")
    conditions: dict[str, dict[str, str]] = {NATURAL: {"model": "", "layer": NATURAL}}
    items: dict[str, Item] = {}
    for result in accepted:
        condition = f"{result.generator}/{result.layer}"
        conditions.setdefault(condition, {"model": result.generator, "layer": result.layer})
        label = _result_label(result.settings.get("stimulus", {}))
        item = items.setdefault(result.stimulus_id, Item(result.stimulus_id, label))
        assert result.path is not None
        item.files[condition] = _viewable(result.path, "metamer")
        item.files.setdefault(NATURAL, _viewable(result.path, "reference"))
    modality = "audio" if next(iter(items.values())).files[NATURAL].suffix == ".wav" else "image"
    ordered = {NATURAL: conditions.pop(NATURAL), **dict(sorted(conditions.items()))}
    return _Source(modality, ordered, sorted(items.values(), key=lambda i: i.name))


def _viewable(folder: Path, stem: str) -> Path:
    for suffix in (".png", ".wav"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise ConfigError(f"{folder} has no {stem}.png or {stem}.wav")


def _result_label(stimulus: dict[str, Any]) -> str:
    label, space, target = (
        stimulus.get("label"),
        stimulus.get("label_space"),
        stimulus.get("target"),
    )
    if space == "imagenet" and target is not None:
        from metamers.labels import imagenet_to_16way, sixteen_way_names

        index = imagenet_to_16way(int(target))
        return sixteen_way_names()[index] if index is not None else str(label)
    if label is None:
        raise ConfigError("a metamer records no label for its reference stimulus")
    return str(label)


def _read_folder(source: Path) -> _Source:
    top = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not top:
        raise ConfigError(f"{source} holds no label folders (ROOT/LABEL/FILE)")
    nested = all(not _files(p) and any(q.is_dir() for q in p.iterdir()) for p in top)
    layout = {p.name: sorted(q for q in p.iterdir() if q.is_dir()) for p in top} if nested else None
    by_condition = layout or {NATURAL: top}
    conditions: dict[str, dict[str, str]] = {}
    items: dict[str, Item] = {}
    suffixes: set[str] = set()
    for condition, labels in by_condition.items():
        model, _, layer = condition.rpartition("/")
        conditions[condition] = {"model": model, "layer": layer or condition}
        for folder in labels:
            for path in _files(folder):
                suffixes.add(path.suffix.lower())
                name = f"{folder.name}/{path.stem}"
                items.setdefault(name, Item(name, folder.name)).files[condition] = path
    if not items:
        raise ConfigError(f"{source} holds no image or sound files")
    kinds = {"audio" if s in _SOUND_SUFFIXES else "image" for s in suffixes}
    if len(kinds) > 1:
        raise ConfigError(f"{source} mixes images and sounds")
    if NATURAL in conditions:
        conditions = {NATURAL: conditions.pop(NATURAL), **conditions}
    return _Source(kinds.pop(), conditions, sorted(items.values(), key=lambda i: i.name))


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in _IMAGE_SUFFIXES + _SOUND_SUFFIXES
    )


# ---------------------------------------------------------------- design


def _complete_items(items: list[Item], conditions: list[str], config: ExperimentConfig) -> dict:
    if config.design.complete_only:
        kept = [i for i in items if all(c in i.files for c in conditions)]
    else:
        kept = [i for i in items if NATURAL in i.files or not config.design.natural]
    if not kept:
        raise ConfigError(
            f"no stimulus has an accepted metamer in every one of the {len(conditions)} conditions; "
            "set design.complete_only: false or generate more"
        )
    return {i.name: i for i in kept}


def _choices(task: str, config: ExperimentConfig, items: dict[str, Item]) -> tuple[list, dict]:
    labels = sorted({i.label for i in items.values()})
    if task == "image16":
        from metamers.labels import sixteen_way_names

        choices = list(sixteen_way_names())
    elif task == "words":
        choices = sorted(set(config.vocabulary or []) | set(labels))
    else:
        choices = list(config.choices or labels)
    mapping = {label: _match(label, choices) for label in labels}
    missing = sorted(k for k, v in mapping.items() if v is None)
    if missing:
        raise ConfigError(f"label(s) {missing} are not among the {task} choices {choices[:20]}")
    return choices, mapping


def _match(label: str, choices: list[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    return lowered.get(label.lower())


def _design(items: dict[str, Item], conditions: list[str], config: ExperimentConfig) -> dict:
    rng = np.random.default_rng(config.seed)
    names = [str(n) for n in rng.permutation(sorted(items))]
    practice, screening, catch = (
        config.practice.trials,
        config.screening.trials,
        config.catch.trials,
    )
    needed = practice + screening + catch + len(conditions)
    if len(names) < needed:
        raise ConfigError(
            f"{len(names)} usable stimuli; practice ({practice}), screening ({screening}), catch "
            f"({catch}) and one main item per condition ({len(conditions)}) need {needed}"
        )
    metamer = _screening_condition(conditions, config)
    n_metamer = round(screening * config.screening.metamer_fraction) if metamer else 0
    screening_names = names[practice : practice + screening]
    main = names[practice + screening + catch :]
    if config.design.max_stimuli is not None:
        main = main[: config.design.max_stimuli]
    return {
        "practice": [(n, NATURAL) for n in names[:practice]],
        "screening": [
            (n, metamer if k < n_metamer and metamer else NATURAL)
            for k, n in enumerate(screening_names)
        ],
        "catch": [(n, NATURAL) for n in names[practice + screening : practice + screening + catch]],
        "main": main,
    }


def _screening_condition(conditions: list[str], config: ExperimentConfig) -> str | None:
    wanted = config.screening.condition
    if wanted is not None:
        if wanted not in conditions:
            raise ConfigError(f"screening.condition {wanted!r} is not one of {conditions}")
        return wanted
    metamers = [c for c in conditions if c != NATURAL]
    return metamers[0] if metamers else None


# ---------------------------------------------------------------- files


class _Writer:
    """Writes stimuli under fresh opaque ids and records them in the manifest."""

    def __init__(self, out: Path, config: ExperimentConfig, modality: str) -> None:
        self.folder = out / STIMULI
        self.config = config
        self.modality = modality
        self.rng = np.random.default_rng(config.seed + 1)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _new_id(self, manifest: dict) -> str:
        while (stimulus_id := secrets.token_hex(8)) in manifest["stimuli"]:
            pass
        return stimulus_id

    def add(self, manifest: dict, item: Item, condition: str, label: str) -> str:
        stimulus_id = self._new_id(manifest)
        if self.modality == "image":
            data, suffix = _png_bytes(_read_image(item.files[condition])), ".png"
        else:
            data, suffix = self._sound(item.files[condition]), ".wav"
        write_bytes_atomic(self.folder / f"{stimulus_id}{suffix}", data)
        manifest["stimuli"][stimulus_id] = {
            "file": f"{stimulus_id}{suffix}",
            "kind": "stimulus",
            "item": item.name,
            "condition": condition,
            "label": label,
        }
        return stimulus_id

    def _sound(self, path: Path) -> bytes:
        from metamers.stimuli.sounds import load_sound

        audio = self.config.audio
        wave = load_sound(path, audio.sample_rate, rms=audio.rms).numpy()
        return _wav_bytes(wave, audio.sample_rate)

    def _extra(self, manifest: dict, data: bytes, suffix: str, kind: str, **info: Any) -> str:
        stimulus_id = self._new_id(manifest)
        write_bytes_atomic(self.folder / f"{stimulus_id}{suffix}", data)
        manifest["stimuli"][stimulus_id] = {"file": f"{stimulus_id}{suffix}", "kind": kind, **info}
        return stimulus_id

    def masks(self, manifest: dict, count: int = 8) -> list[str]:
        first = manifest["stimuli"][next(iter(manifest["stimuli"]))]["file"]
        height, width = _read_image(self.folder / first).shape[:2]
        return [
            self._extra(manifest, _png_bytes(pink_noise(height, width, self.rng)), ".png", "mask")
            for _ in range(count)
        ]

    def headphone(self, manifest: dict) -> list[dict[str, Any]]:
        trials = []
        rate = self.config.audio.sample_rate
        for _ in range(self.config.audio.headphone_check.trials):
            order = [int(k) for k in self.rng.permutation(3)]
            wave = antiphase_trial(order, rate)
            answer = str(order.index(1) + 1)
            stimulus_id = self._extra(
                manifest, _wav_bytes(wave, rate), ".wav", "headphone", label=answer
            )
            trials.append({"stimulus": stimulus_id, "answer": answer})
        return trials

    def calibration(self, manifest: dict) -> str:
        rate, rms = self.config.audio.sample_rate, self.config.audio.rms
        noise = self.rng.standard_normal(2 * rate)
        noise = noise / np.sqrt(np.mean(noise**2)) * rms
        return self._extra(manifest, _wav_bytes(np.clip(noise, -1, 1), rate), ".wav", "calibration")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    if array.dtype == np.uint16 or array.dtype == np.int32:
        array = np.rint(array.astype(np.float64) / 65535 * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array[:, :, :3].astype(np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    """Mono ``(T,)`` or stereo ``(T, 2)`` samples in [-1, 1] as 16-bit PCM WAV."""
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(
        buffer, np.asarray(wave, dtype=np.float32), rate, subtype="PCM_16", format="WAV"
    )
    return buffer.getvalue()


def pink_noise(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A greyscale ``1/f`` noise mask, ``(H, W, 3)`` ``uint8``.

    Parameters
    ----------
    height, width
        Size in pixels.
    rng
        The random generator.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    phases = rng.uniform(0, 2 * np.pi, radius.shape)
    image = np.fft.irfft2(np.exp(1j * phases) / radius, s=(height, width))
    image = (image - image.mean()) / (image.std() + 1e-12)
    grey = np.clip(127.5 + 50 * image, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def antiphase_trial(order: list[int], rate: int, frequency: float = 200.0) -> np.ndarray:
    """A headphone-check trial: three 1-s tones, one 6 dB quieter, one in antiphase.

    Over headphones the quieter tone (``order`` value 1) is the quietest; over
    loudspeakers the antiphase tone (value 2) sounds quieter (Woods et al. 2017).

    Parameters
    ----------
    order
        A permutation of ``0`` (reference), ``1`` (-6 dB) and ``2`` (antiphase).
    rate
        Sample rate in Hz.
    frequency
        Tone frequency in Hz.

    Returns
    -------
    numpy.ndarray
        ``(T, 2)`` stereo samples.
    """
    t = np.arange(rate) / rate
    ramp = np.minimum(1, np.minimum(t, 1 - t) / 0.1)
    tone = 0.25 * np.sin(2 * np.pi * frequency * t) * ramp
    gap = np.zeros((rate // 2, 2))
    parts = []
    for kind in order:
        left = tone * (0.5 if kind == 1 else 1.0)
        right = -left if kind == 2 else left
        parts += [np.stack([left, right], axis=1), gap]
    return np.concatenate(parts[:-1])
