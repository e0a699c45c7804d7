"""Layer specifications: what one metamer matches, and how to write it.

A :class:`LayerJob` is the unit of synthesis: for each generating model, the
layers one metamer matches *jointly* (their losses summed; an ensemble's
models weighted and summed). :class:`~metamers.synthesis.MetamerSynthesis`
makes the metamers of one job; :func:`~metamers.synthesis.generate_metamers`
runs several jobs, each into its own folder ``OUT/<generator>/<job label>``.

One grammar serves ``metamers generate --layers`` and the library
(:func:`parse_layer_jobs`)::

    SPEC := JOB ("," JOB)*              each job makes its own metamers

    one model
      JOB := L ("+" L)*                 "+" joins layers matched jointly

    an ensemble of n models
      JOB := L                          the same layer in every model
           | L ("+" L)  (n names)       one layer per model, in model order
           | G (";" G)  (n groups)      per model; G := L ("+" L)* is that
                                        model's layers, matched jointly

and, for an ensemble only, a spec of exactly ``n`` plain names without any
``+`` or ``;`` (``a1,b1`` for two models) is one job with one name per model
(the older form; write ``a;a,b;b`` for two jobs at the same layers of both).

Examples (``mnist_cnn_s0`` / two-model ensembles)::

    "blocks.1,blocks.3"       two jobs, one per layer
    "blocks.1+blocks.3"       one job matching both layers
    "a1+b1,a2+b2"             ensemble: two jobs, one layer per model each
    "a1+a2;b1"                ensemble: one job, a1 and a2 in model 1, b1 in model 2

Other options name plain layers, not jobs (``metamers null``, ``extract``,
``--observer-layers``): :func:`parse_layer_list` reads ``a,b``, and
:func:`parse_model_layers` also ``M1=a,b;M2=c``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metamers.errors import ConfigError, LayerError

if TYPE_CHECKING:
    from metamers.models import PixelModel

JOBS, MODELS, JOINT = ",", ";", "+"
_RESERVED = (JOBS, MODELS, JOINT, "=")


@dataclass(frozen=True)
class LayerJob:
    """The layers one metamer matches jointly, per generating model.

    Attributes
    ----------
    layers
        One tuple of layer names per model, in model order; each model's
        layers are matched together (losses summed).

    Examples
    --------
    >>> job = LayerJob((("blocks.1", "blocks.3"),))
    >>> job.label, job.record
    ('blocks.1+blocks.3', ('blocks.1+blocks.3',))
    >>> LayerJob.same("3", 2).label
    '3'
    """

    layers: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        layers = tuple(tuple(names) for names in self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ConfigError("a layer job needs layers for at least one model")
        for names in layers:
            if not names:
                raise ConfigError("a layer job needs at least one layer per model")
            for name in names:
                if not isinstance(name, str) or not name.strip() or name != name.strip():
                    raise ConfigError(f"bad layer name {name!r} in a layer job")
                if any(mark in name for mark in (JOBS, MODELS, JOINT)):
                    raise ConfigError(f"{name!r}: a layer name in a job cannot contain , ; or +")
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise LayerError(f"layer listed twice in one job: {', '.join(twice)}")

    @classmethod
    def same(cls, layers: str | Sequence[str], n_models: int = 1) -> LayerJob:
        """The same layer(s) in every one of ``n_models`` models.

        Parameters
        ----------
        layers
            One layer name, or several names matched jointly.
        n_models
            The number of generating models (1 for a single model).
        """
        names = (layers,) if isinstance(layers, str) else tuple(layers)
        return cls((names,) * n_models)

    @classmethod
    def from_record(cls, layers: Sequence[str]) -> LayerJob:
        """The job of a stored metamer from its per-model ``layers`` (see :attr:`record`).

        Parameters
        ----------
        layers
            One entry per model, that model's layers joined by ``+``.
        """
        return cls(tuple(tuple(entry.split(JOINT)) for entry in layers))

    @property
    def n_models(self) -> int:
        """How many models the job is for."""
        return len(self.layers)

    @property
    def record(self) -> tuple[str, ...]:
        """Per model, its layers joined by ``+`` (``MetamerResult.layers``, ``record.json``)."""
        return tuple(JOINT.join(names) for names in self.layers)

    @property
    def label(self) -> str:
        """Display and folder name: ``blocks.3``, ``a+b`` (joint or per model), ``a1+a2;b1``."""
        distinct = list(dict.fromkeys(self.record))
        if len(distinct) == 1 or all(len(names) == 1 for names in self.layers):
            return JOINT.join(distinct)
        return MODELS.join(self.record)

    def check(self, models: Sequence[PixelModel]) -> LayerJob:
        """Check the job against its models: one entry per model, known layer names.

        Parameters
        ----------
        models
            The generating models, in the job's model order.

        Returns
        -------
        LayerJob
            The job itself, for chaining.

        Raises
        ------
        LayerError
            Another number of models, or an unknown layer (with close matches).
        """
        if len(models) != self.n_models:
            raise LayerError(
                f"layers {self} are for {self.n_models} model(s), not {len(models)}: give one "
                "layer for all models, one per model, or ';'-separated groups per model"
            )
        for model, names in zip(models, self.layers):
            model.check_layers(names)
        return self

    def __str__(self) -> str:
        """The job in the string grammar (parses back to the same job)."""
        return MODELS.join(self.record) if self.n_models > 1 else self.record[0]


LayerJobSpec = str | LayerJob | Sequence[str | Sequence[str]]
"""What :func:`as_layer_job` accepts as one job (see its documentation)."""


def parse_layer_jobs(
    spec: str | LayerJob | Sequence[str | LayerJob | Sequence[str | Sequence[str]]],
    n_models: int = 1,
) -> list[LayerJob]:
    """Read a layer specification as the jobs it describes, in order, without repeats.

    Parameters
    ----------
    spec
        A string in the grammar of :mod:`metamers.synthesis.jobs` (``"a,b"``:
        two jobs; ``"a+b"``: one joint job), a :class:`LayerJob`, or a
        sequence whose entries are each one of those (a string entry may
        describe several jobs) or, for one job, a sequence with an entry per
        model (a name, a ``+``-joined group, or a sequence of names).
    n_models
        How many models the jobs are for.

    Returns
    -------
    list[LayerJob]
        The jobs, each with one entry per model (names are not checked
        against the models; see :meth:`LayerJob.check`).

    Raises
    ------
    ConfigError
        An empty or malformed specification.
    LayerError
        Entries for another number of models, or a layer listed twice in a job.

    Examples
    --------
    >>> [str(job) for job in parse_layer_jobs("blocks.1,blocks.3")]
    ['blocks.1', 'blocks.3']
    >>> [str(job) for job in parse_layer_jobs("blocks.1+blocks.3")]
    ['blocks.1+blocks.3']
    >>> [str(job) for job in parse_layer_jobs("a1+b1,a2+b2", n_models=2)]
    ['a1;b1', 'a2;b2']
    """
    if n_models < 1:
        raise ConfigError("layer jobs need at least one model")
    if isinstance(spec, str):
        jobs = _parse_string(spec, n_models)
    elif isinstance(spec, LayerJob):
        jobs = [spec]
    else:
        jobs = []
        for entry in spec:
            if isinstance(entry, str):
                jobs += _parse_string(entry, n_models)
            elif isinstance(entry, LayerJob):
                jobs.append(entry)
            else:
                jobs.append(_per_model(list(entry), n_models, entry))
    if not jobs:
        raise ConfigError("no generation layers given")
    for job in jobs:
        _check_count(job, n_models)
    return list(dict.fromkeys(jobs))


def as_layer_job(spec: LayerJobSpec, n_models: int = 1) -> LayerJob:
    """One job, as :class:`~metamers.synthesis.MetamerSynthesis` reads its ``layers``.

    A :class:`LayerJob`; a string describing one job in the grammar of
    :mod:`metamers.synthesis.jobs` (``"a"``, ``"a+b"``, ``"a1;b1"``); for one
    model, a sequence of its layer names (all matched jointly); or a sequence
    with one entry per model (a name, a ``+``-joined group, or a sequence of
    names).

    Parameters
    ----------
    spec
        The job, in any of the forms above.
    n_models
        The number of generating models the job is for.

    Raises
    ------
    ConfigError, LayerError
        As :func:`parse_layer_jobs`, or a specification of several jobs.

    Examples
    --------
    >>> as_layer_job(["1", "3"]).label
    '1+3'
    >>> as_layer_job(["3", "1"], n_models=2).layers
    (('3',), ('1',))
    """
    if isinstance(spec, LayerJob):
        return _check_count(spec, n_models)
    if isinstance(spec, str):
        jobs = parse_layer_jobs(spec, n_models)
        if len(jobs) > 1:
            raise ConfigError(
                f"{spec!r} describes {len(jobs)} jobs but one synthesis matches one; "
                f"join layers matched together with '+' ({JOINT.join(str(j) for j in jobs)!r})"
            )
        return jobs[0]
    entries = list(spec)
    if n_models == 1 and entries and all(isinstance(e, str) for e in entries):
        names = [name for entry in entries for name in _split(entry, JOINT, entry)]
        return LayerJob((tuple(names),))
    return _per_model(entries, n_models, spec)


def parse_layer_list(text: str | Iterable[str] | None) -> list[str]:
    """Plain layer names from ``"a, b"`` (or a sequence of names), in order.

    For options that read layers rather than make jobs (``metamers null``,
    ``extract``, observer layers).

    Parameters
    ----------
    text
        Comma-separated layer names (whitespace around each is dropped), or a
        sequence of names; ``None`` counts as no names.

    Raises
    ------
    ConfigError
        No names, or a ``+``/``;``/``=`` group where plain names are expected.

    Examples
    --------
    >>> parse_layer_list("blocks.1, blocks.3")
    ['blocks.1', 'blocks.3']
    """
    parts = _split(text or "", JOBS, text) if isinstance(text, str) or text is None else list(text)
    if not parts:
        raise ConfigError("no layer names given; list them separated by commas (a,b)")
    for name in parts:
        if any(mark in name for mark in _RESERVED[1:]):
            raise ConfigError(
                f"{name!r} is not a layer name: here layers are plain names separated by commas"
            )
    return parts


def parse_model_layers(
    text: str,
    models: Sequence[str] | None = None,
    *,
    complete: bool = True,
    role: str = "models given",
) -> list[str] | dict[str, list[str]]:
    """Layers for every model (``"a,b"``) or per model (``"M1=a,b;M2=c"``).

    Parameters
    ----------
    text
        The specification.
    models
        When given, a per-model form may name only these models.
    complete
        ... and must name every one of them.
    role
        What the models are called in that error ("models compared").

    Returns
    -------
    list[str] | dict[str, list[str]]
        The shared layers, or ``{model: layers}``.

    Examples
    --------
    >>> parse_model_layers("m1=a,b; m2=c")
    {'m1': ['a', 'b'], 'm2': ['c']}
    """
    if "=" not in text:
        return parse_layer_list(text)
    per_model: dict[str, list[str]] = {}
    for part in _split(text, MODELS, text):
        model, sep, names = part.partition("=")
        if not sep or not model.strip() or not _split(names, JOBS, names):
            raise ConfigError(f"cannot read {part!r}; write MODEL=layer1,layer2;MODEL=...")
        per_model[model.strip()] = parse_layer_list(names)
    unknown = [name for name in per_model if name not in (models or ())]
    missing = [name for name in (models or ()) if name not in per_model] if complete else []
    if models is not None and (unknown or missing):
        raise ConfigError(
            f"the layers name models {list(per_model)} but the {role} are {list(models)}"
        )
    return per_model


def _parse_string(text: str, n_models: int) -> list[LayerJob]:
    entries = _split(text, JOBS, text)
    if not entries:
        raise ConfigError("the layers are empty; give at least one layer name")
    plain = not any(JOINT in e or MODELS in e for e in entries)
    if n_models > 1 and plain and len(entries) > 1:
        if len(entries) != n_models:
            raise LayerError(
                f"{len(entries)} layers for {n_models} models: give one name for all models, one "
                "per model, +-joined names per model (a1+b1,a2+b2) or ;-separated groups (a;b)"
            )
        return [LayerJob(tuple((name,) for name in entries))]
    return [_parse_job(entry, n_models) for entry in entries]


def _parse_job(entry: str, n_models: int) -> LayerJob:
    if n_models == 1:
        if MODELS in entry:
            raise ConfigError(f"{entry!r}: ';' separates the models of an ensemble; one is given")
        return LayerJob((tuple(_split(entry, JOINT, entry)),))
    if MODELS in entry:
        groups = _split(entry, MODELS, entry, strict=True)
        job = LayerJob(tuple(tuple(_split(group, JOINT, entry)) for group in groups))
        return _check_count(job, n_models, entry)
    names = _split(entry, JOINT, entry)
    if len(names) == 1:
        return LayerJob.same(names[0], n_models)
    return _check_count(LayerJob(tuple((name,) for name in names)), n_models, entry)


def _per_model(entries: list, n_models: int, spec: object) -> LayerJob:
    if len(entries) != n_models:
        raise LayerError(
            f"got {len(entries)} layer entries for {n_models} model(s) in {spec!r}: give one "
            "name for all models or one entry per model"
        )
    groups = []
    for entry in entries:
        if isinstance(entry, str):
            groups.append(tuple(_split(entry, JOINT, spec)))
        else:
            groups.append(tuple(entry))
    return LayerJob(tuple(groups))


def _check_count(job: LayerJob, n_models: int, text: str | None = None) -> LayerJob:
    if job.n_models != n_models:
        raise LayerError(
            f"layers {text or str(job)!r} are for {job.n_models} model(s), not {n_models}: give one name "
            "for all models, one per model (a1+b1) or ';'-separated groups per model (a1+a2;b1)"
        )
    return job


def _split(text: str, sep: str, spec: object, *, strict: bool = False) -> list[str]:
    parts = [part.strip() for part in text.split(sep)]
    if strict and not all(parts):
        raise ConfigError(f"empty group in layers {spec!r}")
    if sep != JOBS and len(parts) > 1 and not all(parts):
        raise ConfigError(f"empty name around {sep!r} in layers {spec!r}")
    return [part for part in parts if part]
