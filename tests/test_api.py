"""The public API: what ``import metamers`` offers, imported lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import metamers

EXPECTED = {
    # errors
    "ConfigError",
    "LayerError",
    "MetamersError",
    "ModelError",
    "StimulusError",
    # models and stimuli
    "PixelModel",
    "get_extractor",
    "load_model",
    "register_model",
    "registered_models",
    "resolve_stimuli",
    # synthesis
    "MetamerSynthesis",
    "SynthesisSettings",
    "generate_metamers",
    "get_preset",
    "load_results",
    # nulls and validation
    "AcceptanceStop",
    "NullCriterion",
    "NullDistribution",
    "compute_null",
    "judge",
    "validate_results",
    # evaluation and comparison
    "compare_models",
    "evaluate_directory",
    "evaluate_transfer",
    # studies
    "run_study",
    "__version__",
}


def test_the_public_names_are_the_expected_ones():
    assert set(metamers.__all__) == EXPECTED
    assert len(metamers.__all__) == len(EXPECTED)


@pytest.mark.parametrize("package", ["metamers", "metamers.evaluation"])
def test_every_public_name_resolves_and_is_listed_by_dir(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)


def test_entry_points_are_the_subpackages_objects():
    from metamers.evaluation.transfer import evaluate_transfer
    from metamers.models import load_model
    from metamers.synthesis import MetamerSynthesis

    assert metamers.load_model is load_model
    assert metamers.MetamerSynthesis is MetamerSynthesis
    assert metamers.evaluate_transfer is evaluate_transfer


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        metamers.no_such_name  # noqa: B018
    assert not hasattr(metamers.evaluation, "no_such_name")


def test_import_metamers_does_not_import_torch():
    code = (
        "import sys, metamers, metamers.evaluation; "
        "heavy = {'torch', 'numpy', 'pandas', 'matplotlib', 'scipy'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
