"""PEP 562 lazy exports shared by the package's ``__init__`` modules.

Internal module: a leaf (imports nothing of the package), so any package
``__init__`` can use it without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], table: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a module whose ``table`` names are imported on first use.

    Parameters
    ----------
    namespace
        The module's ``globals()``; a value is cached there on first use, and
        ``dir()`` lists its ``__all__``.
    table
        Attribute name -> ``"module:attribute"`` (PEP 562).
    """
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        source, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(source), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", ()), *table})

    return __getattr__, __dir__
