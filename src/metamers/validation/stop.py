"""Stop synthesis items as soon as they are accepted: the acceptance test as a stop criterion."""

from __future__ import annotations

import torch

from metamers.decisions import LabelSpace
from metamers.models import PixelModel
from metamers.null.criterion import NullCriterion
from metamers.null.distribution import NullDistribution
from metamers.validation.acceptance import NullSource, null_getter
from metamers.validation.judge import judge


class AcceptanceStop:
    """Stop criterion: stop an item once every generating model accepts it at its layers.

    Implements :class:`metamers.synthesis.StopCriterion`: called as
    ``stop(synthesis, stimuli, indices)`` by the synthesis engine, it judges
    the current stimuli against ``synthesis.references[indices]`` with
    :func:`~metamers.validation.judge` for each model of the synthesis at each
    of its generation layers — the same judgement :func:`~metamers.validation.accept`
    makes afterwards, so an item stopped here is accepted there (same null,
    criterion and label space).

    Parameters
    ----------
    nulls
        One null, ``{model name: null}``, or ``get(model, layers)``
        (:func:`~metamers.validation.null_provider`); asked once per model.
    criterion
        Default :class:`~metamers.null.criterion.NullCriterion` (``> max``).
    labels
        Label space of the label test (default ``LabelSpace()``).
    check_label
        Also require the label test (the published rule); ``False`` checks
        the similarities only.
    """

    def __init__(
        self,
        nulls: NullSource,
        *,
        criterion: NullCriterion | None = None,
        labels: LabelSpace | None = None,
        check_label: bool = True,
    ) -> None:
        self._get_null = null_getter(nulls)
        self.criterion = criterion or NullCriterion()
        self.labels = labels or LabelSpace()
        self.check_label = check_label
        self._nulls: dict[tuple[str, str, tuple[str, ...]], NullDistribution] = {}

    def null_for(self, model: PixelModel, layers: list[str]) -> NullDistribution:
        """The null of ``model`` covering ``layers`` (asked once, then kept).

        Parameters
        ----------
        model
            A generating model of the synthesis.
        layers
            Its generation layers; a null is kept per model (name and weights) and
            layer list.

        Raises
        ------
        ConfigError
            The null is too small for the criterion (see
            :meth:`NullCriterion.check <metamers.null.criterion.NullCriterion.check>`).
        """
        key = (model.name, model.fingerprint(), tuple(layers))
        if key not in self._nulls:
            null = self._get_null(model, list(layers))
            self.criterion.check(null)
            self._nulls[key] = null
        return self._nulls[key]

    def __call__(self, synthesis, stimuli: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Which of ``stimuli`` (items ``indices`` of ``synthesis``) are accepted now."""
        references = synthesis.references[indices.to(synthesis.references.device)]
        accepted = torch.ones(stimuli.shape[0], dtype=torch.bool)
        for model, layers in zip(synthesis.models, synthesis.layers):
            table = judge(
                model,
                stimuli,
                references,
                list(layers),
                self.null_for(model, list(layers)),
                criterion=self.criterion,
                labels=self.labels,
                check_label=self.check_label,
            )
            passed = table.groupby("stimulus_id", sort=False)["passed"].all()
            accepted &= torch.tensor(passed.to_numpy(dtype=bool))
        return accepted.to(stimuli.device)
