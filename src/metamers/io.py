"""Atomic file writing: a finished file is either complete or absent."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from metamers.errors import MetamersError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


def path_name(text: str) -> str:
    """The file or folder name for a name or id: readable, and different for different ids.

    The one mapping from ids (stimulus ids, model names, layer names) to path
    components. A name made only of letters, digits and ``. _ + = -`` (and not
    starting or ending with ``.``) is used as it is; any other name becomes a
    readable slug (other characters replaced by ``_``) followed by ``~`` and 8
    hex digits of the SHA-256 of the exact name. ``~`` never occurs in a name
    used as it is, so two different names never share a path (up to a hash
    collision) -- ``chat é`` and ``chat è`` get two folders.

    Parameters
    ----------
    text
        The exact name.

    Returns
    -------
    str
        A name safe on every file system.

    Examples
    --------
    >>> path_name("img0"), path_name("blocks.1+blocks.3")
    ('img0', 'blocks.1+blocks.3')
    >>> path_name("chat é") != path_name("chat è")
    True
    >>> path_name("timm:resnet18")
    'timm_resnet18~56082ded'
    """
    slug = _UNSAFE.sub("_", text).strip(".")
    if slug == text and slug:
        return slug
    return f"{slug or '_'}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def lock_file(path: str | os.PathLike[str]) -> IO[str] | None:
    """Take the exclusive lock on ``path`` (created if missing) without waiting.

    The lock (``fcntl.flock``) lasts while the returned handle is open and is
    released by the kernel when the process ends, however it ends.

    Parameters
    ----------
    path
        The lock file.

    Returns
    -------
    file or None
        The open handle holding the lock (close it to release), or ``None``
        when another process -- or another handle in this one -- holds it.
    """
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], busy: str) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` for the block (see :func:`lock_file`).

    Parameters
    ----------
    path
        The lock file (its folder must exist).
    busy
        The one-line message when the lock is held elsewhere.

    Raises
    ------
    MetamersError
        Another process holds the lock.
    """
    handle = lock_file(path)
    if handle is None:
        raise MetamersError(busy)
    try:
        yield
    finally:
        handle.close()


def is_locked(path: str | os.PathLike[str]) -> bool:
    """Whether another holder has the lock on ``path`` (a missing file is unlocked).

    Parameters
    ----------
    path
        The lock file.
    """
    if not Path(path).exists():
        return False
    handle = lock_file(path)
    if handle is None:
        return True
    handle.close()
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that is renamed onto it on success.

    On any exception the temporary file is removed and ``path`` is untouched,
    so an interrupted write never leaves a partial file behind.

    Parameters
    ----------
    path
        The final destination.

    Yields
    ------
    Path
        Where to write; it does not exist yet.

    Raises
    ------
    MetamersError
        ``path`` is a folder (checked before anything is written).

    Notes
    -----
    The finished file gets the permissions of a file created normally
    (``0o666`` less the process umask), whatever the writer created.
    """
    final = Path(path)
    if final.is_dir():
        raise MetamersError(f"{final} is a folder; give a file name")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path
        The destination; missing parent folders are created, an existing file is
        replaced only once the new one is complete.
    data
        The complete file contents.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Parameters
    ----------
    path
        The destination (see :func:`write_bytes_atomic`).
    obj
        A JSON-serialisable value; written with sorted keys, two-space indent and a
        final newline.
    """
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_table(
    table: Any, stem: str | os.PathLike[str], *, csv: bool = True, index: bool = False
) -> list[Path]:
    """Write a table as ``STEM.parquet`` (and ``STEM.csv``), each file atomically.

    The one way the package writes its tables: Parquet for programs, CSV for
    people and spreadsheets, both complete or absent.

    Parameters
    ----------
    table
        A :class:`pandas.DataFrame`.
    stem
        Destination without suffix (any suffix given is replaced).
    csv
        Also write the CSV copy.
    index
        Keep the row index (e.g. a similarity matrix's layer labels).

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> [p.name for p in write_table(pd.DataFrame({"a": [1]}), folder / "t")]
    ['t.parquet', 't.csv']
    """
    stem = Path(stem)
    written = [stem.with_suffix(".parquet")]
    with atomic_path(written[0]) as tmp:
        table.to_parquet(tmp, index=index)
    if csv:
        written.append(stem.with_suffix(".csv"))
        with atomic_path(written[1]) as tmp:
            table.to_csv(tmp, index=index)
    return written


def _umask() -> int:
    """The process umask, read without changing it (``/proc``), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that ``path`` is or can become a folder this process writes in.

    Nothing is created: the nearest existing folder on the way is probed with
    a temporary file (so read-only mounts and ACLs are caught, not only mode
    bits).

    Parameters
    ----------
    path
        The output folder (it need not exist yet).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MetamersError
        ``path`` (or a part of it) is a file, or the folder cannot be written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_writable_dir(folder / "new" / "out") == folder / "new" / "out"
    True
    >>> (folder / "f").write_text("x")
    1
    >>> check_writable_dir(folder / "f")
    Traceback (most recent call last):
    ...
    metamers.errors.MetamersError: ... is a file, not a folder
    """
    return _check_dir(Path(path), Path(path))


def _check_dir(folder: Path, target: Path) -> Path:
    existing = folder
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        if existing == target:
            raise MetamersError(f"{target} is a file, not a folder")
        verb = "create" if target == folder else "write"
        raise MetamersError(f"cannot {verb} {target}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".metamers-write-check.", dir=existing)
    except OSError as exc:
        raise MetamersError(f"cannot write in {existing}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_writable_file(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a file can be written (or replaced) at ``path``.

    Parameters
    ----------
    path
        The output file (it need not exist; an existing file will be replaced).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MetamersError
        ``path`` is a folder, a part of its folder is a file, or the folder
        cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise MetamersError(f"{target} is a folder; give a file name")
    _check_dir(target.parent, target)
    return target
