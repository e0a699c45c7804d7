"""Executors: run a wave of independent tasks and yield their outcomes as they finish.

``local``
    In the driver's process, one task after another (default).
``ray``
    A Ray cluster: ``ray.init(address=...)`` joins an existing one; with no
    address a local cluster is started on loopback and stopped at the end.
    Each task asks for ``cpus_per_task`` CPUs and, where CUDA is present,
    ``gpus_per_task`` GPUs (default 1).
``slurm``
    submitit: one job array per task kind per wave. ``slurm.cluster: local``
    or ``debug`` runs the same path on this machine (used by the tests).

Every executor calls the same :func:`metamers.studies.tasks.run_task`, so
results do not depend on which one ran them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import torch

from metamers.errors import ConfigError, MetamersError
from metamers.studies.config import ExecutorSection
from metamers.studies.tasks import TaskOutcome, TaskSpec, run_task


class Executor(Protocol):
    """Runs a wave of independent tasks."""

    name: str

    def device(self) -> str:
        """The torch device tasks should use."""
        ...

    def run(self, specs: Sequence[TaskSpec]) -> Iterator[TaskOutcome]:
        """Run ``specs`` and yield one outcome per task as each finishes.

        Parameters
        ----------
        specs
            The wave's tasks, independent of each other (see
            :class:`~metamers.studies.tasks.TaskSpec`).
        """
        ...

    def close(self) -> None:
        """Release the executor's resources."""
        ...


class LocalExecutor:
    """Runs tasks in the driver's process, one after another.

    Its tasks' periodic progress lines go to :attr:`on_progress` (set by the
    driver); other executors leave them in each task's ``progress.log``.
    """

    name = "local"
    on_progress: Callable[[str, str], None] | None = None
    """``on_progress(key, line)``: a running task's progress line."""

    def __init__(self, settings: ExecutorSection) -> None:
        self.settings = settings

    def device(self) -> str:
        """CUDA when present (and not switched off with ``gpus_per_task: 0``), else CPU."""
        return _default_device(self.settings)

    def run(self, specs: Sequence[TaskSpec]) -> Iterator[TaskOutcome]:
        """Run each task in turn.

        Parameters
        ----------
        specs
            The wave's tasks, independent of each other (see
            :class:`~metamers.studies.tasks.TaskSpec`).
        """
        for spec in specs:
            yield run_task(spec, self.on_progress)

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Runs tasks as Ray remote functions (a real cluster, local or remote)."""

    name = "ray"

    def __init__(self, settings: ExecutorSection) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor ray needs Ray: pip install ray==2.60.0") from None
        self.settings = settings
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if settings.address:
                try:
                    ray.init(address=settings.address, log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise ConfigError(
                        f"cannot join the Ray cluster at {settings.address}: {exc}"
                    ) from None
            else:
                ray.init(
                    num_cpus=max(2, settings.threads()),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                )
            self._started = True
        self._remote = ray.remote(run_task)

    def device(self) -> str:
        """CUDA when the cluster has GPUs and tasks ask for them, else CPU."""
        gpus = self._ray.cluster_resources().get("GPU", 0)
        wanted = self.settings.gpus_per_task
        return "cuda" if gpus and (wanted is None or wanted > 0) else "cpu"

    def _gpus(self) -> float:
        if self.device() != "cuda":
            return 0
        return 1 if self.settings.gpus_per_task is None else self.settings.gpus_per_task

    def run(self, specs: Sequence[TaskSpec]) -> Iterator[TaskOutcome]:
        """Submit the whole wave, then yield outcomes in completion order.

        Parameters
        ----------
        specs
            The wave's tasks, independent of each other (see
            :class:`~metamers.studies.tasks.TaskSpec`).

        Yields
        ------
        TaskOutcome
            One per task; a failed outcome where the Ray worker died.
        """
        remote = self._remote.options(num_cpus=self.settings.threads(), num_gpus=self._gpus())
        pending = {remote.remote(spec): spec for spec in specs}
        while pending:
            ready, _ = self._ray.wait(list(pending), num_returns=1)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    yield self._ray.get(ref)
                except self._ray.exceptions.RayError as exc:
                    yield TaskOutcome(spec.key, False, error=f"ray worker failed: {exc}")

    def close(self) -> None:
        """Stop the local cluster if this executor started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False


