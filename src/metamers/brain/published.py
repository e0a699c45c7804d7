"""Readers for the published downloads: NH2015, B2021 and the NH2015 components.

The files are read as the published code reads them (Tuckute, Feather et al.
2023): ``neural_stim_meta.npy`` (a structured array, one row per sound, the
file name first), ``voxel_features_array.npy`` ``(sounds, voxels, runs)``,
``voxel_features_meta.npy`` (``subj_idx, hemi, x_ras, y_ras, voxel_id,
n_reps``; voxels with fewer runs than asked are dropped), B2021's
``stim_info_v4.mat`` and the components' ``components.mat`` (``R``,
``stim_names``, ``component_names``). The published ROI tables are pandas
pickles; pickles are never read here: convert one once with
``pd.read_pickle(...).to_parquet(...)`` and pass the Parquet or CSV file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamers.brain.data import NeuralData, read_h5, read_npz
from metamers.errors import ConfigError

STIM_META = "neural_stim_meta.npy"
VOXEL_ARRAY = "voxel_features_array.npy"
VOXEL_META = "voxel_features_meta.npy"
B2021_STIM_INFO = "stim_info_v4.mat"
COMPONENTS = "components.mat"
ROI_TABLE_NAMES = ("df_roi_meta.parquet", "df_roi_meta.csv")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _np_load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(f"missing {path.name} in {path.parent}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ConfigError(f"{path} cannot be read without unpickling ({exc})") from None


def read_stimulus_meta(path: str | Path) -> pd.DataFrame:
    """The sounds of ``neural_stim_meta.npy``: ``stimulus_id`` (file name without ``.wav``) and
    every other field of the structured array.

    Parameters
    ----------
    path
        The ``.npy`` file.
    """
    array = _np_load(Path(path))
    if array.dtype.names is None:
        raise ConfigError(f"{path} is not a structured array of sound metadata")
    columns = {
        name: [_text(v) if isinstance(v, bytes) else v for v in array[name]]
        for name in array.dtype.names
    }
    table = pd.DataFrame(columns)
    first = table.columns[0]
    table.insert(0, "stimulus_id", [str(name).removesuffix(".wav") for name in table[first]])
    return table


def read_roi_table(path: str | Path, n_rows: int) -> pd.DataFrame:
    """An ROI table with one row per kept voxel (Parquet or CSV; pickles are refused).

    Parameters
    ----------
    path
        The table.
    n_rows
        Voxels it must describe.
    """
    path = Path(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise ConfigError(
            f"{path.name} is a pickle, which is never loaded here; convert it once with "
            "pandas: pd.read_pickle(PATH).to_parquet('df_roi_meta.parquet')"
        )
    if not path.is_file():
        raise ConfigError(f"no ROI table {path}")
    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if len(table) != n_rows:
        raise ConfigError(f"the ROI table {path.name} has {len(table)} rows for {n_rows} voxels")
    return table.reset_index(drop=True)


def _merge_rois(targets: pd.DataFrame, rois: pd.DataFrame | None) -> pd.DataFrame:
    if rois is None:
        return targets
    extra = [c for c in rois.columns if c not in targets.columns]
    return pd.concat([targets, rois[extra]], axis=1)


def _voxel_targets(meta: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            name: [_text(v) if isinstance(v, bytes) else v for v in meta[name]]
            for name in meta.dtype.names
        }
    )
    if "subj_idx" in table:
        table.insert(0, "participant", table["subj_idx"].astype(str))
    return table


def _find_roi_table(folder: Path, roi_table: str | Path | None) -> Path | None:
    if roi_table is not None:
        return Path(roi_table)
    for name in ROI_TABLE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def load_nh2015(
    folder: str | Path, *, roi_table: str | Path | None = None, n_reps: int = 3
) -> NeuralData:
    """NH2015 (Norman-Haignere et al. 2015) from its published files.

    Parameters
    ----------
    folder
        Holds ``neural_stim_meta.npy``, ``voxel_features_array.npy`` and
        ``voxel_features_meta.npy`` (and optionally ``df_roi_meta.parquet|csv``).
    roi_table
        An ROI table (one row per kept voxel), if not in ``folder``.
    n_reps
        Keep the voxels with this many runs (the published 7,694 have 3).

    Returns
    -------
    NeuralData
        Responses ``(165, voxels, n_reps)``; targets with ``participant``
        (``subj_idx``), ``hemi``, ``x_ras``, ``y_ras``, ``voxel_id``, ``n_reps``
        and the ROI table's columns; the sound table as ``stimuli``.
    """
    folder = Path(folder)
    stimuli = read_stimulus_meta(folder / STIM_META)
    array = _np_load(folder / VOXEL_ARRAY)
    meta = _np_load(folder / VOXEL_META)
    if array.ndim != 3 or array.shape[1] != len(meta) or array.shape[0] != len(stimuli):
        raise ConfigError(
            f"{VOXEL_ARRAY} has shape {array.shape}; expected ({len(stimuli)} sounds, "
            f"{len(meta)} voxels, runs) to match {STIM_META} and {VOXEL_META}"
        )
    if "n_reps" not in (meta.dtype.names or ()):
        raise ConfigError(f"{VOXEL_META} has no n_reps field (fields: {meta.dtype.names})")
    keep = meta["n_reps"] == n_reps
    if not keep.any():
        raise ConfigError(f"no voxel in {VOXEL_META} has n_reps == {n_reps}")
    targets = _voxel_targets(meta[keep])
    found = _find_roi_table(folder, roi_table)
    rois = read_roi_table(found, int(keep.sum())) if found is not None else None
    return NeuralData(
        array[:, keep, :n_reps],
        stimuli["stimulus_id"].tolist(),
        _merge_rois(targets, rois),
        stimuli,
        {"dataset": "NH2015", "source": str(folder), "dropped_voxels": int((~keep).sum())},
    )


def _mat_strings(value: Any) -> list[str]:
    """Every string inside a MATLAB cell array or struct field as ``loadmat`` returns it."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode()]
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return [_text(v) for v in array.ravel().tolist()]
    out: list[str] = []
    for item in array.ravel():
        out.extend(_mat_strings(item))
    return out


