"""Named layers, early exit, fake-ReLU and the model contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metamers.errors import LayerError, ModelError
from metamers.models import LOGITS, Normalize, PixelModel, is_relu_layer, validate_model

from conftest import make_tiny_model


def test_activations_equal_direct_forward(tiny_model):
    x = tiny_model.example_input(4)
    acts = tiny_model.activations(x, ["conv1", "relu2", LOGITS])
    net = tiny_model.net
    h = net.conv1(tiny_model.preprocess(x))
    torch.testing.assert_close(acts["conv1"], h)
    h2 = net.relu2(net.conv2(net.relu1(h)))
    torch.testing.assert_close(acts["relu2"], h2)
    torch.testing.assert_close(acts[LOGITS], tiny_model(x))


def test_forward_stops_after_deepest_layer(tiny_model):
    calls = []
    tiny_model.net.fc.register_forward_hook(lambda *a: calls.append("fc"))
    tiny_model.net.conv2.register_forward_hook(lambda *a: calls.append("conv2"))
    tiny_model.activations(tiny_model.example_input(), ["conv1", "conv2"])
    assert calls == ["conv2"]
    tiny_model.activations(tiny_model.example_input(), [LOGITS])
    assert calls[-1] == "fc"


def test_unknown_layer_suggests_close_matches(tiny_model):
    with pytest.raises(LayerError, match=r"did you mean conv1"):
        tiny_model.activations(tiny_model.example_input(), ["convv1"])


def test_fake_relu_gradient_is_identity():
    relu = nn.ReLU()
    net = nn.Sequential()
    net.add_module("act", relu)
    model = PixelModel(net, name="act", input_shape=(4,), input_range=(-1.0, 1.0))
    x = torch.tensor([[-0.5, -0.1, 0.2, 0.7]], requires_grad=True)
    model.activations(x, ["act"], fake_relu=["act"])["act"].sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))
    x.grad = None
    model.activations(x, ["act"])["act"].sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


def test_fake_relu_refused_on_non_activation(tiny_model):
    with pytest.raises(LayerError, match="ReLU-like"):
        tiny_model.activations(tiny_model.example_input(), ["conv1"], fake_relu=["conv1"])
    assert is_relu_layer(tiny_model, "relu1") and not is_relu_layer(tiny_model, "conv1")


def test_inplace_activations_are_disabled():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
    model = PixelModel(net, name="inplace", input_shape=(3, 8, 8))
    assert net[1].inplace is False
    acts = model.activations(model.example_input(), ["0", "1"])
    assert (acts["0"] < 0).any(), "pre-activation must not be overwritten by an in-place ReLU"


def test_contract_accepts_tiny_model(tiny_model):
    assert validate_model(tiny_model) is tiny_model


def test_contract_rejects_non_differentiable_model():
    class Argmax(nn.Module):
        def forward(self, x):
            return x.flatten(1).argmax(1, keepdim=True).float()

    model = PixelModel(Argmax(), name="argmax", input_shape=(3, 4, 4))
    with pytest.raises(ModelError, match="not differentiable"):
        validate_model(model)


def test_contract_rejects_plain_module():
    with pytest.raises(ModelError, match="wrap your network"):
        validate_model(nn.Linear(3, 3))


def test_model_stays_in_eval_mode(tiny_model):
    with pytest.raises(RuntimeError, match="frozen"):
        tiny_model.train()
    assert not any(p.requires_grad for p in tiny_model.parameters())


def test_fingerprint_tracks_weights():
    a, b = make_tiny_model(seed=0), make_tiny_model(seed=0)
    assert a.fingerprint() == b.fingerprint()
    c = make_tiny_model(seed=1)
    assert a.fingerprint() != c.fingerprint()


def test_normalize_is_first_stage():
    model = PixelModel(
        nn.Identity(), name="id", input_shape=(3, 2, 2), preprocess=Normalize([0.5] * 3, [0.5] * 3)
    )
    torch.testing.assert_close(model(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))
