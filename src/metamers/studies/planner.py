"""Expand a study into independent, content-keyed tasks with dependencies.

A task's key is the hash of its kind, its settings and the keys of its
inputs. Changing one setting therefore changes the keys of exactly the tasks
that use it and of everything downstream of them; every other key, and so
every other finished result, stays valid.

Graph::

    features[model]            reference features (for RSA/CKA)
    null[model]                null distribution per model (generators and observers)
    generate[gen, layer, chunk]
    validate[gen, layer, chunk]   <- generate, null[gen]
    evaluate[observer]         <- generate*, validate*, null[observer]
    compare[method]            RSA/CKA matrix of every model's layers
    brain[model, control]      encoding (and RSA) of a model or its permuted control
    report                     <- everything (run by the driver)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamers.stimuli import StimulusSet, resolve_stimuli
from metamers.studies.config import EnsembleSpec, ModelSpec, StudyConfig
from metamers.studies.tasks import KINDS

# Bump when a kind's outputs change meaning, so that old results are recomputed.
KIND_VERSIONS: dict[str, int] = {
    "features": 1,
    # null 2: tidy null.parquet beside the cache file; 3: self-describing null.npz;
    # 4: prefix-consistent sampling (null format version 3)
    "null": 4,
    "generate": 1,
    "validate": 2,  # 2: one judgement, explicit label space and criterion recorded
    # evaluate 2: recognition in the study's label space, criterion-aware representation test;
    # 3: ImageNet class folders labelled by class, targets compared only in their label space;
    # 4: accepted metamers keyed by generator too (a model and its robust variant)
    "evaluate": 4,
    "compare": 1,
    "brain": 1,
    "report": 1,
}
FEATURE_BATCH = 8


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes
    ----------
    key
        Content hash of kind, settings and input keys (16 hex digits).
    kind
        ``features``, ``null``, ``generate``, ``validate``, ``evaluate``, ``compare``, ``report``.
    label
        Human-readable name (``generate lite0 blocks.1 #0``).
    settings
        Everything that determines the result (JSON-serialisable).
    inputs
        Keys of the tasks whose results this one reads.
    """

    key: str
    kind: str
    label: str
    settings: dict[str, Any]
    inputs: tuple[str, ...] = ()


