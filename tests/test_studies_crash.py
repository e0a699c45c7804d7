"""Crash safety: a run killed with SIGKILL loses no finished result and leaves no corrupt file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import h5py
import pytest
import torch
from safetensors.torch import load_file

from metamers.errors import MetamersError
from metamers.report import build_report
from metamers.studies import StudyStore, load_study, parse_study, plan_study, run_study
from metamers.studies.store import catalog_status, is_running
from metamers.studies.tasks import TaskOutcome
from studies_support import tiny_study, write_study


def _many_models_study(folder):
    study = tiny_study(
        folder,
        synthesis={"max_steps": 10},
        null={"enabled": False},
        evaluation={"similarity": []},
    )
    template = study["models"]["generators"][0]
    study["models"]["generators"] = [
        {**template, "label": f"tiny_{i}", "layers": [["conv1", "relu2"][i % 2]]} for i in range(3)
    ]
    study["models"]["observers"] = []
    return study


@pytest.fixture(autouse=True)
def _private_null_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))


def _assert_sound(root, plan):
    with StudyStore(root) as store:
        statuses = {t["key"]: t["status"] for t in store.planned()}
        assert set(statuses.values()) == {"done"}
        finished = Counter(key for _, key, event in store.events() if event in {"done", "adopted"})
        assert finished == Counter({t.key: 1 for t in plan}), "a task was finished twice"
        assert store.verify() == []
        for record in store.records(status="done"):
            for entry in record.files:
                path = store.task_dir(record) / entry["path"]
                if path.suffix == ".h5":
                    with h5py.File(path, "r") as h5:
                        assert h5["stimulus_ids"].shape[0] == 3
                elif path.suffix == ".safetensors":
                    assert torch.isfinite(load_file(path)["metamer"]).all()
    leftovers = [p for p in root.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert leftovers == []
    assert not list(root.glob("work/*/out/*")), "scratch of finished tasks was kept"
    db = sqlite3.connect(root / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_finishes_every_task_once(tmp_path):
    path = write_study(tmp_path, _many_models_study(tmp_path))
    study = load_study(path)
    plan = plan_study(study)
    env = {**os.environ, "TINY_MODEL_DELAY": "0.05", "METAMERS_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from metamers.cli import main; main()", "run", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            done = [s for s in catalog_status(study.output_dir).values() if s == "done"]
            if done:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    killed_with = catalog_status(study.output_dir)
    assert 0 < sum(s == "done" for s in killed_with.values()) < len(plan)
    with StudyStore(study.output_dir) as store:  # what the killed run left unfinished
        assert store.in_flight() and not store.in_flight() & set(killed_with)
    summary = run_study(study, reporter=build_report)
    assert summary.ok
    assert not set(summary.computed) & {k for k, s in killed_with.items() if s == "done"}
    _assert_sound(study.output_dir, plan)


def test_kill_between_rename_and_commit_is_adopted_not_recomputed(tmp_path, monkeypatch):
    study = parse_study(_many_models_study(tmp_path))
    plan = plan_study(study)
    first = plan.of_kind("features")[0]
    with StudyStore(study.output_dir, create=True) as store:
        store.record_plan(plan)
        real_commit = store._commit

        def crash(*args, **kwargs):
            raise KeyboardInterrupt  # stands in for the process dying right here

        monkeypatch.setattr(store, "_commit", crash)
        with pytest.raises(KeyboardInterrupt):
            store.store(first, TaskOutcome(first.key, True, {"stimuli": 3}, {"a.txt": b"x"}), "t")
        monkeypatch.setattr(store, "_commit", real_commit)
    assert (study.output_dir / "tasks" / "features" / first.key / "task.json").is_file()
    summary = run_study(study, reporter=build_report)
    assert first.key not in summary.computed
    with StudyStore(study.output_dir) as store:
        assert [e for _, k, e in store.events() if k == first.key] == ["adopted"]


def test_kill_before_rename_leaves_a_partial_folder_that_is_swept(tmp_path, monkeypatch):
    study = parse_study(_many_models_study(tmp_path))
    plan = plan_study(study)
    first = plan.of_kind("features")[0]
    with StudyStore(study.output_dir, create=True) as store:
        monkeypatch.setattr(os, "replace", _fail_on_folders(os.replace))
        with pytest.raises(KeyboardInterrupt):
            store.store(first, TaskOutcome(first.key, True, {}, {"a.txt": b"x"}), "t")
    monkeypatch.undo()
    partial = study.output_dir / "tasks" / "features" / f"{first.key}.partial"
    assert partial.is_dir()
    summary = run_study(study, reporter=build_report)
    assert summary.ok and first.key in summary.computed
    _assert_sound(study.output_dir, plan)


def _fail_on_folders(replace):
    def fake(src, dst):
        if os.path.isdir(src):
            raise KeyboardInterrupt
        return replace(src, dst)

    return fake


def test_a_second_driver_on_the_same_folder_is_refused(tmp_path):
    study = parse_study(_many_models_study(tmp_path))
    with StudyStore(study.output_dir, create=True) as store:
        store.acquire()
        with pytest.raises(MetamersError, match="another `metamers run`"):
            run_study(study, reporter=build_report)
        assert is_running(study.output_dir)
    assert not is_running(study.output_dir)
