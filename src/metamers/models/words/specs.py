"""What each word model is: architecture, seed, training recipe, layers a study should use."""

from __future__ import annotations

from dataclasses import asdict, dataclass

WORD_ARCH_DESCRIPTIONS: dict[str, str] = {
    "cnn": "CochCNN-like: cochleagram, BN, 5 conv (16-64 ch), avgpool, FC 256",
    "resnet": "CochResNet-like: cochleagram, conv stem, 4 basic blocks (16-64 ch), avgpool, FC",
}

WORD_STUDY_LAYERS: dict[str, tuple[str, str, str]] = {
    "cnn": ("relu0", "relu2", "relufc"),
    "resnet": ("conv1_relu1", "layer2", "layer4"),
}
"""Early, middle and late layer of each architecture for cross-model studies."""


@dataclass(frozen=True)
class WordSpec:
    """The full recipe of one word model.

    Attributes
    ----------
    name
        Registry name, e.g. ``word_cnn_s0`` or ``word_resnet_robust_s0``.
    arch
        ``cnn`` or ``resnet``.
    seed
        Seeds initialisation, data order, noise-version choice and attack starts.
    robust
        Fine-tuned from the standard model of the same architecture and seed on
        PGD adversarial waveforms (see ``training.TRAIN_ATTACK``).
    epochs, batch_size, lr, weight_decay
        AdamW with a one-cycle schedule peaking at ``lr`` (robust: the number of
        adversarial fine-tuning passes over ``robust_examples`` clips).
    clean_fraction
        Share of training examples presented without noise (the rest in noise).
    freq_shift, time_shift, freq_mask, time_mask
        Largest cochleagram shift (channels, frames) and mask width of the
        augmentation (see ``training.augment_cochleagrams``).
    robust_examples
        Training clips of each adversarial fine-tuning pass, drawn afresh each pass
        (half of each batch attacked; clean or in noise as in standard training);
        at most the corpus's training clips (3,200 for ``bundled:words``).
    """

    name: str
    arch: str
    seed: int
    robust: bool = False
    epochs: int = 24
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    clean_fraction: float = 0.25
    freq_shift: int = 3
    time_shift: int = 15
    freq_mask: int = 6
    time_mask: int = 20
    robust_examples: int = 0

    @property
    def study_layers(self) -> tuple[str, str, str]:
        """Early, middle and late layer for studies."""
        return WORD_STUDY_LAYERS[self.arch]

    @property
    def base(self) -> str | None:
        """The standard model a robust one is fine-tuned from."""
        return f"word_{self.arch}_s{self.seed}" if self.robust else None

    def hyper_parameters(self) -> dict:
        """Everything that determines the trained weights (for the manifest)."""
        params = asdict(self)
        del params["name"]
        return params


WORD_SEEDS = (0, 1, 2)


def _make_specs() -> dict[str, WordSpec]:
    specs = {}
    for arch in ("cnn", "resnet"):
        for seed in WORD_SEEDS:
            name = f"word_{arch}_s{seed}"
            specs[name] = WordSpec(name=name, arch=arch, seed=seed)
        name = f"word_{arch}_robust_s0"
        specs[name] = WordSpec(
            name=name, arch=arch, seed=0, robust=True, epochs=2, lr=1e-3, robust_examples=3200
        )
    return specs


WORD_SPECS: dict[str, WordSpec] = _make_specs()
"""Every word model, by name."""
