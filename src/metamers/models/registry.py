"""Model names: the project's registry plus ``timm:``, ``torchvision:`` and ``file:`` sources.

The registry holds two catalogues. The built-in one (the bundled
EfficientNet-Lite models, the MNIST zoo of :mod:`metamers.models.zoo`, the word
models and the foreign, pretrained silero-vad of :mod:`metamers.models.silero`) is
registered once, on first use, and always before any entry of yours; it
imports its members, never the other way round, and an import error inside it
raises instead of leaving models out. Your own entries
(:func:`register_model`) come after and cannot take a built-in name.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from metamers.errors import ModelError
from metamers.models.base import PixelModel


@dataclass(frozen=True)
class ModelEntry:
    """A named model in the registry.

    Attributes
    ----------
    name
        Registry name (a bare name on the command line).
    build
        ``build(random_weights: bool) -> PixelModel``.
    source
        Where its weights come from (``bundled``, ``zoo``, ...).
    description
        One line for ``metamers models``.
    offline
        Returns whether its weights are available with no network.
    info
        Extra columns for ``metamers models`` (accuracy, robustness, ...).
    """

    name: str
    build: Callable[..., PixelModel]
    source: str
    description: str
    offline: Callable[[], bool] = lambda: True
    info: Callable[[], dict] = field(default=lambda: {})


_BUILTIN: dict[str, ModelEntry] | None = None
"""The built-in catalogue; ``None`` until it has been registered, all at once."""
_USER: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    """Add a model of your own to the registry, or replace one you added before.

    The built-in catalogue (the bundled EfficientNet-Lite models and the MNIST
    zoo) is registered first, so a built-in name cannot be taken over: pick
    another name. Registering a name you registered before replaces your
    earlier entry (re-running a notebook cell works).

    Parameters
    ----------
    entry
        The model's name, builder and description.

    Raises
    ------
    ModelError
        The name is a built-in model's, or contains ``:`` (reserved for
        ``timm:``, ``torchvision:`` and ``file:`` sources).
    """
    builtin = _builtin_models()
    if entry.name in builtin:
        raise ModelError(
            f"model name {entry.name!r} is built in ({builtin[entry.name].source}); "
            "register yours under another name"
        )
    if ":" in entry.name:
        raise ModelError(f"model name {entry.name!r} contains ':', which names a source")
    _USER[entry.name] = entry


def registered_models() -> list[ModelEntry]:
    """Every registered model (built-in and your own), sorted by name."""
    entries = _builtin_models() | _USER
    return [entries[k] for k in sorted(entries)]


def _builtin_models() -> dict[str, ModelEntry]:
    """The built-in catalogue, registered on first use (an import error raises)."""
    global _BUILTIN
    if _BUILTIN is None:
        entries = [*_lite_entries(), *_zoo_entries(), *_word_entries(), *_foreign_entries()]
        _BUILTIN = {entry.name: entry for entry in entries}
    return _BUILTIN


def _lite_entries() -> list[ModelEntry]:
    from metamers.models.efficientnet_lite import LITE_VARIANTS, lite_weights_path

    return [
        ModelEntry(
            name=name,
            build=partial(_build_lite, name),
            source="bundled",
            description=f"EfficientNet-{name[-5:].capitalize()}, ImageNet-1k, {size}px",
            offline=partial(lambda n: lite_weights_path(n) is not None, name),
        )
        for name, size in LITE_VARIANTS.items()
    ]


def _build_lite(name: str, *, random_weights: bool = False) -> PixelModel:
    from metamers.models.efficientnet_lite import build_efficientnet_lite

    return build_efficientnet_lite(name, random_weights=random_weights)


def _zoo_entries() -> list[ModelEntry]:
    from metamers.models import zoo

    return [
        ModelEntry(
            name=name,
            build=partial(_build_zoo, name),
            source="zoo",
            description=zoo.describe(spec),
            offline=partial(zoo.weights_committed, name),
            info=partial(zoo.committed_info, name),
        )
        for name, spec in zoo.ZOO_SPECS.items()
    ]


def _build_zoo(name: str, *, random_weights: bool = False) -> PixelModel:
    from metamers.models.zoo import load_zoo_model

    return load_zoo_model(name, random_weights=random_weights)


def _word_entries() -> list[ModelEntry]:
    from metamers.models.words import manifest
    from metamers.models.words.specs import WORD_SPECS

    return [
        ModelEntry(
            name=name,
            build=partial(_build_word, name),
            source="zoo",
            description=manifest.describe_word_model(spec),
            offline=partial(manifest.word_weights_committed, name),
            info=partial(manifest.committed_word_info, name),
        )
        for name, spec in WORD_SPECS.items()
    ]


def _build_word(name: str, *, random_weights: bool = False) -> PixelModel:
    from metamers.models.words.manifest import load_word_model

    return load_word_model(name, random_weights=random_weights)


def _foreign_entries() -> list[ModelEntry]:
    from metamers.models import silero

    return [
        ModelEntry(
            name="silero_vad",
            build=_build_silero,
            source="pretrained",
            description=(
                f"silero-vad {silero.SILERO_VERSION} speech detector (foreign, MIT; weights from "
                f"its wheel), 16 kHz; no word labels; layers {', '.join(silero.STUDY_LAYERS)}"
            ),
            offline=lambda: silero.silero_weights_path() is not None,
        )
    ]


def _build_silero(*, random_weights: bool = False) -> PixelModel:
    from metamers.models.silero import build_silero_vad

    return build_silero_vad(random_weights=random_weights)


def load_model(
    name: str,
    *,
    random_weights: bool = False,
    weights: str | None = None,
    trust_code: bool = False,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> PixelModel:
    """Load a model by name.

    Parameters
    ----------
    name
        A registry name (``efficientnet_lite0``), ``timm:ARCH``,
        ``torchvision:ARCH`` or ``file:PATH.py[:FUNCTION]``.
    random_weights
        Build the architecture untrained (no download), initialised from
        ``seed``: the same seed gives the same network, so metamers of an
        untrained model can be validated and evaluated again later.
    weights
        A local weights file (``.safetensors`` or a torch state dict) to load
        into a ``timm:``/``torchvision:`` architecture instead of the hub's.
    trust_code
        Required for ``file:`` models, whose code runs on load.
    device
        Where to put the model (default: CPU).
    seed
        Seed of the random initialisation (used only with ``random_weights``;
        the global torch random state is left as it was). Zoo models ignore
        it: their untrained weights are always the initialisation their
        training started from.

    Returns
    -------
    PixelModel
        The model; its ``load_spec`` attribute (see :func:`load_spec`) says how
        it was loaded, so that :func:`load_from_spec` can load it again.

    Raises
    ------
    ModelError
        Unknown name, unavailable weights, or a model that breaks the contract.
    """
    spec = _make_spec(name, random_weights=random_weights, weights=weights, seed=seed)
    with _seeded(seed) if random_weights else contextlib.nullcontext():
        model = _build(name, random_weights=random_weights, weights=weights, trust_code=trust_code)
    model.load_spec = spec
    return model.to(device) if device is not None else model


def load_spec(model: PixelModel) -> dict | None:
    """How ``model`` was loaded by :func:`load_model` (``None`` for a model built otherwise).

    Parameters
    ----------
    model
        A loaded model.

    Returns
    -------
    dict or None
        ``name`` (the name to load, ``file:`` paths made absolute), ``weights``
        (absolute path or ``None``) and ``weights_sha256``, ``random_weights``
        and ``seed``; for ``file:`` models also ``code_sha256`` of the file.
        JSON-serialisable; :func:`metamers.synthesis.generate_metamers`
        records it with every metamer.
    """
    spec = getattr(model, "load_spec", None)
    return dict(spec) if isinstance(spec, dict) else None


def load_from_spec(
    spec: dict, *, trust_code: bool = False, device: str | torch.device | None = None
) -> PixelModel:
    """Load a model again from its :func:`load_spec` (e.g. as recorded with a metamer).

    Parameters
    ----------
    spec
        A load spec.
    trust_code
        Required for a ``file:`` model: its code runs on load, and a recorded
        spec is never consent to run it.
    device
        Where to put the model (default: CPU).

    Raises
    ------
    ModelError
        A ``file:`` spec without ``trust_code``, a weights file that is missing
        or differs from the recorded one (SHA-256), or any error of
        :func:`load_model`.
    """
    name = str(spec["name"])
    if name.startswith("file:") and not trust_code:
        raise ModelError(
            f"the model was loaded from {name}, whose Python code runs on load; pass "
            "--trust-code (CLI) or trust_code=True to load it again"
        )
    weights = spec.get("weights")
    if weights is not None:
        if not Path(weights).is_file():
            raise ModelError(f"the weights file {weights} that {name} was loaded with is missing")
        recorded = spec.get("weights_sha256")
        if recorded and _sha256(Path(weights)) != recorded:
            raise ModelError(
                f"the weights file {weights} has changed since {name} was loaded with it "
                f"(SHA-256 {recorded[:12]}... recorded)"
            )
    return load_model(
        name,
        random_weights=bool(spec.get("random_weights", False)),
        weights=weights,
        trust_code=trust_code,
        device=device,
        seed=int(spec.get("seed") or 0),
    )


def _make_spec(name: str, *, random_weights: bool, weights: str | None, seed: int) -> dict:
    """The load spec of a :func:`load_model` call (paths absolute, files digested)."""
    spec: dict = {"name": name, "weights": None, "weights_sha256": None}
    source, sep, rest = name.partition(":")
    if sep and source == "file":
        path_text, sep2, func = rest.partition(".py:")
        path = Path(path_text + ".py" if sep2 else path_text).expanduser().resolve()
        spec["name"] = f"file:{path}" + (f":{func}" if sep2 else "")
        spec["code_sha256"] = _sha256(path) if path.is_file() else None
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        spec["weights"] = str(path)
        spec["weights_sha256"] = _sha256(path) if path.is_file() else None
    spec["random_weights"] = bool(random_weights)
    spec["seed"] = int(seed) if random_weights else None
    return spec


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block; restore the caller's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _build(name: str, *, random_weights: bool, weights: str | None, trust_code: bool) -> PixelModel:
    source, sep, rest = name.partition(":")
    from metamers.models import sources

    if sep and source == "timm":
        model = sources.build_timm(rest, random_weights=random_weights, weights=weights)
    elif sep and source == "torchvision":
        model = sources.build_torchvision(rest, random_weights=random_weights, weights=weights)
    elif sep and source == "file":
        model = sources.build_from_file(
            rest, trust_code=trust_code, random_weights=random_weights, weights=weights
        )
    elif sep:
        raise ModelError(f"unknown model source {source!r}; use timm:, torchvision: or file:")
    else:
        model = _load_registered(name, random_weights=random_weights, weights=weights)
    return model


def _load_registered(name: str, *, random_weights: bool, weights: str | None) -> PixelModel:
    entries = _builtin_models() | _USER
    if name not in entries:
        import difflib

        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"unknown model {name!r}{hint} (see `metamers models`; or use timm:NAME, "
            "torchvision:NAME, file:PATH.py)"
        )
    model = entries[name].build(random_weights=random_weights)
    if weights is not None:
        from metamers.models.sources import apply_weights, load_state_dict

        apply_weights(model.net, load_state_dict(weights), weights)
    return model


def model_facts(name: str) -> dict:
    """Architecture, training and seed of a model, for grouping results across models.

    Zoo and word models know theirs (``{"architecture": "cnn", "training":
    "robust", "seed": 1}``); any other model is its own architecture, with
    ``standard`` training and no seed.

    Parameters
    ----------
    name
        A model name (registry name, ``timm:...``, ...).
    """
    from metamers.models.words.specs import WORD_SPECS
    from metamers.models.zoo.specs import ZOO_SPECS

    spec = ZOO_SPECS.get(name) or WORD_SPECS.get(name)
    if spec is None:
        return {"architecture": name, "training": "standard", "seed": None}
    training = "robust" if spec.robust else "standard"
    return {"architecture": spec.arch, "training": training, "seed": spec.seed}
