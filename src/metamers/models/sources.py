"""Building models from their sources: bundled weights, timm, torchvision, user files."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import torch
from torch import nn

from metamers.errors import ModelError
from metamers.models.base import Normalize, PixelModel

IMAGENET = "imagenet"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a weights file safely (``.safetensors`` or ``weights_only`` torch pickle).

    A checkpoint that wraps its weights as ``{"state_dict": {...}}`` is unwrapped.

    Parameters
    ----------
    path
        A ``.safetensors`` file or a torch file loadable with ``weights_only=True``.

    Raises
    ------
    ModelError
        The file is missing, cannot be loaded safely, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot load weights from {path} safely: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def apply_weights(net: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` into ``net`` strictly, with a one-line error on mismatch.

    Parameters
    ----------
    net
        The network, changed in place.
    state
        Its weights; every key must match (``strict=True``).
    origin
        Where the weights came from (e.g. the file path), for the message.

    Raises
    ------
    ModelError
        Missing, unexpected or mis-shaped keys.
    """
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise ModelError(
            f"weights from {origin} do not fit the architecture: {' '.join(first)}"
        ) from exc


def _imagenet_names() -> tuple[str, ...]:
    from metamers.labels import imagenet_class_names

    return imagenet_class_names()


def build_timm(
    arch: str, *, random_weights: bool = False, weights: str | None = None
) -> PixelModel:
    """A timm model with its own preprocessing; pretrained from the hub unless told otherwise.

    Parameters
    ----------
    arch
        A timm model name (e.g. ``"resnet18"``), without the ``timm:`` prefix.
    random_weights
        Keep the random initialisation (nothing is downloaded).
    weights
        A weights file (see :func:`load_state_dict`) loaded instead of the hub's.

    Raises
    ------
    ModelError
        timm has no such model, the hub weights cannot be fetched, or ``weights``
        does not fit.
    """
    import timm

    if arch not in timm.list_models():
        close = timm.list_models(f"*{arch}*")[:5]
        raise ModelError(
            f"timm has no model {arch!r}" + (f"; close: {', '.join(close)}" if close else "")
        )
    pretrained = not random_weights and weights is None
    offline = contextlib.nullcontext(False)
    if pretrained:
        offline = hub_offline_unless_reachable()
    try:
        with offline as unreachable:
            net = timm.create_model(arch, pretrained=pretrained)
    except Exception as exc:  # hub errors come in many types
        if unreachable or type(exc).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            raise ModelError(
                f"cannot fetch pretrained weights for timm:{arch}: the hub is offline or "
                "unreachable and they are not in the local cache; pass --weights FILE or "
                "--random-weights"
            ) from None
        raise ModelError(
            f"cannot fetch pretrained weights for timm:{arch} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); offline? pass --weights FILE "
            "or --random-weights"
        ) from exc
    if weights is not None:
        apply_weights(net, load_state_dict(weights), weights)
    cfg = net.pretrained_cfg
    n_classes = getattr(net, "num_classes", None)
    return PixelModel(
        net,
        name=f"timm:{arch}",
        input_shape=tuple(cfg.get("input_size", (3, 224, 224))),
        preprocess=Normalize(
            cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
        ),
        label_space=IMAGENET if n_classes == 1000 else None,
        class_names=_imagenet_names() if n_classes == 1000 else None,
        source="timm",
        info={"pretrained": pretrained or weights is not None},
    )


HUB_PROBE_SECONDS = 3.0
"""How long :func:`hub_offline_unless_reachable` waits for the hub to answer."""


