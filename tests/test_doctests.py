"""Every docstring example in the package runs (as plenoptic's do): examples are specifications."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import metamers


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(metamers.__path__, prefix="metamers."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as handle:
            if ">>> " in handle.read():
                names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_main_entry_points_have_examples():
    for name in (
        "metamers.decisions",
        "metamers.io",
        "metamers.labels",
        "metamers.null.criterion",
        "metamers.stimuli.fit",
        "metamers.validation.judge",
    ):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} mentions '>>> ' but holds no runnable example"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
