"""On-disk files of null distributions: one atomic, self-describing ``.npz`` each.

:meth:`NullDistribution.save <metamers.null.distribution.NullDistribution.save>`
and :meth:`~metamers.null.distribution.NullDistribution.load` write and read
them (the cache uses the same code): a JSON ``meta`` entry (model, weights
fingerprint, layers, stimulus ids and fingerprint, augmentation, seed, sizes,
pairing, zero test, cache key, format version) and plain numeric arrays, read
with ``allow_pickle=False``.

The cache key is everything the values depend on: model fingerprint (weights
and input contract), layer set, stimulus-set fingerprint, augmentation, number
of pairs, seed, sampling settings and zero test. The file name carries a hash
of the key *without* the format version, so a file written by an older format
under the same key is found, recognised as stale and recomputed (or refused)
instead of silently ignored.

A null of ``N`` pairs is the first ``N`` pairs of a larger null computed under
the same key otherwise (sampling is prefix-consistent), so a request with no
file of its own is served from the smallest larger one
(:func:`find_larger`).

Internal module: use it through metamers.null (``NullDistribution.save``/``load``, ``compute_null``); not part of the public API.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from metamers.errors import MetamersError
from metamers.io import atomic_path

FORMAT_VERSION = 3
"""Bump when the stored arrays or the metric definitions change.

2: per-pair view indices (``first_view``, ``second_view``), ``pairs_per_view``
and ``zero_test`` in the metadata; written by ``NullDistribution.save``.
3: prefix-consistent sampling (every batch draws its full set of pairs, the
last batch is cut), so an ``N``-pair null is the first ``N`` pairs of a larger
one; the last batch's pairs differ from version 2.
"""

STALE_POLICIES = ("recompute", "raise")


class NullCacheError(MetamersError, ValueError):
    """A cached null distribution is corrupt or stale and may not be recomputed."""


class NullCacheWarning(UserWarning):
    """A cached null distribution was corrupt or stale and is being recomputed."""


def default_cache_dir() -> Path:
    """``$METAMERS_CACHE/null`` when the variable is set, else ``~/.cache/metamers/null``."""
    root = os.environ.get("METAMERS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "metamers") / "null"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache folder to use: the argument when given, else :func:`default_cache_dir`.

    Parameters
    ----------
    cache_dir
        A folder (``~`` is expanded) or ``None``.
    """
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def key_hash(key: dict) -> str:
    """Stable 16-hex-digit hash of a cache key.

    Parameters
    ----------
    key
        A JSON-serialisable dict (see :func:`~metamers.null.distribution.null_key`),
        serialised with sorted keys so that its order does not matter.
    """
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: Path, model_name: str, key: dict) -> Path:
    """Where the null for ``key`` lives: ``CACHE/<model>-<hash>.npz``.

    Parameters
    ----------
    cache_dir
        The cache folder (see :func:`resolve_cache_dir`).
    model_name
        The model's name; characters other than letters, digits, ``_``, ``.``
        and ``-`` become ``_`` in the file name.
    key
        Everything the null depends on (see :func:`key_hash`).
    """
    return cache_dir / f"{_safe_name(model_name)}-{key_hash(key)}.npz"


def _safe_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_") or "model"


def find_larger(cache_dir: Path, model_name: str, key: dict) -> Path | None:
    """The cache file of the smallest null whose key is ``key`` with a larger ``n_pairs``.

    Its first ``key["n_pairs"]`` pairs are the null ``key`` asks for. Only files
    of the current format version count; unreadable files are skipped.

    Parameters
    ----------
    cache_dir
        The cache folder.
    model_name
        The model's name (the files' name prefix).
    key
        The requested key (see :func:`~metamers.null.distribution.null_key`).
    """
    wanted = int(key["n_pairs"])
    best: tuple[int, Path] | None = None
    for path in sorted(cache_dir.glob(f"{_safe_name(model_name)}-*.npz")):
        meta = read_meta(path)
        other = meta.get("key") if meta is not None else None
        if meta is None or meta.get("format_version") != FORMAT_VERSION:
            continue
        if not isinstance(other, dict) or not isinstance(other.get("n_pairs"), int):
            continue
        if other["n_pairs"] > wanted and {**other, "n_pairs": wanted} == key:
            if best is None or other["n_pairs"] < best[0]:
                best = (other["n_pairs"], path)
    return best[1] if best is not None else None


def read_meta(path: Path) -> dict | None:
    """The JSON metadata of a file written by :func:`save_arrays`; ``None`` if unreadable.

    Parameters
    ----------
    path
        The ``.npz`` file (only its ``meta`` entry is read).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return meta if isinstance(meta, dict) else None


def save_arrays(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``meta`` (JSON) and ``arrays`` to ``path`` atomically (compressed npz).

    Parameters
    ----------
    path
        The destination ``.npz`` file (parents are created).
    meta
        JSON-serialisable metadata, stored as the ``meta`` entry with
        :data:`FORMAT_VERSION` added.
    arrays
        Named arrays; ``meta`` is not a valid name.
    """
    payload = {"meta": np.array(json.dumps({**meta, "format_version": FORMAT_VERSION}))}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **payload, **arrays)


def load_arrays(path: Path, what: str = "null file") -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_arrays` (``allow_pickle=False``) and check its format.

    Parameters
    ----------
    path
        The ``.npz`` file.
    what
        How errors name the file (``"null file"``, ``"null cache file"``).

    Returns
    -------
    tuple
        ``(meta, {name: array})``.

    Raises
    ------
    NullCacheError
        The file cannot be read (corrupt) or was written by another format
        version (stale); one line.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in data.files if name != "meta"}
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not a JSON object")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise NullCacheError(f"corrupt {what} {path}: {one_line(exc)}") from exc
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise NullCacheError(
            f"stale {what} {path}: format version {version}, expected {FORMAT_VERSION}"
        )
    return meta, arrays


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs collapsed).

    Parameters
    ----------
    exc
        Any exception; one with an empty message gives its type name.
    """
    return " ".join(str(exc).split()) or type(exc).__name__
