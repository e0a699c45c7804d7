"""Word-recognition networks in the spirit of the published CochCNN9 and CochResNet50.

Both take a waveform ``(N, 40000)`` (2 s at 20 kHz) and run a cochleagram as
their first named stage (``cochleagram``), so ``metamers layers`` lists it and
metamers can be made at it. The cochleagram is the published algorithm
(:class:`~metamers.audio.Cochleagram`) at a resolution two CPU cores can train
on (:func:`word_cochleagram`); the networks are the published layouts scaled
down (fewer, narrower layers), keeping the published layer names.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from metamers.audio import Cochleagram


def word_cochleagram() -> Cochleagram:
    """The word models' front end: ``feather2023`` with one filter per ERB step and 100 Hz envelopes.

    50 Hz ... 10 kHz, ``sample_factor=1`` (52 filters instead of 211), envelopes
    at 100 Hz with the published sinc-Kaiser kernel scaled to the stride
    (2,001 taps): ``(N, 1, 52, 190)`` for 2 s at 20 kHz. Every other setting
    (compression, gradient conventions) is the published one.
    """
    return Cochleagram.feather2023(sample_factor=1, env_sr=100, kernel_length=2001)


def _conv(cin: int, cout: int, kernel: tuple[int, int], stride=(1, 1)) -> nn.Conv2d:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)


def word_cnn(n_classes: int) -> nn.Sequential:
    """CochCNN-like: BN, five conv + ReLU stages (two max-pooled), average pool, FC, FC.

    Parameters
    ----------
    n_classes
        Output classes (words).
    """
    layers = OrderedDict(
        cochleagram=word_cochleagram(),
        bn0=nn.BatchNorm2d(1),
        conv0=_conv(1, 16, (5, 9), stride=(1, 2)),
        relu0=nn.ReLU(),
        maxpool0=nn.MaxPool2d(2),
        bn1=nn.BatchNorm2d(16),
        conv1=_conv(16, 32, (3, 5)),
        relu1=nn.ReLU(),
        maxpool1=nn.MaxPool2d(2),
        bn2=nn.BatchNorm2d(32),
        conv2=_conv(32, 64, (3, 3)),
        relu2=nn.ReLU(),
        conv3=_conv(64, 64, (3, 3)),
        relu3=nn.ReLU(),
        conv4=_conv(64, 32, (3, 3)),
        relu4=nn.ReLU(),
        avgpool=nn.AdaptiveAvgPool2d((4, 8)),
        flatten=nn.Flatten(),
        fc=nn.Linear(32 * 4 * 8, 256),
        relufc=nn.ReLU(),
        dropout=nn.Dropout(0.3),
        final=nn.Linear(256, n_classes),
    )
    return nn.Sequential(layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity or 1x1 shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        )
        self.relu2 = nn.ReLU()

    def forward(self, x):
        """Residual block output.

        Parameters
        ----------
        x
            ``(N, cin, H, W)``.
        """
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def word_resnet(n_classes: int) -> nn.Sequential:
    """CochResNet-like: conv stem + max pool, four stages of one basic block, average pool, FC.

    Parameters
    ----------
    n_classes
        Output classes (words).
    """
    layers = OrderedDict(
        cochleagram=word_cochleagram(),
        bn0=nn.BatchNorm2d(1),
        conv1=nn.Conv2d(1, 16, (5, 9), stride=2, padding=(2, 4), bias=False),
        bn1=nn.BatchNorm2d(16),
        conv1_relu1=nn.ReLU(),
        maxpool=nn.MaxPool2d(2),
        layer1=BasicBlock(16, 16),
        layer2=BasicBlock(16, 32, stride=2),
        layer3=BasicBlock(32, 64, stride=2),
        layer4=BasicBlock(64, 64),
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        final=nn.Linear(64, n_classes),
    )
    return nn.Sequential(layers)


WORD_ARCHITECTURES = {"cnn": word_cnn, "resnet": word_resnet}
"""Builders by architecture name."""
