"""Real photos bundled inside installed packages (scikit-image, scikit-learn, matplotlib).

They work with no internet. Where one ImageNet class clearly names the photo's
content, it is recorded as the stimulus label (ImageNet-1k index).
:mod:`metamers.stimuli.sets` builds ``bundled:photos`` from
:func:`photo_records`; this module does not import it.

Internal module: use it through metamers.stimuli (``resolve_stimuli("bundled:photos")``); not part of the public API.
"""

from __future__ import annotations

import numpy as np
import torch

from metamers.errors import StimulusError
from metamers.stimuli.images import array_to_tensor, load_image

# id -> (source, ImageNet index or None). Labelled photos come first so that
# ``--limit N`` picks photos with a clear class.
PHOTOS: dict[str, tuple[str, int | None]] = {
    "coffee": ("skimage:coffee", 967),  # espresso
    "chelsea": ("skimage:chelsea", 281),  # tabby cat
    "china": ("sklearn:china.jpg", 698),  # palace
    "flower": ("sklearn:flower.jpg", 985),  # daisy
    "grace_hopper": ("matplotlib:grace_hopper.jpg", 652),  # military uniform
    "camera": ("skimage:camera", 872),  # tripod
    "astronaut": ("skimage:astronaut", None),
    "rocket": ("skimage:rocket", None),
    "motorcycle": ("skimage:stereo_motorcycle", None),
    "clock": ("skimage:clock", None),
    "coins": ("skimage:coins", None),
    "moon": ("skimage:moon", None),
    "brick": ("skimage:brick", None),
    "grass": ("skimage:grass", None),
    "gravel": ("skimage:gravel", None),
    "hubble": ("skimage:hubble_deep_field", None),
    "retina": ("skimage:retina", None),
    "immunohistochemistry": ("skimage:immunohistochemistry", None),
}


def load_packaged(source: str) -> torch.Tensor:
    """Load a packaged photo named ``package:name`` as ``(C, H, W)`` in ``[0, 1]``.

    Parameters
    ----------
    source
        ``skimage:NAME`` (a :mod:`skimage.data` function), ``sklearn:FILE`` (a
        scikit-learn sample image) or ``matplotlib:FILE`` (a matplotlib sample
        data file).

    Raises
    ------
    StimulusError
        Any other package prefix.
    """
    package, _, name = source.partition(":")
    if package == "skimage":
        import skimage.data

        arr = getattr(skimage.data, name)()
        if isinstance(arr, tuple):  # stereo_motorcycle returns (left, right, disparity)
            arr = arr[0]
        return array_to_tensor(np.asarray(arr))
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return array_to_tensor(load_sample_image(name))
    if package == "matplotlib":
        from matplotlib import cbook

        return load_image(cbook.get_sample_data(name, asfileobj=False))
    raise StimulusError(f"unknown packaged source {source!r}")


def _photo_label(index: int | None) -> str | None:
    if index is None:
        return None
    from metamers.labels import imagenet_class_names

    return imagenet_class_names()[index]


def photo_records() -> list[tuple[str, str, str | None, int | None]]:
    """``(id, source, label, ImageNet index)`` of every packaged photo, labelled ones first."""
    return [(key, source, _photo_label(index), index) for key, (source, index) in PHOTOS.items()]
