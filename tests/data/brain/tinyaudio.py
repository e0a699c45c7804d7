"""A tiny random audio network: cochleagram, one conv layer, a linear read-out."""

import torch
from torch import nn

from metamers.audio import Cochleagram
from metamers.models import PixelModel


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.cochleagram = Cochleagram.feather2023()
        self.conv = nn.Conv2d(1, 4, (9, 5), stride=(4, 2))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        hidden = self.relu(self.conv(self.cochleagram(x)))
        return self.fc(self.pool(hidden).flatten(1))


def build_model(pretrained: bool = True) -> PixelModel:
    torch.manual_seed(0)
    return PixelModel(Net(), name="tinyaudio", input_shape=(4000,), input_range=(-1.0, 1.0))
