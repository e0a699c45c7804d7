"""metamers: model metamers for measuring the invariances of neural networks.

The package is layered; data flows one way::

    stimuli -> models -> extraction / similarity / null -> synthesis
            -> validation -> evaluation -> studies -> report -> cli

The main entry points are attributes of the package, imported on first use
(so ``import metamers`` and the command line stay fast): loading models and
stimuli, synthesis, nulls, validation, evaluation, comparison and studies.
Everything else lives in the subpackages.

Examples
--------
>>> import metamers
>>> metamers.load_model.__module__
'metamers.models.registry'
>>> issubclass(metamers.LayerError, LookupError)
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from metamers.errors import ConfigError, LayerError, MetamersError, ModelError, StimulusError

if TYPE_CHECKING:
    from metamers.evaluation import compare_models, evaluate_directory, evaluate_transfer
    from metamers.extraction import get_extractor
    from metamers.models import PixelModel, load_model, register_model, registered_models
    from metamers.null import NullDistribution, compute_null
    from metamers.null.criterion import NullCriterion
    from metamers.stimuli import resolve_stimuli
    from metamers.studies import run_study
    from metamers.synthesis import (
        MetamerSynthesis,
        SynthesisSettings,
        generate_metamers,
        get_preset,
        load_results,
    )
    from metamers.validation import AcceptanceStop, judge, validate_results

__version__ = "0.1.0"

_ENTRY_POINTS = {
    # models and stimuli
    "PixelModel": "metamers.models:PixelModel",
    "load_model": "metamers.models:load_model",
    "register_model": "metamers.models:register_model",
    "registered_models": "metamers.models:registered_models",
    "resolve_stimuli": "metamers.stimuli:resolve_stimuli",
    "get_extractor": "metamers.extraction:get_extractor",
    # synthesis
    "MetamerSynthesis": "metamers.synthesis:MetamerSynthesis",
    "SynthesisSettings": "metamers.synthesis:SynthesisSettings",
    "get_preset": "metamers.synthesis:get_preset",
    "generate_metamers": "metamers.synthesis:generate_metamers",
    "load_results": "metamers.synthesis:load_results",
    # nulls and validation
    "compute_null": "metamers.null:compute_null",
    "NullDistribution": "metamers.null:NullDistribution",
    "NullCriterion": "metamers.null.criterion:NullCriterion",
    "judge": "metamers.validation:judge",
    "validate_results": "metamers.validation:validate_results",
    "AcceptanceStop": "metamers.validation:AcceptanceStop",
    # evaluation and comparison
    "evaluate_transfer": "metamers.evaluation:evaluate_transfer",
    "evaluate_directory": "metamers.evaluation:evaluate_directory",
    "compare_models": "metamers.evaluation:compare_models",
    # studies
    "run_study": "metamers.studies:run_study",
}


def _lazy_exports(
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


__getattr__, __dir__ = _lazy_exports(globals(), _ENTRY_POINTS)

__all__ = [
    "AcceptanceStop",
    "ConfigError",
    "LayerError",
    "MetamerSynthesis",
    "MetamersError",
    "ModelError",
    "NullCriterion",
    "NullDistribution",
    "PixelModel",
    "StimulusError",
    "SynthesisSettings",
    "__version__",
    "compare_models",
    "compute_null",
    "evaluate_directory",
    "evaluate_transfer",
    "generate_metamers",
    "get_extractor",
    "get_preset",
    "judge",
    "load_model",
    "load_results",
    "register_model",
    "registered_models",
    "resolve_stimuli",
    "run_study",
    "validate_results",
]
