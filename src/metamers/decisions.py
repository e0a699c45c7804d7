"""A model's decision on stimuli, in an explicit label space: the one place it is made.

Acceptance (does the generating model give the metamer the reference's
label?), recognisability by observers and ``metamers classify`` all ask a
model for its decision through :class:`LabelSpace`, so that the same stimulus
gets the same answer on every path, and every table records which label space
it was judged in.

Label spaces
------------
``"auto"`` (the default everywhere)
    16-way for ImageNet-1k models — the published procedure (Feather et al.
    2023) compares 16-way labels — and the model's own classes otherwise.
``"native"``
    The model's own classes (argmax of its logits, e.g. 1000-way ImageNet).
``"16-way"``
    The 16 entry-level categories of Geirhos et al. (ImageNet models only),
    decided by a named rule (:data:`metamers.labels.SIXTEEN_WAY_RULES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from metamers.defaults import LABEL_SPACES as LABEL_SPACES
from metamers.errors import ConfigError
from metamers.labels import (
    DEFAULT_SIXTEEN_WAY_RULE,
    SIXTEEN_WAY_RULES,
    imagenet_to_16way,
    sixteen_way_choice,
    sixteen_way_names,
)
from metamers.stimuli.fit import fit_to_input

if TYPE_CHECKING:
    from metamers.models import PixelModel

SIXTEEN_WAY = "16-way"
NATIVE = "native"
IMAGENET = "imagenet"


@dataclass(frozen=True)
class LabelSpace:
    """The label space a model's decisions are made and compared in.

    Parameters
    ----------
    space
        ``"auto"`` (default), ``"native"`` or ``"16-way"`` (see the module docs).
    rule
        The 16-way rule, ``"feather2023"`` (default; first hit, published) or
        ``"geirhos2021"`` (mean probability per category, model-vs-human).

    Examples
    --------
    >>> LabelSpace().describe_for("imagenet")
    '16-way (feather2023)'
    >>> LabelSpace().describe_for("mnist")
    'native (mnist)'
    """

    space: str = "auto"
    rule: str = DEFAULT_SIXTEEN_WAY_RULE

    def __post_init__(self) -> None:
        if self.space not in LABEL_SPACES:
            raise ConfigError(f"unknown label space {self.space!r}; use one of {LABEL_SPACES}")
        if self.rule not in SIXTEEN_WAY_RULES:
            raise ConfigError(f"unknown 16-way rule {self.rule!r}; use one of {SIXTEEN_WAY_RULES}")

    def resolved(self, model_label_space: str | None) -> str:
        """``"16-way"`` or ``"native"`` for a model with label space ``model_label_space``.

        Parameters
        ----------
        model_label_space
            The model's own label space (:attr:`PixelModel.label_space`, e.g.
            ``"imagenet"`` or ``"mnist"``); ``None`` when unknown.

        Returns
        -------
        str
            ``"16-way"`` or ``"native"``: ``"auto"`` resolved for this model.

        Raises
        ------
        ConfigError
            ``"16-way"`` asked of a model that is not an ImageNet-1k classifier.
        """
        if self.space == "auto":
            return SIXTEEN_WAY if model_label_space == IMAGENET else NATIVE
        if self.space == SIXTEEN_WAY and model_label_space != IMAGENET:
            raise ConfigError(
                f"16-way labels need an ImageNet model; this model's label space is "
                f"{model_label_space!r}; use the native label space"
            )
        return self.space

    def describe_for(self, model_label_space: str | None) -> str:
        """E.g. ``"16-way (feather2023)"`` or ``"native (imagenet)"``: what a table records.

        Parameters
        ----------
        model_label_space
            The model's own label space (e.g. ``"imagenet"``); ``None`` when unknown,
            which is recorded as ``"native (unknown)"``.

        Raises
        ------
        ConfigError
            ``"16-way"`` asked of a model that is not an ImageNet-1k classifier.
        """
        if self.resolved(model_label_space) == SIXTEEN_WAY:
            return f"{SIXTEEN_WAY} ({self.rule})"
        return f"{NATIVE} ({model_label_space or 'unknown'})"

    def describe(self, model: PixelModel) -> str:
        """:meth:`describe_for` this model.

        Parameters
        ----------
        model
            The model whose decisions are described (its :attr:`label_space` is read).
        """
        return self.describe_for(model.label_space)

    def decide(self, model: PixelModel, logits: torch.Tensor) -> np.ndarray:
        """The decisions of ``model`` from its ``(N, classes)`` logits, ``(N,)`` ints.

        Parameters
        ----------
        model
            The model that produced ``logits``; its label space decides the rule.
        logits
            ``(N, classes)`` logits; 1000 classes when deciding 16-way.

        Returns
        -------
        numpy.ndarray
            ``(N,)`` class indices (native) or category indices into
            :func:`~metamers.labels.sixteen_way_names` (16-way).

        Raises
        ------
        ConfigError
            A model that is not a classifier (:func:`require_classifier`); 16-way
            decisions asked of a model that is not an ImageNet-1k classifier, or of
            logits that do not have 1000 classes.
        """
        require_classifier(model)
        if self.resolved(model.label_space) == SIXTEEN_WAY:
            if logits.shape[-1] != 1000:
                raise ConfigError(
                    f"16-way labels need 1000 logits; {model.name} gives {logits.shape[-1]}"
                )
            return sixteen_way_choice(logits, self.rule).cpu().numpy()
        return logits.argmax(dim=1).cpu().numpy()

    def names(self, model: PixelModel, decisions: np.ndarray) -> list[str | None]:
        """Human-readable names of decisions (``None`` where unknown).

        Parameters
        ----------
        model
            The model whose decisions they are; its class names are used for native
            decisions.
        decisions
            ``(N,)`` indices from :meth:`decide`.

        Returns
        -------
        list of str or None
            One name per decision; ``None`` where the model has no class names or the
            index is out of range.
        """
        if self.resolved(model.label_space) == SIXTEEN_WAY:
            names: tuple[str, ...] | None = sixteen_way_names()
        else:
            names = model.class_names
        if not names:
            return [None] * len(decisions)
        return [names[int(i)] if 0 <= int(i) < len(names) else None for i in decisions]

    def target(self, model: PixelModel, index: int | None) -> int | None:
        """A true label given in the model's own classes, mapped into this label space.

        Parameters
        ----------
        model
            The model whose label space decides the mapping.
        index
            The true label as an index into the model's own classes (for ImageNet, a
            1000-way index), or ``None`` when unknown.

        Returns
        -------
        int or None
            ``index`` unchanged in the native space; in the 16-way space, the category
            index under :attr:`rule`, or ``None`` when the class belongs to none of the
            16 categories.
        """
        if index is None or self.resolved(model.label_space) == NATIVE:
            return index
        return imagenet_to_16way(index, self.rule)


def require_classifier(model: PixelModel) -> None:
    """Refuse a model whose output is not class scores (it has no decisions).

    Parameters
    ----------
    model
        The model asked for a decision; :attr:`~metamers.models.PixelModel.is_classifier`
        is false for, e.g., the silero-vad speech detector (a speech probability per chunk).

    Raises
    ------
    ConfigError
        When ``model`` is not a classifier.
    """
    if not model.is_classifier:
        raise ConfigError(
            f"{model.name} is not a classifier (its output is not class scores: "
            f"{model.info.get('task', 'no labels')}); use it with extract, null or "
            "the representation test"
        )


def classify(
    model: PixelModel,
    stimuli: torch.Tensor,
    labels: LabelSpace | None = None,
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """The decisions of ``model`` on a batch of stimuli, fitted to its input.

    Parameters
    ----------
    model
        A :class:`~metamers.models.PixelModel` classifier.
    stimuli
        ``(N, ...)`` stimuli in the model's input range, any size
        (:func:`~metamers.stimuli.fit.fit_to_input` fits them).
    labels
        The label space (default :class:`LabelSpace` ``("auto")``).
    batch_size
        Stimuli per forward pass.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` decisions (class or category indices).

    Raises
    ------
    ConfigError
        ``model`` is not a classifier (:func:`require_classifier`).
    """
    require_classifier(model)
    labels = labels or LabelSpace()
    decisions = []
    for start in range(0, stimuli.shape[0], batch_size):
        batch = fit_to_input(stimuli[start : start + batch_size], model.input_shape)
        with torch.inference_mode():
            logits = model(batch.to(model.device, torch.float32)).float()
        decisions.append(labels.decide(model, logits))
    return np.concatenate(decisions) if decisions else np.zeros(0, dtype=np.int64)
