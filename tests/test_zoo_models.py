"""The committed MNIST zoo: loading, contract, recorded accuracy, robustness, registry, CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("mlxtend")

from metamers.errors import ModelError
from metamers.models import is_relu_layer, load_model, registered_models, validate_model
from metamers.models.zoo import (
    EVAL_ATTACK,
    ZOO_SPECS,
    committed_dir,
    load_zoo_model,
    read_manifest,
    resolve_names,
    robust_accuracy,
)
from metamers.stimuli import resolve_stimuli
from metamers.stimuli.mnist import mnist_split, split_indices

MANIFEST = read_manifest()
COMMITTED = sorted(MANIFEST["models"])


@pytest.fixture(scope="module")
def mnist_set():
    return resolve_stimuli("bundled:mnist")


@pytest.fixture(scope="module")
def held_out(mnist_set):
    images = torch.cat([x for _, x in mnist_set.batches((1, 28, 28), 500)])
    targets = torch.tensor([s.target for s in mnist_set])
    return images, targets


def test_bundled_mnist_is_the_labelled_held_out_split(mnist_set):
    assert len(mnist_set) == 1000
    assert mnist_set.label_space == "mnist"
    assert mnist_set.ids[:2] == ["mnist-0000", "mnist-0500"]
    assert [s.label for s in mnist_set[:10]] == [str(d) for d in range(10)]
    assert all(s.label == str(s.target) for s in mnist_set)
    assert np.bincount([s.target for s in mnist_set]).tolist() == [100] * 10
    image = mnist_set.load(mnist_set[0], (1, 28, 28))
    assert image.shape == (1, 28, 28)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert float(image.max()) > 0.9  # a real digit, not a blank


def test_split_is_disjoint_and_covers_the_dataset():
    train, held = split_indices()
    assert len(train) == 4000 and len(held) == 1000
    assert not set(train) & set(held)
    assert sorted([*train, *held]) == list(range(5000))
    split = mnist_split()
    assert torch.equal(
        split.held_out_targets, torch.tensor([s.target for s in resolve_stimuli("bundled:mnist")])
    )


def test_every_zoo_model_is_committed_small_and_hashed():
    assert set(COMMITTED) == set(ZOO_SPECS)
    for name, entry in MANIFEST["models"].items():
        path = committed_dir() / entry["file"]
        assert path.stat().st_size <= 1_000_000, name
        assert len(entry["study_layers"]) == 3
        assert entry["seed"] == ZOO_SPECS[name].seed


@pytest.mark.parametrize("name", COMMITTED)
def test_zoo_model_loads_validates_and_reaches_recorded_accuracy(name, held_out):
    model = load_model(name)
    validate_model(model)
    assert model.input_shape == (1, 28, 28)
    assert model.label_space == "mnist" and model.class_names == tuple("0123456789")
    assert model.source == "zoo"
    model.check_layers(MANIFEST["models"][name]["study_layers"])
    images, targets = held_out
    with torch.inference_mode():
        predictions = torch.cat([model(x).argmax(1) for x in images.split(250)])
    measured = float((predictions == targets).float().mean())
    assert measured == pytest.approx(MANIFEST["models"][name]["accuracy"], abs=0.005)


def test_study_layers_of_convnets_take_fake_relu():
    for name in ("mnist_mlp_s0", "mnist_cnn_s0", "mnist_resnet_s0"):
        model = load_zoo_model(name)
        for layer in ZOO_SPECS[name].study_layers:
            assert is_relu_layer(model, layer), (name, layer)


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_robust_models_beat_standard_ones_under_attack(arch, held_out):
    images, targets = held_out[0][:100], held_out[1][:100]
    standard = robust_accuracy(load_zoo_model(f"mnist_{arch}_s0"), images, targets, EVAL_ATTACK)
    robust = robust_accuracy(
        load_zoo_model(f"mnist_{arch}_robust_s0"), images, targets, EVAL_ATTACK
    )
    assert robust > standard + 0.2
    for seed in (0, 1, 2):
        entries = MANIFEST["models"]
        assert (
            entries[f"mnist_{arch}_robust_s{seed}"]["robust_accuracy"]
            > entries[f"mnist_{arch}_s{seed}"]["robust_accuracy"]
        )


def test_corrupted_weights_are_refused(tmp_path):
    for name in ("zoo.json", "mnist_mlp_s0.safetensors"):
        shutil.copy(committed_dir() / name, tmp_path / name)
    path = tmp_path / "mnist_mlp_s0.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_zoo_model("mnist_mlp_s0", directory=tmp_path)
    with pytest.raises(ModelError, match="no weights"):
        load_zoo_model("mnist_cnn_s0", directory=tmp_path)


def test_unknown_zoo_names_are_refused_with_the_known_ones():
    with pytest.raises(ModelError, match="mnist_cnn_s0"):
        resolve_names(["mnist_cnn_s9"])


def test_registry_and_cli_list_zoo_models_with_accuracy():
    entries = {e.name: e for e in registered_models()}
    assert set(ZOO_SPECS) <= set(entries)
    info = entries["mnist_cnn_robust_s0"].info()
    assert set(info) >= {"accuracy", "robust_accuracy"}
    from metamers.cli.app import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "mnist_resnet_robust_s2" in result.output
    assert "robust_accuracy=" in result.output
    result = CliRunner().invoke(app, ["zoo", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "mnist_vit_s1" in result.output and "block2.relu2" in result.output
