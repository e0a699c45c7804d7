"""The study file: one YAML that describes a whole study, validated with pydantic.

Every section is strict (``extra="forbid"``): an unknown key or a bad value is
reported as one line naming the file and the key path, e.g.
``study.yaml: synthesis.stepz: unknown key (did you mean steps?)``.

Paths inside the file (stimulus folders, ``file:`` models, weights files) are
resolved relative to the YAML file; ``output`` is relative to the working
directory (default ``metamers-studies/NAME``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from metamers.errors import ConfigError
from metamers.null.criterion import DEFAULT_NULL_PAIRS
from metamers.synthesis.jobs import parse_layer_list
from metamers.synthesis.settings import PRESETS, SynthesisSettings, get_preset

DEFAULT_OUTPUT_ROOT = Path("metamers-studies")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Section):
    """One model of the study: a registry name (or ``timm:``/``torchvision:``/``file:``) and layers."""

    name: str = Field(min_length=1)
    layers: list[str] = Field(min_length=1)
    label: str | None = None
    random_weights: bool = False
    weights: str | None = None
    trust_code: bool = False
    synthesis: dict[str, Any] | None = None
    """Generators only: settings that override the study's ``synthesis`` section for this
    generator (a *condition*, e.g. another start or optimiser). Its metamers are labelled
    with the generator's ``label`` in every table."""

    @field_validator("layers", mode="before")
    @classmethod
    def _unique_layers(cls, layers: Any) -> Any:
        if not isinstance(layers, str | list) or not all(isinstance(x, str) for x in layers):
            return layers  # pydantic reports the wrong type
        try:
            layers = parse_layer_list(layers)  # a list, or "a, b" as on the command line
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        duplicated = sorted({x for x in layers if layers.count(x) > 1})
        if duplicated:
            raise ValueError(f"layer listed twice: {', '.join(duplicated)}")
        return layers

    @model_validator(mode="after")
    def _file_models_need_consent(self) -> ModelSpec:
        if self.name.startswith("file:") and not self.trust_code:
            raise _KeyProblem(
                "trust_code",
                "a file: model runs its Python code when loaded; add `trust_code: true` to this "
                "model in the study file",
            )
        return self

    @property
    def display(self) -> str:
        """Short name used in labels, tables and figures."""
        return self.label or self.name.rsplit(":", 1)[-1].removesuffix(".py")

    def load_settings(self) -> dict[str, Any]:
        """What identifies the model's weights (part of every task key that uses it)."""
        return {
            "name": self.name,
            "random_weights": self.random_weights,
            "weights": self.weights,
            "trust_code": self.trust_code,
        }


class EnsembleSpec(_Section):
    """A generator made of several models: its metamers match all of them jointly.

    Each member lists its layers in the same order of depth; the ``i``-th
    generation job matches layer ``i`` of every member at once (their losses
    summed, weighted by the synthesis setting ``model_weights``).
    """

    label: str = Field(min_length=1)
    ensemble: list[ModelSpec] = Field(min_length=2)
    synthesis: dict[str, Any] | None = None
    """Settings that override the study's ``synthesis`` section for this ensemble."""

    @model_validator(mode="after")
    def _matching_members(self) -> EnsembleSpec:
        names = [m.name for m in self.ensemble]
        if len(set(names)) != len(names):
            raise _KeyProblem("ensemble", "a model is listed twice in the ensemble")
        depths = {len(m.layers) for m in self.ensemble}
        if len(depths) > 1:
            raise _KeyProblem(
                "ensemble", "every member needs the same number of layers (one per depth)"
            )
        if any(m.synthesis for m in self.ensemble):
            raise _KeyProblem("ensemble", "give `synthesis:` to the ensemble, not to a member")
        return self

    @property
    def display(self) -> str:
        """Short name used in labels, tables and figures."""
        return self.label

    @property
    def depth_layers(self) -> list[tuple[str, ...]]:
        """One tuple per depth: the layer of each member matched jointly."""
        return list(zip(*(m.layers for m in self.ensemble), strict=True))

    @property
    def layers(self) -> list[str]:
        """The generation layers as their metamers name them (``relu1+block1.relu2``)."""
        return ["+".join(dict.fromkeys(depth)) for depth in self.depth_layers]


