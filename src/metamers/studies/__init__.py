"""Studies: one YAML file → a whole study, planned as content-keyed tasks, run resumably.

Five steps, each usable on its own::

    study = load_study("study.yaml")        # validated settings (config)
    plan = plan_study(study)                # tasks with dependencies (planner)
    summary = run_study(study, reporter=build_report)  # store + executor (driver)

See ``docs/studies.md`` for the file format and the store's crash-safety rules.
"""

from metamers.studies.config import (
    ModelSpec,
    StudyConfig,
    bundled_study_names,
    load_bundled_study,
    load_study,
    parse_study,
)
from metamers.studies.driver import RunSummary, run_study
from metamers.studies.executors import LocalExecutor, RayExecutor, SlurmExecutor, make_executor
from metamers.studies.planner import Plan, Task, plan_study, task_key
from metamers.studies.store import StudyStore, TaskRecord
from metamers.studies.tasks import TaskOutcome, TaskSpec, run_task

__all__ = [
    "LocalExecutor",
    "ModelSpec",
    "Plan",
    "RayExecutor",
    "RunSummary",
    "SlurmExecutor",
    "StudyConfig",
    "StudyStore",
    "Task",
    "TaskOutcome",
    "TaskRecord",
    "TaskSpec",
    "bundled_study_names",
    "load_bundled_study",
    "load_study",
    "make_executor",
    "parse_study",
    "plan_study",
    "run_study",
    "run_task",
    "task_key",
]
