"""How a batch of stimuli meets a model's input: the one place it is decided.

Synthesis optimises stimuli at one resolution (the largest model input of an
ensemble) and every consumer — the synthesis loss of each model, validation,
the stop criterion, recognition and the representation test by observers —
fits them to a model's input shape with :func:`fit_to_input`, so that
validation sees exactly the pixels (or samples) synthesis optimised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metamers.errors import StimulusError

GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for colour → grey."""


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert images between grey (1) and colour (3) channels.

    Parameters
    ----------
    images
        ``(C, H, W)`` or ``(N, C, H, W)`` images.
    channels
        Wanted number of channels (1 or 3).

    Returns
    -------
    torch.Tensor
        The images with ``channels`` channels (differentiable; grey → colour
        repeats the plane, colour → grey is the BT.601 weighted sum).

    Raises
    ------
    StimulusError
        Any other channel conversion.
    """
    axis = images.ndim - 3
    have = images.shape[axis]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return torch.cat([images] * 3, dim=axis)
    if have == 3 and channels == 1:
        weights = torch.tensor(GREY_WEIGHTS, dtype=images.dtype, device=images.device)
        return (images * weights[:, None, None]).sum(axis, keepdim=True)
    raise StimulusError(f"cannot convert a {have}-channel image to {channels} channels")


def fit_to_input(stimuli: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Fit a batch of stimuli to a model's input shape.

    Images: grey/colour conversion, then bilinear antialiased resizing;
    waveforms: linear resampling to the model's number of samples. A batch that
    already fits is returned as it is (no copy). Differentiable, so the
    synthesis loss of an ensemble member uses it too.

    Parameters
    ----------
    stimuli
        ``(N, C, H, W)`` images or ``(N, T)`` waveforms.
    input_shape
        The model's ``(C, H, W)`` or ``(T,)`` (:attr:`PixelModel.input_shape`).

    Returns
    -------
    torch.Tensor
        ``(N, *input_shape)``.

    Raises
    ------
    StimulusError
        Stimuli of another modality than the model's, or channels that cannot
        be converted.

    Examples
    --------
    >>> fit_to_input(torch.zeros(2, 1, 28, 28), (3, 56, 56)).shape
    torch.Size([2, 3, 56, 56])
    >>> fit_to_input(torch.zeros(1, 100), (50,)).shape
    torch.Size([1, 50])
    """
    shape = tuple(input_shape)
    if tuple(stimuli.shape[1:]) == shape:
        return stimuli
    if stimuli.ndim == 2 and len(shape) == 1:
        return F.interpolate(stimuli[:, None], size=shape[0], mode="linear", align_corners=False)[
            :, 0
        ]
    if stimuli.ndim == 4 and len(shape) == 3:
        images = match_channels(stimuli, shape[0])
        if tuple(images.shape[2:]) == shape[1:]:
            return images
        return F.interpolate(
            images, size=shape[1:], mode="bilinear", antialias=True, align_corners=False
        )
    raise StimulusError(
        f"stimuli of shape {tuple(stimuli.shape[1:])} cannot be fitted to a model input of "
        f"shape {shape} (images need (N, C, H, W), waveforms (N, T))"
    )
