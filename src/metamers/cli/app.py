"""The Typer application and the entry point that turns user errors into one-line messages."""

from __future__ import annotations

import errno
import importlib
import sqlite3
import sys
import warnings

import typer

from metamers.errors import MetamersError

app = typer.Typer(
    name="metamers",
    help="Model metamers: generate, validate and evaluate stimuli that a model cannot tell apart.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = (
    "models",
    "synthesis",
    "null",
    "evaluation",
    "studies",
    "zoo",
    "audio",
    "brain",
    "experiments",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"metamers.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"metamers.cli.{name}":
                raise


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


INTERRUPTED = "interrupted; finished results are kept, re-run to resume"


def main() -> None:
    """Console-script entry point: every failure a user can meet ends in one line.

    ``MetamersError`` (a user's mistake) exits 2; a fault of the machine
    (``OSError``: disk full, permission denied, a file in the way; an
    ``sqlite3.Error``: a full disk or a damaged catalog) exits 1; Ctrl-C
    prints :data:`INTERRUPTED` and exits 130. Outputs are written atomically,
    so none of these leaves a half-written file.
    """
    _register_commands()
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except SystemExit as exc:
        if exc.code == 130 and _caused_by_interrupt(exc):  # typer turns Ctrl-C into Exit(130)
            typer.echo(INTERRUPTED, err=True)
        raise
    except MetamersError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # output piped into a closed reader (``| head``)
            sys.exit(1)
        typer.echo(f"error: {describe_os_error(exc)}", err=True)
        sys.exit(1)
    except sqlite3.Error as exc:
        typer.echo(f"error: {describe_sqlite_error(exc)}", err=True)
        sys.exit(1)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def _one_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def describe_sqlite_error(exc: sqlite3.Error) -> str:
    """One line for an SQLite error (a study catalog): a full disk, a damaged file, or else.

    Parameters
    ----------
    exc
        The error (its ``sqlite_errorname`` tells the cause).
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        return (
            "no space left on device writing a study catalog; free some space and re-run "
            "(finished results are kept)"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return f"a study catalog is damaged ({exc}); move it aside and re-run"
    return f"study catalog: {exc}"


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and what to do.

    Parameters
    ----------
    exc
        The error (its ``errno``, ``strerror`` and file names are used).

    Examples
    --------
    >>> import errno
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "out/a.png"))
    'no space left on device writing out/a.png; free some space and re-run (finished results are kept)'
    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "out"))
    'permission denied: out'
    """
    where = exc.filename if exc.filename is not None else None
    if getattr(exc, "filename2", None) is not None:
        where = f"{where} -> {exc.filename2}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        target = f" writing {where}" if where else ""
        return (
            f"{'no space left on device' if exc.errno == errno.ENOSPC else 'disk quota exceeded'}"
            f"{target}; free some space and re-run (finished results are kept)"
        )
    reason = (exc.strerror or _one_line(exc)).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    return f"{reason}: {where}" if where else reason
