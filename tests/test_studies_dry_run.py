"""``metamers run --dry-run`` checks what it can without computing (issue 15).

Models and their layer names (with the closest names), the reference stimuli
and the null's pool against what each task needs; every problem is one
``error:`` line, the exit status is 2 and nothing is run.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from metamers.cli.app import main
from metamers.studies import load_study
from metamers.studies.planner import check_study
from studies_support import tiny_study, write_study


@pytest.fixture(autouse=True)
def _private_null_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))


def dry_run(path, monkeypatch, capsys) -> tuple[int, list[str], str]:
    monkeypatch.setattr(sys, "argv", ["metamers", "run", str(path), "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err.strip().splitlines(), captured.out


def test_a_good_study_passes_the_checks(tmp_path):
    assert check_study(load_study(write_study(tmp_path, tiny_study(tmp_path)))) == []


def test_a_bad_layer_name_is_one_line_with_the_closest_names(tmp_path, monkeypatch, capsys):
    study = tiny_study(tmp_path)
    study["models"]["generators"][0]["layers"] = ["conv1", "relu9"]
    code, errors, out = dry_run(write_study(tmp_path, study), monkeypatch, capsys)
    assert code == 2 and len(errors) == 1, errors
    assert errors[0].startswith(
        "error: study.yaml: models.generators[0].layers: unknown layer 'relu9' for model file:"
    )
    assert "did you mean relu2, relu1?" in errors[0]
    assert "wave" not in out  # no plan printed
    assert not (tmp_path / "out").exists()  # nothing run


def test_two_stimuli_and_a_comparison_are_refused(tmp_path, monkeypatch, capsys):
    study = tiny_study(tmp_path, stimuli={"limit": 2}, evaluation={"similarity": ["cka", "rsa"]})
    code, errors, _ = dry_run(write_study(tmp_path, study), monkeypatch, capsys)
    assert code == 2
    assert errors == [
        "error: study.yaml: evaluation.similarity: a comparison (cka, rsa) needs at least 3 "
        "reference stimuli, the study has 2; give more stimuli or set `similarity: []`"
    ]
    assert not (tmp_path / "out").exists()


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch, capsys):
    photo = tmp_path / "one"
    photo.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo / "only.png")
    study = tiny_study(
        tmp_path,
        stimuli={"limit": 1},
        null={"stimuli": str(photo)},
        evaluation={"similarity": ["rsa"]},
    )
    study["models"]["generators"][0]["layers"] = ["conv9"]
    study["models"]["observers"].append({"name": "mnist_cnn_s9", "layers": ["relu1"]})
    code, errors, _ = dry_run(write_study(tmp_path, study), monkeypatch, capsys)
    assert code == 2 and all(line.startswith("error: study.yaml: ") for line in errors)
    text = "\n".join(errors)
    assert "models.generators[0].layers: unknown layer 'conv9'" in text
    assert "models.observers[1].name: unknown model 'mnist_cnn_s9'; did you mean" in text
    assert "evaluation.similarity: a comparison (rsa) needs at least 3" in text
    assert "null.stimuli: a null needs at least 2 different stimuli" in text
    assert len(errors) == 4, errors
