"""What each zoo model is: architecture, seed, training recipe, layers a study should use."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ARCH_DESCRIPTIONS: dict[str, str] = {
    "mlp": "MLP 784-128-128-64-10",
    "cnn": "CNN 2×(conv3-ReLU-maxpool) 16/32 ch, fc 64",
    "resnet": "ResNet stem + 3 basic blocks 16/32/32 ch (BatchNorm)",
    "vit": "ViT 7×7 patches (16 tokens), dim 64, 4 blocks, 4 heads",
}

STUDY_LAYERS: dict[str, tuple[str, str, str]] = {
    "mlp": ("relu1", "relu2", "relu3"),
    "cnn": ("relu1", "relu2", "relu3"),
    "resnet": ("block1.relu2", "block2.relu2", "block3.relu2"),
    "vit": ("block1", "block2", "block4"),
}
"""Early, middle and late layer of each architecture for cross-model studies."""


@dataclass(frozen=True)
class ZooSpec:
    """The full recipe of one zoo model.

    Attributes
    ----------
    name
        Registry name, e.g. ``mnist_cnn_robust_s1``.
    arch
        ``mlp``, ``cnn``, ``resnet`` or ``vit``.
    seed
        Seeds initialisation, data order, augmentation and attack starts.
    robust
        Trained on PGD adversarial examples (see ``attack.TRAIN_ATTACK``).
    epochs, batch_size, lr, weight_decay
        AdamW with a one-cycle learning-rate schedule peaking at ``lr``.
    max_shift
        Random translation of each training digit by up to this many pixels.
    """

    name: str
    arch: str
    seed: int
    robust: bool = False
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 2

    @property
    def study_layers(self) -> tuple[str, str, str]:
        """Early, middle and late layer for studies."""
        return STUDY_LAYERS[self.arch]

    def hyper_parameters(self) -> dict:
        """Everything that determines the trained weights (for the manifest)."""
        params = asdict(self)
        del params["name"]
        return params


_RECIPES: dict[tuple[str, bool], dict] = {
    ("mlp", False): {"epochs": 8},
    ("cnn", False): {"epochs": 6},
    ("resnet", False): {"epochs": 4},
    ("vit", False): {"epochs": 10},
    ("cnn", True): {"epochs": 5},
    ("resnet", True): {"epochs": 3},
}

SEEDS = (0, 1, 2)


def _make_specs() -> dict[str, ZooSpec]:
    specs = {}
    for (arch, robust), recipe in _RECIPES.items():
        for seed in SEEDS:
            name = f"mnist_{arch}{'_robust' if robust else ''}_s{seed}"
            specs[name] = ZooSpec(name=name, arch=arch, seed=seed, robust=robust, **recipe)
    return specs


ZOO_SPECS: dict[str, ZooSpec] = _make_specs()
"""Every zoo model, by name."""
