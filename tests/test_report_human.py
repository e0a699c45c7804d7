"""Issue 15: a "Humans and models" section when the study names a human table.

The human-comparison functions read the package's own ``recognition_summary``
table as written by the evaluate tasks (no column remapping), and a tiny study
given ``evaluation.human`` gets the section with its numbers; without it, the
evaluate tasks keep their keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamers.errors import ConfigError
from metamers.evaluation.human import correlate_with_human, other_model_recognition
from metamers.evaluation.recognition import summarize_recognition
from metamers.report import build_report
from metamers.studies import StudyStore, load_study, parse_study, run_study
from studies_support import tiny_study, write_study

LAYERS = ["conv1", "relu1", "relu2"]


def _items() -> pd.DataFrame:
    """Generator g (layers a-d) seen by itself, o1 and o2; o2 sees more stimuli."""
    rows = []
    for k, layer in enumerate("abcd"):
        for observer, count in (("g", 2), ("o1", 2), ("o2", 4)):
            for i in range(count):
                agree = float(observer == "g" or i < 4 - k)
                rows.append(
                    {"generator": "g", "layer": layer, "observer": observer,
                     "stimulus_id": f"s{i}", "agrees_with_reference": agree}
                )  # fmt: skip
    items = pd.DataFrame(rows)
    return items.assign(correct_vs_label=np.nan, correct_vs_generator=np.nan)


def test_library_reads_the_packages_recognition_summary():
    items = _items()
    summary = summarize_recognition(items, n_boot=20)
    models = other_model_recognition(summary).set_index("layer")
    assert set(models["model"]) == {"g"}
    assert (models["n_recognisers"] == 2).all()  # g on its own metamers is left out
    assert (models["score"] == "agrees_with_reference_mean").all()
    assert models.loc["a", "model_recognition"] == pytest.approx(1.0)
    assert models.loc["c", "model_recognition"] == pytest.approx((1.0 + 0.5) / 2)
    assert models.loc["a", "n_items"] == 6
    by_item = other_model_recognition(items).set_index("layer")
    assert by_item["model_recognition"].to_numpy() == pytest.approx(
        models["model_recognition"].to_numpy()
    )
    human = pd.DataFrame(
        {"model": "g", "layer": list("abcd"), "human_recognition": [0.9, 0.8, 0.4, 0.1]}
    )
    result = correlate_with_human(summary, human, n_boot=50)
    assert result.loc["spearman_rho", "estimate"] == pytest.approx(1.0)
    assert result.loc["r2", "n_conditions"] == 4
    with pytest.raises(ConfigError, match="no score column"):
        other_model_recognition(summary.drop(columns="agrees_with_reference_mean"))


def _study(folder, **evaluation):
    study = tiny_study(
        folder,
        synthesis={"max_steps": 5},
        evaluation={
            "similarity": [],
            "features": False,
            "representation_test": False,
            "transfer": False,
            "accepted_only": False,
            **evaluation,
        },
    )
    study["models"]["generators"][0]["layers"] = LAYERS
    return study


def test_a_study_with_a_human_table_reports_humans_and_models(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))
    pd.DataFrame(
        {"model": "tiny", "layer": LAYERS, "human_recognition": [0.875, 0.625, 0.125]}
    ).to_csv(tmp_path / "humans.csv", index=False)
    path = write_study(tmp_path, _study(tmp_path, human="humans.csv"))
    study = load_study(path)
    assert study.evaluation.human == str((tmp_path / "humans.csv").resolve())
    plain = parse_study(_study(tmp_path))
    assert plain.evaluation.human is None
    from metamers.studies.planner import plan_study

    keys = {t.key for t in plan_study(study) if t.kind == "evaluate"}
    assert keys == {t.key for t in plan_study(plain) if t.kind == "evaluate"}

    summary = run_study(study, reporter=build_report)
    assert not summary.failed
    page = summary.report.read_text()
    assert "<h2>Humans and models</h2>" in page
    section = page.split("<h2>Humans and models</h2>")[1].split("<h2>")[0]
    for value in ("0.875", "0.625", "0.125", "spearman_rho", "n_recognisers", "n_items"):
        assert value in section
    assert "data:image/png;base64," in section
    tables = study.output_dir / "report" / "tables"
    rows = pd.read_csv(tables / "human_vs_models.csv").set_index("layer")
    assert list(rows.index) == LAYERS and (rows["n_recognisers"] == 1).all()
    assert (rows["n_items"] == 3).all()
    correlation = pd.read_csv(tables / "human_correlation.csv").set_index("statistic")
    assert correlation.loc["r2", "n_conditions"] == 3
    with StudyStore(study.output_dir) as store:
        recognition = pd.concat(
            pd.read_parquet(store.task_dir(r) / "recognition_summary.parquet")
            for r in store.records()
            if r.kind == "evaluate"
        )
    direct = other_model_recognition(recognition).set_index("layer")
    assert direct.loc[LAYERS, "model_recognition"].to_numpy() == pytest.approx(
        rows["model_recognition"].to_numpy()
    )


def test_a_missing_human_table_is_refused_at_parse_time(tmp_path):
    path = write_study(tmp_path, _study(tmp_path, human="nowhere.csv"))
    with pytest.raises(ConfigError, match="evaluation.human: .*nowhere.csv does not exist"):
        load_study(path)


def test_a_changed_human_table_rebuilds_only_the_report(tmp_path):
    from metamers.studies import plan_study

    table = tmp_path / "humans.csv"
    table.write_text("model,layer,recognition\ntiny,conv1,0.9\n")
    path = write_study(tmp_path, _study(tmp_path, human=str(table)))
    before = {t.label: t.key for t in plan_study(load_study(path)).tasks.values()}
    table.write_text("model,layer,recognition\ntiny,conv1,0.5\n")
    after = {t.label: t.key for t in plan_study(load_study(path)).tasks.values()}
    assert before["report"] != after["report"]
    assert {k: v for k, v in before.items() if k != "report"} == {
        k: v for k, v in after.items() if k != "report"
    }