@contextlib.contextmanager
def hub_offline_unless_reachable(timeout: float = HUB_PROBE_SECONDS) -> Iterator[bool]:
    """Hugging Face hub offline mode for the block when the hub cannot be reached.

    Without it, an unreachable hub costs about a minute of retries (and a
    screen of retry messages) before the download fails. The hub's endpoint
    (or the HTTPS proxy, when one is set) is probed with one TCP connection of
    at most ``timeout`` seconds; when it does not answer, the block runs in
    the hub's offline mode, so cached weights still load and missing ones fail
    at once.

    Parameters
    ----------
    timeout
        Seconds to wait for the connection (name lookup included).

    Yields
    ------
    bool
        Whether the hub was found unreachable (offline mode switched on here).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _reachable(_hub_address(constants.ENDPOINT), timeout):
        yield False
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE = previous


def _hub_address(endpoint: str) -> tuple[str, int]:
    url = urlsplit(endpoint)
    proxy = os.environ.get(f"{url.scheme}_proxy".lower()) or os.environ.get(
        f"{url.scheme}_proxy".upper()
    )
    if proxy:
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def _reachable(address: tuple[str, int], timeout: float) -> bool:
    """Whether a TCP connection to ``address`` opens within ``timeout`` (name lookup included)."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            answer.append(True)
        except (OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def build_torchvision(
    arch: str, *, random_weights: bool = False, weights: str | None = None
) -> PixelModel:
    """A torchvision model; pretrained ``DEFAULT`` weights from the hub unless told otherwise.

    Parameters
    ----------
    arch
        A torchvision model name (e.g. ``"resnet50"``), without the
        ``torchvision:`` prefix.
    random_weights
        Keep the random initialisation (nothing is downloaded).
    weights
        A weights file (see :func:`load_state_dict`) loaded instead of the hub's.

    Raises
    ------
    ModelError
        torchvision has no such model, the hub weights cannot be fetched, or
        ``weights`` does not fit.
    """
    import torchvision

    if arch not in torchvision.models.list_models():
        raise ModelError(f"torchvision has no model {arch!r}")
    default = torchvision.models.get_model_weights(arch).DEFAULT
    pretrained = not random_weights and weights is None
    try:
        net = torchvision.models.get_model(arch, weights=default if pretrained else None)
    except Exception as exc:
        raise ModelError(
            f"cannot fetch pretrained weights for torchvision:{arch} ({type(exc).__name__}); "
            "offline? pass --weights FILE or --random-weights"
        ) from exc
    if weights is not None:
        apply_weights(net, load_state_dict(weights), weights)
    transform = default.transforms()
    size = int(transform.crop_size[0])
    return PixelModel(
        net,
        name=f"torchvision:{arch}",
        input_shape=(3, size, size),
        preprocess=Normalize(transform.mean, transform.std),
        label_space=IMAGENET,
        class_names=_imagenet_names(),
        source="torchvision",
        info={"pretrained": pretrained or weights is not None},
    )


def build_from_file(
    spec: str, *, trust_code: bool = False, random_weights: bool = False, weights: str | None = None
) -> PixelModel:
    """Run a user's model file and call its builder (``file:PATH.py`` or ``file:PATH.py:FUNC``).

    The file must define ``build_model(pretrained: bool = True) -> PixelModel``
    (or the function named after the second colon). Because this executes
    the file's code, it is refused unless ``trust_code`` is set.

    With ``weights``, the builder is called with ``pretrained=False`` and the
    file's weights are loaded safely (:func:`load_state_dict`: safetensors or
    ``weights_only``) and strictly into the model: into the whole
    :class:`~metamers.models.PixelModel` when the keys start with ``net.`` (a
    ``PixelModel.state_dict()``), else into its ``net`` (the network's own
    ``state_dict()``), as for ``timm:`` and ``torchvision:`` models.

    Parameters
    ----------
    spec
        ``PATH.py`` or ``PATH.py:FUNC``, the model spec without its ``file:`` prefix.
    trust_code
        Consent to run the file's code; without it the file is not run.
    random_weights
        Call the builder with ``pretrained=False``.
    weights
        A weights file loaded into the built model (see above).

    Raises
    ------
    ModelError
        ``trust_code`` is not set, the file is missing or fails to run, it defines
        no such function, the function returns something other than a
        :class:`~metamers.models.PixelModel`, or ``weights`` cannot be loaded
        safely or does not fit.
    """
    path_text, _, func_name = spec.partition(".py:")
    path = Path(path_text if not func_name else path_text + ".py")
    func_name = func_name or "build_model"
    if not trust_code:
        raise ModelError(
            f"loading file:{path} runs its Python code; pass --trust-code (CLI) or trust_code=True"
        )
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(f"metamers_user_model_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ModelError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(f"running {path} failed: {type(exc).__name__}: {exc}") from exc
    builder = getattr(module, func_name, None)
    if not callable(builder):
        raise ModelError(f"{path} defines no function {func_name}(pretrained: bool = True)")
    state = load_state_dict(weights) if weights is not None else None
    model = builder(pretrained=not random_weights and weights is None)
    if not isinstance(model, PixelModel):
        raise ModelError(
            f"{path}:{func_name} returned {type(model).__name__}; return a metamers.models.PixelModel "
            "(see docs/model-contract.md)"
        )
    if state is not None:
        whole = any(key.startswith("net.") for key in state)
        apply_weights(model if whole else model.net, state, str(weights))
        model._fingerprint = None  # the weights changed after the builder returned
    model.source = "file"
    return model
