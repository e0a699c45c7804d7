"""Brain mapping: encoding models with noise-corrected scores, RSA with noise ceilings.

The data (:class:`NeuralData`, :func:`load_neural_data`, the published
layouts), splits keyed by stimulus id (:class:`Splits`), batched exact-LOO
ridge (:func:`fit_ridge`), the published presets (:data:`PRESETS`), the
encoding (:func:`fit_encoding`), best-layer selection, RSA
(:func:`brain_rsa`) and model features (:func:`layer_features`).

Examples
--------
>>> import numpy as np
>>> from metamers.brain import NeuralData, fit_encoding
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(40, 4))
>>> signal = x @ rng.normal(size=(4, 6))
>>> data = NeuralData(signal[:, :, None] + 0.5 * rng.normal(size=(40, 6, 3)),
...                   [f"s{i}" for i in range(40)])
>>> result = fit_encoding({"layer": x}, data, preset="default")
>>> bool(result.scores["r2_corrected"].median() > 0.8)
True
"""

from metamers.brain.data import NeuralData
from metamers.brain.encoding import EncodingResult, fit_encoding, report_scores
from metamers.brain.features import LayerFeatures, layer_features, pool_activation
from metamers.brain.outputs import write_encoding_outputs, write_rsa_outputs
from metamers.brain.presets import PRESETS, Preset, get_preset
from metamers.brain.published import (
    load_b2021,
    load_neural_data,
    load_nh2015,
    load_nh2015_components,
)
from metamers.brain.ridge import RidgeFit, fit_ridge, ridge_himalaya, ridge_loo
from metamers.brain.rsa import RSAResult, brain_rsa, noise_ceiling
from metamers.brain.scores import critical_r, pearson_columns, spearman_brown
from metamers.brain.selection import (
    across_participants,
    best_layer_lopo,
    best_layer_split_half,
    layer_curves,
    target_medians,
)
from metamers.brain.splits import Split, Splits, legacy_splits, random_splits

__all__ = [
    "PRESETS",
    "EncodingResult",
    "LayerFeatures",
    "NeuralData",
    "Preset",
    "RSAResult",
    "RidgeFit",
    "Split",
    "Splits",
    "across_participants",
    "best_layer_lopo",
    "best_layer_split_half",
    "brain_rsa",
    "critical_r",
    "fit_encoding",
    "fit_ridge",
    "get_preset",
    "layer_curves",
    "layer_features",
    "legacy_splits",
    "load_b2021",
    "load_neural_data",
    "load_nh2015",
    "load_nh2015_components",
    "noise_ceiling",
    "pearson_columns",
    "pool_activation",
    "random_splits",
    "report_scores",
    "ridge_himalaya",
    "ridge_loo",
    "spearman_brown",
    "target_medians",
    "write_encoding_outputs",
    "write_rsa_outputs",
]
