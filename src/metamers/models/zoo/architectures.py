"""Four small MNIST networks with different inductive biases.

All take normalised ``(N, 1, 28, 28)`` digits and return 10 logits. Every
activation is its own ``nn.ReLU`` module (never ``F.relu`` and never shared),
so each is an addressable layer and fake-ReLU applies to it.

- :class:`MLP`: no spatial prior at all (fully connected).
- :class:`SmallCNN`: local, translation-equivariant filters and pooling.
- :class:`SmallResNet`: a deeper CNN with batch norm and identity shortcuts.
- :class:`TinyViT`: patches plus global self-attention; only a learned
  position embedding tells it where a patch is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NUM_CLASSES = 10


class MLP(nn.Module):
    """Three hidden fully connected layers: ``fc1 relu1 fc2 relu2 fc3 relu3 fc4``."""

    def __init__(self, hidden: tuple[int, int, int] = (128, 128, 64)) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden[1], hidden[2])
        self.relu3 = nn.ReLU()
        self.fc4 = nn.Linear(hidden[2], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 10)`` logits.

        Parameters
        ----------
        x
            ``(N, 1, 28, 28)`` normalised digits.
        """
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        x = self.relu3(self.fc3(x))
        return self.fc4(x)


class SmallCNN(nn.Module):
    """Two conv–ReLU–max-pool stages and two linear layers.

    ``conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2``.
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(channels[1] * 7 * 7, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 10)`` logits.

        Parameters
        ----------
        x
            ``(N, 1, 28, 28)`` normalised digits.
        """
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.fc2(x)


class BasicBlock(nn.Module):
    """ResNet basic block: ``conv1 bn1 relu1 conv2 bn2`` plus ``shortcut``, then ``relu2``.

    ``relu2`` is the block's output, so ``blockN`` and ``blockN.relu2`` hold
    the same tensor; use the latter for fake-ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, ``relu2(bn2(conv2(...)) + shortcut(x))``.

        Parameters
        ----------
        x
            ``(N, in_channels, H, W)`` features.
        """
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A stem and three basic blocks (28→14→7→7), global average pool, linear head.

    ``conv1 bn1 relu1 block1 block2 block3 pool flatten fc``.
    """

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 32)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu1 = nn.ReLU()
        self.block1 = BasicBlock(widths[0], widths[0], stride=2)
        self.block2 = BasicBlock(widths[0], widths[1], stride=2)
        self.block3 = BasicBlock(widths[1], widths[2], stride=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(widths[2], NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 10)`` logits.

        Parameters
        ----------
        x
            ``(N, 1, 28, 28)`` normalised digits.
        """
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.flatten(self.pool(x)))


class Attention(nn.Module):
    """Multi-head self-attention written out: ``qkv`` projection, softmax, ``proj``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention over the tokens, ``(N, T, dim)`` out.

        Parameters
        ----------
        x
            ``(N, T, dim)`` tokens.
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``norm1 attn`` and ``norm2 fc1 relu fc2``, both residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, ``(N, T, dim)``.

        Parameters
        ----------
        x
            ``(N, T, dim)`` tokens.
        """
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.relu(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """A vision transformer on 7×7 patches (4×4 = 16 tokens), mean-pooled tokens, linear head.

    ``patch_embed tokens block1 .. blockN norm pool head``. ``tokens`` adds the
    learned position embedding and outputs ``(N, 16, dim)``.
    """

    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, mlp_dim: int = 128) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=7, stride=7)
        self.tokens = PatchTokens(num_patches=16, dim=dim)
        for index in range(1, depth + 1):
            self.add_module(f"block{index}", TransformerBlock(dim, heads, mlp_dim))
        self.depth = depth
        self.norm = nn.LayerNorm(dim)
        self.pool = TokenMean()
        self.head = nn.Linear(dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 10)`` logits.

        Parameters
        ----------
        x
            ``(N, 1, 28, 28)`` normalised digits.
        """
        x = self.tokens(self.patch_embed(x))
        for index in range(1, self.depth + 1):
            x = getattr(self, f"block{index}")(x)
        return self.head(self.pool(self.norm(x)))


class PatchTokens(nn.Module):
    """``(N, D, 4, 4)`` patch features → ``(N, 16, D)`` tokens plus a learned position embedding."""

    def __init__(self, num_patches: int, dim: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, num_patches, dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(N, 16, D)`` tokens with the position embedding added.

        Parameters
        ----------
        x
            ``(N, D, 4, 4)`` patch features from ``patch_embed``.
        """
        return x.flatten(2).transpose(1, 2) + self.position


class TokenMean(nn.Module):
    """Average over tokens: ``(N, T, D)`` → ``(N, D)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean token, ``(N, D)``.

        Parameters
        ----------
        x
            ``(N, T, D)`` tokens.
        """
        return x.mean(dim=1)


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet": SmallResNet,
    "vit": TinyViT,
}
"""Architecture name → constructor (default, committed sizes)."""


def build_net(arch: str) -> nn.Module:
    """Build an untrained network by architecture name (``mlp``, ``cnn``, ``resnet``, ``vit``).

    Parameters
    ----------
    arch
        A key of :data:`ARCHITECTURES`.

    Raises
    ------
    KeyError
        An unknown architecture name.
    """
    return ARCHITECTURES[arch]()
