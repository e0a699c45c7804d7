"""Atomic file writing: a finished file is either complete or absent."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
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
