"""Train zoo models from scratch into a directory and compare them with the committed ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metamers.errors import ModelError
from metamers.models.zoo.manifest import committed_dir, read_manifest, save_zoo_weights
from metamers.models.zoo.specs import ZOO_SPECS, ZooSpec
from metamers.models.zoo.training import train_zoo_net


@dataclass(frozen=True)
class Reproduction:
    """One retrained model next to its committed record.

    Attributes
    ----------
    name
        Zoo name.
    accuracy, robust_accuracy
        Measured on the held-out digits (fractions).
    committed_accuracy, committed_robust_accuracy
        From the committed manifest (``None`` when not committed).
    identical
        Whether the weights file is byte-identical to the committed one.
    skipped
        The model was already trained in the output directory with the same recipe.
    """

    name: str
    accuracy: float
    robust_accuracy: float
    committed_accuracy: float | None
    committed_robust_accuracy: float | None
    identical: bool
    skipped: bool = False

    def within(self, tolerance: float) -> bool:
        """Whether clean accuracy is within ``tolerance`` (fraction) of the committed value.

        Parameters
        ----------
        tolerance
            The largest accepted absolute difference of accuracies (e.g. 0.01 for one
            percentage point).

        Returns
        -------
        bool
            Also ``True`` when there is no committed value to compare with.
        """
        if self.committed_accuracy is None:
            return True
        return abs(self.accuracy - self.committed_accuracy) <= tolerance


def resolve_names(names: Sequence[str], all_models: bool = False) -> list[ZooSpec]:
    """Specs for the given names (or every zoo model), with a clear error for unknown ones.

    Parameters
    ----------
    names
        Zoo names (keys of ``ZOO_SPECS``); empty for every model.
    all_models
        Return every zoo model, ignoring ``names``.

    Raises
    ------
    ModelError
        A name is not a zoo model.
    """
    if all_models or not names:
        return list(ZOO_SPECS.values())
    unknown = [n for n in names if n not in ZOO_SPECS]
    if unknown:
        raise ModelError(
            f"unknown zoo model(s) {', '.join(unknown)}; known: {', '.join(ZOO_SPECS)}"
        )
    return [ZOO_SPECS[n] for n in names]


def train_zoo(
    specs: Sequence[ZooSpec],
    out_dir: str | Path,
    *,
    force: bool = False,
    on_epoch: Callable[[ZooSpec, int, float], None] | None = None,
    on_done: Callable[[Reproduction], None] | None = None,
) -> list[Reproduction]:
    """Train each model from scratch into ``out_dir`` (resumable) and compare with the committed zoo.

    Parameters
    ----------
    specs
        Models to train.
    out_dir
        Where ``NAME.safetensors`` and ``zoo.json`` go. Models already there
        with the same recipe are skipped unless ``force``.
    force
        Retrain even models already present in ``out_dir``.
    on_epoch
        ``on_epoch(spec, epoch, mean_loss)`` progress callback.
    on_done
        Called with each finished :class:`Reproduction`.

    Returns
    -------
    list[Reproduction]
    """
    committed = read_manifest(committed_dir())["models"]
    results = []
    for spec in specs:
        existing = read_manifest(out_dir)["models"].get(spec.name)
        if existing and not force and same_recipe(existing, spec):
            result = compare_with_committed(spec, existing, committed.get(spec.name), skipped=True)
        else:
            trained = train_zoo_net(
                spec, progress=(lambda e, loss, s=spec: on_epoch(s, e, loss)) if on_epoch else None
            )
            record = {
                "accuracy": trained.accuracy,
                "robust_accuracy": trained.robust_accuracy,
                "train_seconds": round(trained.seconds, 1),
                "final_loss": round(trained.final_loss, 5),
            }
            entry = save_zoo_weights(out_dir, spec, trained.net, record)
            result = compare_with_committed(spec, entry, committed.get(spec.name))
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def same_recipe(entry: dict, spec) -> bool:
    """Whether a manifest entry was trained with ``spec``'s hyper-parameters.

    Parameters
    ----------
    entry
        A model's manifest entry.
    spec
        Its recipe (anything with ``hyper_parameters()``).
    """
    return all(entry.get(k) == v for k, v in spec.hyper_parameters().items())


def compare_with_committed(spec, entry: dict, reference: dict | None, skipped: bool = False):
    """A :class:`Reproduction` of a trained entry beside its committed one.

    Parameters
    ----------
    spec
        The recipe (its ``name`` is used).
    entry, reference
        The new manifest entry and the committed one (``None`` when not committed).
    skipped
        The model was already trained with the same recipe.
    """
    return Reproduction(
        name=spec.name,
        accuracy=entry["accuracy"],
        robust_accuracy=entry["robust_accuracy"],
        committed_accuracy=reference["accuracy"] if reference else None,
        committed_robust_accuracy=reference["robust_accuracy"] if reference else None,
        identical=bool(reference) and reference["sha256"] == entry["sha256"],
        skipped=skipped,
    )
