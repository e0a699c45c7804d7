"""Committed word-model weights: the ``words.json`` manifest, safetensors files, loading them.

A weights directory holds ``NAME.safetensors`` (the whole network's state
dict; the cochleagram has no weights) for each model and one ``words.json``
with the corpus and attack settings and, per model, its recipe, measured
accuracies (clean and in noise, unseen voices), robust accuracy, sha256 and
study layers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from metamers.errors import ModelError
from metamers.models.base import PixelModel
from metamers.models.words.specs import WORD_ARCH_DESCRIPTIONS, WORD_SPECS, WordSpec
from metamers.models.zoo.manifest import load_checked_weights, read_manifest, save_weights

WORDS_MANIFEST = "words.json"


def words_dir() -> Path:
    """The package's directory of committed word-model weights."""
    return Path(str(resources.files("metamers") / "data" / "words"))


def read_word_manifest(directory: str | Path | None = None) -> dict:
    """The manifest of ``directory`` (default: the committed one); empty if there is none.

    Parameters
    ----------
    directory
        A weights directory holding ``words.json``; ``None`` for :func:`words_dir`.
    """
    return read_manifest(directory or words_dir(), WORDS_MANIFEST)


def _header() -> dict:
    from metamers.models.words.architectures import word_cochleagram
    from metamers.models.words.training import EVAL_ATTACK, EVAL_ATTACK_CLIPS, TRAIN_ATTACK
    from metamers.stimuli.words import WordCorpusSettings

    settings = WordCorpusSettings()
    return {
        "corpus": {"key": settings.key(), "settings": settings.to_dict()},
        "front_end": word_cochleagram().settings.to_dict(),
        "attacks": {
            "train": TRAIN_ATTACK.as_dict(),
            "eval": {**EVAL_ATTACK.as_dict(), "clips": EVAL_ATTACK_CLIPS},
        },
    }


def save_word_weights(
    directory: str | Path, spec: WordSpec, net: torch.nn.Module, record: dict
) -> dict:
    """Write ``NAME.safetensors`` and merge its entry into ``words.json`` (both atomically).

    Parameters
    ----------
    directory
        Weights directory (created if needed).
    spec
        The model's recipe.
    net
        The trained network.
    record
        Measured values (accuracies, seconds, final loss).

    Returns
    -------
    dict
        The model's manifest entry.
    """
    return save_weights(directory, WORDS_MANIFEST, _header(), spec, net, record)


def wrap_word_net(net: torch.nn.Module, name: str, info: dict | None = None) -> PixelModel:
    """Wrap a word network as a :class:`PixelModel` (waveform in, word out).

    Parameters
    ----------
    net
        A word network (cochleagram first).
    name
        The model's name, e.g. ``"word_cnn_s0"``.
    info
        Metadata shown by ``metamers models``.

    Returns
    -------
    PixelModel
        Input ``(40000,)`` in ``[-1, 1]`` (2 s at 20 kHz), ``words`` label space.
    """
    from metamers.stimuli.words import WordCorpusSettings

    settings = WordCorpusSettings()
    return PixelModel(
        net,
        name=name,
        input_shape=(settings.length,),
        input_range=(-1.0, 1.0),
        label_space="words",
        class_names=settings.words,
        source="zoo",
        info={"sample_rate": settings.sample_rate, **(info or {})},
    )


def load_word_model(
    name: str, *, random_weights: bool = False, directory: str | Path | None = None
) -> PixelModel:
    """Build a word model and load its weights (safetensors, checked against the manifest).

    Parameters
    ----------
    name
        A word-model name (see ``WORD_SPECS``).
    random_weights
        Leave the network untrained (seeded by the spec's seed).
    directory
        Weights directory (default: the committed one).

    Raises
    ------
    ModelError
        Unknown name, missing or corrupted weights.
    """
    from metamers.models.words.training import build_word_net
    from metamers.stimuli.words import WORDS

    if name not in WORD_SPECS:
        raise ModelError(f"unknown word model {name!r}; see `metamers zoo list`")
    spec = WORD_SPECS[name]
    directory = Path(directory or words_dir())
    entry = read_word_manifest(directory)["models"].get(name, {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        net = build_word_net(spec.arch, len(WORDS))
    if not random_weights:
        load_checked_weights(net, directory, name, entry, WORDS_MANIFEST)
    info = word_info(entry) | {"study_layers": list(spec.study_layers)}
    return wrap_word_net(net, name, info=info)


def word_info(entry: dict) -> dict:
    """The columns ``metamers models`` shows for a word model (empty without an entry).

    Parameters
    ----------
    entry
        The model's ``words.json`` entry.
    """
    if not entry:
        return {}
    return {
        "accuracy": round(entry["accuracy"], 3),
        "noisy_accuracy": round(entry["noisy_accuracy"], 3),
        "robust_accuracy": round(entry["robust_accuracy"], 3),
        "seed": entry["seed"],
    }


def word_weights_committed(name: str) -> bool:
    """Whether the package ships ``name``'s weights.

    Parameters
    ----------
    name
        A word-model name.
    """
    return (
        name in read_word_manifest()["models"] and (words_dir() / f"{name}.safetensors").is_file()
    )


def committed_word_info(name: str) -> dict:
    """:func:`word_info` of ``name``'s committed entry (empty when absent).

    Parameters
    ----------
    name
        A word-model name.
    """
    return word_info(read_word_manifest()["models"].get(name, {}))


def describe_word_model(spec: WordSpec) -> str:
    """One line: architecture, training and layers.

    Parameters
    ----------
    spec
        The model's recipe.
    """
    training = "PGD-robust (waveform L∞) fine-tuned" if spec.robust else "standard"
    layers = ", ".join(spec.study_layers)
    return f"bundled:words {WORD_ARCH_DESCRIPTIONS[spec.arch]}; {training}; layers {layers}"
