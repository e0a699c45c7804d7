"""Control models: the same architecture with its trained structure destroyed."""

from __future__ import annotations

import copy

import torch

from metamers.models.base import PixelModel


def permuted_weights(model: PixelModel, seed: int = 0) -> PixelModel:
    """A copy of ``model`` whose every parameter tensor has its entries randomly permuted.

    Weight statistics (per tensor) are kept while learned structure is destroyed:
    the published control for model-brain and model-model comparisons.
    Buffers (e.g. BatchNorm running statistics, normalisation constants) are kept.

    Parameters
    ----------
    model
        The trained model.
    seed
        Seed of the permutations.
    """
    generator = torch.Generator().manual_seed(seed)
    control = copy.deepcopy(model)
    with torch.no_grad():
        for param in control.net.parameters():
            flat = param.detach().flatten()
            order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
            param.copy_(flat[order].view_as(param))
    control.name = f"{model.name}:permuted{seed}"
    control.source = f"{model.source}+permuted"
    control._fingerprint = None
    return control
