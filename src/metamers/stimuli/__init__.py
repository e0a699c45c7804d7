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
from metamers.stimuli.sounds import SoundLoader, load_sound, model_sample_rate

__all__ = [
    "SoundLoader",
    "Stimulus",
    "StimulusSet",
    "Target",
    "apply_labels",
    "bundled_names",
    "fit_image",
    "load_image",
    "load_sound",
    "match_channels",
    "model_sample_rate",
    "register_bundled",
    "resolve_stimuli",
]
