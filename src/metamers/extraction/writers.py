"""Streaming features to ``.h5``, ``.npz``, ``.pt``, ``.npy`` or ``.mat``, atomically.

Batches are appended to a staging HDF5 file beside the output; centring and
normalising run chunk by chunk on that file; the final format is written to
a temporary name and renamed into place, so an interrupted run leaves no
partial output behind.

Every format carries the same metadata (see :func:`read_features`): the
model's name and weights fingerprint, per layer the activation shape before
flattening, and per stimulus its id, label, class index and source.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from metamers.errors import MetamersError
from metamers.extraction.extract import Extractor
from metamers.io import (
    _umask,
    atomic_path,
    check_writable_dir,
    check_writable_file,
    path_name,
)
from metamers.stimuli.sets import StimulusSet

FEATURE_SUFFIXES = (".h5", ".hdf5", ".npz", ".pt", ".npy", ".mat")
CHUNK_ROWS = 256
METADATA_KEY = "__metadata__"
METADATA_VERSION = 1
_MATLAB_NAME = 63  # longest MATLAB variable name


def check_features_path(out: str | Path) -> Path:
    """Check, before any model is loaded, that features can be written at ``out``.

    Parameters
    ----------
    out
        The output; its suffix picks the format (one of :data:`FEATURE_SUFFIXES`).
        ``.npy`` names a folder (one ``.npy`` file per layer, ``metadata.json``
        and ``stimuli.csv``); every other suffix names a file.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    MetamersError
        An unsupported suffix, a folder where a file is wanted (or a file or
        a foreign non-empty folder where the ``.npy`` folder is wanted), or a
        place that cannot be written.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise MetamersError(
            f"unsupported output format {out.suffix or repr(out.name)!s}; "
            f"use one of {', '.join(FEATURE_SUFFIXES)}"
        )
    if suffix != ".npy":
        return check_writable_file(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "metadata.json").is_file():
        raise MetamersError(f"{out} is a folder of other files; give a new folder name")
    check_writable_dir(out)
    return out


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
        Output; its suffix picks the format (``.h5``/``.hdf5``: one
        dataset per layer plus ``stimulus_ids``; ``.npz``: one array per
        layer plus ``stimulus_ids``; ``.pt``: a dict of tensors plus ids;
        ``.npy``: a *folder* with one ``LAYER.npy`` per layer, ``metadata.json``
        and ``stimuli.csv``; ``.mat``: a MATLAB file, one variable per layer
        under a MATLAB-safe name, the mapping in ``layer_names`` /
        ``layer_variables`` and the metadata). Each format also carries the
        metadata that :func:`read_features` returns. ``.mat`` is written in
        memory (not streamed) and holds at most 2 GB per layer.
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
    check_features_path(out)  # suffix, a folder in the way, a read-only target: before the work
    if (center or normalize) and not flatten:
        raise MetamersError("--center/--normalize need flattened features (use --flatten)")
    layers = extractor.model.check_layers(layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging.h5")
    model = extractor.model
    metadata: dict[str, Any] = {
        "format_version": METADATA_VERSION,
        "model": model.name,
        "weights_fingerprint": model.fingerprint(),
        "label_space": getattr(model, "label_space", None),
        "flatten": flatten,
        "center": center,
        "normalize": normalize,
        "stimuli_spec": stimuli.spec,
    }
    try:
        metadata.update(_stream_to_h5(extractor, stimuli, layers, staging, flatten, progress))
        if center or normalize:
            _postprocess(staging, layers, center=center, normalize=normalize)
        suffix = out.suffix.lower()
        if suffix == ".npy":
            _write_npy_folder(staging, out, layers, metadata)
        else:
            with atomic_path(out) as tmp:
                _convert(staging, tmp, suffix, layers, metadata)
    finally:
        staging.unlink(missing_ok=True)
    return out


def _stream_to_h5(extractor, stimuli, layers, path: Path, flatten: bool, progress) -> dict:
    """Stream to the staging file; return the stimulus and layer metadata."""
    done = 0
    seen: dict[str, list] = {"ids": [], "labels": [], "targets": [], "sources": []}
    shapes: dict[str, list[int]] = {}
    with h5py.File(path, "w") as h5:
        ids = h5.create_dataset(
            "stimulus_ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype()
        )
        for chunk, raw in extractor.iter_batches(stimuli, layers, flatten=False):
            n = len(chunk)
            ids.resize(done + n, axis=0)
            ids[done:] = [s.id for s in chunk]
            for s in chunk:
                seen["ids"].append(s.id)
                seen["labels"].append(s.label)
                seen["targets"].append(s.target)
                seen["sources"].append(str(s.source))
            for name, array in raw.items():
                shapes.setdefault(name, [int(d) for d in array.shape[1:]])
                if flatten:
                    array = array.reshape(array.shape[0], -1)
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
        layer_meta = {
            name: {"original_shape": shapes[name], "stored_shape": list(h5[name].shape[1:])}
            for name in layers
        }
    return {"layers": layer_meta, "stimuli": seen}


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


def _convert(staging: Path, tmp: Path, suffix: str, layers: list[str], metadata: dict) -> None:
    if suffix in (".h5", ".hdf5"):
        with h5py.File(staging, "r+") as h5:
            h5.attrs[METADATA_KEY] = json.dumps(metadata)
            for name in layers:
                h5[name].attrs["original_shape"] = metadata["layers"][name]["original_shape"]
        staging.replace(tmp)
        return
    with h5py.File(staging, "r") as h5:
        ids = [s.decode() if isinstance(s, bytes) else s for s in h5["stimulus_ids"][:]]
        if suffix == ".pt":
            payload: dict[str, Any] = {name: torch.from_numpy(h5[name][:]) for name in layers}
            payload["stimulus_ids"] = ids
            payload[METADATA_KEY] = json.dumps(metadata)
            torch.save(payload, tmp)
            return
        if suffix == ".mat":
            _write_mat(h5, tmp, layers, ids, metadata)
            return
        _write_npz_streaming(h5, tmp, layers, np.array(ids), metadata)


def _write_npy(handle, data) -> None:
    """Stream an HDF5 dataset into an open file as one ``.npy`` array."""
    header = {"descr": "<f4", "fortran_order": False, "shape": data.shape}
    np.lib.format.write_array_header_2_0(handle, header)
    for start in range(0, data.shape[0], CHUNK_ROWS):
        handle.write(np.ascontiguousarray(data[start : start + CHUNK_ROWS]).tobytes())


def _write_npz_streaming(
    h5: h5py.File, tmp: Path, layers: list[str], ids: np.ndarray, metadata: dict
) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in layers:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                _write_npy(handle, h5[name])
        with archive.open("stimulus_ids.npy", "w") as handle:
            np.lib.format.write_array(handle, ids, allow_pickle=False)
        with archive.open(f"{METADATA_KEY}.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array(json.dumps(metadata)), allow_pickle=False)


def matlab_names(layers: list[str]) -> dict[str, str]:
    """MATLAB-safe, distinct variable names for layer names.

    A valid name (a letter, then letters, digits and ``_``, at most 63
    characters) is kept; others get ``_`` for each other character, an
    ``L_`` prefix when they do not start with a letter, and a numeric suffix
    when two would coincide.

    Examples
    --------
    >>> matlab_names(["blocks.1", "conv1", "1x"])
    {'blocks.1': 'blocks_1', 'conv1': 'conv1', '1x': 'L_1x'}
    """
    reserved = {"stimulus_ids", "layer_names", "layer_variables", "metadata_json"}
    names: dict[str, str] = {}
    for layer in layers:
        base = re.sub(r"\W", "_", layer, flags=re.ASCII)
        if not base[:1].isalpha() or not base[:1].isascii():
            base = f"L_{base}"
        base = base[:_MATLAB_NAME]
        name, k = base, 1
        while name in reserved or name in names.values():
            k += 1
            name = f"{base[: _MATLAB_NAME - len(str(k)) - 1]}_{k}"
        names[layer] = name
    return names


def _write_mat(h5: h5py.File, tmp: Path, layers: list[str], ids: list[str], metadata) -> None:
    from scipy.io import savemat

    names = matlab_names(layers)
    for layer in layers:
        metadata["layers"][layer]["matlab_name"] = names[layer]
    content: dict[str, Any] = {names[layer]: h5[layer][:] for layer in layers}
    content["stimulus_ids"] = np.array(ids, dtype=object)
    content["layer_names"] = np.array(layers, dtype=object)
    content["layer_variables"] = np.array([names[layer] for layer in layers], dtype=object)
    content["metadata_json"] = json.dumps(metadata)
    with open(tmp, "wb") as handle:
        savemat(handle, content, do_compression=False, oned_as="column")


def _write_npy_folder(staging: Path, out: Path, layers: list[str], metadata: dict) -> None:
    """One ``.npy`` per layer, ``metadata.json`` and ``stimuli.csv``, renamed into place."""
    files = {layer: f"{path_name(layer)}.npy" for layer in layers}
    for layer in layers:
        metadata["layers"][layer]["file"] = files[layer]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with h5py.File(staging, "r") as h5:
            for layer in layers:
                with open(tmp / files[layer], "wb") as handle:
                    _write_npy(handle, h5[layer])
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1))
        stim = metadata["stimuli"]
        with open(tmp / "stimuli.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "id", "label", "target", "source"])
            rows = zip(stim["ids"], stim["labels"], stim["targets"], stim["sources"], strict=True)
            for row, (sid, label, target, source) in enumerate(rows):
                writer.writerow([row, sid, label or "", "" if target is None else target, source])
        tmp.chmod(0o777 & ~_umask())
        old = None
        if out.exists():  # a previous features folder (checked by check_features_path)
            old = out.with_name(f".{out.name}.old.{tmp.name}")
            out.replace(old)
        tmp.replace(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_features(
    path: str | Path, *, with_metadata: bool = False
) -> tuple[list[str], dict[str, np.ndarray]] | tuple[list[str], dict[str, np.ndarray], dict]:
    """Read features written by :func:`save_features`: ``(ids, {layer: array})``.

    Parameters
    ----------
    path
        A ``.h5``/``.hdf5``, ``.npz``, ``.pt`` or ``.mat`` file, or a ``.npy``
        folder (the suffix decides the format).
    with_metadata
        Also return the metadata: ``(ids, {layer: array}, metadata)``.

    Returns
    -------
    tuple
        Stimulus ids in row order, ``{layer: array}`` under the original layer
        names (also for ``.mat``), and with ``with_metadata`` a dict with
        ``model``, ``weights_fingerprint``, ``label_space``, ``flatten``,
        ``center``, ``normalize``, ``stimuli_spec``, ``layers`` (per layer
        ``original_shape`` before flattening and ``stored_shape``) and
        ``stimuli`` (``ids``, ``labels``, ``targets``, ``sources``). A file
        written before metadata was recorded gives ``{}``.

    Raises
    ------
    MetamersError
        Any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    metadata: dict = {}
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as h5:
            ids = [s.decode() if isinstance(s, bytes) else s for s in h5["stimulus_ids"][:]]
            arrays = {k: h5[k][:] for k in h5 if k != "stimulus_ids"}
            if METADATA_KEY in h5.attrs:
                metadata = json.loads(h5.attrs[METADATA_KEY])
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            ids = [str(i) for i in data["stimulus_ids"]]
            skip = {"stimulus_ids", METADATA_KEY}
            arrays = {k: data[k] for k in data.files if k not in skip}
            if METADATA_KEY in data.files:
                metadata = json.loads(str(data[METADATA_KEY]))
    elif suffix == ".pt":
        payload = torch.load(path, weights_only=True)
        ids = list(payload.pop("stimulus_ids"))
        metadata = json.loads(payload.pop(METADATA_KEY, "{}"))
        arrays = {k: v.numpy() for k, v in payload.items()}
    elif suffix == ".mat":
        from scipy.io import loadmat

        data = loadmat(path, squeeze_me=True)
        metadata = json.loads(str(data["metadata_json"]))
        ids = list(metadata["stimuli"]["ids"])
        arrays = {
            layer: np.asarray(data[info["matlab_name"]], dtype=np.float32).reshape(
                len(ids), *info["stored_shape"]
            )
            for layer, info in metadata["layers"].items()
        }
    elif suffix == ".npy" and path.is_dir():
        metadata = json.loads((path / "metadata.json").read_text())
        ids = list(metadata["stimuli"]["ids"])
        arrays = {
            layer: np.load(path / info["file"], allow_pickle=False)
            for layer, info in metadata["layers"].items()
        }
    else:
        raise MetamersError(f"unsupported features file {path}")
    return (ids, arrays, metadata) if with_metadata else (ids, arrays)
