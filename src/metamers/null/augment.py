"""Training-style augmentation for null-distribution views (seeded, torchvision.transforms.v2).

Internal module: use it through metamers.null (``Augmentation``); not part of the public API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchvision.transforms import v2

from metamers.stimuli import match_channels


@dataclass(frozen=True)
class Augmentation:
    """Parameters of the training-style augmentation applied to every null view.

    The defaults follow the ImageNet training transform of the ``robustness``
    library used by the published work: random resized crop (scale 0.08–1,
    aspect 3/4–4/3), horizontal flip, colour jitter 0.1 (brightness, contrast,
    saturation). Its PCA "lighting" noise is left out.

    Attributes
    ----------
    enabled
        ``False`` gives plain centre-cropped stimuli (and is the only choice for audio).
    crop_scale, crop_ratio
        Area fraction and aspect-ratio ranges of the random resized crop.
    flip_p
        Probability of a horizontal flip.
    brightness, contrast, saturation, hue
        Colour-jitter strengths (``torchvision.transforms.v2.ColorJitter``).
    max_source_scale
        Sources whose shorter side exceeds this multiple of the model's input
        size are shrunk once (antialiased) before cropping — ImageNet training
        images are ~400 px, and cropping a 1,400 px photo per view costs more
        than the model forward. ``None`` keeps full resolution.
    """

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.0
    max_source_scale: float | None = 2.0

    @classmethod
    def none(cls) -> Augmentation:
        """No augmentation: each view is the stimulus fitted to the model's input."""
        return cls(enabled=False)

    def as_dict(self) -> dict:
        """Plain dict (for cache keys and reports)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def transform(self, input_shape: tuple[int, ...]) -> v2.Transform:
        """The torchvision v2 pipeline producing a ``(C, H, W)`` view of ``input_shape``.

        Parameters
        ----------
        input_shape
            The model's ``(C, H, W)`` input shape; the crop is resized to ``(H, W)``.
        """
        _, height, width = input_shape
        steps: list[v2.Transform] = [
            v2.RandomResizedCrop(
                (height, width), scale=self.crop_scale, ratio=self.crop_ratio, antialias=True
            )
        ]
        if self.flip_p > 0:
            steps.append(v2.RandomHorizontalFlip(self.flip_p))
        if any((self.brightness, self.contrast, self.saturation, self.hue)):
            steps.append(v2.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue))
        return v2.Compose(steps)


def prepare_source(
    raw: torch.Tensor, input_shape: tuple[int, ...], scale: float | None
) -> torch.Tensor:
    """A raw ``(C, H, W)`` image in ``[0, 1]`` made ready for cropping: ``uint8``, model channels.

    Sources whose shorter side exceeds ``scale·max(input H, W)`` are shrunk
    (antialiased). Augmenting in ``uint8`` (as the PIL-based training
    pipelines do) uses torchvision's fast integer resize.

    Parameters
    ----------
    raw
        A ``(C, H, W)`` image in ``[0, 1]``, any channel count; its channels are
        matched to ``input_shape[0]``.
    input_shape
        The model's ``(C, H, W)`` input shape.
    scale
        The largest shorter side, as a multiple of the larger input side
        (:attr:`Augmentation.max_source_scale`); ``None`` never shrinks.

    Returns
    -------
    torch.Tensor
        ``(input C, H', W')`` ``uint8`` image.
    """
    image = match_channels(raw.float(), input_shape[0])
    if scale is not None:
        limit = round(scale * max(input_shape[1:]))
        short = min(image.shape[1:])
        if short > limit:
            size = [round(side * limit / short) for side in image.shape[1:]]
            image = v2.functional.resize(image, size, antialias=True)
    return (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8)


def augmented_view(source: torch.Tensor, transform: v2.Transform, seed: int) -> torch.Tensor:
    """One augmented ``float32`` view in ``[0, 1]`` of a prepared source, reproducible from ``seed``.

    torchvision's random transforms draw from torch's global generator, so the
    draw happens inside :func:`torch.random.fork_rng`, seeded per view: the
    caller's random state is untouched and each view depends only on its seed.

    Parameters
    ----------
    source
        A ``uint8`` image from :func:`prepare_source`.
    transform
        The pipeline from :meth:`Augmentation.transform`.
    seed
        The view's seed: the same source, transform and seed give the same view.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)`` ``float32`` view in ``[0, 1]``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        view = transform(source)
    return view.float() / 255.0
