"""Label spaces: ImageNet-1k class names and WordNet ids, and the 16-way Geirhos categories.

All of it works offline: ImageNet names and WordNet ids come from timm's
bundled ImageNet info; the 16 entry-level categories are WordNet-id lists
(``data/geirhos16_wnids.json``), mapped to ImageNet indices through timm.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

import torch

from metamers.defaults import DEFAULT_SIXTEEN_WAY_RULE as DEFAULT_SIXTEEN_WAY_RULE
from metamers.defaults import SIXTEEN_WAY_RULES as SIXTEEN_WAY_RULES


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


WNID_PATTERN = re.compile(r"n\d{8}")
"""A WordNet noun id, as ImageNet names its classes (``n07920052``)."""


@cache
def _imagenet_index_by_wnid() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


@cache
def _imagenet_indices_by_name() -> dict[str, tuple[int, ...]]:
    info = _imagenet_info()
    found: dict[str, set[int]] = {}
    for i in range(1000):
        for synonym in info.index_to_description(i).split(","):
            found.setdefault(_name_key(synonym), set()).add(i)
    return {name: tuple(sorted(indices)) for name, indices in found.items() if name}


def _name_key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def imagenet_index(label: str) -> int | None:
    """The ImageNet-1k index named by a WordNet id or a class name; ``None`` if none.

    A class name is any synonym of timm's ImageNet descriptions ("espresso",
    "tabby", "tabby cat"), matched case-insensitively, with ``_`` read as a space.

    Parameters
    ----------
    label
        A WordNet id (``n07920052``) or a class name.

    Raises
    ------
    ValueError
        ``label`` is a synonym of more than one class (``crane``: the bird and
        the machine); the message names their WordNet ids.

    Examples
    --------
    >>> imagenet_index("n07920052"), imagenet_index("Espresso"), imagenet_index("tabby_cat")
    (967, 967, 281)
    >>> imagenet_index("sofa bed") is None
    True
    """
    text = label.strip()
    if WNID_PATTERN.fullmatch(text):
        return _imagenet_index_by_wnid().get(text)
    indices = _imagenet_indices_by_name().get(_name_key(text), ())
    if len(indices) > 1:
        wnids = imagenet_wnids()
        choices = ", ".join(f"{wnids[i]} ({imagenet_class_names()[i]})" for i in indices)
        raise ValueError(f"ImageNet class name {text!r} is ambiguous: use a WordNet id, {choices}")
    return indices[0] if indices else None


FEATHER2023_ADDED_CLASSES = {"oven": (544,)}
"""ImageNet classes the published 16-way code adds to the official WordNet lists.

Feather et al.'s code routes ImageNet classes to categories through their label
names, so "Dutch oven" (index 544, WordNet ``n03259280``) counts as *oven*,
while the official list names a different synset (``n03259401``) that is not
among the 1000 classes. An independent re-run of the published code on the same
logits found this to be the only difference of its effective index sets.
"""


def check_sixteen_way_rule(rule: str) -> str:
    """Return ``rule`` if it is one of :data:`SIXTEEN_WAY_RULES`, else raise ``ValueError``.

    Parameters
    ----------
    rule
        The name of a 16-way decision rule, e.g. ``"feather2023"``.

    Raises
    ------
    ValueError
        ``rule`` is not one of :data:`SIXTEEN_WAY_RULES`.
    """
    if rule not in SIXTEEN_WAY_RULES:
        raise ValueError(f"unknown 16-way rule {rule!r}; use one of {SIXTEEN_WAY_RULES}")
    return rule


@cache
def geirhos16_categories(rule: str = "geirhos2021") -> dict[str, tuple[int, ...]]:
    """The 16 entry-level categories, each mapped to its ImageNet-1k indices.

    Parameters
    ----------
    rule
        ``"geirhos2021"``: the official WordNet lists (model-vs-human);
        ``"feather2023"``: the published metamer code's effective sets (the
        official lists plus :data:`FEATHER2023_ADDED_CLASSES`).
    """
    check_sixteen_way_rule(rule)
    text = resources.files("metamers").joinpath("data/geirhos16_wnids.json").read_text()
    wnids_by_category = json.loads(text)["categories"]
    index_of = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    extra = FEATHER2023_ADDED_CLASSES if rule == "feather2023" else {}
    return {
        name: tuple(
            sorted({index_of[w] for w in wnids if w in index_of} | set(extra.get(name, ())))
        )
        for name, wnids in sorted(wnids_by_category.items())
    }


@cache
def _imagenet_to_16way(rule: str) -> torch.Tensor:
    lookup = torch.full((1000,), -1, dtype=torch.long)
    for k, indices in enumerate(geirhos16_categories(rule).values()):
        lookup[list(indices)] = k
    return lookup


def sixteen_way_names() -> tuple[str, ...]:
    """The 16 category names, in the order used by :func:`sixteen_way_choice`."""
    return tuple(geirhos16_categories())


def sixteen_way_choice(logits: torch.Tensor, rule: str = DEFAULT_SIXTEEN_WAY_RULE) -> torch.Tensor:
    """The 16-way decision from 1000-way ImageNet logits, by a named rule.

    ``"feather2023"`` (published metamer code): walking the classes from the
    highest logit down, the first class that belongs to one of the 16
    categories (its effective sets, see :func:`geirhos16_categories`).
    ``"geirhos2021"`` (model-vs-human): the category with the highest *mean*
    softmax probability over its member classes (official sets).

    Parameters
    ----------
    logits
        ``(N, 1000)`` ImageNet logits.
    rule
        One of :data:`SIXTEEN_WAY_RULES`.

    Returns
    -------
    torch.Tensor
        ``(N,)`` category indices into :func:`sixteen_way_names`.

    Examples
    --------
    >>> logits = torch.zeros(1, 1000)
    >>> logits[0, 544] = 5.0  # Dutch oven
    >>> sixteen_way_names()[int(sixteen_way_choice(logits, "feather2023")[0])]
    'oven'
    """
    check_sixteen_way_rule(rule)
    if rule == "geirhos2021":
        probabilities = logits.float().softmax(dim=1)
        means = [
            probabilities[:, list(indices)].mean(dim=1)
            for indices in geirhos16_categories(rule).values()
        ]
        return torch.stack(means, dim=1).argmax(dim=1)
    lookup = _imagenet_to_16way(rule).to(logits.device)
    masked = logits.masked_fill(lookup < 0, float("-inf"))
    return lookup[masked.argmax(dim=1)]


def imagenet_to_16way(index: int | None, rule: str = DEFAULT_SIXTEEN_WAY_RULE) -> int | None:
    """The 16-way category of an ImageNet index under ``rule``, or ``None`` if in none.

    Parameters
    ----------
    index
        An ImageNet-1k class index (0–999), or ``None`` (returned unchanged).
    rule
        One of :data:`SIXTEEN_WAY_RULES`; decides the category membership (see
        :func:`geirhos16_categories`).

    Returns
    -------
    int or None
        The category index into :func:`sixteen_way_names`.

    Raises
    ------
    ValueError
        ``rule`` is not one of :data:`SIXTEEN_WAY_RULES`.
    """
    if index is None:
        return None
    category = int(_imagenet_to_16way(check_sixteen_way_rule(rule))[index])
    return None if category < 0 else category
