"""Task kinds: each kind calls ONE library function, in whatever process runs it.

A worker receives a picklable :class:`TaskSpec`, runs the kind's function
with outputs written into a scratch folder, and returns a
:class:`TaskOutcome` holding a JSON summary and the output files as bytes.
Workers never write into the study folder: the driver is its only writer
(see :mod:`metamers.studies.store`).

Internal module: use it through metamers.studies (``run_study``); not part of the public API.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import socket
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from metamers.errors import MetamersError, StimulusError
from metamers.io import write_table
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
    progress: Callable[[str], None] | None = None
    """Receives the task's periodic progress lines (see :meth:`report`)."""

    def report(self, line: str) -> None:
        """Pass one progress line on (to ``metamers run``'s output, or a worker's log).

        Parameters
        ----------
        line
            E.g. ``"step 200, 1/4 metamers, best loss 0.012, median 0.034"``.
        """
        if self.progress is not None:
            self.progress(line)

    def inputs_of(self, kind: str) -> list[InputRef]:
        """Finished inputs of one kind, in plan order.

        Parameters
        ----------
        kind
            The input kind, e.g. ``"null"`` or ``"generate"``.
        """
        return [ref for ref in self.inputs if ref.kind == kind]

    def model(self, spec: dict[str, Any]) -> PixelModel:
        """Load (once per process) the model described by ``spec`` onto this task's device.

        Parameters
        ----------
        spec
            The model's load settings as the planner records them: ``name`` and,
            optionally, ``random_weights``, ``weights`` and ``trust_code`` (see
            :func:`~metamers.models.load_model`). The last 4 loaded models are kept.
        """
        return _cached_model(tuple(sorted(spec.items())), self.device)


@dataclass(frozen=True)
class TaskKind:
    """A kind of task: the runner that calls its library function, and how to describe it."""

    name: str
    runner: Callable[[TaskContext], dict[str, Any]]
    description: str
    estimate: Callable[[dict[str, Any]], tuple[int, float]] = lambda settings: (0, 1.0)
    """``estimate(settings) -> (optimisation steps, CPU seconds)``, rough, for ``--dry-run``."""


def load_stimulus_set(settings: dict[str, Any]) -> StimulusSet:
    """Resolve the stimuli a task's settings describe and check they are the planned ones.

    ``settings`` holds ``spec``, ``ids``, the planner's ``fingerprint`` and,
    when a labels file labels the set, ``labels``.

    Parameters
    ----------
    settings
        The task's stimulus settings (see
        :func:`~metamers.studies.planner.stimulus_settings`).

    Raises
    ------
    StimulusError
        The spec cannot be resolved, an id is missing, or the stimuli changed
        since planning (other fingerprint).
    """
    stimuli = resolve_stimuli(settings["spec"], labels=settings.get("labels"), ids=settings["ids"])
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


NULL_FILE = "null.npz"
"""The file a ``null`` task stores its null in (:meth:`NullDistribution.save`)."""


