"""Models: pixel/waveform-space networks with named layers, from any source."""

from metamers.models.base import LOGITS, Normalize, PixelModel, is_relu_layer
from metamers.models.contract import validate_model
from metamers.models.registry import ModelEntry, load_model, register_model, registered_models

__all__ = [
    "LOGITS",
    "ModelEntry",
    "Normalize",
    "PixelModel",
    "is_relu_layer",
    "load_model",
    "register_model",
    "registered_models",
    "validate_model",
]
