"""Train word models from scratch into a directory and compare them with the committed ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from metamers.errors import ModelError
from metamers.models.words.manifest import read_word_manifest, save_word_weights, words_dir
from metamers.models.words.specs import WORD_SPECS, WordSpec
from metamers.models.words.training import train_word_net
from metamers.models.zoo.reproduce import Reproduction, compare_with_committed, same_recipe


def train_word_models(
    specs: Sequence[WordSpec],
    out_dir: str | Path,
    *,
    force: bool = False,
    on_epoch: Callable[[WordSpec, int, float], None] | None = None,
    on_done: Callable[[Reproduction], None] | None = None,
    message: Callable[[str], None] | None = None,
) -> list[Reproduction]:
    """Train each word model into ``out_dir`` (resumable) and compare with the committed ones.

    A robust model is fine-tuned from its standard model's weights in
    ``out_dir`` (trained first when missing there).

    Parameters
    ----------
    specs
        Models to train.
    out_dir
        Where ``NAME.safetensors`` and ``words.json`` go; models already there
        with the same recipe are skipped unless ``force``.
    force
        Retrain models already present in ``out_dir``.
    on_epoch
        ``on_epoch(spec, epoch, mean_loss)`` progress callback.
    on_done
        Called with each finished :class:`~metamers.models.zoo.Reproduction`.
    message
        Called with a line before long preparation steps (cochleagram caching).

    Returns
    -------
    list[Reproduction]
    """
    committed = read_word_manifest(words_dir())["models"]
    out_dir = Path(out_dir)
    results: dict[str, Reproduction] = {}

    def train(spec: WordSpec, force_this: bool) -> Reproduction:
        existing = read_word_manifest(out_dir)["models"].get(spec.name)
        if existing and not force_this and same_recipe(existing, spec):
            return compare_with_committed(spec, existing, committed.get(spec.name), skipped=True)
        base = None
        if spec.robust:
            base_spec = WORD_SPECS[spec.base]
            if spec.base not in results:
                results[spec.base] = train(base_spec, False)
            base = out_dir / f"{spec.base}.safetensors"
        trained = train_word_net(
            spec,
            base_weights=base,
            progress=(lambda e, loss: on_epoch(spec, e, loss)) if on_epoch else None,
            message=message,
        )
        record = {
            "accuracy": trained.accuracy,
            "noisy_accuracy": trained.noisy_accuracy,
            "robust_accuracy": trained.robust_accuracy,
            "train_seconds": round(trained.seconds, 1),
            "final_loss": round(trained.final_loss, 5),
        }
        entry = save_word_weights(out_dir, spec, trained.net, record)
        return compare_with_committed(spec, entry, committed.get(spec.name))

    ordered = []
    for spec in specs:
        result = train(spec, force)
        results[spec.name] = result
        ordered.append(result)
        if on_done is not None:
            on_done(result)
    return ordered


def resolve_word_names(names: Sequence[str]) -> list[WordSpec]:
    """Specs for the given word-model names, with a clear error for unknown ones.

    Parameters
    ----------
    names
        Word-model names (keys of ``WORD_SPECS``).

    Raises
    ------
    ModelError
        A name is not a word model.
    """
    unknown = [n for n in names if n not in WORD_SPECS]
    if unknown:
        raise ModelError(
            f"unknown word model(s) {', '.join(unknown)}; known: {', '.join(WORD_SPECS)}"
        )
    return [WORD_SPECS[n] for n in names]