def _run_null(ctx: TaskContext) -> dict[str, Any]:
    from metamers.null.distribution import (
        DEFAULT_PAIRS_PER_VIEW,
        DEFAULT_ZERO_TEST,
        compute_null,
    )

    settings = ctx.settings
    model = ctx.model(settings["model"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        null = compute_null(
            model,
            list(settings["layers"]),
            load_stimulus_set(settings["stimuli"]),
            settings["pairs"],
            seed=settings["seed"],
            pairs_per_view=settings.get("pairs_per_view", DEFAULT_PAIRS_PER_VIEW),
            zero_test=settings.get("zero_test", DEFAULT_ZERO_TEST),
            progress=_every(ctx, lambda done, total: f"{done}/{total} null pairs"),
        )
    null.save(ctx.out / NULL_FILE)
    write_table(null.to_frame(), ctx.out / "null")
    maxima = {
        layer: {metric: null.max(layer, metric) for metric in null.metrics} for layer in null.layers
    }
    return {
        "model": model.name,
        "file": NULL_FILE,
        "pairs": null.n_pairs,
        "stimuli": null.n_stimuli,
        "max": maxima,
        "warnings": sorted({str(w.message) for w in caught}),
    }


def load_null(ref: InputRef, model: PixelModel):
    """Read the null distribution a finished ``null`` task stored (never recomputing it).

    Parameters
    ----------
    ref
        The finished ``null`` task (its folder holds :data:`NULL_FILE`; its
        settings are what the null is checked against).
    model
        The model the null is used with; its weight fingerprint must match the
        null's.

    Returns
    -------
    NullDistribution
        The stored null.

    Raises
    ------
    MetamersError
        The stored file is missing, unreadable, or was computed under other
        settings than the task's (model weights, layers, pairs, seed, stimuli,
        pairing, zero test).
    """
    from metamers.null.distribution import NullDistribution

    try:
        null = NullDistribution.load(Path(ref.path) / NULL_FILE)
    except MetamersError as exc:
        raise MetamersError(f"{exc}; delete the study's null tasks to recompute it") from exc
    _check_stored_null(null, ref.settings, model)
    return null


def _check_stored_null(null, settings: dict[str, Any], model: PixelModel) -> None:
    """Raise unless a stored null was computed under its task's settings for ``model``."""
    from metamers.null.distribution import DEFAULT_PAIRS_PER_VIEW, DEFAULT_ZERO_TEST

    expected = {
        "model fingerprint": (null.model_fingerprint, model.fingerprint()),
        "layers": (sorted(null.layers), sorted(set(settings["layers"]))),
        "pairs": (null.n_pairs, settings["pairs"]),
        "seed": (null.seed, settings["seed"]),
        "stimuli fingerprint": (null.stimuli_fingerprint, settings["stimuli"]["fingerprint"]),
        "pairs_per_view": (
            null.pairs_per_view,
            settings.get("pairs_per_view", DEFAULT_PAIRS_PER_VIEW),
        ),
        "zero_test": (null.zero_test, settings.get("zero_test", DEFAULT_ZERO_TEST)),
    }
    wrong = [f"{name} {got} != {want}" for name, (got, want) in expected.items() if got != want]
    if wrong:
        raise MetamersError(
            f"the stored null {null.path} does not match its task ({'; '.join(wrong)}); "
            "delete the study's null tasks"
        )


def _run_generate(ctx: TaskContext) -> dict[str, Any]:
    from metamers.synthesis import SynthesisSettings, generate_metamers

    settings = ctx.settings
    stimuli = load_stimulus_set(settings["stimuli"])
    if "models" in settings:  # an ensemble: one job matching one layer of every member
        models = [ctx.model(spec) for spec in settings["models"]]
        model, jobs = models[0], [tuple(settings["layers"])]
    else:
        model = ctx.model(settings["model"])
        models, jobs = [model], [settings["layer"]]
    results = generate_metamers(
        models if len(models) > 1 else model,
        jobs,
        stimuli,
        ctx.out,
        SynthesisSettings(**settings["synthesis"]),
        # one batch of the whole set on the CPU; elsewhere the device's batch, which the
        # queue of stimuli keeps full (continuous batching)
        batch_size=len(stimuli) if model.device.type == "cpu" else None,
        seed=settings["seed"],
        progress=_every(ctx, _generate_line(settings["synthesis"].get("max_steps"))),
    )
    # items the engine gave up on (non-finite losses) are recorded as failed, not retried
    failed = sorted(set(stimuli.ids) - {r.stimulus_id for r in results})
    return {
        "metamers": len(results),
        "failed": failed,
        "final_loss": {r.stimulus_id: float(r.losses[-1]) for r in results},
    }


PROGRESS_SECONDS = 10.0
"""Seconds between two progress lines of a long task (the first comes after this long too)."""


def _every(ctx: TaskContext, line: Callable[..., str]) -> Callable[..., None] | None:
    """A library progress callback: ``line(*args)`` at every call, reported every :data:`PROGRESS_SECONDS`."""
    if ctx.progress is None:
        return None
    last = [time.monotonic()]

    def callback(*args: Any) -> None:
        text, now = line(*args), time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            ctx.report(text)

    return callback


def _generate_line(max_steps: int | None) -> Callable[[dict], str]:
    """Progress lines of a generate task from :func:`generate_metamers`' per-step events."""
    steps = [0]

    def line(event: dict) -> str:
        steps[0] += 1  # one event per optimisation step
        budget = f"/{max_steps}" if max_steps else ""
        return (
            f"step {steps[0]}{budget} of {event['job']}, "
            f"{event['items_done']}/{event['items_total']} metamers done, "
            f"best loss {event['best_loss']:.4g}, median {event['median_loss']:.4g}, "
            f"{event['steps_per_s']:.1f} steps/s"
        )

    return line


def _generated_results(ctx: TaskContext) -> list:
    return [r for ref in ctx.inputs_of("generate") for r in load_generated(ref.path, ref.settings)]


def load_generated(path: str | Path, settings: dict[str, Any]) -> list:
    """The metamers a finished ``generate`` task stored, named as the study names them.

    A generator with its own label in the task (a synthesis condition or an
    ensemble) gives its metamers that name (:attr:`MetamerResult.generator`),
    so that two conditions of one model stay apart in every table.

    Parameters
    ----------
    path
        The task's folder.
    settings
        The task's settings (``label`` when the planner recorded one).

    Returns
    -------
    list of MetamerResult
        As :func:`metamers.synthesis.load_results` reads them.
    """
    from metamers.synthesis import load_results

    results = load_results(path)
    for result in results:
        result.label = settings.get("label")
    return results


def _label_space(settings: dict[str, Any]):
    """The study's label space (the library default when the plan does not name one)."""
    from metamers.decisions import LabelSpace

    return LabelSpace(**settings.get("labels", {}))


def _criterion(settings: dict[str, Any]):
    """The study's null criterion (the library default when the plan does not name one)."""
    from metamers.null import NullCriterion

    return NullCriterion(**settings.get("criterion", {}))


def _run_validate(ctx: TaskContext) -> dict[str, Any]:
    from metamers.validation import validate_results

    settings = ctx.settings
    models, nulls = {}, {}
    for ref in ctx.inputs_of("null"):  # one per generating model (several for an ensemble)
        model = ctx.model(ref.settings["model"])
        models[model.name], nulls[model.name] = model, load_null(ref, model)
    results = _generated_results(ctx)
    table = validate_results(
        results,
        nulls,
        models=models,
        labels=_label_space(settings),
        criterion=_criterion(settings),
    )
    write_table(table, ctx.out / "acceptance")
    if len(models) == 1:
        _write_similarity_matrix(ctx, model, nulls[model.name], results)
    return {
        "metamers": len(results),
        "accepted": int(table["accepted"].sum()),
        "accepted_ids": sorted(table.loc[table["accepted"], "stimulus_id"]),
    }


def _write_similarity_matrix(ctx: TaskContext, model, null, results) -> None:
    """Each metamer's similarity at every layer the null covers (the report's layer × layer matrix)."""
    import torch

    from metamers.validation import similarity_matrix

    mine = [r for r in results if r.layer is not None and r.models == (model.name,)]
    if not mine:
        return
    matrix = similarity_matrix(
        model,
        torch.stack([r.metamer for r in mine]),
        torch.stack([r.reference for r in mine]),
        [r.layer for r in mine],
        list(null.layers),
        null,
        stimulus_ids=[r.stimulus_id for r in mine],
    )
    write_table(matrix, ctx.out / "similarity_matrix", csv=False)


def _run_evaluate(ctx: TaskContext) -> dict[str, Any]:
    import pandas as pd

    from metamers.evaluation.transfer import evaluate_transfer

    settings = ctx.settings
    observer = ctx.model(settings["observer"])
    results = _generated_results(ctx)
    if settings["accepted_only"] and ctx.inputs_of("validate"):
        accepted = set()
        for ref in ctx.inputs_of("validate"):
            table = pd.read_parquet(Path(ref.path) / "acceptance.parquet")
            rows = table[table["accepted_all_models"]]
            accepted |= set(
                zip(rows["generator"], rows["stimulus_id"], rows["generation_layer"], strict=True)
            )
        # keyed by generator too: two generators with the same layer names (a model and its
        # robust variant) are judged each on its own acceptance
        results = [r for r in results if (r.generator, r.stimulus_id, r.layer) in accepted]
    summary: dict[str, Any] = {"metamers": len(results)}
    if not results:
        return summary | {"note": "no metamer passed validation; nothing to evaluate"}
    generators = {spec["name"]: ctx.model(spec) for spec in settings["generators"]}
    generators = {model.name: model for model in generators.values()}
    nulls = {}
    for ref in ctx.inputs_of("null"):
        nulls[observer.name] = load_null(ref, observer)
    stimuli = load_stimulus_set(settings["stimuli"])
    evaluated = evaluate_transfer(
        results,
        [observer],
        generators=generators,
        targets=stimuli.targets(),  # compared only in the observer's label space
        nulls=nulls or None,
        observer_layers={observer.name: list(settings["layers"])},
        labels=_label_space(settings),
        criterion=_criterion(settings),
        n_boot=settings["bootstraps"],
        seed=settings["seed"],
    )
    evaluated.save(ctx.out)
    if evaluated.recognition.empty:  # an observer with no decisions (not a classifier)
        return summary
    return summary | {
        "agrees_with_reference": float(evaluated.recognition["agrees_with_reference"].mean()),
    }


def _run_compare(ctx: TaskContext) -> dict[str, Any]:
    from metamers.evaluation.compare import compare_models, save_similarity_matrix

    settings = ctx.settings
    models = settings["models"]
    by_name = {spec["model"]["name"]: spec["model"] for spec in models.values()}
    matrix = compare_models(
        {label: spec["model"]["name"] for label, spec in models.items()},
        {label: list(spec["layers"]) for label, spec in models.items()},
        load_stimulus_set(settings["stimuli"]),
        settings["method"],
        loader=lambda name: ctx.model(by_name[name]),
        **settings.get("options", {}),
    )
    save_similarity_matrix(matrix, ctx.out, stem=settings["method"])
    return {"method": settings["method"], "size": len(matrix), **settings.get("options", {})}


def _run_brain(ctx: TaskContext) -> dict[str, Any]:
    """Encoding (and RSA) of one model or one permuted control (``docs/brain.md``)."""
    from metamers.brain import layer_features, load_neural_data
    from metamers.brain.run import map_encoding, map_rsa

    settings = ctx.settings
    roi_table = settings["roi_table"]
    options = {"roi_table": roi_table["path"]} if roi_table else {}
    data = load_neural_data(settings["responses"]["path"], **options)
    stimuli = load_stimulus_set(settings["stimuli"])
    data.align(stimuli.ids)
    seed = settings["permuted_seed"]
    features = layer_features(
        ctx.model(settings["model"]),
        stimuli,
        list(settings["layers"]),
        pool=settings["pool"],
        permuted_seed=seed,
    )
    features.model = settings["label"] + ("" if seed is None else f":permuted{seed}")
    _, summary = map_encoding(
        [features],
        data,
        ctx.out / "encoding",
        preset=settings["preset"],
        backend=settings["backend"],
        device=ctx.device,
        roi=settings["roi"],
    )
    if settings["rsa"]:
        map_rsa([features], data, ctx.out / "rsa", preset=settings["preset"], roi=settings["roi"])
    return json.loads(summary.to_json(orient="records"))[0]


def _generate_estimate(settings: dict[str, Any]) -> tuple[int, float]:
    steps = int(settings["synthesis"]["max_steps"]) * len(settings["stimuli"]["ids"])
    specs = settings["models"] if "models" in settings else [settings["model"]]
    scale = 0.0
    for spec in specs:
        model = _cached_model(tuple(sorted(spec.items())), "cpu")
        scale += max(math.prod(model.input_shape) / REFERENCE_INPUT, MIN_SCALE)
    return steps, steps * SECONDS_PER_IMAGE_STEP * scale


SECONDS_PER_IMAGE_STEP = 0.04
"""Rough CPU cost of one synthesis step for one 224-px image (EfficientNet-Lite0, mid layer)."""
REFERENCE_INPUT = 3 * 224 * 224
MIN_SCALE = 0.05  # small models do not get cheaper than this per step (overheads)

KINDS: dict[str, TaskKind] = {
    "features": TaskKind(
        name="features",
        runner=_run_features,
        description="features of the reference stimuli at each model's layers",
        estimate=lambda s: (0, 2.0 + 0.05 * len(s["stimuli"]["ids"])),
    ),
    "null": TaskKind(
        name="null",
        runner=_run_null,
        description="null distribution of a model at its layers",
        estimate=lambda s: (0, 5.0 + 0.02 * s["pairs"]),
    ),
    "generate": TaskKind(
        name="generate",
        runner=_run_generate,
        description="metamers of a chunk of stimuli at one layer",
        estimate=_generate_estimate,
    ),
    "validate": TaskKind(
        name="validate",
        runner=_run_validate,
        description="acceptance of metamers against the generator's null",
        estimate=lambda s: (0, 3.0),
    ),
    "evaluate": TaskKind(
        name="evaluate",
        runner=_run_evaluate,
        description="recognisability and representation test by one observer",
        estimate=lambda s: (0, 10.0),
    ),
    "compare": TaskKind(
        name="compare",
        runner=_run_compare,
        description="RSA/CKA matrix of every model's layers on the reference stimuli",
        estimate=lambda s: (0, 5.0 * len(s["models"])),
    ),
    "brain": TaskKind(
        name="brain",
        runner=_run_brain,
        description="encoding models (and RSA) of one model or its permuted control",
        estimate=lambda s: (0, 10.0 + 2.0 * len(s["layers"])),
    ),
}


def run_task(spec: TaskSpec, progress: Callable[[str, str], None] | None = None) -> TaskOutcome:
    """Run one task and return its outcome; never raises for a task's own failure.

    Outputs are written to ``SCRATCH/out`` (kept across attempts, so a library
    function that resumes from its own checkpoints can do so) and returned
    as bytes.

    Parameters
    ----------
    spec
        The task: its kind's runner is called with the settings, inputs, scratch
        folder and device it names, on ``spec.threads`` torch threads (restored
        afterwards).
    progress
        Called as ``progress(key, line)`` with the periodic progress lines of
        long tasks (generate, null); the lines are also appended to
        ``SCRATCH/progress.log`` (all a remote worker keeps of them).

    Returns
    -------
    TaskOutcome
        ``ok`` with the runner's summary and the output files; otherwise the
        error on one line (library errors) or with a traceback tail (anything
        else).
    """
    started = time.perf_counter()
    host = socket.gethostname()
    previous_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(spec.threads)
        out = _scratch_dir(spec)
        context = TaskContext(
            spec.settings, spec.inputs, out, spec.device, _progress_sink(spec, out, progress)
        )
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


def _progress_sink(
    spec: TaskSpec, out: Path, progress: Callable[[str, str], None] | None
) -> Callable[[str], None]:
    """Progress lines to ``SCRATCH/progress.log`` (best effort) and to ``progress``."""
    log = out.parent / "progress.log"

    def sink(line: str) -> None:
        try:
            with log.open("a", encoding="utf-8") as file:
                file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError:
            pass
        if progress is not None:
            progress(spec.key, line)

    return sink


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
    """Every file under ``out`` (hidden files excepted), relative path → bytes.

    Parameters
    ----------
    out
        The folder to read, recursively; files under a hidden folder or with a
        hidden name are left out.
    """
    files = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[str(relative)] = path.read_bytes()
    return files


def clear_scratch(scratch: str | os.PathLike[str]) -> None:
    """Remove a task's scratch folder (after the driver stored its outputs).

    Parameters
    ----------
    scratch
        The task's scratch folder; a missing folder is not an error.
    """
    shutil.rmtree(scratch, ignore_errors=True)
