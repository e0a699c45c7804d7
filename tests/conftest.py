"""Shared fixtures: offline hubs, fixed threads and seeds, models loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch
from torch import nn

torch.set_num_threads(int(os.environ.get("METAMERS_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def lite0():
    """The real ImageNet-pretrained EfficientNet-Lite0 (bundled weights)."""
    from metamers.models import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def photos():
    """The real bundled photos."""
    from metamers.stimuli import resolve_stimuli

    return resolve_stimuli("bundled:photos")


def make_tiny_model(seed: int = 0, name: str = "tiny"):
    """A small random conv net wrapped as a PixelModel (3x32x32 in [0, 1])."""
    from metamers.models import Normalize, PixelModel

    torch.manual_seed(seed)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("relu1", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(8, 16, 3, stride=2, padding=1))
    net.add_module("relu2", nn.ReLU())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(16, 10))
    return PixelModel(
        net, name=name, input_shape=(3, 32, 32), preprocess=Normalize([0.5] * 3, [0.25] * 3)
    )


@pytest.fixture
def tiny_model():
    """A fresh tiny conv net (see :func:`make_tiny_model`)."""
    return make_tiny_model()
