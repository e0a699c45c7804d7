"""A study with a ``brain:`` section: a model and its permuted control mapped, in the report."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from metamers.errors import ConfigError
from metamers.report import build_report
from metamers.studies import load_study, run_study
from metamers.studies.config import parse_study
from metamers.studies.planner import plan_study
from studies_support import write_tiny_model
from test_brain_cli import MODEL, write_planted_nh2015


def _study(root, **brain) -> dict:
    return {
        "name": "brainy",
        "output": str(root / "study"),
        "models": {  # metamers of a tiny image model; the audio model is only mapped
            "generators": [
                {
                    "name": f"file:{write_tiny_model(root)}",
                    "label": "image",
                    "layers": ["relu1"],
                    "trust_code": True,
                }
            ],
            "observers": [
                {"name": f"file:{MODEL}", "label": "tiny", "layers": ["relu"], "trust_code": True}
            ],
        },
        "stimuli": {"spec": "bundled:photos", "limit": 1},
        "synthesis": {"preset": "fast", "max_steps": 2},
        "null": {"enabled": False},
        "evaluation": {
            "similarity": [],
            "recognisability": False,
            "representation_test": False,
            "transfer": False,
        },
        "brain": {
            "models": ["tiny"],
            "responses": "NH2015",
            "stimuli": "sounds",
            "roi_table": "rois.csv",
            "roi": "roi_label_general",
            "pool": "time_mean",
            "permuted": [0],
            **brain,
        },
    }


def test_study_maps_a_model_and_its_permuted_control(tmp_path):
    root = write_planted_nh2015(tmp_path)
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(_study(root)))
    study = load_study(path)
    brain_tasks = plan_study(study).of_kind("brain")
    assert [t.label for t in brain_tasks] == ["brain tiny", "brain tiny permuted0"]
    summary = run_study(study, reporter=build_report)
    assert not summary.failed
    tables = root / "study" / "report" / "tables"
    mapped = pd.read_parquet(tables / "brain_summary.parquet")
    assert list(mapped["model"]) == ["tiny", "tiny:permuted0"]
    assert set(pd.read_parquet(tables / "brain_rsa.parquet")["model"]) == {"tiny", "tiny:permuted0"}
    page = (root / "study" / "report" / "index.html").read_text()
    assert "Brain mapping" in page
    again = run_study(load_study(path), reporter=build_report)
    assert {t.key for t in brain_tasks} <= set(again.reused)  # nothing mapped twice


def test_brain_section_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="brain.models: no study model 'other'"):
        parse_study(_study(tmp_path, models=["other"]))
    with pytest.raises(ConfigError, match="brain.preset"):
        parse_study(_study(tmp_path, preset="kell2018"))
    with pytest.raises(ConfigError, match="seed is listed twice"):
        parse_study(_study(tmp_path, permuted=[1, 1]))
