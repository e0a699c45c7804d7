"""Real bundled models, zoo sources (timm, torchvision, user files) offline, safe loading."""

from __future__ import annotations

import textwrap

import pytest
import torch

from metamers.errors import ModelError
from metamers.models import load_model, registered_models
from metamers.models.efficientnet_lite import lite_weights_path, timm_state_dict_from_lite
from metamers.stimuli import resolve_stimuli


def _top1(model, ids):
    stimuli = resolve_stimuli("bundled:photos").select(ids)
    ((_, x),) = list(stimuli.batches(model.input_shape, len(ids)))
    with torch.inference_mode():
        return [model.class_names[i] for i in model(x).argmax(1)]


def test_lite0_recognises_espresso_and_cat(lite0):
    coffee, chelsea = _top1(lite0, ["coffee", "chelsea"])
    assert coffee == "espresso"
    assert chelsea in {"tabby", "tiger cat", "Egyptian cat"}


@pytest.mark.parametrize("name,size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_lite1_lite2_are_trained(name, size):
    model = load_model(name)
    assert model.input_shape == (3, size, size)
    assert _top1(model, ["coffee"]) == ["espresso"]


def test_registry_lists_bundled_models_offline():
    entries = {e.name: e for e in registered_models()}
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert entries[name].offline()


def test_unknown_model_suggests_names():
    with pytest.raises(ModelError, match="did you mean efficientnet_lite0"):
        load_model("efficientnet_lite0x")


def test_timm_hub_path_with_local_weights(tmp_path, lite0):
    """The timm: loader (used online with hub weights) works offline with a local weights file."""
    import timm

    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    state = torch.load(lite_weights_path("efficientnet_lite0"), weights_only=True)
    path = tmp_path / "lite0.pth"
    torch.save(timm_state_dict_from_lite(state, target), path)
    model = load_model("timm:tf_efficientnet_lite0", weights=str(path))
    assert model.input_shape == (3, 224, 224)
    x = lite0.example_input(2)
    with torch.inference_mode():
        # timm's config for this model normalises with mean=std=0.5, like the bundled one.
        torch.testing.assert_close(model(x), lite0(x), atol=1e-4, rtol=1e-4)


def test_timm_offline_pretrained_gives_clear_error():
    with pytest.raises(ModelError, match="cannot fetch pretrained weights.*--random-weights"):
        load_model("timm:resnet18")


def test_torchvision_random_weights_and_bad_weights(tmp_path):
    model = load_model("torchvision:resnet18", random_weights=True)
    assert model.input_shape == (3, 224, 224) and "layer4" in model.layer_names()
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(ModelError, match="do not fit"):
        load_model("torchvision:resnet18", weights=str(bad))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "timm:resnet18"])
def test_random_weights_are_seeded_and_leave_the_global_rng_alone(name):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = load_model(name, random_weights=True)
    assert torch.equal(torch.rand(3), expected_next)
    assert load_model(name, random_weights=True).fingerprint() == first.fingerprint()
    assert load_model(name, random_weights=True, seed=1).fingerprint() != first.fingerprint()


def test_weights_file_must_be_safe(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ModelError, match="safely"):
        load_model("torchvision:resnet18", weights=str(path))


USER_MODEL = textwrap.dedent(
    """
    from torch import nn
    from metamers.models import Normalize, PixelModel

    def build_model(pretrained: bool = True):
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        net(__import__("torch").zeros(1, 3, 16, 16))
        return PixelModel(net, name="user", input_shape=(3, 16, 16),
                          preprocess=Normalize([0.5] * 3, [0.5] * 3))
    """
)


def test_file_model_requires_trust(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(USER_MODEL)
    with pytest.raises(ModelError, match="--trust-code"):
        load_model(f"file:{path}")
    model = load_model(f"file:{path}", trust_code=True)
    assert model.source == "file" and model.layer_names()[:2] == ["0", "1"]


def test_file_model_must_return_pixel_model(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(
        "from torch import nn\ndef build_model(pretrained=True):\n    return nn.Identity()\n"
    )
    with pytest.raises(ModelError, match="PixelModel"):
        load_model(f"file:{path}", trust_code=True)
