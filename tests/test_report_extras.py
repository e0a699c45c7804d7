"""Issue 15: a report that always arrives and outputs a researcher can find.

A tiny study whose comparison task is forced to fail still writes
``report/index.html``, listing the failure; the report shows each metamer's
final loss and acceptance, an image-quality table and the generation-layer ×
measured-layer similarity matrix; ``report/tables/tasks.csv`` maps kind,
model and layer to each task's folder.
"""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest
import torch

from metamers.report import build_report
from metamers.report.figures import metamer_grid
from metamers.studies import StudyStore, parse_study, run_study
from metamers.studies.tasks import KINDS
from studies_support import tiny_study


@pytest.fixture(scope="module")
def failed_compare(tmp_path_factory):
    """The tiny study run once with every ``compare`` task failing."""
    folder = tmp_path_factory.mktemp("partial")
    patch = pytest.MonkeyPatch()
    patch.setenv("METAMERS_CACHE", str(tmp_path_factory.mktemp("cache")))

    def boom(ctx):
        raise ValueError("need at least 3 stimuli to compare (forced)")

    failing = pytest.MonkeyPatch()
    failing.setitem(KINDS, "compare", dataclasses.replace(KINDS["compare"], runner=boom))
    study_dict = tiny_study(folder, synthesis={"max_steps": 5})
    study = parse_study(study_dict)
    try:
        summary = run_study(study, reporter=build_report)
    finally:
        failing.undo()
    yield study, study_dict, summary
    patch.undo()


def test_a_failed_optional_task_still_gives_a_report(failed_compare):
    study, _, summary = failed_compare
    assert summary.failed and all("forced" in e for e in summary.failed.values())
    assert summary.report == study.output_dir / "report" / "index.html"
    assert summary.partial_report
    page = summary.report.read_text()
    assert "Failed tasks" in page and "need at least 3 stimuli to compare (forced)" in page
    assert page.index("Failed tasks") < page.index("Metamers")
    with StudyStore(study.output_dir) as store:
        statuses = {t["kind"]: t["status"] for t in store.planned()}
    assert statuses["report"] == "pending"  # built again once everything is finished


def test_report_shows_losses_acceptance_quality_and_the_layer_matrix(failed_compare):
    study, _, summary = failed_compare
    page = summary.report.read_text()
    tables = study.output_dir / "report" / "tables"
    metamers = pd.read_csv(tables / "metamers.csv")
    assert {"final_loss", "accepted"} <= set(metamers.columns)
    assert metamers["accepted"].notna().all()
    assert "final_loss" in page and "accepted" in page
    assert "<h2>Image quality</h2>" in page
    quality = pd.read_csv(tables / "image_quality.csv")
    assert len(quality) == len(metamers) and quality["ssim"].between(-1, 1).all()
    assert "<h2>Similarity across layers</h2>" in page
    matrix = pd.read_csv(tables / "similarity_matrix.csv")
    assert set(matrix["generation_layer"]) == {"conv1", "relu2"}
    assert set(matrix["measured_layer"]) == {"conv1", "relu2"}
    section = page.split("<h2>Similarity across layers</h2>")[1].split("<h2>")[0]
    assert "data:image/png;base64," in section


def test_tasks_index_points_to_existing_folders(failed_compare):
    study, _, summary = failed_compare
    index = pd.read_csv(study.output_dir / "report" / "tables" / "tasks.csv", keep_default_na=False)
    assert list(index.columns[:6]) == ["kind", "label", "model", "layer", "status", "folder"]
    done = index[index["status"] == "done"]
    assert len(done) and (done["folder"] != "").all()
    for folder in done["folder"]:
        assert (study.output_dir / folder).is_dir()
    generate = index[index["kind"] == "generate"]
    assert set(generate["layer"]) == {"conv1", "relu2"}
    assert generate["model"].str.contains("tiny_model.py").all()
    page = summary.report.read_text()
    for folder in done["folder"]:
        assert f'href="../{folder}"' in page
    failed = index[index["status"] == "failed"]
    assert set(failed["kind"]) == {"compare"} and failed["error"].str.contains("forced").all()


def test_a_complete_rerun_replaces_the_partial_report(failed_compare):
    _, study_dict, _ = failed_compare
    summary = run_study(parse_study(study_dict), reporter=build_report)
    assert summary.ok and not summary.partial_report
    page = summary.report.read_text()
    assert "Failed tasks" not in page and "Model comparison" in page


def test_captions_and_a_narrow_grid_title_clear_of_the_columns():
    references = {"a": torch.rand(3, 32, 32)}
    frame = pd.DataFrame(
        {
            "stimulus": ["a"],
            "layer": ["conv1"],
            "image": [torch.rand(3, 32, 32)],
            "accepted": [False],
            "loss": [0.01234],
        }
    )
    title = "file:/a/rather/long/path/to/a/model/file/tiny_model.py:build_model"
    fig = metamer_grid(references, frame, title=title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axis = fig.axes[1]
    assert re.fullmatch(r"loss 0\.0123\nrejected", axis.get_xlabel())
    suptitle = fig._suptitle.get_window_extent(renderer)
    assert suptitle.x0 >= 0 and suptitle.x1 <= fig.bbox.width  # wrapped to the grid
    for ax in fig.axes:
        column_title = ax.title.get_window_extent(renderer)
        assert suptitle.y0 >= column_title.y1 - 0.5  # above every column title


def test_study_chooses_cka_kernel_and_rsa_distance(tmp_path):
    from metamers.studies import plan_study
    from metamers.studies.tasks import TaskSpec, run_task

    base = tiny_study(tmp_path, evaluation={"similarity": ["rsa", "cka"]})
    default = {t.settings["method"]: t for t in plan_study(parse_study(base)).of_kind("compare")}
    assert all("options" not in t.settings for t in default.values())  # default keys kept
    chosen = tiny_study(
        tmp_path,
        stimuli={"limit": 4},  # unbiased HSIC needs 4
        evaluation={
            "similarity": ["rsa", "cka"],
            "rsa_distance": "euclidean",
            "cka_kernel": "rbf",
            "cka_unbiased": True,
        },
    )
    tasks = {t.settings["method"]: t for t in plan_study(parse_study(chosen)).of_kind("compare")}
    assert tasks["rsa"].settings["options"] == {"distance": "euclidean"}
    assert tasks["cka"].settings["options"] == {"kernel": "rbf", "unbiased": True}
    assert {t.key for t in tasks.values()}.isdisjoint(t.key for t in default.values())
    outcome = run_task(
        TaskSpec(
            key=tasks["cka"].key,
            kind="compare",
            label="compare cka",
            settings=tasks["cka"].settings,
            inputs=(),
            scratch=str(tmp_path / "scratch"),
        )
    )
    assert outcome.ok, outcome.error
    assert outcome.summary["kernel"] == "rbf" and outcome.summary["unbiased"] is True
    with pytest.raises(ValueError, match="cka_kernel"):
        parse_study(tiny_study(tmp_path, evaluation={"cka_kernel": "cubic"}))
