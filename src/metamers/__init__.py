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

from typing import TYPE_CHECKING

from metamers._lazy import lazy_exports as _lazy_exports
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

from metamers._version import __version__

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
