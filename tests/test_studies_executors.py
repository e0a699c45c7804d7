"""Executors: the SLURM path writes the sbatch script the settings ask for."""

from __future__ import annotations

import os

import pytest

from metamers.studies.config import ExecutorSection
from metamers.studies.executors import LocalExecutor, SlurmExecutor, make_executor


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """An ``srun`` on PATH, so submitit builds a real SLURM executor (nothing is submitted)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_settings_reach_the_sbatch_script(fake_slurm, tmp_path):
    settings = ExecutorSection(
        kind="slurm",
        cpus_per_task=4,
        gpus_per_task=1,
        slurm={
            "partition": "gpu",
            "time_min": 30,
            "mem_gb": 8,
            "additional_parameters": {"qos": "high"},
        },
    )
    executor = make_executor(settings, tmp_path)
    assert isinstance(executor, SlurmExecutor)
    assert executor.device() == "cuda"
    slurm = executor._executor._executor
    script = slurm._make_submission_file_text("python -c pass", "0")
    for line in (
        "--partition=gpu",
        "--cpus-per-task=4",
        "--gpus-per-node=1",
        "--time=30",
        "--mem=8192M",
        "--qos=high",
    ):
        assert f"#SBATCH {line}" in script
    assert str(tmp_path / "slurm") in script


def test_local_executor_uses_cpu_without_cuda_or_when_told():
    executor = LocalExecutor(ExecutorSection(gpus_per_task=0))
    assert executor.device() == "cpu"
