"""Import structure: no module of the package imports, even lazily, one that imports it back.

The graph is read from the source (every ``import`` statement, at module level
or inside a function), so a cycle hidden behind a function-level import is
caught too. A submodule's implicit import of its parent package does not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import metamers

SOURCE = Path(metamers.__file__).resolve().parent.parent


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in (SOURCE / "metamers").rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(name: str, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    path, is_package = modules[name]
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, modules) for name in modules}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return False


def test_the_graph_sees_lazy_imports():
    graph = _graph()
    # registry imports the zoo and the sources inside functions only
    assert {"metamers.models.zoo", "metamers.models.sources"} <= graph["metamers.models.registry"]
    assert "metamers.stimuli.mnist" in graph["metamers.models.zoo.manifest"]


@pytest.mark.parametrize(
    "catalogue,member",
    [
        ("metamers.models.registry", "metamers.models.zoo"),
        ("metamers.models.registry", "metamers.models.efficientnet_lite"),
        ("metamers.stimuli.sets", "metamers.stimuli.mnist"),
        ("metamers.stimuli.sets", "metamers.stimuli.bundled"),
    ],
)
def test_builtin_catalogues_import_their_members_one_way(catalogue, member):
    graph = _graph()
    assert _reaches(graph, catalogue, member)
    members = [name for name in graph if name == member or name.startswith(f"{member}.")]
    assert not [name for name in members if _reaches(graph, name, catalogue)]


def test_no_import_cycle_in_the_package():
    graph = _graph()
    cycles = sorted(name for name in graph if _reaches(graph, name, name))
    assert cycles == [], f"modules on an import cycle: {cycles}"


@pytest.mark.parametrize(
    "module",
    [
        "metamers.models.zoo",
        "metamers.models.registry",
        "metamers.stimuli.sets",
        "metamers.stimuli.mnist",
        "metamers.stimuli.bundled",
        "metamers.studies.config",
    ],
)
def test_module_imports_first_in_a_fresh_process(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