class SlurmExecutor:
    """Runs each wave as one submitit job array per task kind."""

    name = "slurm"

    def __init__(self, settings: ExecutorSection, folder: Path) -> None:
        try:
            import submitit
        except ImportError:
            raise ConfigError(
                "executor slurm needs submitit: pip install submitit==1.5.4"
            ) from None
        self.settings = settings
        slurm = settings.slurm
        self._executor = submitit.AutoExecutor(
            folder=str(folder), cluster=None if slurm.cluster == "slurm" else slurm.cluster
        )
        parameters: dict = {
            "timeout_min": slurm.time_min,
            "cpus_per_task": settings.threads(),
        }
        if slurm.cluster == "slurm":
            parameters.update(
                slurm_partition=slurm.partition,
                slurm_mem=f"{int(slurm.mem_gb * 1024)}M",
                slurm_array_parallelism=slurm.array_parallelism,
                slurm_additional_parameters=dict(slurm.additional_parameters),
            )
            if settings.gpus_per_task:
                parameters["gpus_per_node"] = int(settings.gpus_per_task)
        self._executor.update_parameters(**parameters)

    def device(self) -> str:
        """CUDA when jobs are given GPUs, else CPU."""
        if self.settings.slurm.cluster == "slurm":
            return "cuda" if self.settings.gpus_per_task else "cpu"
        return _default_device(self.settings)

    def run(self, specs: Sequence[TaskSpec]) -> Iterator[TaskOutcome]:
        """Submit one array per kind, then yield outcomes as jobs finish.

        Parameters
        ----------
        specs
            The wave's tasks, independent of each other (see
            :class:`~metamers.studies.tasks.TaskSpec`).

        Yields
        ------
        TaskOutcome
            One per task; a failed outcome where the job died (timeout, node failure).
        """
        by_kind: dict[str, list[TaskSpec]] = {}
        for spec in specs:
            by_kind.setdefault(spec.kind, []).append(spec)
        pending = []
        for kind, kind_specs in by_kind.items():
            self._executor.update_parameters(name=f"metamers-{kind}")
            jobs = self._executor.map_array(run_task, kind_specs)
            pending.extend(zip(jobs, kind_specs, strict=True))
        while pending:
            still = []
            for job, spec in pending:
                if not job.done():
                    still.append((job, spec))
                    continue
                try:
                    yield job.result()
                except Exception as exc:  # the job itself died (timeout, node failure, ...)
                    lines = str(exc).strip().splitlines() or [type(exc).__name__]
                    yield TaskOutcome(
                        spec.key, False, error=f"job {job.job_id} failed: {lines[-1]}"
                    )
            pending = still
            if pending:
                time.sleep(0.5)

    def close(self) -> None:
        """Nothing to release (jobs are finished)."""


def _default_device(settings: ExecutorSection) -> str:
    wanted = settings.gpus_per_task
    return "cuda" if torch.cuda.is_available() and (wanted is None or wanted > 0) else "cpu"


def make_executor(settings: ExecutorSection, study_dir: Path) -> Executor:
    """Build the executor a study's ``executor`` section names.

    Parameters
    ----------
    settings
        The study's ``executor`` section; ``kind`` is ``"local"``, ``"ray"`` or
        ``"slurm"``.
    study_dir
        The study folder; slurm jobs keep their logs under ``study_dir/slurm``.

    Raises
    ------
    ConfigError
        Ray or submitit is not installed, or the Ray cluster cannot be joined.
    MetamersError
        An unknown executor kind.
    """
    if settings.kind == "local":
        return LocalExecutor(settings)
    if settings.kind == "ray":
        return RayExecutor(settings)
    if settings.kind == "slurm":
        return SlurmExecutor(settings, study_dir / "slurm")
    raise MetamersError(f"unknown executor {settings.kind!r}; use local, ray or slurm")