def _generator_kind(value: Any) -> str:
    if isinstance(value, EnsembleSpec) or (isinstance(value, dict) and "ensemble" in value):
        return "ensemble"
    return "model"


GeneratorSpec = Annotated[
    Annotated[ModelSpec, Tag("model")] | Annotated[EnsembleSpec, Tag("ensemble")],
    Discriminator(_generator_kind),
]
"""A generator: one model (:class:`ModelSpec`) or an ensemble (:class:`EnsembleSpec`)."""


class ModelsSection(_Section):
    """Generating models (metamers are made from them) and observers (they judge the metamers)."""

    generators: list[GeneratorSpec] = Field(min_length=1)
    observers: list[ModelSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> ModelsSection:
        names = [m.display for m in (*self.generators, *self.observers)]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(
                f"model listed twice: {', '.join(duplicated)} (give one of them a distinct label)"
            )
        for index, spec in enumerate(self.observers):
            if spec.synthesis:
                raise _KeyProblem(
                    f"observers[{index}].synthesis", "only a generator has synthesis settings"
                )
        return self

    @property
    def all(self) -> list[ModelSpec]:
        """Single-model generators then observers (ensembles are in :attr:`ensembles`)."""
        return [*self.single_generators, *self.observers]

    @property
    def single_generators(self) -> list[ModelSpec]:
        """Generators that are one model."""
        return [g for g in self.generators if isinstance(g, ModelSpec)]

    @property
    def ensembles(self) -> list[EnsembleSpec]:
        """Generators that are ensembles."""
        return [g for g in self.generators if isinstance(g, EnsembleSpec)]

    @property
    def generating_models(self) -> list[ModelSpec]:
        """Every model that generates metamers, alone or in an ensemble, once per name."""
        members = [m for e in self.ensembles for m in e.ensemble]
        unique: dict[tuple, ModelSpec] = {}
        for spec in [*self.single_generators, *members]:
            unique.setdefault(tuple(sorted(spec.load_settings().items())), spec)
        return list(unique.values())


class StimuliSection(_Section):
    """The reference stimuli: a spec string, optionally limited or picked by id.

    ``labels`` names a labels file (CSV of stimulus → label, e.g. ImageNet's
    ``LOC_val_solution.csv``; see :func:`metamers.stimuli.apply_labels`) whose
    labels replace the spec's; a relative path is relative to the YAML file.
    """

    spec: str = "bundled:photos"
    labels: str | None = None
    limit: int | None = Field(default=None, ge=1)
    ids: list[str] | None = None
    chunk: int = Field(default=4, ge=1, description="Stimuli per metamer-generation task.")


class SynthesisSection(_Section):
    """A synthesis preset plus overrides of its settings, given as sibling keys.

    ``synthesis: {preset: fast, steps: 300}`` uses the ``fast`` preset with
    300 steps. Override keys and values are checked against
    :class:`~metamers.synthesis.settings.SynthesisSettings`.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    preset: str = "fast"

    @model_validator(mode="after")
    def _known_overrides(self) -> SynthesisSection:
        if self.preset not in PRESETS:
            raise _KeyProblem("preset", f"unknown preset {self.preset!r}", sorted(PRESETS))
        check_synthesis_overrides(self.preset, self.overrides)
        return self

    @property
    def overrides(self) -> dict[str, Any]:
        """The settings that override the preset."""
        return dict(self.model_extra or {})

    def resolved(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every synthesis setting (preset plus overrides), as JSON-ready values.

        Parameters
        ----------
        extra
            Further overrides on top of the section's (a generator's own ``synthesis``).
        """
        overrides = self.overrides | (extra or {})
        return get_preset(self.preset, **overrides).model_dump(mode="json")


def check_synthesis_overrides(preset: str, overrides: dict[str, Any], where: str = "") -> None:
    """Raise a :class:`_KeyProblem` at ``where + KEY`` for an unknown or invalid override.

    Parameters
    ----------
    preset
        The preset the overrides apply to (a key of ``PRESETS``).
    overrides
        Setting name → value.
    where
        Prefix of the reported key path (``"models.generators[1].synthesis."``).
    """
    known = sorted(SynthesisSettings.model_fields)
    for key in overrides:
        if key not in known:
            raise _KeyProblem(where + key, "unknown key", [*known, "preset"])
    values = PRESETS[preset].model_dump() | overrides
    try:
        SynthesisSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "preset"
        message = error["msg"].removeprefix("Value error, ")
        raise _KeyProblem(where + key, f"{message} (got {_short(error.get('input'))})") from None


class NullSection(_Section):
    """Null distributions: similarity of random pairs of natural stimuli, per model and layer."""

    enabled: bool = True
    pairs: int = Field(default=DEFAULT_NULL_PAIRS, ge=2)
    stimuli: str = "bundled:photos"


class ValidationSection(_Section):
    """How metamers are judged: label space of the label test and the null criterion.

    Used by the validate tasks and the evaluate tasks (recognition decisions and
    the representation test) alike; the defaults are the library's defaults
    everywhere (:class:`metamers.decisions.LabelSpace`,
    :class:`metamers.null.NullCriterion`).
    """

    label_space: Literal["auto", "native", "16-way"] = "auto"
    sixteen_way_rule: Literal["feather2023", "geirhos2021"] = "feather2023"
    criterion: Literal["max", "quantile", "p_value"] = "max"
    quantile: float = Field(default=0.999, gt=0, le=1)
    alpha: float = Field(default=0.001, gt=0, lt=1)
    inclusive: bool = False

    def labels_settings(self) -> dict[str, str]:
        """Keyword arguments of :class:`~metamers.decisions.LabelSpace`."""
        return {"space": self.label_space, "rule": self.sixteen_way_rule}

    def criterion_settings(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~metamers.null.NullCriterion`."""
        return {"kind": self.criterion, "q": self.quantile, "alpha": self.alpha,
                "inclusive": self.inclusive}  # fmt: skip


class EvaluationSection(_Section):
    """Which evaluations to run on the finished metamers."""

    recognisability: bool = True
    representation_test: bool = True
    transfer: bool = True
    similarity: list[Literal["rsa", "cka"]] = Field(default_factory=lambda: ["rsa", "cka"])
    rsa_distance: Literal["correlation", "cosine", "euclidean"] = "correlation"
    rsa_method: Literal["spearman", "pearson", "kendall"] = "spearman"
    cka_kernel: Literal["linear", "rbf"] = "linear"
    cka_unbiased: bool = False
    features: bool = False
    accepted_only: bool = True
    bootstraps: int = Field(default=1000, ge=1)
    human: str | None = None
    """CSV of human recognition per generator ``model, layer`` (the layout of
    :func:`~metamers.evaluation.human.load_human_recognition`), relative to the YAML;
    only the report reads it (a "Humans and models" section), no task key holds it."""

    def similarity_options(self, method: str) -> dict[str, Any]:
        """Options of :func:`~metamers.evaluation.compare.compare_models` for ``method``
        that differ from the library's defaults (so default studies keep their task keys).

        Parameters
        ----------
        method
            ``"rsa"`` or ``"cka"``.
        """
        if method == "rsa":
            chosen = {"distance": self.rsa_distance, "rsa_method": self.rsa_method}
            defaults = {"distance": "correlation", "rsa_method": "spearman"}
        else:
            chosen = {"kernel": self.cka_kernel, "unbiased": self.cka_unbiased}
            defaults = {"kernel": "linear", "unbiased": False}
        return {k: v for k, v in chosen.items() if v != defaults[k]}


class BrainSection(_Section):
    """Brain mapping of the study's models (and their permuted controls) to neural responses.

    ``responses`` (a neural-data file or a published layout's folder) and
    ``stimuli`` (the stimuli they were measured for; ids must match) are
    relative to the YAML file. See ``docs/brain.md``.
    """

    responses: str
    stimuli: str
    models: list[str] | None = None
    """Labels of study models to map (default: every model)."""
    permuted: list[int] = Field(default_factory=lambda: [0])
    """Seeds of permuted-weights controls mapped beside each model (``[]``: none)."""
    preset: Literal["default", "tuckute2023", "feather2023"] = "default"
    pool: Literal["none", "time_mean"] = "none"
    roi: str | None = None
    roi_table: str | None = None
    rsa: bool = True
    backend: Literal["auto", "torch", "himalaya"] = "auto"

    @field_validator("permuted")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("a permutation seed is listed twice")
        return seeds


class SlurmSection(_Section):
    """submitit settings for ``executor: {kind: slurm}``."""

    cluster: Literal["slurm", "local", "debug"] = "slurm"
    partition: str | None = None
    time_min: int = Field(default=60, ge=1)
    mem_gb: float = Field(default=16, gt=0)
    array_parallelism: int = Field(default=64, ge=1)
    additional_parameters: dict[str, Any] = Field(default_factory=dict)


class ExecutorSection(_Section):
    """Where tasks run; never part of a task key (results do not depend on it)."""

    kind: Literal["local", "ray", "slurm"] = "local"
    address: str | None = None
    cpus_per_task: int = Field(default=1, ge=1)

    def threads(self) -> int:
        """CPUs (torch threads) per task.

        The default of 1 is also the fastest on a shared or busy CPU, where
        several torch threads per process contend; raise it on a dedicated machine.
        """
        return self.cpus_per_task

    gpus_per_task: float | None = Field(default=None, ge=0)
    slurm: SlurmSection = Field(default_factory=SlurmSection)


class StudyConfig(_Section):
    """A whole study.

    Attributes
    ----------
    name
        Short name; the default output folder is ``metamers-studies/NAME``.
    seed
        Base seed of every random choice in the study.
    output
        Study folder (store, catalog and report).
    models, stimuli, synthesis, null, validation, evaluation, executor
        The sections described in ``docs/studies.md``.
    brain
        Optional brain mapping (``docs/brain.md``).
    source
        The YAML file the study was read from (not a YAML key).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    output: str | None = None
    models: ModelsSection
    stimuli: StimuliSection = Field(default_factory=StimuliSection)
    synthesis: SynthesisSection = Field(default_factory=SynthesisSection)
    null: NullSection = Field(default_factory=NullSection)
    validation: ValidationSection = Field(default_factory=ValidationSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)
    brain: BrainSection | None = None
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _generator_synthesis(self) -> StudyConfig:
        for index, spec in enumerate(self.models.generators):
            if spec.synthesis:
                check_synthesis_overrides(
                    self.synthesis.preset,
                    self.synthesis.overrides | spec.synthesis,
                    f"models.generators[{index}].synthesis.",
                )
        return self

    def synthesis_for(self, spec: ModelSpec | EnsembleSpec) -> dict[str, Any]:
        """Every synthesis setting of one generator: the study's, then its own overrides.

        Parameters
        ----------
        spec
            A generator of this study.
        """
        return self.synthesis.resolved(spec.synthesis)

    @model_validator(mode="after")
    def _brain_models_exist(self) -> StudyConfig:
        if self.brain is None or self.brain.models is None:
            return self
        known = [m.display for m in self.models.all]
        for name in self.brain.models:
            if name not in known:
                raise _KeyProblem("brain.models", f"no study model {name!r}", known)
        return self

    @property
    def output_dir(self) -> Path:
        """The study folder."""
        return Path(self.output) if self.output else DEFAULT_OUTPUT_ROOT / self.name

    def with_updates(self, **changes: Any) -> StudyConfig:
        """A validated copy with top-level or dotted keys changed (``executor.kind="ray"``).

        Parameters
        ----------
        **changes
            ``key=value`` pairs; a key is a top-level field (``name``) or a dotted
            path into a section (``"executor.kind"``, passed as
            ``**{"executor.kind": "ray"}``, or ``executor__kind``). Missing sections
            along the path are created.

        Raises
        ------
        ConfigError
            The changed study is invalid (unknown key or bad value).
        """
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            node = data
            *parents, last = dotted.replace("__", ".").split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return parse_study(data, source=self.source or "<study>", base_dir=None)

    def digest(self) -> str:
        """Hash of every setting (the executor section excluded)."""
        unset = {"brain"} if self.brain is None else set()  # studies without one keep their digest
        data = self.model_dump(mode="json", exclude={"executor", "output", *unset})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class _KeyProblem(ValueError):
    """A problem with one key of a free-form section (reported at ``SECTION.KEY``)."""

    def __init__(self, key: str, problem: str, known: list[str] | None = None) -> None:
        self.key = key
        self.problem = problem
        self.known = known
        super().__init__(f"{key}: {problem}")


class _StudyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the last)."""


def _construct_unique_mapping(loader: _StudyLoader, node: yaml.MappingNode, deep: bool = False):
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            line = first_line.setdefault(key, key_node.start_mark.line)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if line != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r}, first given on line {line + 1}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_StudyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file.

    Parameters
    ----------
    path
        The YAML file.

    Raises
    ------
    ConfigError
        Missing file, YAML syntax error, a key given twice, unknown key or bad
        value (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_StudyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path.name}: {where}invalid YAML ({problem})") from None
    return parse_study(data, source=str(path), base_dir=path.parent)


def bundled_study_names() -> list[str]:
    """Names of the studies shipped with the package (``default``, ...)."""
    folder = _bundled_folder()
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _bundled_folder():
    return resources.files("metamers").joinpath("data", "studies")


def load_bundled_study(name: str = "default") -> StudyConfig:
    """Read a study shipped with the package.

    Parameters
    ----------
    name
        One of :func:`bundled_study_names`, e.g. ``"default"``.

    Raises
    ------
    ConfigError
        No bundled study has that name (the closest one is suggested).
    """
    names = bundled_study_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"no bundled study {name!r}{hint}; available: {', '.join(names)}")
    with resources.as_file(_bundled_folder() / f"{name}.yaml") as path:
        return load_study(path)


def parse_study(data: Any, *, source: str = "<study>", base_dir: Path | None = None) -> StudyConfig:
    """Validate a study given as a mapping (the parsed YAML).

    Relative paths are resolved against ``base_dir`` when it is given.

    Parameters
    ----------
    data
        The study as a mapping; a ``None`` key (YAML's bare ``null:``) is read
        as ``"null"``.
    source
        Where the study came from (a file path), recorded on the config and
        named in errors.
    base_dir
        Folder that relative model files, weights and stimulus paths are
        resolved against; ``None`` leaves them as given.

    Raises
    ------
    ConfigError
        ``data`` is not a mapping, or has an unknown key or bad value (one line).
    """
    label = Path(source).name
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the study must be a mapping of keys (name, models, ...)")
    if None in data:  # YAML reads a bare `null:` key as None
        data = {("null" if k is None else k): v for k, v in data.items()}
    try:
        config = StudyConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(f"{label}: {_first_error(exc)}") from None
    config = _resolve_paths(config, base_dir) if base_dir is not None else config
    human = config.evaluation.human
    if human is not None and not Path(human).expanduser().is_file():
        raise ConfigError(f"{label}: evaluation.human: {human} does not exist")
    return config


def _resolve_paths(config: StudyConfig, base_dir: Path) -> StudyConfig:
    def model(spec: ModelSpec) -> ModelSpec:
        changes: dict[str, Any] = {}
        if spec.name.startswith("file:"):
            changes["name"] = "file:" + _resolve(spec.name.removeprefix("file:"), base_dir)
        if spec.weights:
            changes["weights"] = _resolve(spec.weights, base_dir)
        return spec.model_copy(update=changes)

    def generator(spec: ModelSpec | EnsembleSpec) -> ModelSpec | EnsembleSpec:
        changes: dict[str, Any] = {}
        if isinstance(spec, EnsembleSpec):
            changes["ensemble"] = [model(m) for m in spec.ensemble]
        else:
            spec = model(spec)
        source = (spec.synthesis or {}).get("init_source")
        if source:
            changes["synthesis"] = {**spec.synthesis, "init_source": _resolve(source, base_dir)}
        return spec.model_copy(update=changes)

    models = ModelsSection(
        generators=[generator(m) for m in config.models.generators],
        observers=[model(m) for m in config.models.observers],
    )
    stimuli = config.stimuli.model_copy(
        update={
            "spec": _resolve_spec(config.stimuli.spec, base_dir),
            "labels": config.stimuli.labels and _resolve(config.stimuli.labels, base_dir),
        }
    )
    synthesis = config.synthesis
    if synthesis.overrides.get("init_source"):
        source = _resolve(synthesis.overrides["init_source"], base_dir)
        synthesis = SynthesisSection(
            preset=synthesis.preset, **synthesis.overrides | {"init_source": source}
        )
    null = config.null.model_copy(update={"stimuli": _resolve_spec(config.null.stimuli, base_dir)})
    human = config.evaluation.human and _resolve(config.evaluation.human, base_dir)
    evaluation = config.evaluation.model_copy(update={"human": human})
    brain = config.brain and config.brain.model_copy(
        update={
            "responses": _resolve(config.brain.responses, base_dir),
            "stimuli": _resolve_spec(config.brain.stimuli, base_dir),
            "roi_table": config.brain.roi_table and _resolve(config.brain.roi_table, base_dir),
        }
    )
    return config.model_copy(
        update={
            "models": models,
            "stimuli": stimuli,
            "synthesis": synthesis,
            "null": null,
            "evaluation": evaluation,
            "brain": brain,
        }
    )


def _resolve(text: str, base_dir: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _resolve_spec(spec: str, base_dir: Path) -> str:
    if spec.startswith("bundled:"):
        return spec
    return ",".join(_resolve(part.strip(), base_dir) for part in spec.split(",") if part.strip())


def _first_error(exc: ValidationError) -> str:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc, model = _without_tags(tuple(error["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    context = error.get("ctx") or {}
    problem = context.get("error")
    if isinstance(problem, _KeyProblem):
        hint = _did_you_mean(problem.key.rsplit(".", 1)[-1], problem.known) if problem.known else ""
        if problem.known and problem.problem != "unknown key":
            hint = _did_you_mean(problem.problem.split("'")[1], problem.known)
        return f"{_format_loc((*loc, problem.key))}: {problem.problem}{hint}{more}"
    if error["type"] == "extra_forbidden":
        known = _fields_at(StudyConfig, loc[:-1]) if model is None else _fields_at(model, ())
        return f"{_format_loc(loc)}: unknown key{_did_you_mean(str(loc[-1]), known)}{more}"
    if error["type"] == "missing":
        return f"{_format_loc(loc)}: missing key{more}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{_format_loc(loc)}: {message} (got {_short(error.get('input'))}){more}"


def _without_tags(loc: tuple) -> tuple[tuple, type[BaseModel] | None]:
    """``loc`` without the generator kind's tag, and the model class the tag chose (if any)."""
    tags = {"model": ModelSpec, "ensemble": EnsembleSpec}
    for i in range(2, len(loc)):
        if loc[i - 2] == "generators" and isinstance(loc[i - 1], int) and loc[i] in tags:
            model = tags[loc[i]] if len(loc) == i + 2 else None
            return (*loc[:i], *loc[i + 1 :]), model
    return loc, None


def _format_loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    parts = [str(part) for part in loc if not isinstance(part, int)]
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        nested = _models_in(getattr(field, "annotation", None))
        following = parts[index + 1] if index + 1 < len(parts) else None
        fitting = [m for m in nested if following is None or following in m.model_fields]
        if not fitting:
            return []
        model = fitting[0]
    return sorted(name for name in model.model_fields if name != "source")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a type annotation (through lists, unions, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
