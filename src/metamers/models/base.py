"""The pixel-space (or waveform-space) model: preprocessing inside, layers by name.

A :class:`PixelModel` takes stimuli in their valid range (``[0, 1]`` images,
``[-1, 1]`` waveforms) and runs its own preprocessing (normalisation, a
cochleagram, ...) as its first stage, so gradients reach the raw stimulus.
Any named module can be read out, the forward pass stops after the deepest
requested layer, and activation layers can be made "fake" (straight-through
gradient) without editing the network's class.
"""

from __future__ import annotations

import difflib
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from metamers.errors import LayerError

LOGITS = "logits"
"""Pseudo-layer name for the network's final output."""

FAKE_RELU_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a model's first stage.

    Parameters
    ----------
    mean, std
        One value per channel.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32)[:, None, None])
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32)[:, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` per channel.

        Parameters
        ----------
        x
            ``(N, C, H, W)`` stimuli, ``C`` matching the number of means and stds.
        """
        return (x - self.mean) / self.std


class _StopForward(Exception):
    """Raised inside a hook once every requested layer has been captured."""


class PixelModel(nn.Module):
    """A frozen network whose input is a stimulus in its valid range.

    Parameters
    ----------
    net
        The network proper; its named modules are the model's layers.
    name
        The name the model was loaded under (e.g. ``efficientnet_lite0``).
    input_shape
        Shape of one stimulus without the batch dimension: ``(C, H, W)`` for
        images, ``(T,)`` for waveforms.
    preprocess
        First stage, applied to the raw stimulus (e.g. :class:`Normalize`).
    input_range
        Valid stimulus range; synthesis keeps stimuli inside it.
    label_space
        What the output indexes (``"imagenet"``, ``"mnist"``, ...) or ``None``.
    class_names
        Names of the output classes, in order, when known.
    source
        Where the model came from (``bundled``, ``timm``, ``torchvision``, ``file``, ``zoo``).
    info
        Free-form metadata (accuracy, training, ...), shown by ``metamers models``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        input_shape: tuple[int, ...],
        preprocess: nn.Module | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        label_space: str | None = None,
        class_names: Sequence[str] | None = None,
        source: str = "custom",
        info: dict | None = None,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.net = net
        self.name = name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.label_space = label_space
        self.class_names = tuple(class_names) if class_names is not None else None
        self.source = source
        self.info = dict(info or {})
        self._fingerprint: str | None = None
        _disable_inplace(self)
        self.requires_grad_(False)
        self.eval()

    @property
    def is_classifier(self) -> bool:
        """Whether the output holds class scores to decide by (``info["classifier"]``, default yes).

        A model that declares ``info={"classifier": False}`` (the silero-vad speech
        detector: its output is a speech probability per 32-ms chunk) has no
        decisions: it serves extraction and the representation test, and
        ``metamers classify`` refuses it.
        """
        return bool(self.info.get("classifier", True))

    @property
    def modality(self) -> str:
        """``"image"`` for ``(C, H, W)`` inputs, ``"audio"`` for ``(T,)`` inputs."""
        return "audio" if len(self.input_shape) == 1 else "image"

    @property
    def device(self) -> torch.device:
        """Device of the model's first parameter or buffer (CPU if it has none)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def train(self, mode: bool = True) -> PixelModel:
        """Models stay in evaluation mode; ``train(True)`` is refused.

        Parameters
        ----------
        mode
            Must be ``False``.

        Raises
        ------
        RuntimeError
            ``mode`` is ``True``.
        """
        if mode:
            raise RuntimeError("PixelModel is frozen: it always stays in eval mode")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the whole model: preprocessing, then the network, to its output.

        Parameters
        ----------
        x
            ``(N, *input_shape)`` stimuli in :attr:`input_range`.
        """
        return self.net(self.preprocess(x))

    def layer_names(self) -> list[str]:
        """Every addressable layer: the network's named modules, then ``logits``."""
        return [name for name, _ in self.net.named_modules() if name] + [LOGITS]

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        """Return ``layers`` as a list, raising :class:`LayerError` with close matches for unknown names.

        Parameters
        ----------
        layers
            Layer names (see :meth:`layer_names`).

        Raises
        ------
        LayerError
            ``layers`` is empty, names a layer the model does not have, or names a
            module that runs more than once per forward (:meth:`call_counts`).
        """
        layers = list(layers)
        if not layers:
            raise LayerError(f"no layers given for {self.name}")
        known = set(self.layer_names())
        for layer in layers:
            if layer not in known:
                raise LayerError(unknown_layer_message(layer, self.name, self.layer_names()))
        if any(layer != LOGITS for layer in layers):
            counts = self.call_counts()
            for layer in layers:
                if counts.get(layer, 1) > 1:
                    raise LayerError(reused_layer_message(layer, self.name, counts))
        return layers

    def call_counts(self) -> dict[str, int]:
        """How many times each named module runs in one forward pass (probed once, cached).

        A module reused inside one forward (torchvision's ResNet blocks call
        their ``relu`` twice) has no single activation; :meth:`check_layers`
        refuses it as a layer. A model whose probe forward fails gives ``{}``
        (its real forward reports the problem).
        """
        counts = getattr(self, "_call_counts", None)
        if counts is not None:
            return counts
        counts = {}

        def count(name: str):
            def hook(_module, _inputs, _output):
                counts[name] = counts.get(name, 0) + 1

            return hook

        # The probe is invisible: the modules' own hooks are set aside, the RNG state kept.
        modules = list(self.modules())
        kept = [(m._forward_hooks, m._forward_pre_hooks) for m in modules]
        for module in modules:
            module._forward_hooks, module._forward_pre_hooks = OrderedDict(), OrderedDict()
        for name, module in self.net.named_modules():
            if name:
                module.register_forward_hook(count(name))
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                self.forward(self.example_input())
        except Exception:  # best effort: the caller's own forward reports the problem
            counts = {}
        finally:
            for module, (forward_hooks, pre_hooks) in zip(modules, kept, strict=True):
                module._forward_hooks, module._forward_pre_hooks = forward_hooks, pre_hooks
        self._call_counts = counts
        return counts

    def activations(
        self,
        x: torch.Tensor,
        layers: Sequence[str],
        *,
        fake_relu: Iterable[str] = (),
    ) -> dict[str, torch.Tensor]:
        """Activations at named layers, stopping after the deepest one.

        The graph is kept (call under ``torch.no_grad`` or
        ``torch.inference_mode`` when no gradient is needed). A module called
        several times in one forward is refused (:meth:`check_layers`).

        Parameters
        ----------
        x
            ``(N, *input_shape)`` stimuli in ``input_range``.
        layers
            Layer names (see :meth:`layer_names`).
        fake_relu
            Layers whose activation (ReLU-like module) passes gradient
            straight through in the backward pass; forward values unchanged.

        Returns
        -------
        dict[str, torch.Tensor]
            One tensor per requested layer, in the order requested.
        """
        layers = self.check_layers(layers)
        fake = set(fake_relu)
        modules = dict(self.net.named_modules())
        for layer in fake:
            check_fake_relu_layer(layer, modules.get(layer), self.name)
        captured: dict[str, torch.Tensor] = {}
        wanted = [name for name in layers if name != LOGITS]
        hooks = [
            modules[name].register_forward_hook(
                _capture_hook(name, captured, len(wanted), name in fake, stop=LOGITS not in layers)
            )
            for name in wanted
        ]
        hooks += [
            modules[name].register_forward_hook(_straight_through_hook)
            for name in fake - set(wanted)
        ]
        try:
            output = self.forward(x)
            captured[LOGITS] = output
        except _StopForward:
            pass
        finally:
            for hook in hooks:
                hook.remove()
        return {name: captured[name] for name in layers}

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape (without batch) of every layer with a tensor output, in call order."""
        shapes: dict[str, tuple[int, ...]] = {}

        def record(name: str):
            def hook(_module, _inputs, output):
                if isinstance(output, torch.Tensor) and name not in shapes:
                    shapes[name] = tuple(output.shape[1:])

            return hook

        hooks = [m.register_forward_hook(record(n)) for n, m in self.net.named_modules() if n]
        try:
            with torch.inference_mode():
                shapes[LOGITS] = tuple(self.forward(self.example_input()).shape[1:])
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    def example_input(self, batch_size: int = 1, seed: int = 0) -> torch.Tensor:
        """A random stimulus batch in the valid range, on the model's device.

        Parameters
        ----------
        batch_size
            Number of stimuli.
        seed
            Seed of the CPU generator drawing uniform values in :attr:`input_range`.

        Returns
        -------
        torch.Tensor
            ``(batch_size, *input_shape)`` on :attr:`device`.
        """
        generator = torch.Generator().manual_seed(seed)
        low, high = self.input_range
        x = torch.rand((batch_size, *self.input_shape), generator=generator)
        return (low + (high - low) * x).to(self.device)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) over the model's name, input contract and weights."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"{self.name}|{self.input_shape}|{self.input_range}".encode())
            for key, tensor in sorted(self.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


def _capture_hook(name: str, captured: dict, n_wanted: int, fake: bool, stop: bool):
    def hook(module, inputs, output):
        if fake:
            output = _straight_through_hook(module, inputs, output)
        if name not in captured:
            captured[name] = output
            if stop and len(captured) == n_wanted:
                raise _StopForward
        return output

    return hook


def _straight_through_hook(_module, inputs, output):
    """Forward value of the activation, identity gradient (the published "fake ReLU")."""
    (inp,) = inputs
    return inp + (output - inp).detach()


def check_fake_relu_layer(layer: str, module: nn.Module | None, model_name: str) -> None:
    """Raise :class:`LayerError` unless ``layer`` is an element-wise ReLU-like module.

    Parameters
    ----------
    layer
        The layer name, for the message.
    module
        The module at ``layer``; ``None`` when the model has no such module (as
        for ``logits``).
    model_name
        The model's name, for the message.

    Raises
    ------
    LayerError
        ``module`` is not an instance of :data:`FAKE_RELU_TYPES`.
    """
    if module is None or not isinstance(module, FAKE_RELU_TYPES):
        kind = "logits" if layer == LOGITS else type(module).__name__ if module else "unknown"
        raise LayerError(
            f"fake-ReLU needs a ReLU-like activation module; {model_name} layer {layer!r} is {kind}"
        )


def is_relu_layer(model: PixelModel, layer: str) -> bool:
    """Whether ``layer`` is a ReLU-like activation module (fake-ReLU applies).

    Parameters
    ----------
    model
        The model.
    layer
        A layer name of ``model``; unknown names and ``logits`` give ``False``.
    """
    module = dict(model.net.named_modules()).get(layer)
    return isinstance(module, FAKE_RELU_TYPES)


def _disable_inplace(module: nn.Module) -> None:
    # In-place activations would overwrite captured tensors and break the
    # straight-through gradient; switch them off on the instance, not the class.
    for sub in module.modules():
        if getattr(sub, "inplace", False) is True:
            sub.inplace = False


def reused_layer_message(layer: str, model_name: str, counts: dict[str, int]) -> str:
    """One line refusing a module that runs several times per forward, with layers to use instead.

    Parameters
    ----------
    layer
        The module chosen as a layer.
    model_name
        The model's name, for the message.
    counts
        :meth:`PixelModel.call_counts`.

    Examples
    --------
    >>> counts = {"layer1.0": 1, "layer1.0.bn1": 1, "layer1.0.relu": 2, "layer1.0.conv2": 1}
    >>> reused_layer_message("layer1.0.relu", "resnet", counts)  # doctest: +NORMALIZE_WHITESPACE
    "layer 'layer1.0.relu' of resnet: this module runs 2 times per forward, so its activation
    is ambiguous; choose another layer, e.g. layer1.0 (the enclosing block), layer1.0.bn1,
    layer1.0.conv2"
    """
    parent = layer.rpartition(".")[0]
    prefix = f"{parent}." if parent else ""
    siblings = [
        name
        for name, n in counts.items()
        if n == 1 and name.startswith(prefix) and "." not in name[len(prefix) :]
    ]
    ideas = ([f"{parent} (the enclosing block)"] if counts.get(parent) == 1 else []) + siblings[:3]
    hint = f", e.g. {', '.join(ideas)}" if ideas else ""
    return (
        f"layer {layer!r} of {model_name}: this module runs {counts[layer]} times per forward, "
        f"so its activation is ambiguous; choose another layer{hint}"
    )


def unknown_layer_message(layer: str, model_name: str, names: Sequence[str]) -> str:
    """One-line error for an unknown layer, with the closest names suggested.

    Parameters
    ----------
    layer
        The name not found.
    model_name
        The model's name (also names the ``metamers layers`` command to run).
    names
        The model's layer names, searched for up to five close matches.
    """
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.6)
    close += [n for n in names if layer and layer in n and n not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown layer {layer!r} for model {model_name}{hint} "
        f"(run `metamers layers {model_name}` for the full list)"
    )
