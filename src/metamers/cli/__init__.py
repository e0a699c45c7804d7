"""The ``metamers`` command line: thin wrappers that parse, call the library and print.

Each command group lives in its own module and registers itself on :data:`app`.
"""

from metamers.cli.app import app, main

__all__ = ["app", "main"]
