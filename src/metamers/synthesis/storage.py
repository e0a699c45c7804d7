"""Writing finished metamers to disk and reading them back.

One metamer lives in one folder::

    OUT/<generator>/<layer>/<stimulus_id>/
        metamer.safetensors   exact float tensors: metamer, reference, losses
        metamer.png|wav       for viewing (PNG: rounded 8-bit RGB or 16-bit grey; WAV: 16-bit)
        reference.png|wav
        record.json           settings, seed, versions, timing; written LAST

``record.json`` is the "done" marker: every file is written atomically and
the record comes last, so a folder with a record is complete. The record
holds the SHA-256 of ``metamer.safetensors`` (``files``), so a damaged file
is found when it is read (:class:`DamagedResult`), and what identifies the
result: the reference's content digest, the settings digest, the seed and
the models' weight fingerprints (see :mod:`metamers.synthesis.driver`).

Folder names come from :func:`metamers.io.path_name`, one name per id.

Internal module: use it through metamers.synthesis (``generate_metamers``, ``load_results``); not part of the public API.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load, save_file

from metamers.errors import ConfigError
from metamers.io import atomic_path, write_bytes_atomic, write_json_atomic
from metamers.synthesis.results import MetamerResult

RECORD = "record.json"
TENSORS = "metamer.safetensors"
CHECKPOINTS = ".checkpoints"
DEFAULT_SAMPLE_RATE = 20_000


CORRUPT_SUFFIX = ".corrupt"


class DamagedResult(ConfigError):
    """A finished metamer's files cannot be read or differ from their recorded digest.

    Attributes
    ----------
    path
        The damaged file.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} is damaged ({reason}); re-run the `metamers generate` command that made it "
            "to make it again"
        )
        self.path = path
        self.reason = reason

    def __reduce__(self):
        # re-created from its arguments, so it crosses process boundaries (Ray workers)
        return type(self), (self.path, self.reason)


def legacy_name(text: str) -> str:
    """The folder name earlier versions used (not one-to-one: ``chat é`` and ``chat è``
    both gave ``chat__``); read only for output folders those versions made.

    Parameters
    ----------
    text
        The exact id.
    """
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", text).strip(".") or "_"


def set_aside(path: Path) -> Path:
    """Rename a damaged file to ``NAME.corrupt`` (replacing an older one); return the new path.

    Parameters
    ----------
    path
        The damaged file.
    """
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    os.replace(path, target)
    return target


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes.

    Parameters
    ----------
    path
        The file.
    """
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def versions() -> dict[str, str]:
    """Versions of the software that made a result (read without importing the packages)."""
    from metamers._version import __version__

    found = {"metamers": __version__, "python": platform.python_version()}
    for package in ("torch", "timm", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    return dict(found)


def write_metamer(
    folder: Path,
    metamer: torch.Tensor,
    reference: torch.Tensor,
    losses: np.ndarray,
    record: dict,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> None:
    """Write one metamer's files atomically, ``record.json`` last.

    Writes ``metamer.safetensors`` (metamer, reference and loss history), the
    viewable ``metamer`` and ``reference`` files (see :func:`write_viewable`)
    and ``record.json``; a folder with ``record.json`` is complete
    (:func:`is_done`).

    Parameters
    ----------
    folder
        The metamer's folder (created if missing).
    metamer, reference
        ``(C, H, W)`` images or ``(T,)`` waveforms, stored as float32.
    losses
        The loss per evaluation of the synthesis.
    record
        The metamer's JSON record (``stimulus_id``, ``models``, ``layers``,
        ``status``, settings, ...; read back by :func:`read_result`); the
        SHA-256 of ``metamer.safetensors`` is added as ``files``.
    sample_rate
        Sample rate in Hz of the ``.wav`` files of waveforms.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "metamer": metamer.detach().float().cpu().contiguous(),
        "reference": reference.detach().float().cpu().contiguous(),
        "losses": torch.as_tensor(np.asarray(losses, dtype=np.float64)),
    }
    with atomic_path(folder / TENSORS) as tmp:
        save_file(tensors, str(tmp))
        record = record | {"files": {TENSORS: file_digest(tmp)}}
    for name, tensor in (("metamer", tensors["metamer"]), ("reference", tensors["reference"])):
        gain = write_viewable(folder / name, tensor, sample_rate)
        if gain is not None:
            record = record | {"audio": _audio_record(record, name, tensor, gain, sample_rate)}
    write_json_atomic(folder / RECORD, record)


def _audio_record(
    record: dict, name: str, wave: torch.Tensor, gain: float, sample_rate: int
) -> dict:
    """The level of a waveform and the gain of its WAV, added to the record's ``audio``."""
    audio = dict(record.get("audio", {}), sample_rate=sample_rate)
    audio[name] = {
        "rms": float(wave.double().pow(2).mean().sqrt()),
        "peak": float(wave.abs().max()),
        "wav_gain": gain,
    }
    return audio


