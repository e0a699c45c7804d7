"""``metamers run --dry-run | status | report`` and one-line errors from the entry point."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app, main
from metamers.report import build_report
from metamers.studies import load_study, plan_study, run_study
from studies_support import tiny_study, write_study


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


@pytest.fixture(autouse=True)
def _private_null_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))


def _small(tmp_path):
    study = tiny_study(
        tmp_path,
        stimuli={"limit": 2},
        null={"enabled": False},
        evaluation={"similarity": [], "features": False},
    )
    study["models"]["generators"][0]["layers"] = ["conv1"]
    study["models"]["observers"] = []
    return write_study(tmp_path, study)


def test_dry_run_prints_the_plan_and_runs_nothing(runner, tmp_path):
    path = _small(tmp_path)
    result = runner.invoke(app, ["run", str(path), "--dry-run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    plan = plan_study(load_study(path))
    for task in plan:
        assert task.key in result.output
    assert "optimisation steps" in result.output and "40 optimisation steps" in result.output
    assert not (tmp_path / "o").exists()


def test_run_status_report(runner, tmp_path):
    path = _small(tmp_path)
    out = tmp_path / "o"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report' / 'index.html'}" in result.output.replace("\n", "")
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0, status.output
    assert "2 done, 0 pending, 0 failed" in status.output
    (out / "report" / "index.html").unlink()
    rebuilt = runner.invoke(app, ["report", str(out)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "report" / "index.html").is_file()


def test_status_after_a_change_shows_pending_work(tmp_path):
    study = load_study(_small(tmp_path))
    run_study(study, reporter=build_report)
    changed = study.with_updates(**{"synthesis.max_steps": 5})
    from metamers.studies import StudyStore

    with StudyStore(changed.output_dir, create=True) as store:
        store.record_plan(plan_study(changed))
        statuses = [t["status"] for t in store.planned()]
    assert statuses == ["pending", "pending"]


def test_bad_study_file_is_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys):
    path = tmp_path / "study.yaml"
    path.write_text("name: x\nmodels:\n  generators:\n    - name: m\n      layerz: [a]\n")
    monkeypatch.setattr(sys, "argv", ["metamers", "run", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "error: study.yaml: models.generators[0].layerz: unknown key (did you mean layers?)"
    )


def test_status_of_a_folder_that_is_no_study(runner, tmp_path):
    with pytest.raises(Exception, match="not a study folder"):
        runner.invoke(app, ["status", str(tmp_path)], catch_exceptions=False)
