"""A tiny split model for the null/acceptance tests (shared by tests/test_null_*.py).

Layer ``left.1`` sees only the left half of the image; the logits are the mean
colour of the right half (label = dominant channel). So a stimulus can match
a reference at ``left.1`` while its label differs: a planted label failure.
"""

import torch
from torch import nn

from metamers.models import PixelModel

SIZE = 32


class SplitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(3, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(3))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        features = self.left(x[..., :half])
        colour = self.pool(x[..., half:]).flatten(1)
        return self.head(colour) + 0.0 * features.mean()


def split_model(seed: int = 0, name: str = "splitnet") -> PixelModel:
    torch.manual_seed(seed)
    return PixelModel(SplitNet(), name=name, input_shape=(3, SIZE, SIZE), source="test")
