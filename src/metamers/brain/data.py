"""The neural-data format: responses ``(stimuli, targets, repetitions)`` with their descriptors.

A :class:`NeuralData` holds what a mapping needs and says what it is: the
responses, the stimulus ids they were measured for (in order), one metadata
row per target (a voxel, a neuron, a component: participant, ROI labels,
coordinates, ...), optionally one row per stimulus (category, file name, ...)
and free dataset metadata. It is saved as one HDF5 file or as NPZ + Parquet
(:meth:`NeuralData.save`, :func:`metamers.brain.load_neural_data`); published downloads are
read by :mod:`metamers.brain.published`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamers.errors import ConfigError
from metamers.io import atomic_path

FORMAT_VERSION = 1
NEURAL_SUFFIXES = (".h5", ".hdf5", ".npz")


def _few(items: Sequence[Any], shown: int = 3) -> str:
    head = ", ".join(str(item) for item in list(items)[:shown])
    return head + (", ..." if len(items) > shown else "")


@dataclass
class NeuralData:
    """Responses of targets to stimuli, repeated, with what describes them.

    Parameters
    ----------
    responses
        ``(stimuli, targets, repetitions)`` array (a 2-D array is one repetition).
    stimulus_ids
        One id per stimulus, in the order of ``responses``; unique.
    targets
        One row per target (default: a ``target_id`` column ``0 .. T-1``). A
        ``participant`` column groups targets by participant; other columns
        (ROI labels, coordinates) are carried into every result table.
    stimuli
        Optional table of one row per stimulus (e.g. ``category``).
    meta
        Free dataset metadata (name, source, units); JSON-serialisable.

    Raises
    ------
    ConfigError
        Shapes that do not agree, duplicate stimulus ids, or targets with
        missing (NaN) or infinite responses.
    """

    responses: np.ndarray
    stimulus_ids: tuple[str, ...]
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)
    stimuli: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.responses, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ConfigError(
                f"responses must be (stimuli, targets, repetitions), got shape {array.shape}"
            )
        self.responses = array
        self.stimulus_ids = tuple(str(s) for s in self.stimulus_ids)
        n_stimuli, n_targets, _ = array.shape
        if len(self.stimulus_ids) != n_stimuli:
            raise ConfigError(
                f"responses cover {n_stimuli} stimuli but {len(self.stimulus_ids)} stimulus ids "
                "were given"
            )
        duplicates = pd.Index(self.stimulus_ids)[pd.Index(self.stimulus_ids).duplicated()]
        if len(duplicates):
            raise ConfigError(f"duplicate stimulus ids: {_few(list(duplicates))}")
        targets = self.targets if self.targets is not None else pd.DataFrame()
        if targets.empty and len(targets.columns) == 0:
            targets = pd.DataFrame({"target_id": np.arange(n_targets)})
        if len(targets) != n_targets:
            raise ConfigError(
                f"responses have {n_targets} targets but the target table has {len(targets)} rows"
            )
        self.targets = targets.reset_index(drop=True)
        if self.stimuli is not None and len(self.stimuli) != n_stimuli:
            raise ConfigError(
                f"responses cover {n_stimuli} stimuli but the stimulus table has "
                f"{len(self.stimuli)} rows"
            )
        bad = ~np.isfinite(array).all(axis=(0, 2))
        if bad.any():
            raise ConfigError(
                f"{int(bad.sum())} of {n_targets} targets have NaN or infinite responses "
                f"(targets {_few(np.flatnonzero(bad).tolist())}); drop them first "
                "(NeuralData.finite_targets())"
            )

    @classmethod
    def finite_targets(
        cls,
        responses: np.ndarray,
        stimulus_ids: Sequence[str],
        targets: pd.DataFrame | None = None,
        **kwargs: Any,
    ) -> NeuralData:
        """Build a dataset keeping only the targets whose responses are all finite.

        Parameters
        ----------
        responses, stimulus_ids, targets
            As for :class:`NeuralData`.
        **kwargs
            ``stimuli`` and ``meta``; ``meta["dropped_targets"]`` records how many were dropped.
        """
        array = np.asarray(responses, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
        keep = np.isfinite(array).all(axis=(0, 2))
        if targets is None or targets.empty:
            targets = pd.DataFrame({"target_id": np.arange(array.shape[1])})
        meta = dict(kwargs.pop("meta", {}) or {})
        meta["dropped_targets"] = int((~keep).sum())
        return cls(array[:, keep], stimulus_ids, targets[keep], meta=meta, **kwargs)

    @property
    def n_stimuli(self) -> int:
        """Number of stimuli."""
        return self.responses.shape[0]

    @property
    def n_targets(self) -> int:
        """Number of targets (voxels, neurons, components)."""
        return self.responses.shape[1]

    @property
    def n_repetitions(self) -> int:
        """Number of repetitions of each stimulus."""
        return self.responses.shape[2]

    def mean(self) -> np.ndarray:
        """The ``(stimuli, targets)`` mean over repetitions."""
        return self.responses.mean(axis=2)

    def participants(self) -> np.ndarray:
        """Each target's participant (all ``"all"`` without a ``participant`` column)."""
        if "participant" in self.targets:
            return self.targets["participant"].astype(str).to_numpy()
        return np.full(self.n_targets, "all", dtype=object)

    def require_repetitions(self, minimum: int = 2) -> None:
        """Raise a one-line error unless every stimulus has ``minimum`` repetitions.

        Parameters
        ----------
        minimum
            Repetitions a noise correction needs (split-half reliabilities need 2).
        """
        if self.n_repetitions < minimum:
            raise ConfigError(
                f"the noise correction needs at least {minimum} repetitions per stimulus; "
                f"these responses have {self.n_repetitions} (turn the noise correction off: "
                "noise_correction=False, --no-noise-correction)"
            )

    def select_targets(self, mask: np.ndarray | Sequence[bool]) -> NeuralData:
        """A copy with the targets where ``mask`` is true.

        Parameters
        ----------
        mask
            One boolean per target.
        """
        mask = np.asarray(mask, dtype=bool)
        return NeuralData(
            self.responses[:, mask],
            self.stimulus_ids,
            self.targets[mask],
            self.stimuli,
            dict(self.meta),
        )

    def align(self, stimulus_ids: Sequence[str]) -> NeuralData:
        """Reorder (and subset) the stimuli to ``stimulus_ids``, e.g. the model's stimuli.

        Parameters
        ----------
        stimulus_ids
            The ids, in the wanted order; each must be one of this dataset's ids.

        Raises
        ------
        ConfigError
            Ids that this dataset does not have.
        """
        wanted = [str(s) for s in stimulus_ids]
        index = {sid: i for i, sid in enumerate(self.stimulus_ids)}
        missing = [sid for sid in wanted if sid not in index]
        if missing:
            raise ConfigError(
                f"{len(missing)} of {len(wanted)} stimuli have no responses "
                f"(e.g. {_few(missing)}; responses have e.g. {_few(self.stimulus_ids)}); "
                "stimulus ids must match the response file's"
            )
        order = np.array([index[sid] for sid in wanted], dtype=int)
        stimuli = None if self.stimuli is None else self.stimuli.iloc[order].reset_index(drop=True)
        return NeuralData(
            self.responses[order], tuple(wanted), self.targets, stimuli, dict(self.meta)
        )

    def describe(self) -> dict[str, Any]:
        """Sizes and descriptors, JSON-serialisable (recorded with every result)."""
        return {
            "n_stimuli": self.n_stimuli,
            "n_targets": self.n_targets,
            "n_repetitions": self.n_repetitions,
            "participants": sorted(set(self.participants().tolist())),
            "target_columns": list(map(str, self.targets.columns)),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> Path:
        """Write the dataset as ``.h5`` (one file) or ``.npz`` (+ ``.targets.parquet``).

        Parameters
        ----------
        path
            Destination; its suffix picks the format.

        Returns
        -------
        Path
            ``path``.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in NEURAL_SUFFIXES:
            raise ConfigError(
                f"unsupported neural-data format {path.suffix!r}; use {', '.join(NEURAL_SUFFIXES)}"
            )
        header = json.dumps({"format_version": FORMAT_VERSION, "meta": self.meta})
        if suffix == ".npz":
            for table, name in ((self.targets, "targets"), (self.stimuli, "stimuli")):
                if table is not None:
                    with atomic_path(_sidecar(path, name)) as tmp:
                        table.to_parquet(tmp, index=False)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(
                        handle,
                        responses=self.responses,
                        stimulus_ids=np.array(self.stimulus_ids, dtype=str),
                        header=np.array(header),
                    )
            return path
        import h5py

        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as handle:
                handle.create_dataset("responses", data=self.responses)
                handle.create_dataset(
                    "stimulus_ids",
                    data=np.array(self.stimulus_ids, dtype=object),
                    dtype=h5py.string_dtype(),
                )
                handle.attrs["header"] = header
                for table, name in ((self.targets, "targets"), (self.stimuli, "stimuli")):
                    if table is not None:
                        buffer = io.BytesIO()
                        table.to_parquet(buffer, index=False)
                        handle.create_dataset(name, data=np.void(buffer.getvalue()))
        return path


def _sidecar(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}.{name}.parquet")


def _header(text: str, path: Path) -> dict[str, Any]:
    header = json.loads(text)
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise ConfigError(f"{path} was written by a newer metamers (format {header})")
    return header


def read_npz(path: Path) -> NeuralData:
    """Read an ``.npz`` written by :meth:`NeuralData.save` (and its Parquet sidecars).

    Parameters
    ----------
    path
        The file.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            responses = archive["responses"]
            ids = archive["stimulus_ids"].tolist()
            header = _header(str(archive["header"]), path) if "header" in archive else {}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path} is not a neural-data .npz file ({exc})") from None
    tables = {}
    for name in ("targets", "stimuli"):
        sidecar = _sidecar(path, name)
        tables[name] = pd.read_parquet(sidecar) if sidecar.is_file() else None
    return NeuralData(responses, ids, tables["targets"], tables["stimuli"], header.get("meta", {}))


def read_h5(path: Path) -> NeuralData:
    """Read an ``.h5`` written by :meth:`NeuralData.save`.

    Parameters
    ----------
    path
        The file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            responses = handle["responses"][()]
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in handle["stimulus_ids"]]
            header = _header(str(handle.attrs.get("header", "{}")), path)
            tables = {
                name: pd.read_parquet(io.BytesIO(handle[name][()].tobytes()))
                if name in handle
                else None
                for name in ("targets", "stimuli")
            }
    except (OSError, KeyError) as exc:
        raise ConfigError(f"{path} is not a neural-data HDF5 file ({exc})") from None
    return NeuralData(responses, ids, tables["targets"], tables["stimuli"], header.get("meta", {}))
