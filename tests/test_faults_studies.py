"""Fault injection on studies: kill -9, a full disk, deleted or damaged task folders.

After each fault a re-run finishes with every result present and correct
(every file matches its catalogued SHA-256), and no task that had finished is
computed again. Issue 14, case 5 (a deleted task folder counted as done) and
the study part of its fault-injection suite; the kill test of
``test_studies_crash.py`` is reused here at seeded random moments.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from safetensors.torch import load_file

import metamers.io
from metamers.report import build_report
from metamers.studies import StudyStore, load_study, parse_study, plan_study, run_study
from metamers.studies.store import catalog_status
from studies_support import tiny_study, write_study
from test_studies_crash import _assert_sound, _many_models_study


@pytest.fixture(autouse=True)
def _private_null_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))


def _small_study(folder):
    """Every task kind on the tiny models, in a few seconds."""
    return parse_study(
        tiny_study(
            folder,
            synthesis={"max_steps": 5},
            null={"pairs": 20},
            evaluation={"bootstraps": 20},
        )
    )


def _finished(root) -> dict[str, dict]:
    """Key → catalog files of every finished task."""
    with StudyStore(root) as store:
        return {r.key: r.files for r in store.records(status="done", planned_only=False)}


def _metamers(folder) -> dict[str, bytes]:
    """The exact metamer tensors under a generate task's folder."""
    return {
        str(path.relative_to(folder)): load_file(path)["metamer"].numpy().tobytes()
        for path in sorted(folder.rglob("*.safetensors"))
    }


# -- case 5: finished means present and intact -----------------------------------------------------


def test_case5_deleted_task_folder_is_recomputed(tmp_path):
    study = _small_study(tmp_path)
    plan = plan_study(study)
    run_study(study, reporter=build_report)
    generate = plan.of_kind("generate")[0]
    with StudyStore(study.output_dir) as store:
        folder = store.task_dir(generate)
    before = _metamers(folder)
    assert before
    shutil.rmtree(folder)

    with pytest.warns(UserWarning, match="missing task folder"):
        summary = run_study(study, reporter=build_report)

    assert summary.ok
    assert summary.discarded == {generate.key: "missing task folder"}
    assert summary.computed == [generate.key]  # and nothing else: the rest is intact
    assert _metamers(folder) == before  # the same metamers, bit for bit
    with StudyStore(study.output_dir) as store:
        assert store.verify() == []
        assert "discarded" in [event for _, _, event in store.events(generate.key)]
    build_report(study.output_dir)  # the report finds every result again


def test_case5_altered_task_file_is_recomputed(tmp_path):
    study = _small_study(tmp_path)
    plan = plan_study(study)
    run_study(study, reporter=build_report)
    features = plan.of_kind("features")[0]
    with StudyStore(study.output_dir) as store:
        path = store.task_dir(features) / "features.h5"
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(damaged))

    with pytest.warns(UserWarning, match="features.h5 differs from the catalog"):
        summary = run_study(study, reporter=build_report)

    assert summary.ok and summary.computed == [features.key]
    assert path.read_bytes() == original
    with StudyStore(study.output_dir) as store:
        assert store.verify() == []


def test_case5_a_damaged_folder_is_not_adopted(tmp_path, monkeypatch):
    """A folder left by a run killed before its commit is adopted only when it is intact."""
    study = _small_study(tmp_path)
    plan = plan_study(study)
    run_study(study, reporter=build_report)
    null = plan.of_kind("null")[0]
    with StudyStore(study.output_dir) as store:  # as if the commit had never happened
        store._db.execute("DELETE FROM tasks WHERE key = ?", (null.key,))
        folder = store.task_dir(null)
    manifest = json.loads((folder / "task.json").read_text())
    (folder / manifest["files"][0]["path"]).write_bytes(b"truncated")

    summary = run_study(study, reporter=build_report)

    assert summary.ok and summary.computed == [null.key]
    with StudyStore(study.output_dir) as store:
        assert store.verify() == []
        assert [e for _, k, e in store.events() if k == null.key][-3:] == [
            "discarded",
            "submitted",
            "done",
        ]


def test_case5_status_verify_reports_a_damaged_result(tmp_path):
    from typer.testing import CliRunner

    from metamers.cli.app import _register_commands, app

    _register_commands()
    study = _small_study(tmp_path)
    plan = plan_study(study)
    run_study(study, reporter=build_report)
    runner = CliRunner()
    sound = runner.invoke(app, ["status", str(study.output_dir), "--verify"])
    assert sound.exit_code == 0, sound.output
    assert "verified: every finished result matches its catalogued digest" in sound.output
    with StudyStore(study.output_dir) as store:
        shutil.rmtree(store.task_dir(plan.of_kind("compare")[0]))
    damaged = runner.invoke(app, ["status", str(study.output_dir), "--verify"])
    assert damaged.exit_code == 1
    assert "missing task folder" in damaged.output


