"""Label spaces: ImageNet-1k class names and WordNet ids, and the 16-way Geirhos categories.

All of it works offline: ImageNet names and WordNet ids come from timm's
bundled ImageNet info; the 16 entry-level categories are WordNet-id lists
(``data/geirhos16_wnids.json``), mapped to ImageNet indices through timm.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import torch


@cache
def _imagenet_info():
    from timm.data import ImageNetInfo

    return ImageNetInfo()


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class descriptions, in index order (first synonym only)."""
    info = _imagenet_info()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet WordNet ids, in index order."""
    info = _imagenet_info()
    return tuple(info.index_to_label_name(i) for i in range(1000))


@cache
def geirhos16_categories() -> dict[str, tuple[int, ...]]:
    """The 16 entry-level categories, each mapped to its ImageNet-1k indices."""
    text = resources.files("metamers").joinpath("data/geirhos16_wnids.json").read_text()
    wnids_by_category = json.loads(text)["categories"]
    index_of = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    return {
        name: tuple(sorted(index_of[w] for w in wnids if w in index_of))
        for name, wnids in sorted(wnids_by_category.items())
    }


@cache
def _imagenet_to_16way() -> torch.Tensor:
    lookup = torch.full((1000,), -1, dtype=torch.long)
    for k, indices in enumerate(geirhos16_categories().values()):
        lookup[list(indices)] = k
    return lookup


def sixteen_way_names() -> tuple[str, ...]:
    """The 16 category names, in the order used by :func:`sixteen_way_choice`."""
    return tuple(geirhos16_categories())


def sixteen_way_choice(logits: torch.Tensor) -> torch.Tensor:
    """The published 16-way decision from 1000-way ImageNet logits.

    Walking the classes from highest logit down, the choice is the first class
    that belongs to one of the 16 categories.

    Parameters
    ----------
    logits
        ``(N, 1000)`` ImageNet logits.

    Returns
    -------
    torch.Tensor
        ``(N,)`` category indices into :func:`sixteen_way_names`.
    """
    lookup = _imagenet_to_16way().to(logits.device)
    member = lookup >= 0
    masked = logits.masked_fill(~member, float("-inf"))
    return lookup[masked.argmax(dim=1)]


def imagenet_to_16way(index: int | None) -> int | None:
    """The 16-way category of an ImageNet index, or ``None`` if it belongs to none."""
    if index is None:
        return None
    category = int(_imagenet_to_16way()[index])
    return None if category < 0 else category
