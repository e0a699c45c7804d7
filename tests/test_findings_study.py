"""Ensemble generators and synthesis conditions in studies, and the findings study end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from metamers.errors import ConfigError
from metamers.report import build_report
from metamers.studies import load_study, parse_study, plan_study, run_study
from metamers.studies.planner import check_study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ENSEMBLE = {
    "label": "ens",
    "ensemble": [
        {"name": "mnist_cnn_s0", "layers": ["relu1", "relu3"]},
        {"name": "mnist_mlp_s0", "layers": ["relu1", "relu3"]},
    ],
}


def _study(generators: list, **extra) -> dict:
    return {
        "name": "t",
        "models": {
            "generators": generators,
            "observers": [{"name": "mnist_cnn_s1", "layers": ["relu1"]}],
        },
        "stimuli": {"spec": "bundled:mnist", "limit": 3},
        "synthesis": {"preset": "fast", "max_steps": 5},
        "null": {"pairs": 20, "stimuli": "bundled:mnist"},
        "evaluation": {"similarity": []},
        **extra,
    }


PLAIN = {"name": "mnist_cnn_s0", "layers": ["relu1"]}


def test_a_condition_and_an_ensemble_are_planned_with_their_labels():
    condition = {**PLAIN, "label": "pink", "synthesis": {"init": "pink"}}
    plan = plan_study(parse_study(_study([PLAIN, condition, ENSEMBLE])))
    generate = {t.label: t for t in plan.of_kind("generate")}
    assert "label" not in generate["generate mnist_cnn_s0 relu1"].settings
    pink = generate["generate pink relu1"].settings
    assert pink["label"] == "pink" and pink["synthesis"]["init"] == "pink"
    ens = generate["generate ens relu3"].settings
    assert ens["label"] == "ens" and ens["layers"] == ["relu3", "relu3"]
    assert [m["name"] for m in ens["models"]] == ["mnist_cnn_s0", "mnist_mlp_s0"]
    validate = next(t for t in plan.of_kind("validate") if t.label == "validate ens relu3")
    nulls = [plan.tasks[k] for k in validate.inputs if plan.tasks[k].kind == "null"]
    assert sorted(n.settings["model"]["name"] for n in nulls) == ["mnist_cnn_s0", "mnist_mlp_s0"]
    (evaluate,) = plan.of_kind("evaluate")
    assert [g["name"] for g in evaluate.settings["generators"]] == ["mnist_cnn_s0", "mnist_mlp_s0"]


def test_adding_a_condition_keeps_the_other_tasks_keys():
    before = plan_study(parse_study(_study([PLAIN])))
    condition = {**PLAIN, "label": "pink", "synthesis": {"init": "pink"}}
    after = plan_study(parse_study(_study([PLAIN, condition])))
    kept = {t.label: t.key for t in before if t.kind in ("generate", "validate", "null")}
    assert kept.items() <= {t.label: t.key for t in after}.items()


@pytest.mark.parametrize(
    ("generators", "message"),
    [
        (
            [{**PLAIN, "label": "c", "synthesis": {"stepz": 3}}],
            "models.generators[0].synthesis.stepz: unknown key (did you mean max_steps?)",
        ),
        (
            [{**PLAIN, "label": "c", "synthesis": {"init": "stimulus"}}],
            "init='stimulus' needs init_source",
        ),
        (
            [
                {
                    **ENSEMBLE,
                    "ensemble": [ENSEMBLE["ensemble"][0], {**PLAIN, "name": "mnist_mlp_s0"}],
                }
            ],
            "every member needs the same number of layers",
        ),
        (
            [{**ENSEMBLE, "ensemble": [{**PLAIN, "layerz": ["relu1"]}, PLAIN]}],
            "models.generators[0].ensemble[0].layerz: unknown key (did you mean layers?)",
        ),
        (
            [{**ENSEMBLE, "labl": "x"}],
            "models.generators[0].labl: unknown key (did you mean label?)",
        ),
        ([{**PLAIN, "layerz": ["relu1"]}], "models.generators[0].layerz: unknown key"),
    ],
)
def test_bad_generators_get_one_line_errors(generators, message):
    with pytest.raises(ConfigError) as caught:
        parse_study(_study(generators))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_observer_cannot_have_synthesis_settings():
    study = _study([PLAIN])
    study["models"]["observers"][0]["synthesis"] = {"init": "pink"}
    with pytest.raises(ConfigError, match=r"observers\[0\]\.synthesis: only a generator"):
        parse_study(study)


def test_dry_run_names_an_ensemble_members_unknown_layer():
    bad = {
        **ENSEMBLE,
        "ensemble": [
            ENSEMBLE["ensemble"][0],
            {"name": "mnist_mlp_s0", "layers": ["relu1", "relu9"]},
        ],
    }
    problems = check_study(parse_study(_study([bad])))
    assert any(
        p.startswith("models.generators[0].ensemble[1].layers: unknown layer 'relu9'")
        for p in problems
    )


def test_init_source_is_relative_to_the_study_file(tmp_path):
    (tmp_path / "start.png").write_bytes((EXAMPLES / "start_digit_3.png").read_bytes())
    condition = {
        **PLAIN,
        "label": "c",
        "synthesis": {"init": "stimulus", "init_source": "start.png"},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study([condition])))
    study = load_study(path)
    assert study.models.generators[0].synthesis["init_source"] == str(tmp_path / "start.png")


def test_findings_quick_study_end_to_end(tmp_path):
    study = load_study(EXAMPLES / "findings_quick.yaml").with_updates(output=str(tmp_path / "s"))
    summary = run_study(study, reporter=build_report)
    assert not summary.failed
    tables = tmp_path / "s" / "report" / "tables"
    acceptance = pd.read_parquet(tables / "acceptance.parquet")
    ensemble = acceptance[acceptance["generator"] == "ensemble"]
    assert set(ensemble["model"]) == {"mnist_cnn_s0", "mnist_resnet_s0", "mnist_vit_s0"}
    assert ensemble.groupby("result_index")["model"].nunique().eq(3).all()
    # recognisability judges exactly the accepted metamers of each generator, even where
    # two generators (a model and its conditions) share a model and layer names
    accepted = acceptance[acceptance["accepted_all_models"]]
    accepted = set(
        zip(accepted["generator"], accepted["generation_layer"], accepted["stimulus_id"])
    )
    recognition = pd.read_parquet(tables / "recognition.parquet")
    judged = set(zip(recognition["generator"], recognition["layer"], recognition["stimulus_id"]))
    assert judged == accepted
    by_generator = {}
    for generator, layer, stimulus in accepted:
        by_generator.setdefault(generator, set()).add((layer, stimulus))
    cnn_runs = [by_generator.get(g, set()) for g in ("mnist_cnn_s0", "cnn_published_steps")]
    assert cnn_runs[0] != cnn_runs[1]  # so the check above can tell them apart
    conditions = pd.read_parquet(tables / "findings_conditions.parquet").set_index(
        ["generator", "layer"]
    )
    generators = {"mnist_cnn_s0", "cnn_pink", "cnn_digit", "cnn_blur", "cnn_published_steps"}
    assert set(conditions.index.get_level_values(0)) == generators
    # the early-layer metamers of the main condition are accepted, and a start near the
    # reference (its blur) meets the SNR criterion in fewer steps than the noise start
    assert conditions.loc[("mnist_cnn_s0", "relu1"), "accepted_fraction"] == 1.0
    blur, noise = (
        conditions.loc[(g, "relu1"), "steps_median"] for g in ("cnn_blur", "mnist_cnn_s0")
    )
    assert blur < noise
    contrasts = pd.read_parquet(tables / "findings_contrasts.parquet")
    assert set(contrasts["question"]) == {"1", "2", "3", "4", "6"}
    assert (tables / "findings_measures.parquet").is_file()
    page = (tmp_path / "s" / "report" / "index.html").read_text()
    assert "Findings" in page and "cnn_published_steps" in page
