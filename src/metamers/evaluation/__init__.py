"""Evaluating metamers across observer models, and comparing models' representations.

Recognisability and the representation test of stored metamers
(:func:`evaluate_directory` for a ``metamers generate`` folder,
:func:`evaluate_transfer` for results in memory), RSA/CKA comparison of
models' layers (:func:`compare_models`), image-quality measures and the
comparison with human recognition.

The names below are imported on first use (PEP 562), so importing one module
of this package does not import the others (scikit-image, SciPy, Matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metamers._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from metamers.evaluation.compare import (
        ComparisonSettings,
        LayerSummary,
        compare_models,
        plot_similarity_matrix,
        save_similarity_matrix,
        similarity_matrix,
        summarise_model,
    )
    from metamers.evaluation.directory import (
        EVALUATION_FOLDER,
        VALIDATION_FILE,
        accepted_results,
        evaluate_directory,
        save_evaluation,
        stimulus_targets,
    )
    from metamers.evaluation.human import (
        correlate_with_human,
        load_human_recognition,
        other_model_recognition,
    )
    from metamers.evaluation.image_quality import (
        ms_ssim,
        naturalness_deviation,
        pixel_correlation,
        radial_power_spectrum,
        spectral_slope,
        ssim,
    )
    from metamers.evaluation.recognition import (
        bootstrap_mean,
        recognition_table,
        summarize_recognition,
    )
    from metamers.evaluation.representation import (
        representation_table,
        summarize_representation,
    )
    from metamers.evaluation.transfer import (
        TransferResults,
        evaluate_transfer,
        plot_transfer_heatmap,
        recognition_heatmap,
        representation_heatmap,
        transfer_matrix,
    )

_MODULES = {
    "compare": [
        "ComparisonSettings",
        "LayerSummary",
        "compare_models",
        "plot_similarity_matrix",
        "save_similarity_matrix",
        "similarity_matrix",
        "summarise_model",
    ],
    "directory": [
        "EVALUATION_FOLDER",
        "VALIDATION_FILE",
        "accepted_results",
        "evaluate_directory",
        "save_evaluation",
        "stimulus_targets",
    ],
    "human": ["correlate_with_human", "load_human_recognition", "other_model_recognition"],
    # image_quality() itself is not here: the submodule of that name would shadow it
    "image_quality": [
        "ms_ssim",
        "naturalness_deviation",
        "pixel_correlation",
        "radial_power_spectrum",
        "spectral_slope",
        "ssim",
    ],
    "recognition": ["bootstrap_mean", "recognition_table", "summarize_recognition"],
    "representation": ["representation_table", "summarize_representation"],
    "transfer": [
        "TransferResults",
        "evaluate_transfer",
        "plot_transfer_heatmap",
        "recognition_heatmap",
        "representation_heatmap",
        "transfer_matrix",
    ],
}

__getattr__, __dir__ = _lazy_exports(
    globals(),
    {name: f"{__name__}.{module}:{name}" for module, names in _MODULES.items() for name in names},
)

__all__ = [
    "EVALUATION_FOLDER",
    "VALIDATION_FILE",
    "ComparisonSettings",
    "LayerSummary",
    "TransferResults",
    "accepted_results",
    "bootstrap_mean",
    "compare_models",
    "correlate_with_human",
    "evaluate_directory",
    "evaluate_transfer",
    "load_human_recognition",
    "ms_ssim",
    "naturalness_deviation",
    "other_model_recognition",
    "pixel_correlation",
    "plot_similarity_matrix",
    "plot_transfer_heatmap",
    "radial_power_spectrum",
    "recognition_heatmap",
    "recognition_table",
    "representation_heatmap",
    "representation_table",
    "save_evaluation",
    "save_similarity_matrix",
    "similarity_matrix",
    "spectral_slope",
    "ssim",
    "stimulus_targets",
    "summarise_model",
    "summarize_recognition",
    "summarize_representation",
    "transfer_matrix",
]
