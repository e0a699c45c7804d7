"""Study files: validation with one-line errors that name the key path."""

from __future__ import annotations

import pytest

from metamers.errors import ConfigError
from metamers.studies import bundled_study_names, load_bundled_study, load_study
from studies_support import tiny_study, write_study


def _error(tmp_path, study) -> str:
    path = write_study(tmp_path, study)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_its_path_and_a_close_match(tmp_path):
    study = tiny_study(tmp_path)
    study["stimuli"]["limt"] = 2
    assert _error(tmp_path, study) == "study.yaml: stimuli.limt: unknown key (did you mean limit?)"


def test_unknown_key_inside_a_list_item(tmp_path):
    study = tiny_study(tmp_path)
    study["models"]["generators"][0]["layer"] = ["conv1"]
    message = _error(tmp_path, study)
    assert message.startswith("study.yaml: models.generators[0].layer: unknown key")
    assert "did you mean layers?" in message


def test_unknown_top_level_key(tmp_path):
    study = tiny_study(tmp_path)
    study["evaluaton"] = {}
    assert "evaluaton: unknown key (did you mean evaluation?)" in _error(tmp_path, study)


def test_bad_value_names_key_and_value(tmp_path):
    study = tiny_study(tmp_path)
    study["stimuli"]["limit"] = 0
    message = _error(tmp_path, study)
    assert message.startswith("study.yaml: stimuli.limit: ")
    assert "got 0" in message


def test_bad_choice_and_missing_key(tmp_path):
    study = tiny_study(tmp_path)
    study["executor"] = {"kind": "kubernetes"}
    assert "executor.kind:" in _error(tmp_path, study)
    del study["executor"]
    del study["models"]
    assert _error(tmp_path, study) == "study.yaml: models: missing key"


def test_duplicate_layers_and_models(tmp_path):
    study = tiny_study(tmp_path)
    study["models"]["generators"][0]["layers"] = ["conv1", "conv1"]
    assert "layer listed twice: conv1" in _error(tmp_path, study)
    study = tiny_study(tmp_path)
    study["models"]["observers"][0]["label"] = "tiny_a"
    assert "model listed twice: tiny_a" in _error(tmp_path, study)


def test_yaml_syntax_error_gives_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodels: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+: invalid YAML"):
        load_study(path)


def test_paths_resolve_against_the_study_file(tmp_path):
    (tmp_path / "sub").mkdir()
    study = tiny_study(tmp_path / "sub")
    study["models"]["generators"][0]["name"] = "file:tiny_model.py"
    config = load_study(write_study(tmp_path / "sub", study))
    assert config.models.generators[0].name == f"file:{(tmp_path / 'sub' / 'tiny_model.py')}"
    assert config.null.pairs == 40  # the bare YAML key `null:` is read as the null section


def test_bundled_default_study_is_valid():
    assert "default" in bundled_study_names()
    study = load_bundled_study()
    assert [m.name for m in study.models.generators] == ["efficientnet_lite0"]
    assert len(study.models.generators[0].layers) == 3
    assert {m.display for m in study.models.observers} == {"lite1", "lite2"}
    with pytest.raises(ConfigError, match="did you mean default"):
        load_bundled_study("defualt")


def test_with_updates_validates_and_digest_ignores_executor(tmp_path):
    study = load_study(write_study(tmp_path, tiny_study(tmp_path)))
    moved = study.with_updates(**{"executor.kind": "ray", "output": str(tmp_path / "elsewhere")})
    assert moved.executor.kind == "ray"
    assert moved.digest() == study.digest()
    assert study.with_updates(seed=1).digest() != study.digest()
    with pytest.raises(ConfigError, match="executor.kind"):
        study.with_updates(**{"executor.kind": "nope"})


def test_unknown_synthesis_key_is_refused_in_one_line(tmp_path):
    study = tiny_study(tmp_path)
    study["synthesis"]["max_stpes"] = 20
    message = _error(tmp_path, study)
    assert message.startswith("study.yaml: synthesis.max_stpes: unknown key")
    assert "did you mean max_steps?" in message


def test_synthesis_preset_and_values_are_checked_against_the_settings(tmp_path):
    study = tiny_study(tmp_path)
    study["synthesis"]["preset"] = "fastest"
    assert "synthesis.preset: unknown preset 'fastest'" in _error(tmp_path, study)
    study = tiny_study(tmp_path)
    study["synthesis"]["lr"] = -1.0
    message = _error(tmp_path, study)
    assert message.startswith("study.yaml: synthesis.lr: ")
    assert "got -1.0" in message


def test_synthesis_resolves_to_the_real_settings(tmp_path):
    from metamers.synthesis.settings import get_preset

    study = load_study(write_study(tmp_path, tiny_study(tmp_path)))
    expected = get_preset("fast", max_steps=20, lr=0.05).model_dump(mode="json")
    assert study.synthesis.resolved() == expected