def _loadmat(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    if not path.is_file():
        raise ConfigError(f"missing {path.name} in {path.parent}")
    return loadmat(path)


def load_b2021(
    folder: str | Path,
    *,
    roi_table: str | Path | None = None,
    n_stimuli: int | None = 165,
    n_reps: int = 3,
) -> NeuralData:
    """B2021 (Boebinger et al. 2021) from its published files.

    Parameters
    ----------
    folder
        Holds ``stim_info_v4.mat`` and ``voxel_features_array.npy`` (and
        ``voxel_features_meta.npy`` or an ROI table for the participants).
    roi_table
        An ROI table (one row per voxel) if not in ``folder``.
    n_stimuli
        Keep the first sounds (the published analyses use NH2015's 165, which
        come first and in order); ``None`` keeps every sound.
    n_reps
        Repetitions used (the first ``n_reps``).
    """
    folder = Path(folder)
    info = _loadmat(folder / B2021_STIM_INFO)
    if "stim_info" not in info:
        raise ConfigError(f"{B2021_STIM_INFO} has no stim_info struct")
    names = [n.removesuffix(".wav") for n in _mat_strings(info["stim_info"]["stim_names"])]
    array = _np_load(folder / VOXEL_ARRAY)
    if array.ndim != 3 or array.shape[0] < len(names[: n_stimuli or len(names)]):
        raise ConfigError(f"{VOXEL_ARRAY} has shape {array.shape} for {len(names)} sounds")
    if array.shape[2] < n_reps:
        raise ConfigError(f"{VOXEL_ARRAY} has {array.shape[2]} repetitions, fewer than {n_reps}")
    count = len(names) if n_stimuli is None else n_stimuli
    targets = (
        _voxel_targets(_np_load(folder / VOXEL_META))
        if (folder / VOXEL_META).is_file()
        else pd.DataFrame({"voxel": np.arange(array.shape[1])})
    )
    found = _find_roi_table(folder, roi_table)
    rois = read_roi_table(found, array.shape[1]) if found is not None else None
    targets = _merge_rois(targets, rois)
    if "participant" not in targets and "subj_idx" in targets:
        targets.insert(0, "participant", targets["subj_idx"].astype(str))
    return NeuralData.finite_targets(
        array[:count, :, :n_reps],
        names[:count],
        targets,
        meta={"dataset": "B2021", "source": str(folder)},
    )


def load_nh2015_components(path: str | Path) -> NeuralData:
    """The six NH2015 components (``components.mat``): one repetition, no noise correction.

    Parameters
    ----------
    path
        ``components.mat`` (``R``: sounds × components, ``stim_names``,
        ``component_names``) or the folder holding it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / COMPONENTS
    mat = _loadmat(path)
    for key in ("R", "stim_names", "component_names"):
        if key not in mat:
            raise ConfigError(f"{path.name} has no {key!r}")
    responses = np.asarray(mat["R"], dtype=np.float64)
    names = [n.removesuffix(".wav") for n in _mat_strings(mat["stim_names"])]
    components = _mat_strings(mat["component_names"])
    if responses.shape != (len(names), len(components)):
        raise ConfigError(
            f"R has shape {responses.shape} for {len(names)} sounds and "
            f"{len(components)} components"
        )
    return NeuralData(
        responses,
        names,
        pd.DataFrame({"target_id": components, "component": components}),
        meta={"dataset": "NH2015comp", "source": str(path), "noise_correction": False},
    )


def load_published(folder: str | Path, **options: Any) -> NeuralData:
    """Recognise a published layout in ``folder`` and read it.

    Parameters
    ----------
    folder
        A folder in the NH2015, B2021 or NH2015-components layout.
    **options
        Passed to the loader.
    """
    folder = Path(folder)
    if (folder / B2021_STIM_INFO).is_file():
        return load_b2021(folder, **options)
    if (folder / VOXEL_ARRAY).is_file() or (folder / STIM_META).is_file():
        return load_nh2015(folder, **options)
    if (folder / COMPONENTS).is_file():
        return load_nh2015_components(folder)
    raise ConfigError(
        f"{folder} holds no neural data in a known layout (expected {VOXEL_ARRAY} with "
        f"{STIM_META}, {B2021_STIM_INFO}, or {COMPONENTS})"
    )


def load_neural_data(path: str | Path, **options: Any) -> NeuralData:
    """Read neural data: our ``.h5`` / ``.npz`` files, or a published download's folder.

    Parameters
    ----------
    path
        An ``.h5``/``.hdf5`` file, an ``.npz`` file (with its ``.targets.parquet``
        beside it), or a folder in a published layout (NH2015, B2021; see
        :mod:`metamers.brain.published`).
    **options
        Passed to the published loader (e.g. ``roi_table``).

    Raises
    ------
    ConfigError
        A missing or unreadable file, an unknown layout, or an invalid dataset.
    """
    path = Path(path)
    if path.is_dir():
        return load_published(path, **options)
    if not path.is_file():
        raise ConfigError(f"no neural-data file {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix in (".h5", ".hdf5"):
        return read_h5(path)
    raise ConfigError(
        f"unsupported neural-data file {path.name}; give an .h5 or .npz file or a folder in the "
        "NH2015/B2021 layout"
    )