# -- kill -9 at random moments -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kill9_at_a_seeded_random_moment_then_rerun(tmp_path, seed):
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
        catalog = study.output_dir / "catalog.sqlite"
        while time.monotonic() < deadline and process.poll() is None and not catalog.exists():
            time.sleep(0.02)
        time.sleep(random.Random(seed).uniform(0.0, 3.0))  # from the moment the run has begun
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    finished = {k for k, s in catalog_status(study.output_dir).items() if s == "done"}

    summary = run_study(study, reporter=build_report)

    assert summary.ok
    assert not set(summary.computed) & finished, "a finished task was computed again"
    _assert_sound(study.output_dir, plan)


# -- a full disk ------------------------------------------------------------------------------------


def test_disk_full_mid_study_then_rerun(tmp_path, monkeypatch):
    """Writes start failing with ENOSPC part-way; once space is back, a re-run completes."""
    study = parse_study(_many_models_study(tmp_path))
    plan = plan_study(study)
    real_fsync = os.fsync
    budget = {"files": 12}  # the disk fills after this many files

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            if budget["files"] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            budget["files"] -= 1
        return real_fsync(fd)

    monkeypatch.setattr(metamers.io.os, "fsync", fsync)
    try:
        first = run_study(study, reporter=build_report)
    except OSError as exc:  # the driver's own write failed: the run stops
        assert exc.errno == errno.ENOSPC
    else:  # only workers' writes failed: their tasks are recorded as failed
        assert not first.ok and any("No space left" in e for e in first.failed.values())
    monkeypatch.setattr(metamers.io.os, "fsync", real_fsync)
    finished = set(_finished(study.output_dir))
    assert 0 < len(finished) < len(plan)
    tmp_files = [p for p in study.output_dir.rglob("*.tmp")]
    assert tmp_files == [], "a temporary file survived the failed write"

    summary = run_study(study, reporter=build_report)

    assert summary.ok
    assert not set(summary.computed) & finished
    assert set(summary.computed) | finished == {t.key for t in plan}
    with StudyStore(study.output_dir) as store:
        assert store.verify() == []


TMPFS_SCRIPT = textwrap.dedent(
    """
    import json, os, sqlite3, sys
    from pathlib import Path
    from metamers.report import build_report
    from metamers.studies import StudyStore, parse_study, plan_study, run_study

    study = parse_study(json.loads(sys.argv[1]))
    filler = Path(sys.argv[2])
    filler.write_bytes(b"0" * int(sys.argv[3]))  # leave a little room only
    try:
        first = run_study(study, reporter=build_report)
        first_error = "" if first.ok else "; ".join(first.failed.values())
    except (OSError, sqlite3.Error) as exc:
        first_error = str(exc)
    with StudyStore(study.output_dir) as store:
        finished = [r.key for r in store.records(status="done", planned_only=False)]
    filler.unlink()  # space is back
    summary = run_study(study, reporter=build_report)
    with StudyStore(study.output_dir) as store:
        problems = store.verify()
    print(json.dumps({
        "first_error": first_error,
        "finished": finished,
        "computed": summary.computed,
        "ok": summary.ok,
        "planned": [t.key for t in plan_study(study)],
        "problems": problems,
        "leftovers": [str(p) for p in study.output_dir.rglob("*.tmp")],
    }))
    """
)


@pytest.mark.slow
def test_disk_full_on_a_tiny_tmpfs_then_rerun(tmp_path):
    """A real full file system: a 3 MiB tmpfs in a user namespace (skipped where none can be made)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    probe = (
        subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mount}"],
            capture_output=True,
        )
        if shutil.which("unshare")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("no tmpfs can be mounted here (unshare -rm unavailable)")
    study = _many_models_study(tmp_path)
    study["output"] = str(mount / "study")
    size = 3 * 2**20
    command = (
        f"mount -t tmpfs -o size={size} tmpfs {mount} && "
        f'{sys.executable} -c "$SCRIPT" "$STUDY" {mount / "filler"} {size - 160 * 2**10}'
    )
    env = {**os.environ, "SCRIPT": TMPFS_SCRIPT, "STUDY": json.dumps(study)}
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "No space left" in result["first_error"] or "disk is full" in result["first_error"]
    assert len(result["finished"]) < len(result["planned"])
    assert result["ok"] and result["problems"] == [] and result["leftovers"] == []
    assert not set(result["computed"]) & set(result["finished"])
