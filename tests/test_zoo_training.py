"""Zoo training reproduces the committed model; the PGD attack does what it says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("mlxtend")

from metamers.models.zoo import (
    ZOO_SPECS,
    PGDConfig,
    build_net,
    load_zoo_model,
    pgd_attack,
    read_manifest,
    train_zoo,
)
from metamers.models.zoo.training import random_shift
from metamers.stimuli.mnist import mnist_split


@pytest.mark.slow
def test_smallest_model_retrains_to_its_committed_accuracy(tmp_path):
    spec = ZOO_SPECS["mnist_mlp_s0"]
    committed = read_manifest()["models"][spec.name]
    (result,) = train_zoo([spec], tmp_path)
    assert result.accuracy == pytest.approx(committed["accuracy"], abs=0.01)
    assert result.within(0.01)
    retrained = load_zoo_model(spec.name, directory=tmp_path)
    assert retrained.fingerprint() != load_zoo_model(spec.name, random_weights=True).fingerprint()
    (again,) = train_zoo([spec], tmp_path)  # resumable: the finished model is not retrained
    assert again.skipped and again.accuracy == result.accuracy


def test_pgd_stays_in_budget_and_range_and_raises_the_loss():
    split = mnist_split()
    images, targets = split.held_out_images[:64], split.held_out_targets[:64]
    model = load_zoo_model("mnist_cnn_s0")
    config = PGDConfig(epsilon=0.1, steps=10, step_size=0.02)
    adversarial = pgd_attack(
        model, images, targets, config, generator=torch.Generator().manual_seed(0)
    )
    assert float((adversarial - images).abs().max()) <= 0.1 + 1e-6
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
    with torch.no_grad():
        clean_loss = nn.functional.cross_entropy(model(images), targets)
        attacked_loss = nn.functional.cross_entropy(model(adversarial), targets)
    assert attacked_loss > 5 * clean_loss


def test_random_shift_is_seeded_and_keeps_centred_digits_whole():
    images = mnist_split().train_images[:16]
    first = random_shift(images, 2, torch.Generator().manual_seed(3))
    second = random_shift(images, 2, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert not torch.equal(first, images)
    # MNIST digits sit inside a 20×20 box, so a 2-pixel shift loses no ink.
    assert torch.allclose(first.sum((1, 2, 3)), images.sum((1, 2, 3)), atol=1e-4)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet", "vit"])
def test_architectures_map_digits_to_ten_logits(arch):
    net = build_net(arch).eval()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert relus and len({id(m) for m in relus}) == len(relus)


def test_saving_unchanged_weights_keeps_the_file_and_its_checksum(tmp_path):
    from metamers.models.zoo.manifest import save_zoo_weights

    spec = ZOO_SPECS["mnist_mlp_s0"]
    net = build_net(spec.arch)
    record = {"accuracy": 0.1}
    first = save_zoo_weights(tmp_path, spec, net, record)
    stored = (tmp_path / first["file"]).read_bytes()
    for _ in range(5):  # safetensors writes its header in no fixed order
        assert save_zoo_weights(tmp_path, spec, net, record)["sha256"] == first["sha256"]
        assert (tmp_path / first["file"]).read_bytes() == stored
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    assert save_zoo_weights(tmp_path, spec, net, record)["sha256"] != first["sha256"]