def write_viewable(stem: Path, tensor: torch.Tensor, sample_rate: int) -> float | None:
    """Write ``stem.png`` (images) or ``stem.wav`` (waveforms) atomically.

    Parameters
    ----------
    stem
        The destination without suffix.
    tensor
        A ``(C, H, W)`` image, clamped to ``[0, 1]`` (one channel: 16-bit
        greyscale PNG; three: 8-bit RGB PNG), or a ``(T,)`` waveform (16-bit PCM
        WAV at ``sample_rate``, scaled down only if it would clip; see
        :func:`~metamers.stimuli.sounds.wav_bytes`).
    sample_rate
        Sample rate in Hz of a waveform.

    Returns
    -------
    float or None
        The gain applied to a waveform's WAV (1.0 unless it would clip); ``None`` for images.
    """
    if tensor.ndim == 1:
        from metamers.stimuli.sounds import wav_bytes

        data, gain = wav_bytes(tensor, sample_rate)
        write_bytes_atomic(stem.with_suffix(".wav"), data)
        return gain
    path = stem.with_suffix(".png")
    arr = tensor.clamp(0, 1).numpy()
    if arr.shape[0] == 1:
        image = Image.fromarray(np.rint(arr[0] * 65535).astype(np.uint16))
    else:
        image = Image.fromarray(np.rint(arr.transpose(1, 2, 0) * 255).astype(np.uint8))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return None


def is_done(folder: Path) -> bool:
    """Whether a metamer folder is complete (done or recorded as failed).

    Parameters
    ----------
    folder
        A metamer folder (see :func:`write_metamer`).
    """
    return (folder / RECORD).is_file()


def read_record(folder: str | Path) -> dict | None:
    """A metamer folder's ``record.json``, or ``None`` when it has none (not finished).

    Parameters
    ----------
    folder
        A metamer folder.

    Raises
    ------
    DamagedResult
        The record is not readable JSON.
    """
    path = Path(folder) / RECORD
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedResult(path, f"{type(exc).__name__}: {exc}") from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise DamagedResult(path, f"not JSON: {exc}") from exc
    if not isinstance(record, dict) or "stimulus_id" not in record:
        raise DamagedResult(path, "not a metamer record")
    return record


def read_result(folder: str | Path, record: dict | None = None) -> MetamerResult:
    """Read one metamer folder written by :func:`write_metamer`, checking its digest.

    Parameters
    ----------
    folder
        A metamer folder holding ``record.json`` and ``metamer.safetensors``.
    record
        Its record, if already read (:func:`read_record`).

    Raises
    ------
    ConfigError
        The folder has no ``record.json``.
    DamagedResult
        A file is unreadable, truncated, or differs from the SHA-256 its
        record holds; the message names the file.
    """
    folder = Path(folder)
    record = record if record is not None else read_record(folder)
    if record is None:
        raise ConfigError(f"{folder} holds no finished metamer (no {RECORD})")
    path = folder / TENSORS
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DamagedResult(path, f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    recorded = (record.get("files") or {}).get(TENSORS)
    if recorded and hashlib.sha256(data).hexdigest() != recorded:
        raise DamagedResult(path, "its SHA-256 differs from the one recorded in record.json")
    try:
        tensors = load(data)
        metamer, reference, losses = (tensors[k] for k in ("metamer", "reference", "losses"))
    except Exception as exc:  # safetensors raises its own error type on truncation
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DamagedResult(path, f"unreadable: {first}") from exc
    return MetamerResult(
        stimulus_id=record["stimulus_id"],
        models=tuple(record["models"]),
        layers=tuple(record["layers"]),
        metamer=metamer,
        reference=reference,
        losses=losses.numpy(),
        settings=record,
        path=folder,
        status=record.get("status", "done"),
    )


def load_results(out_dir: str | Path, *, include_failed: bool = False) -> list[MetamerResult]:
    """Every metamer in a ``metamers generate`` output folder.

    Parameters
    ----------
    out_dir
        The ``--out`` folder.
    include_failed
        Also return items recorded as failed (``result.status == "failed"``).

    Returns
    -------
    list[MetamerResult]
        Sorted by generator, layer, then stimulus id.

    Raises
    ------
    ConfigError
        ``out_dir`` does not exist.
    DamagedResult
        A metamer's files are damaged (one line naming the file; re-running
        the `generate` command remakes it).
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise ConfigError(f"no such output folder: {root}")
    results = [
        read_result(path.parent)
        for path in root.rglob(RECORD)
        if CHECKPOINTS not in path.relative_to(root).parts
    ]
    results = [r for r in results if include_failed or r.status == "done"]
    return sorted(results, key=lambda r: (r.generator, r.layer, r.stimulus_id))
