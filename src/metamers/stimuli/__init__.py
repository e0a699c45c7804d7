"""Stimuli: decoding, fitting to a model's input, and named stimulus sets."""

from metamers.stimuli.images import fit_image, load_image, match_channels
from metamers.stimuli.sets import (
    Stimulus,
    StimulusSet,
    Target,
    apply_labels,
    bundled_names,
    register_bundled,
    resolve_stimuli,
)

__all__ = [
    "Stimulus",
    "StimulusSet",
    "Target",
    "apply_labels",
    "bundled_names",
    "fit_image",
    "load_image",
    "match_channels",
    "register_bundled",
    "resolve_stimuli",
]
