"""Errors are also the builtins a caller would catch (``ValueError``, ``LookupError``)."""

from __future__ import annotations

import pytest

from metamers.errors import ConfigError, LayerError, MetamersError, ModelError, StimulusError
from metamers.null.cache import NullCacheError
from metamers.synthesis.storage import DamagedResult


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (StimulusError, ValueError),
        (ConfigError, ValueError),
        (DamagedResult, ValueError),
        (LayerError, LookupError),
        (LayerError, ModelError),
    ],
)
def test_errors_are_also_builtins(error, builtin):
    assert issubclass(error, MetamersError)
    assert issubclass(error, builtin)


def test_every_error_is_a_metamers_error():
    for error in (StimulusError, ConfigError, ModelError, LayerError, NullCacheError):
        assert issubclass(error, MetamersError)
    assert not issubclass(LayerError, KeyError)  # KeyError would quote its message


def test_an_unknown_layer_is_a_lookup_error_that_suggests_close_names(lite0):
    with pytest.raises(
        LookupError, match=r"unknown layer 'blocks\.9'.*did you mean blocks\."
    ) as info:
        lite0.check_layers(["blocks.9"])
    assert isinstance(info.value, LayerError)


def test_an_unknown_preset_is_a_value_error():
    from metamers.synthesis import get_preset

    with pytest.raises(ValueError, match="preset"):
        get_preset("no-such-preset")


def test_a_missing_stimulus_is_a_value_error(tmp_path):
    from metamers.stimuli.images import load_image

    with pytest.raises(ValueError, match="not found"):
        load_image(tmp_path / "absent.png")


def test_a_damaged_result_error_survives_pickling_between_processes(tmp_path):
    import pickle

    error = DamagedResult(tmp_path / "metamer.safetensors", "digest differs")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is DamagedResult and str(again) == str(error)
    assert again.path == error.path
