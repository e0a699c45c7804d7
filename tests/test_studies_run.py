"""Running studies: local, Ray and submitit give the same catalog; reruns skip finished work."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from metamers.extraction.writers import read_features
from metamers.report import build_report
from metamers.studies import StudyStore, parse_study, run_study
from metamers.studies.tasks import load_stimulus_set
from studies_support import tiny_study


def catalog(root) -> list[tuple]:
    """What must not depend on the executor: key, kind, label, status, summary, files."""
    with StudyStore(root) as store:
        return [
            (r.key, r.kind, r.label, r.status, r.summary, r.files)
            for r in store.records(status=None)
        ]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    study = parse_study(tiny_study(folder))
    summary = run_study(study, reporter=build_report)
    return study, summary


def test_local_run_computes_real_features_and_a_report(local_run):
    study, summary = local_run
    assert summary.ok and not summary.failed
    root = study.output_dir
    with StudyStore(root) as store:
        records = store.records()
        assert {r.kind for r in records} == {"features", "report"}
        assert store.verify() == []
        features = next(r for r in records if r.label == "features tiny_a")
        ids, arrays = read_features(store.task_dir(features) / "features.h5")
    assert ids == ["coffee", "chelsea", "china"]
    assert arrays["conv1"].shape == (3, 8 * 32 * 32)
    # the stored features are the model's activations on those stimuli
    from metamers.models import load_model

    model = load_model(study.models.generators[0].name, trust_code=True)
    stimuli = load_stimulus_set(features.settings["stimuli"])
    x = next(iter(stimuli.batches(model.input_shape, 8)))[1]
    expected = model.activations(x, ["relu2"])["relu2"].flatten(1).numpy()
    np.testing.assert_allclose(arrays["relu2"], expected, rtol=1e-5, atol=1e-6)
    page = (root / "report" / "index.html").read_text()
    assert "data:image/png;base64" in page or "<table" in page
    assert (root / "report" / "tables" / "tasks.parquet").is_file()


def test_rerun_skips_finished_work(local_run):
    study, first = local_run
    again = run_study(study, reporter=build_report)
    assert again.computed == []
    assert sorted(again.reused) == sorted(first.computed)


def test_changing_one_setting_reruns_only_affected_tasks(local_run, tmp_path):
    study, _ = local_run
    data = study.model_dump(mode="json")
    data["models"]["observers"][0]["layers"] = ["relu1", "conv2"]
    changed = parse_study(data)
    summary = run_study(changed, reporter=build_report)
    with StudyStore(changed.output_dir) as store:
        labels = {store.record(k).label for k in summary.computed}
        assert labels == {"features tiny_b", "report"}
        reused = {store.record(k).label for k in summary.reused}
        assert reused == {"features tiny_a"}
    # the old result is kept, so switching back costs nothing
    back = run_study(study, reporter=build_report)
    assert back.computed == []


def test_failed_task_is_recorded_and_retried(tmp_path):
    study = tiny_study(tmp_path)
    study["models"]["observers"][0]["layers"] = ["no_such_layer"]
    config = parse_study(study)
    summary = run_study(config, reporter=build_report)
    assert len(summary.failed) == 1
    (error,) = summary.failed.values()
    assert "no_such_layer" in error and "\n" not in error.strip()
    with StudyStore(config.output_dir) as store:
        statuses = {t["label"]: t["status"] for t in store.planned()}
    assert statuses == {"features tiny_a": "done", "features tiny_b": "failed", "report": "pending"}
    study["models"]["observers"][0]["layers"] = ["relu1"]
    fixed = run_study(parse_study(study), reporter=build_report)
    assert fixed.ok


def test_submitit_local_executor_gives_the_same_catalog(local_run, tmp_path):
    study, _ = local_run
    other = study.with_updates(
        **{
            "output": str(tmp_path / "slurm"),
            "executor.kind": "slurm",
            "executor.slurm.cluster": "local",
            "executor.slurm.time_min": 5,
        }
    )
    summary = run_study(other, reporter=build_report)
    assert summary.ok, summary.failed
    assert catalog(other.output_dir) == catalog(study.output_dir)
    logs = list((tmp_path / "slurm" / "slurm").glob("*_0_log.out"))
    assert logs, "submitit wrote no job logs"


@pytest.mark.slow
def test_ray_local_cluster_gives_the_same_catalog(local_run, tmp_path):
    ray = pytest.importorskip("ray")
    study, _ = local_run
    other = study.with_updates(**{"output": str(tmp_path / "ray"), "executor.kind": "ray"})
    try:
        summary = run_study(other, reporter=build_report)
    finally:
        assert not ray.is_initialized()  # the executor stops the cluster it started
    assert summary.ok, summary.failed
    assert catalog(other.output_dir) == catalog(study.output_dir)
    with h5py.File(
        other.output_dir / "tasks" / "features" / summary.computed[0] / "features.h5"
    ) as h5:
        assert "stimulus_ids" in h5
