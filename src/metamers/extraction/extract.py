"""THINGSvision-style extraction: ``get_extractor`` → stimuli → ``extract_features``.

Unlike a detaching whole-network capture, extraction here stops the forward
pass after the deepest requested layer and runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metamers.models.base import PixelModel
from metamers.models.registry import load_model
from metamers.stimuli.sets import Stimulus, StimulusSet

ProgressFn = Callable[[int], None]


@dataclass
class Extractor:
    """Reads named layers of a model on batches of stimuli.

    Parameters
    ----------
    model
        The model to read.
    batch_size
        Stimuli per forward pass.
    """

    model: PixelModel
    batch_size: int = 32

    def show_model(self) -> list[str]:
        """The model's layer names, in module order."""
        return self.model.layer_names()

    def iter_batches(
        self, stimuli: StimulusSet, layers: Sequence[str], *, flatten: bool = True
    ) -> Iterator[tuple[list[Stimulus], dict[str, np.ndarray]]]:
        """Yield ``(stimuli, {layer: array})`` per batch, arrays ``float32`` on CPU.

        Parameters
        ----------
        stimuli
            The stimuli, fitted to the model's input shape and batched by
            :attr:`batch_size`.
        layers
            Layer names of the model (see :meth:`show_model`).
        flatten
            Flatten each activation to ``(batch, features)``; otherwise keep the
            layer's own shape.

        Yields
        ------
        tuple
            The batch's :class:`~metamers.stimuli.sets.Stimulus` objects and
            ``{layer: array}``, one array row per stimulus.

        Raises
        ------
        LayerError
            A layer the model does not have, or no layers.
        """
        layers = self.model.check_layers(layers)
        device = self.model.device
        for chunk, x in stimuli.batches_for(self.model, self.batch_size):
            with torch.inference_mode():
                acts = self.model.activations(x.to(device), layers)
            yield (
                chunk,
                {name: _to_numpy(act.flatten(1) if flatten else act) for name, act in acts.items()},
            )

    def extract(
        self, stimuli: StimulusSet, layers: Sequence[str], *, flatten: bool = True
    ) -> dict[str, np.ndarray]:
        """All stimuli at once, in memory: ``{layer: (N, ...) array}``.

        Parameters
        ----------
        stimuli
            The stimuli.
        layers
            Layer names of the model.
        flatten
            Flatten each activation to ``(N, features)``.

        Raises
        ------
        LayerError
            A layer the model does not have, or no layers.
        """
        parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        for _, arrays in self.iter_batches(stimuli, layers, flatten=flatten):
            for name, array in arrays.items():
                parts[name].append(array)
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


def get_extractor(
    model_name: str, *, batch_size: int = 32, device: str | None = None, **load_kwargs
) -> Extractor:
    """Load a model by name (see :func:`metamers.models.load_model`) and wrap it for extraction.

    Parameters
    ----------
    model_name
        A registered model name, e.g. ``"efficientnet_lite0"``.
    batch_size
        Stimuli per forward pass of the extractor.
    device
        Where the model is loaded (default: CPU).
    **load_kwargs
        Further options of :func:`~metamers.models.load_model` (e.g. weights).
    """
    return Extractor(load_model(model_name, device=device, **load_kwargs), batch_size=batch_size)


def extract_features(
    extractor: Extractor,
    stimuli: StimulusSet,
    layers: Sequence[str],
    *,
    flatten: bool = True,
) -> dict[str, np.ndarray]:
    """Extract ``layers`` for every stimulus into memory (see :func:`save_features` for disk).

    Parameters
    ----------
    extractor
        The model wrapper, e.g. from :func:`get_extractor`.
    stimuli
        The stimuli.
    layers
        Layer names of the extractor's model.
    flatten
        Flatten each activation to ``(N, features)``.

    Returns
    -------
    dict
        ``{layer: (N, ...) float32 array}`` in stimulus order.
    """
    return extractor.extract(stimuli, layers, flatten=flatten)
