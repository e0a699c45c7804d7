"""Synthesis: turning a starting point into a stimulus that matches a reference's activations.

Two levels:

- :class:`MetamerSynthesis`: the batched synthesis object (construct →
  ``setup`` → ``synthesize`` → ``save``/``load``), per-item losses, step
  sizes, stopping and NaN recovery, ensembles of models.
- :func:`generate_metamers`: a stimulus set × layer jobs into an output
  folder, resumable; :func:`load_results` reads such a folder back.

A :class:`LayerJob` is what one metamer matches (per model, layers matched
jointly); :func:`parse_layer_jobs` reads the one layer grammar
(``"a,b"``: two jobs, ``"a+b"``: one joint job; see :mod:`metamers.synthesis.jobs`).

Per-item stop criteria (e.g. null-distribution acceptance) plug in as
``criterion(stimuli, indices) -> bool mask``; see :mod:`metamers.synthesis.engine`.
"""

from metamers.synthesis.driver import (
    generate_metamers,
    item_seed,
)
from metamers.synthesis.engine import MetamerSynthesis, StopCriterion
from metamers.synthesis.jobs import (
    LayerJob,
    as_layer_job,
    parse_layer_jobs,
    parse_layer_list,
    parse_model_layers,
)
from metamers.synthesis.results import MetamerResult
from metamers.synthesis.settings import (
    FAST,
    FEATHER2023,
    PRESETS,
    SynthesisSettings,
    get_preset,
    with_overrides,
)
from metamers.synthesis.storage import load_results, read_result

__all__ = [
    "FAST",
    "FEATHER2023",
    "PRESETS",
    "LayerJob",
    "MetamerResult",
    "MetamerSynthesis",
    "StopCriterion",
    "SynthesisSettings",
    "as_layer_job",
    "generate_metamers",
    "get_preset",
    "item_seed",
    "load_results",
    "parse_layer_jobs",
    "parse_layer_list",
    "parse_model_layers",
    "read_result",
    "with_overrides",
]
