"""The model registry: built-ins registered once and first, user entries after, errors surface."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from metamers.errors import ModelError
from metamers.models import ModelEntry, load_model, register_model, registered_models, registry
from metamers.models.words import WORD_SPECS
from metamers.models.zoo import ZOO_SPECS

from conftest import make_tiny_model

BUILTIN = {
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    *ZOO_SPECS,
    *WORD_SPECS,
    "silero_vad",
}


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry as a new process has it: nothing registered, built-ins not loaded yet."""
    monkeypatch.setattr(registry, "_BUILTIN", None)
    monkeypatch.setattr(registry, "_USER", {})


def _tiny_entry(name: str, seed: int = 0) -> ModelEntry:
    return ModelEntry(
        name, lambda random_weights=False: make_tiny_model(seed, name), "test", "tiny"
    )


def test_registering_a_model_first_keeps_every_builtin(fresh_registry):
    register_model(_tiny_entry("my_tiny"))
    names = {e.name for e in registered_models()}
    assert names == BUILTIN | {"my_tiny"}
    model = load_model("mnist_cnn_s0")
    assert model.input_shape == (1, 28, 28)
    assert load_model("my_tiny").name == "my_tiny"


def test_register_then_load_builtin_in_a_fresh_process():
    code = textwrap.dedent(
        """
        from metamers.models import ModelEntry, load_model, register_model, registered_models
        register_model(ModelEntry("mine", lambda random_weights=False: None, "test", "mine"))
        print(len(registered_models()), load_model("mnist_cnn_s0").input_shape)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(BUILTIN) + 1), "(1,", "28,", "28)"]


def test_a_builtin_name_is_refused_in_one_line(fresh_registry):
    with pytest.raises(ModelError) as info:
        register_model(_tiny_entry("efficientnet_lite0"))
    assert "\n" not in str(info.value)
    assert "'efficientnet_lite0' is built in" in str(info.value)
    with pytest.raises(ModelError, match="'mnist_cnn_s0' is built in"):
        register_model(_tiny_entry("mnist_cnn_s0"))
    sources = {e.source for e in registered_models() if e.name in BUILTIN}
    assert sources == {"bundled", "zoo", "pretrained"}


def test_a_source_like_name_is_refused(fresh_registry):
    with pytest.raises(ModelError, match="contains ':'"):
        register_model(_tiny_entry("timm:mine"))


def test_registering_your_own_name_again_replaces_it(fresh_registry):
    register_model(_tiny_entry("again", seed=0))
    first = load_model("again").net.conv1.weight.detach().clone()
    register_model(_tiny_entry("again", seed=1))
    second = load_model("again").net.conv1.weight
    assert not (first == second).all()
    assert [e.name for e in registered_models()].count("again") == 1


def test_a_broken_builtin_import_raises_and_is_retried(fresh_registry, monkeypatch):
    def broken():
        raise ImportError("simulated broken zoo module")

    monkeypatch.setattr(registry, "_zoo_entries", broken)
    with pytest.raises(ImportError, match="simulated broken zoo"):
        registered_models()
    with pytest.raises(ImportError, match="simulated broken zoo"):
        register_model(_tiny_entry("mine"))
    with pytest.raises(ImportError, match="simulated broken zoo"):
        load_model("efficientnet_lite0")
    assert registry._BUILTIN is None  # nothing half-registered
    monkeypatch.undo()
    monkeypatch.setattr(registry, "_BUILTIN", None)
    assert {e.name for e in registered_models()} >= BUILTIN


def test_a_broken_zoo_module_surfaces_in_a_fresh_process():
    code = textwrap.dedent(
        """
        import importlib.abc
        import sys

        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "metamers.models.zoo.training":
                    raise ImportError("simulated broken zoo module")

        sys.meta_path.insert(0, Broken())
        from metamers.models import registered_models

        try:
            registered_models()
        except ImportError as exc:
            print("raised:", exc)
        else:
            print("silently loaded", len(registered_models()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "raised: simulated broken zoo module"
