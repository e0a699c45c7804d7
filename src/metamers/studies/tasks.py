"""Task kinds: each kind calls ONE library function, in whatever process runs it.

A worker receives a picklable :class:`TaskSpec`, runs the kind's function
with outputs written into a scratch folder, and returns a
:class:`TaskOutcome` holding a JSON summary and the output files as bytes.
Workers never write into the study folder: the driver is its only writer
(see :mod:`metamers.studies.store`).

Kinds whose library function does not exist yet are listed in
:data:`PENDING_KINDS` and left out of plans with a "not available yet" note.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from metamers.errors import MetamersError, StimulusError
from metamers.models import PixelModel, load_model
from metamers.stimuli import StimulusSet, resolve_stimuli


@dataclass(frozen=True)
class InputRef:
    """A finished input of a task: its key, kind, settings and folder in the study store."""

    key: str
    kind: str
    settings: dict[str, Any]
    path: str


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one task (picklable; no open handles)."""

    key: str
    kind: str
    label: str
    settings: dict[str, Any]
    inputs: tuple[InputRef, ...]
    scratch: str
    threads: int = 1
    device: str = "cpu"


@dataclass
class TaskOutcome:
    """What a worker returns to the driver.

    Attributes
    ----------
    key
        The task key.
    ok
        Whether the task finished.
    summary
        JSON-serialisable result summary (stored in the catalog).
    files
        Output files, relative path → bytes; the driver writes them.
    error
        One-line error (plus a traceback tail for unexpected errors) when not ``ok``.
    seconds
        Wall time of the task.
    host
        Where it ran.
    """

    key: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    host: str = ""


@dataclass(frozen=True)
class TaskContext:
    """What a kind's runner sees: its settings, inputs, output folder, device."""

    settings: dict[str, Any]
    inputs: tuple[InputRef, ...]
    out: Path
    device: str

    def inputs_of(self, kind: str) -> list[InputRef]:
        """Finished inputs of one kind, in plan order."""
        return [ref for ref in self.inputs if ref.kind == kind]

    def model(self, spec: dict[str, Any]) -> PixelModel:
        """Load (once per process) the model described by ``spec`` onto this task's device."""
        return _cached_model(tuple(sorted(spec.items())), self.device)


@dataclass(frozen=True)
class TaskKind:
    """A kind of task: the library function it calls and the runner that calls it."""

    name: str
    function: str
    runner: Callable[[TaskContext], dict[str, Any]]
    description: str
    estimate: Callable[[dict[str, Any]], tuple[int, float]] = lambda settings: (0, 1.0)
    """``estimate(settings) -> (optimisation steps, CPU seconds)``, rough, for ``--dry-run``."""


# Kinds waiting for a library function; the planner leaves them out with this note.
PENDING_KINDS: dict[str, str] = {
    "null": "null distributions (metamers.null)",
    "generate": "metamer generation (metamers.synthesis.generate_metamers)",
    "validate": "validation against the null (metamers.null.validate_results)",
    "evaluate": "cross-model evaluation: recognisability, representation test, transfer",
    "compare": "RSA/CKA model comparison (metamers.similarity.compare_models)",
}


def load_stimulus_set(settings: dict[str, Any]) -> StimulusSet:
    """Resolve the stimuli a task's settings describe and check they are the planned ones.

    ``settings`` holds ``spec``, ``ids`` and the planner's ``fingerprint``.
    """
    stimuli = resolve_stimuli(settings["spec"]).select(settings["ids"])
    if stimuli.fingerprint() != settings["fingerprint"]:
        raise StimulusError(
            f"stimuli of {settings['spec']} changed since the study was planned; re-run the study"
        )
    return stimuli


@functools.lru_cache(maxsize=4)
def _cached_model(spec_items: tuple, device: str) -> PixelModel:
    spec = dict(spec_items)
    return load_model(
        spec["name"],
        random_weights=spec.get("random_weights", False),
        weights=spec.get("weights"),
        trust_code=spec.get("trust_code", False),
        device=device,
    )


def _run_features(ctx: TaskContext) -> dict[str, Any]:
    from metamers.extraction import Extractor, save_features

    settings = ctx.settings
    stimuli = load_stimulus_set(settings["stimuli"])
    extractor = Extractor(ctx.model(settings["model"]), batch_size=settings["batch_size"])
    save_features(extractor, stimuli, list(settings["layers"]), ctx.out / "features.h5")
    return {"stimuli": len(stimuli), "layers": list(settings["layers"])}


KINDS: dict[str, TaskKind] = {
    "features": TaskKind(
        name="features",
        function="metamers.extraction:save_features",
        runner=_run_features,
        description="features of the reference stimuli at each model's layers",
        estimate=lambda s: (0, 2.0 + 0.05 * len(s["stimuli"]["ids"])),
    ),
}


def function_available(path: str) -> bool:
    """Whether ``module:attribute`` can be imported."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, attribute)


def kind_available(kind: str) -> bool:
    """Whether a task kind is registered and its library function exists."""
    entry = KINDS.get(kind)
    return entry is not None and function_available(entry.function)


def run_task(spec: TaskSpec) -> TaskOutcome:
    """Run one task and return its outcome; never raises for a task's own failure.

    Outputs are written to ``SCRATCH/out`` (kept across attempts, so a library
    function that resumes from its own checkpoints can do so) and returned
    as bytes.
    """
    started = time.perf_counter()
    host = socket.gethostname()
    previous_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(spec.threads)
        out = _scratch_dir(spec)
        context = TaskContext(spec.settings, spec.inputs, out, spec.device)
        summary = KINDS[spec.kind].runner(context)
        files = collect_files(out)
    except MetamersError as exc:
        return TaskOutcome(spec.key, False, error=str(exc), seconds=_since(started), host=host)
    except Exception as exc:
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        return TaskOutcome(
            spec.key,
            False,
            error=f"{type(exc).__name__}: {exc}\n{tail}",
            seconds=_since(started),
            host=host,
        )
    finally:
        torch.set_num_threads(previous_threads)
    return TaskOutcome(spec.key, True, summary, files, seconds=_since(started), host=host)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _scratch_dir(spec: TaskSpec) -> Path:
    try:
        out = Path(spec.scratch) / "out"
        out.mkdir(parents=True, exist_ok=True)
    except OSError:  # the driver's path may not exist on a remote worker
        out = Path(tempfile.mkdtemp(prefix=f"metamers-{spec.key}-")) / "out"
        out.mkdir()
    for stale in out.rglob("*.tmp"):
        stale.unlink(missing_ok=True)
    return out


def collect_files(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (hidden files excepted), relative path → bytes."""
    files = {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }
    return files


def clear_scratch(scratch: str | os.PathLike[str]) -> None:
    """Remove a task's scratch folder (after the driver stored its outputs)."""
    shutil.rmtree(scratch, ignore_errors=True)
