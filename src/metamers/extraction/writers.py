"""Streaming features to ``.h5``, ``.npz`` or ``.pt`` with bounded memory, atomically.

Batches are appended to a staging HDF5 file beside the output; centring and
normalising run chunk by chunk on that file; the final format is written to
a temporary name and renamed into place, so an interrupted run leaves no
partial output behind.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

from metamers.errors import MetamersError
from metamers.extraction.extract import Extractor
from metamers.io import atomic_path, check_writable_file
from metamers.stimuli.sets import StimulusSet

FEATURE_SUFFIXES = (".h5", ".hdf5", ".npz", ".pt")
CHUNK_ROWS = 256


def save_features(
    extractor: Extractor,
    stimuli: StimulusSet,
    layers: list[str],
    out: str | Path,
    *,
    flatten: bool = True,
    center: bool = False,
    normalize: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Extract ``layers`` for ``stimuli`` and stream them to ``out``.

    Parameters
    ----------
    extractor
        The model wrapper.
    stimuli
        What to run.
    layers
        Layer names.
    out
        Output file; its suffix picks the format (``.h5``/``.hdf5``: one
        dataset per layer plus ``stimulus_ids``; ``.npz``: one array per
        layer plus ``stimulus_ids``; ``.pt``: a dict of tensors plus ids).
    flatten
        Flatten each stimulus's activations to a vector.
    center
        Subtract each feature's mean over stimuli.
    normalize
        Scale each stimulus's feature vector to unit L2 norm (after centring).
    progress
        Called with the number of stimuli finished after each batch.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    MetamersError
        An unsupported suffix, ``out`` is a folder or cannot be written (all
        checked before any stimulus is run).
    """
    out = Path(out)
    if out.suffix.lower() not in FEATURE_SUFFIXES:
        raise MetamersError(
            f"unsupported output format {out.suffix!r}; use one of {', '.join(FEATURE_SUFFIXES)}"
        )
    if (center or normalize) and not flatten:
        raise MetamersError("--center/--normalize need flattened features (use --flatten)")
    check_writable_file(out)  # a folder in the way or a read-only target: before the work
    layers = extractor.model.check_layers(layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging.h5")
    try:
        _stream_to_h5(extractor, stimuli, layers, staging, flatten, progress)
        if center or normalize:
            _postprocess(staging, layers, center=center, normalize=normalize)
        with atomic_path(out) as tmp:
            _convert(staging, tmp, out.suffix.lower(), layers)
    finally:
        staging.unlink(missing_ok=True)
    return out


def _stream_to_h5(extractor, stimuli, layers, path: Path, flatten: bool, progress) -> None:
    done = 0
    with h5py.File(path, "w") as h5:
        ids = h5.create_dataset(
            "stimulus_ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype()
        )
        for chunk, arrays in extractor.iter_batches(stimuli, layers, flatten=flatten):
            n = len(chunk)
            ids.resize(done + n, axis=0)
            ids[done:] = [s.id for s in chunk]
            for name, array in arrays.items():
                if name not in h5:
                    h5.create_dataset(
                        name,
                        shape=(0, *array.shape[1:]),
                        maxshape=(None, *array.shape[1:]),
                        dtype="float32",
                        chunks=(min(CHUNK_ROWS, max(n, 1)), *array.shape[1:]),
                    )
                h5[name].resize(done + n, axis=0)
                h5[name][done:] = array
            done += n
            if progress is not None:
                progress(done)
        if done == 0:
            raise MetamersError(f"no stimulus of {stimuli.spec} could be loaded")


def _postprocess(path: Path, layers: list[str], *, center: bool, normalize: bool) -> None:
    with h5py.File(path, "r+") as h5:
        for name in layers:
            data = h5[name]
            n = data.shape[0]
            mean = np.zeros(data.shape[1:], dtype=np.float64)
            if center:
                for start in range(0, n, CHUNK_ROWS):
                    mean += data[start : start + CHUNK_ROWS].sum(0, dtype=np.float64)
                mean /= n
            for start in range(0, n, CHUNK_ROWS):
                block = data[start : start + CHUNK_ROWS].astype(np.float64) - mean
                if normalize:
                    norms = np.linalg.norm(block, axis=1, keepdims=True)
                    block = block / np.where(norms > 0, norms, 1.0)
                data[start : start + CHUNK_ROWS] = block.astype(np.float32)


def _convert(staging: Path, tmp: Path, suffix: str, layers: list[str]) -> None:
    if suffix in (".h5", ".hdf5"):
        staging.replace(tmp)
        return
    with h5py.File(staging, "r") as h5:
        ids = [s.decode() if isinstance(s, bytes) else s for s in h5["stimulus_ids"][:]]
        if suffix == ".pt":
            payload = {name: torch.from_numpy(h5[name][:]) for name in layers}
            payload["stimulus_ids"] = ids
            torch.save(payload, tmp)
            return
        _write_npz_streaming(h5, tmp, layers, np.array(ids))


def _write_npz_streaming(h5: h5py.File, tmp: Path, layers: list[str], ids: np.ndarray) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in layers:
            data = h5[name]
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                header = {"descr": "<f4", "fortran_order": False, "shape": data.shape}
                np.lib.format.write_array_header_2_0(handle, header)
                for start in range(0, data.shape[0], CHUNK_ROWS):
                    handle.write(np.ascontiguousarray(data[start : start + CHUNK_ROWS]).tobytes())
        with archive.open("stimulus_ids.npy", "w") as handle:
            np.lib.format.write_array(handle, ids, allow_pickle=False)


def read_features(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a features file written by :func:`save_features`: ``(ids, {layer: array})``.

    Parameters
    ----------
    path
        A ``.h5``/``.hdf5``, ``.npz`` or ``.pt`` features file (the suffix decides
        the format).

    Raises
    ------
    MetamersError
        Any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as h5:
            ids = [s.decode() if isinstance(s, bytes) else s for s in h5["stimulus_ids"][:]]
            return ids, {k: h5[k][:] for k in h5 if k != "stimulus_ids"}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return list(data["stimulus_ids"]), {
                k: data[k] for k in data.files if k != "stimulus_ids"
            }
    if suffix == ".pt":
        payload = torch.load(path, weights_only=True)
        ids = payload.pop("stimulus_ids")
        return list(ids), {k: v.numpy() for k, v in payload.items()}
    raise MetamersError(f"unsupported features file {path}")
