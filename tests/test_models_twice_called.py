"""A module that runs twice in one forward has no single activation: refused as a layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metamers.errors import LayerError
from metamers.models import PixelModel


class ReusedReLU(nn.Module):
    """One ReLU object applied after both convolutions (as torchvision's ResNet blocks do)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.head(x.mean((2, 3)))


@pytest.fixture
def model() -> PixelModel:
    torch.manual_seed(0)
    return PixelModel(ReusedReLU(), name="reused", input_shape=(3, 8, 8), source="test")


def test_twice_called_module_is_refused_with_one_line(model):
    assert model.call_counts()["relu"] == 2
    with pytest.raises(LayerError) as caught:
        model.activations(model.example_input(), ["relu"])
    message = str(caught.value)
    assert "\n" not in message
    assert "runs 2 times per forward" in message and "ambiguous" in message
    assert "conv1" in message  # an alternative is proposed
    with pytest.raises(LayerError, match="runs 2 times"):
        model.check_layers(["conv1", "relu"])


def test_layers_called_once_still_work(model):
    acts = model.activations(model.example_input(2), ["conv1", "conv2", "logits"])
    assert acts["conv2"].shape == (2, 4, 8, 8) and acts["logits"].shape == (2, 2)
    assert model.check_layers(["logits"]) == ["logits"]


def test_torchvision_resnet_block_relu_is_flagged():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None)
    model = PixelModel(net, name="resnet18", input_shape=(3, 64, 64), source="test")
    with pytest.raises(
        LayerError, match=r"layer1\.0\.relu.*runs 2 times.*layer1\.0 \(the enclosing"
    ):
        model.check_layers(["layer1.0.relu"])
    assert model.check_layers(["layer1.0", "layer1.0.bn2"]) == ["layer1.0", "layer1.0.bn2"]