def task_key(kind: str, settings: dict[str, Any], inputs: tuple[str, ...]) -> str:
    """Content hash of a task: its kind (and version), settings and input keys.

    Parameters
    ----------
    kind
        The task kind (a key of :data:`KIND_VERSIONS`; its version enters the
        hash, so bumping it re-keys every task of the kind).
    settings
        Everything that determines the result (JSON-serialisable).
    inputs
        Keys of the tasks this one reads (their order does not matter).

    Returns
    -------
    str
        16 hex digits.
    """
    payload = {
        "kind": kind,
        "version": KIND_VERSIONS.get(kind, 1),
        "settings": settings,
        "inputs": sorted(inputs),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Plan:
    """The tasks of a study in dependency order, plus notes on what was left out."""

    study: StudyConfig
    tasks: dict[str, Task] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, label: str, settings: dict[str, Any], inputs=()) -> Task:
        """Add a task (inputs must already be in the plan) and return it.

        A task whose key is already planned is not added twice; the planned one is
        returned.

        Parameters
        ----------
        kind
            The task kind (``"generate"``, ``"null"``, ...).
        label
            Human-readable name shown in progress and status.
        settings
            Everything that determines the result (JSON-serialisable).
        inputs
            Keys of planned tasks whose results this one reads.

        Raises
        ------
        ValueError
            An input key is not in the plan.
        """
        inputs = tuple(inputs)
        unknown = [k for k in inputs if k not in self.tasks]
        if unknown:
            raise ValueError(f"task {label} depends on unplanned tasks {unknown}")
        task = Task(task_key(kind, settings, inputs), kind, label, settings, inputs)
        self.tasks.setdefault(task.key, task)
        return task

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def of_kind(self, kind: str) -> list[Task]:
        """Tasks of one kind, in plan order.

        Parameters
        ----------
        kind
            The task kind, e.g. ``"generate"``.
        """
        return [t for t in self if t.kind == kind]

    def waves(self) -> list[list[Task]]:
        """Tasks grouped by depth: every task's inputs are in earlier waves."""
        depth: dict[str, int] = {}
        for task in self:  # insertion order is a topological order
            depth[task.key] = 1 + max((depth[k] for k in task.inputs), default=-1)
        waves: list[list[Task]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for task in self:
            waves[depth[task.key]].append(task)
        return waves

    def estimate(self, *, cuda: bool = False) -> dict[str, dict[str, float]]:
        """Rough cost per kind: ``{kind: {"tasks", "steps", "seconds"}}`` (CPU; ÷10 with CUDA).

        Parameters
        ----------
        cuda
            Whether tasks will run on CUDA: the seconds of tasks with optimisation
            steps are divided by 10.
        """
        totals: dict[str, dict[str, float]] = {}
        for task in self:
            steps, seconds = (
                KINDS[task.kind].estimate(task.settings) if task.kind in KINDS else (0, 1.0)
            )
            entry = totals.setdefault(task.kind, {"tasks": 0, "steps": 0, "seconds": 0.0})
            entry["tasks"] += 1
            entry["steps"] += steps
            entry["seconds"] += seconds / 10 if cuda and steps else seconds
        return totals

    def dependents(self, key: str) -> set[str]:
        """Keys of every task downstream of ``key``.

        Parameters
        ----------
        key
            A task key of the plan.

        Returns
        -------
        set of str
            Keys of tasks that read ``key``'s result directly or through other tasks
            (``key`` itself excluded).
        """
        found: set[str] = set()
        for task in self:
            if key in task.inputs or found.intersection(task.inputs):
                found.add(task.key)
        return found


def plan_study(study: StudyConfig) -> Plan:
    """Expand a study into its tasks.

    Parameters
    ----------
    study
        The validated study.

    Returns
    -------
    Plan
        Tasks in dependency order; ``notes`` lists what is left out and why.
    """
    plan = Plan(study)
    stimuli = reference_stimuli(study)
    features = _plan_features(plan, study, stimuli)
    nulls = _plan_nulls(plan, study)
    generated = _plan_generation(plan, study, stimuli)
    validated = _plan_validation(plan, study, generated, nulls)
    evaluated = _plan_evaluation(plan, study, stimuli, generated, validated, nulls)
    compared = _plan_compare(plan, study, stimuli)
    mapped = _plan_brain(plan, study)
    generated_keys = [key for _, key in generated]
    plan.add(
        "report",
        "report",
        _report_settings(study),
        [
            *features.values(),
            *nulls.values(),
            *generated_keys,
            *validated,
            *evaluated,
            *compared,
            *mapped,
        ],
    )
    return plan


def _report_settings(study: StudyConfig) -> dict[str, Any]:
    """The report's own inputs: the study name and, when given, the human table's content."""
    settings: dict[str, Any] = {"study": study.name}
    human = study.evaluation.human
    if human:
        settings["human"] = hashlib.sha256(Path(human).read_bytes()).hexdigest()[:16]
    return settings


def reference_stimuli(study: StudyConfig) -> StimulusSet:
    """The study's reference stimuli (spec, then ids, then limit).

    Parameters
    ----------
    study
        The validated study; its ``stimuli`` section is read.

    Raises
    ------
    StimulusError
        The spec cannot be resolved, or an id is not in the set.
    """
    section = study.stimuli
    return resolve_stimuli(
        section.spec, labels=section.labels, ids=section.ids, limit=section.limit
    )


def stimulus_settings(stimuli: StimulusSet) -> dict[str, Any]:
    """How a task names its stimuli: spec, ids and fingerprint.

    Parameters
    ----------
    stimuli
        The stimulus set a task reads.

    Returns
    -------
    dict
        ``{"spec", "ids", "fingerprint"}``, and ``"labels"`` (the labels file)
        when one labels the set; JSON-serialisable.
    """
    settings = {"spec": stimuli.spec, "ids": stimuli.ids, "fingerprint": stimuli.fingerprint()}
    if stimuli.labels_file is not None:  # its labels are in the fingerprint too
        settings["labels"] = stimuli.labels_file
    return settings


def _plan_features(plan: Plan, study: StudyConfig, stimuli: StimulusSet) -> dict[str, str]:
    if not study.evaluation.features:
        return {}
    keys = {}
    for spec in study.models.all:
        settings = {
            "model": spec.load_settings(),
            "layers": list(spec.layers),
            "stimuli": stimulus_settings(stimuli),
            "batch_size": FEATURE_BATCH,
        }
        keys[spec.display] = plan.add("features", f"features {spec.display}", settings).key
    return keys


def _plan_nulls(plan: Plan, study: StudyConfig) -> dict[str, str]:
    """Null tasks, keyed by model display name (ensemble members: ``ENSEMBLE/MEMBER``)."""
    if not study.null.enabled:
        return {}
    pool = resolve_stimuli(study.null.stimuli)
    members = [(f"{e.display}/{m.display}", m) for e in study.models.ensembles for m in e.ensemble]
    keys = {}
    for name, spec in [*((s.display, s) for s in study.models.all), *members]:
        settings = {
            "model": spec.load_settings(),
            "layers": list(spec.layers),
            "stimuli": stimulus_settings(pool),
            "pairs": study.null.pairs,
            "seed": study.seed,
        }
        keys[name] = plan.add("null", f"null {spec.display}", settings).key
    return keys


Generator = ModelSpec | EnsembleSpec


def _plan_generation(
    plan: Plan, study: StudyConfig, stimuli: StimulusSet
) -> list[tuple[Generator, str]]:
    """Generation tasks as ``(generator, key)``.

    A generator with its own synthesis settings, and an ensemble, records its
    label in its tasks' settings: its metamers are named by it in every table
    (:func:`metamers.studies.tasks.load_generated`).
    """
    size = study.stimuli.chunk
    chunks = [stimuli[i : i + size] for i in range(0, len(stimuli), size)]
    tasks = []
    for spec in study.models.generators:
        synthesis = study.synthesis_for(spec)
        for depth, layer in enumerate(spec.layers):
            for number, chunk in enumerate(chunks):
                settings: dict[str, Any] = {
                    "stimuli": stimulus_settings(chunk),
                    "synthesis": synthesis,
                    "seed": study.seed,
                }
                if isinstance(spec, EnsembleSpec):
                    settings["models"] = [m.load_settings() for m in spec.ensemble]
                    settings["layers"] = list(spec.depth_layers[depth])
                else:
                    settings["model"] = spec.load_settings()
                    settings["layer"] = layer
                if isinstance(spec, EnsembleSpec) or spec.synthesis:
                    settings["label"] = spec.display
                suffix = f" #{number}" if len(chunks) > 1 else ""
                label = f"generate {spec.display} {layer}{suffix}"
                tasks.append((spec, plan.add("generate", label, settings).key))
    return tasks


def _plan_validation(
    plan: Plan, study: StudyConfig, generated: list[tuple[Generator, str]], nulls: dict[str, str]
) -> list[str]:
    if not generated or not nulls:
        return []
    keys = []
    for spec, key in generated:
        label = plan.tasks[key].label.replace("generate", "validate", 1)
        if isinstance(spec, EnsembleSpec):
            models = {"models": [m.load_settings() for m in spec.ensemble]}
            null_keys = [nulls[f"{spec.display}/{m.display}"] for m in spec.ensemble]
        else:
            models = {"model": spec.load_settings()}
            null_keys = [nulls[spec.display]]
        settings = {**models, **_judgement_settings(study)}
        keys.append(plan.add("validate", label, settings, [key, *null_keys]).key)
    return keys


def _plan_evaluation(
    plan: Plan,
    study: StudyConfig,
    stimuli: StimulusSet,
    generated: list[tuple[Generator, str]],
    validated: list[str],
    nulls: dict[str, str],
) -> list[str]:
    evaluation = study.evaluation
    wanted = bool(study.models.observers) and (
        evaluation.recognisability or evaluation.representation_test or evaluation.transfer
    )
    if not wanted or not generated:
        return []
    keys = []
    for observer in study.models.observers:
        inputs = [key for _, key in generated] + validated
        if evaluation.representation_test and observer.display in nulls:
            inputs.append(nulls[observer.display])
        settings = {
            "observer": observer.load_settings(),
            "layers": list(observer.layers),
            "generators": [g.load_settings() for g in study.models.generating_models],
            "stimuli": stimulus_settings(stimuli),
            "accepted_only": evaluation.accepted_only,
            **_judgement_settings(study),
            "bootstraps": evaluation.bootstraps,
            "seed": study.seed,
        }
        label = f"evaluate {observer.display}"
        keys.append(plan.add("evaluate", label, settings, inputs).key)
    return keys


def _judgement_settings(study: StudyConfig) -> dict[str, Any]:
    """The label space and criterion every validate and evaluate task judges with."""
    return {
        "labels": study.validation.labels_settings(),
        "criterion": study.validation.criterion_settings(),
    }


def _plan_compare(plan: Plan, study: StudyConfig, stimuli: StimulusSet) -> list[str]:
    if not study.evaluation.similarity:
        return []
    models = {
        spec.display: {"model": spec.load_settings(), "layers": list(spec.layers)}
        for spec in study.models.all
    }
    keys = []
    for method in study.evaluation.similarity:
        settings = {"models": models, "stimuli": stimulus_settings(stimuli), "method": method}
        options = study.evaluation.similarity_options(method)
        if options:  # only when chosen: a default study keeps its keys
            settings["options"] = options
        keys.append(plan.add("compare", f"compare {method}", settings).key)
    return keys


def _plan_brain(plan: Plan, study: StudyConfig) -> list[str]:
    """One ``brain`` task per mapped model and per permuted control of it."""
    brain = study.brain
    if brain is None:
        return []
    stimuli = resolve_stimuli(brain.stimuli)
    roi_table = brain.roi_table
    common = {
        "responses": {"path": brain.responses, "digest": _content_digest(brain.responses)},
        "stimuli": stimulus_settings(stimuli),
        "preset": brain.preset,
        "pool": brain.pool,
        "roi": brain.roi,
        "roi_table": {"path": roi_table, "digest": _content_digest(roi_table)}
        if roi_table
        else None,
        "rsa": brain.rsa,
        "backend": brain.backend,
    }
    keys = []
    for spec in study.models.all:
        if brain.models is not None and spec.display not in brain.models:
            continue
        for seed in [None, *brain.permuted]:
            settings = {
                "model": spec.load_settings(),
                "label": spec.display,
                "layers": list(spec.layers),
                "permuted_seed": seed,
                **common,
            }
            label = f"brain {spec.display}" + ("" if seed is None else f" permuted{seed}")
            keys.append(plan.add("brain", label, settings).key)
    return keys


def _content_digest(path: str) -> str:
    """SHA-256 (16 hex digits) of a file, or of a folder's files (names and contents)."""
    target = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    for file in files:
        if not file.is_file():
            from metamers.errors import ConfigError

            raise ConfigError(f"brain: no such file or folder: {path}")
        digest.update(str(file.relative_to(target) if target.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


MIN_REFERENCE_STIMULI_TO_COMPARE = 3
"""A comparison (RSA/CKA) needs at least this many reference stimuli."""


def check_study(study: StudyConfig) -> list[str]:
    """Problems of a study that can be found without computing anything (``run --dry-run``).

    Loads every model's architecture (untrained: nothing is downloaded) and
    checks its name, weights file and layers (unknown layers with the closest
    names), the reference stimuli and the null's pool (that they resolve, and
    their counts against what each task needs: a comparison ≥ 3 reference
    stimuli, a null ≥ 2 stimuli), and that observers take the generators'
    kind of stimulus (they judge the generators' metamers).

    Parameters
    ----------
    study
        The validated study.

    Returns
    -------
    list of str
        One line per problem, each naming the study key it is about; empty
        when nothing was found.
    """
    from pathlib import Path

    from metamers.errors import MetamersError
    from metamers.models import load_model
    from metamers.models.base import unknown_layer_message

    def one_line(exc: BaseException) -> str:
        return " ".join(str(exc).split())

    problems: list[str] = []
    modalities: dict[str, str] = {}
    for where, spec in _model_entries(study):
        if spec.weights and not Path(spec.weights).is_file():
            problems.append(f"{where}.weights: no such file: {spec.weights}")
        try:  # the architecture only: the layer names do not depend on the weights
            model = load_model(spec.name, random_weights=True, trust_code=spec.trust_code)
        except MetamersError as exc:
            problems.append(f"{where}.name: {one_line(exc)}")
            continue
        modalities[where] = model.modality
        known = model.layer_names()
        problems += [
            f"{where}.layers: {unknown_layer_message(layer, spec.name, known)}"
            for layer in spec.layers
            if layer not in known
        ]
    generator_kinds = {
        modalities[where]
        for where, _ in _model_entries(study)
        if where.startswith("models.generators") and where in modalities
    }
    for index, spec in enumerate(study.models.observers):
        kind = modalities.get(f"models.observers[{index}]")
        if kind is not None and generator_kinds and kind not in generator_kinds:
            problems.append(
                f"models.observers[{index}]: {spec.display} takes {kind} stimuli but the "
                f"generators make {', '.join(sorted(generator_kinds))} metamers"
            )
    try:
        count = len(reference_stimuli(study))
    except MetamersError as exc:
        problems.append(f"stimuli: {one_line(exc)}")
    else:
        methods = study.evaluation.similarity
        if methods and count < MIN_REFERENCE_STIMULI_TO_COMPARE:
            problems.append(
                f"evaluation.similarity: a comparison ({', '.join(methods)}) needs at least "
                f"{MIN_REFERENCE_STIMULI_TO_COMPARE} reference stimuli, the study has {count}; "
                "give more stimuli or set `similarity: []`"
            )
    if study.null.enabled:
        try:
            pool = len(resolve_stimuli(study.null.stimuli))
        except MetamersError as exc:
            problems.append(f"null.stimuli: {one_line(exc)}")
        else:
            if pool < 2:
                problems.append(
                    f"null.stimuli: a null needs at least 2 different stimuli, "
                    f"{study.null.stimuli} has {pool}; give a larger set or set `enabled: false`"
                )
    return problems


def _model_entries(study: StudyConfig) -> list[tuple[str, ModelSpec]]:
    """Every single model of the study with its key path (ensemble members included)."""
    entries = []
    for index, spec in enumerate(study.models.generators):
        where = f"models.generators[{index}]"
        if isinstance(spec, EnsembleSpec):
            entries += [(f"{where}.ensemble[{i}]", m) for i, m in enumerate(spec.ensemble)]
        else:
            entries.append((where, spec))
    entries += [(f"models.observers[{i}]", m) for i, m in enumerate(study.models.observers)]
    return entries
