"""Generating metamers for a stimulus set into an output folder, resumably.

:func:`generate_metamers` is what ``metamers generate`` and the studies call.
It makes one metamer per (layer job, stimulus) by continuous batching (a queue
of items feeds a batch of fixed capacity; a finished item's slot goes to the
next item at once), writes each as soon as it finishes, checkpoints each
job's batch, and on a re-run skips finished metamers and resumes unfinished
ones from their checkpoint.

An output folder is tied to one set of synthesis settings, seed and model
weights (``OUT/run.json``) once it holds a finished metamer; running other
settings into it raises :class:`~metamers.errors.ConfigError` (use another
folder). A folder whose runs finished no metamer (they failed or were
stopped) is bound by the next run's settings instead. Adding layers or
stimuli to an existing folder is fine.

Integrity:

- **What identifies a result.** A finished metamer is reused only when its
  ``record.json`` matches the current item: the reference's content digest
  (the stimulus as each model saw it), the settings digest, the seed and the
  models' weight fingerprints, and its ``metamer.safetensors`` matches the
  SHA-256 in the record. A finished metamer of *another* stimulus or other
  settings under the same id is **refused** with one line (use another
  folder), never reused and never overwritten: a finished result is
  evidence, and a run must not silently replace it with a different one. An
  item recorded as *failed* under other settings is made again.
- **Damage.** A finished metamer whose files are unreadable or differ from
  their digest is made again, with a warning (the damaged file is kept as
  ``*.corrupt``): ``record.json`` marks what was finished, and the run can
  remake it exactly. A checkpoint that cannot be read is set aside as
  ``*.corrupt`` with a warning and its items restart.
- **Lock.** A run holds an exclusive lock on ``OUT/.lock`` (``fcntl.flock``,
  released when the process ends, however it ends); a second run on the same
  folder is refused with one line while the first runs, so the settings check
  and everything written are one run's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from metamers.errors import ConfigError, ModelError
from metamers.io import locked, path_name, write_json_atomic
from metamers.models import PixelModel
from metamers.models.registry import load_spec
from metamers.stimuli import Stimulus, StimulusSet, load_image
from metamers.synthesis.batching import device_batch_size
from metamers.synthesis.engine import MetamerSynthesis, StopCriterion, tensor_digest
from metamers.synthesis.jobs import LayerJob, parse_layer_jobs
from metamers.synthesis.results import MetamerResult
from metamers.synthesis.settings import FAST, SynthesisSettings
from metamers.synthesis.storage import (
    CHECKPOINTS,
    DEFAULT_SAMPLE_RATE,
    RECORD,
    DamagedResult,
    legacy_name,
    read_record,
    read_result,
    set_aside,
    versions,
    write_metamer,
)

ProgressFn = Callable[[dict], None]
NameFn = Callable[[str], str]
LOCK = ".lock"
QUEUE_CHECKPOINT = "queue.safetensors"
"""A job's checkpoint: the state of its batch, whose slots name their items."""
RUN = "run.json"
NAMING = "path_name"
"""``run.json`` ``naming`` of folders whose names come from :func:`~metamers.io.path_name`;
folders made before it was recorded use :func:`legacy_name`."""


class GeneratedMetamers(list):
    """The finished metamers of a :func:`generate_metamers` call (a list), plus what did not finish.

    Attributes
    ----------
    failed
        Items recorded as failed (``status == "failed"``; ``settings["stop_reason"]``
        says why, e.g. ``non-finite``), stored ones included.
    skipped
        Ids of stimuli that could not be loaded and were skipped (``skip_bad``).
    work
        Work done by this call: ``evaluations`` (loss evaluations the items
        needed), ``rows_evaluated`` (rows of the forward passes run) and
        ``slot_steps`` (batch capacity x iterations).
    """

    def __init__(
        self,
        done: Sequence[MetamerResult] = (),
        failed: Sequence[MetamerResult] = (),
        skipped: Sequence[str] = (),
    ) -> None:
        super().__init__(done)
        self.failed = list(failed)
        self.skipped = list(skipped)
        self.work: dict[str, int] = {}


def generate_metamers(
    models: PixelModel | Sequence[PixelModel],
    layers: str | LayerJob | Sequence[str | LayerJob | Sequence[str | Sequence[str]]],
    stimuli: StimulusSet,
    out_dir: str | Path,
    settings: SynthesisSettings | None = None,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    progress: ProgressFn | None = None,
    stop_criterion: StopCriterion | None = None,
    sync_every: int | None = None,
    compile: str | None = None,
) -> list[MetamerResult]:
    """Make (or resume) metamers of ``stimuli`` for each layer job.

    Parameters
    ----------
    models
        One model, or several for ensemble metamers.
    layers
        The layer jobs, each making its own set of metamers in its own folder
        (see :func:`~metamers.synthesis.jobs.parse_layer_jobs`): a string in
        the ``--layers`` grammar (``"blocks.1,blocks.3"``: two jobs;
        ``"blocks.1+blocks.3"``: one job matching both layers), a
        :class:`~metamers.synthesis.jobs.LayerJob`, or a list of those; for
        an ensemble a list entry may also be a sequence with one entry per
        model (one job).
    stimuli
        The references, loaded by the set itself (with ``skip_bad`` set, an
        undecodable stimulus is skipped with a warning and listed in
        ``.skipped`` of the result).
    out_dir
        Output folder (see :mod:`metamers.synthesis.storage` for the layout).
    settings
        Synthesis settings (default: the ``fast`` preset).
    batch_size
        Items optimised together: the capacity of the batch that the queue of
        (stimulus, layer job) items feeds, a finished item's slot going to the
        next item at once (continuous batching). ``None``: the device's
        (:func:`device_batch_size`: a small default on the CPU, the largest
        batch that fits on CUDA).
    seed
        Base seed; each item's seed derives from it and its stimulus id, so a
        stimulus starts from the same point at every layer and in any batch.
    limit
        Only the first ``limit`` stimuli.
    progress
        Called after every iteration with a dict: ``job``, ``items_done``,
        ``items_total``, ``steps_per_s``, ``best_loss``, ``median_loss``.
    stop_criterion
        Per-item stop criterion (:class:`~metamers.synthesis.StopCriterion`, e.g.
        :class:`metamers.validation.AcceptanceStop`), asked by every batch.
    sync_every
        Iterations between host syncs of the loop
        (:attr:`MetamerSynthesis.sync_every`; default: 1 on the CPU, 10
        elsewhere).
    compile
        A ``torch.compile`` backend for each step (:class:`MetamerSynthesis`
        ``compile``); ``None``: eager.

    Returns
    -------
    GeneratedMetamers
        The finished metamers (already stored ones included), failed ones
        excluded: a list, with the failed items in ``.failed``, the ids of
        skipped stimuli (``stimuli.skip_bad``) in ``.skipped`` and the work
        done in ``.work`` (``evaluations`` the items needed, ``rows_evaluated``
        the rows of the forward passes run, ``slot_steps`` capacity x
        iterations; for what this call computed, not stored results).

    Raises
    ------
    ConfigError
        Invalid arguments; ``out`` holds finished metamers of other settings,
        seed or weights; a finished metamer under a stimulus id was made of
        another stimulus (see the module docstring); two ids share a folder
        name.
    MetamersError
        Another run holds the folder's lock.
    """
    models = [models] if isinstance(models, PixelModel) else list(models)
    settings = settings or FAST
    stimuli = stimuli.limit(limit)
    if not len(stimuli):
        raise ConfigError("no stimuli to make metamers of")
    if batch_size is not None and batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    jobs = [job.check(models) for job in parse_layer_jobs(layers, len(models))]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / LOCK).touch()
    except OSError as exc:
        raise ConfigError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    busy = (
        f"another `metamers generate` is writing {out}; wait for it to finish or use another --out"
    )
    with locked(out / LOCK, busy):
        name = check_run_folder(out, models, settings, seed, jobs, stimuli)
        _check_names(stimuli, name, out)
        tracker = _Progress(progress, len(jobs) * len(stimuli))
        done: list[MetamerResult] = []
        failed: list[MetamerResult] = []
        skipped: set[str] = set()
        work = dict.fromkeys(("evaluations", "rows_evaluated", "slot_steps"), 0)
        for job in jobs:
            capacity = batch_size or device_batch_size(models, job, settings, len(stimuli))
            runner = _JobRunner(models, job, stimuli, out, settings, seed, name, capacity)
            runner.engine_options = {"sync_every": sync_every, "compile": compile}
            for result in runner.run(tracker, stop_criterion):
                (done if result.status == "done" else failed).append(result)
            skipped.update(s.id for s in stimuli if s.id not in runner.loaded)
            tracker.total -= len(stimuli) - len(runner.loaded)
            work = {k: v + runner.work[k] for k, v in work.items()}
    generated = GeneratedMetamers(done, failed, [s.id for s in stimuli if s.id in skipped])
    generated.work = work
    return generated


def _load_batches(
    stimuli: StimulusSet, models: list[PixelModel], batch_size: int
) -> Iterator[tuple[list[Stimulus], list[torch.Tensor]]]:
    """Batches of stimuli with one tensor per model, by the set's own loading.

    :meth:`~metamers.stimuli.StimulusSet.batches` is the one loading path (as
    for ``classify`` and ``extract``): with ``skip_bad`` an undecodable
    stimulus is skipped with a warning, otherwise it raises.
    """
    for chunk, first in stimuli.batches_for(models[0], batch_size):
        per_model = [first]
        chosen = stimuli.select([s.id for s in chunk])
        for model in models[1:]:
            per_model += [x for _, x in chosen.batches_for(model, len(chunk))]
        yield chunk, per_model


def _check_names(stimuli: StimulusSet, name: NameFn, out: Path) -> None:
    """Refuse two stimulus ids that would share a folder (also on case-insensitive disks)."""
    seen: dict[str, str] = {}
    for stimulus in stimuli:
        folder = name(stimulus.id)
        other = seen.setdefault(folder.casefold(), stimulus.id)
        if other != stimulus.id:
            hint = (
                "its folder names come from an earlier version; use another --out folder"
                if name is legacy_name
                else "they differ only in letter case; rename one"
            )
            raise ConfigError(
                f"stimulus ids {other!r} and {stimulus.id!r} would share the folder {folder!r} "
                f"in {out}: {hint}"
            )


def reference_digest(references: Sequence[torch.Tensor]) -> str:
    """The content digest of one item's reference: the stimulus as each model saw it.

    Parameters
    ----------
    references
        The item's fitted reference, one tensor per generating model.

    Returns
    -------
    str
        16 hex digits (SHA-256 over each tensor's float32 values).
    """
    if len(references) == 1:
        return tensor_digest(references[0])
    joined = "|".join(tensor_digest(r) for r in references)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def item_seed(seed: int, stimulus_id: str) -> int:
    """The seed of one stimulus's start (independent of layer and batch).

    Parameters
    ----------
    seed
        The run's seed.
    stimulus_id
        The stimulus's id within its set.

    Returns
    -------
    int
        A 60-bit integer from the SHA-256 of ``"seed:stimulus_id"``.
    """
    return int(hashlib.sha256(f"{seed}:{stimulus_id}".encode()).hexdigest()[:15], 16)


def job_folder(
    out: Path, models: list[PixelModel], job: LayerJob, name: NameFn = path_name
) -> Path:
    """``OUT/<generator>/<job label>`` for one job.

    Parameters
    ----------
    out
        The run's output folder.
    models
        The generating models; their names joined by ``+`` name the generator
        folder.
    job
        The layer job; its label names the sub-folder.
    name
        The id-to-folder-name mapping (:func:`~metamers.io.path_name`;
        ``legacy_name`` for folders of earlier versions).

    Returns
    -------
    Path
        Both parts made file-name safe.
    """
    generator = "+".join(m.name for m in models)
    return out / name(generator) / name(job.label)


def check_run_folder(
    out: Path,
    models: list[PixelModel],
    settings: SynthesisSettings,
    seed: int,
    jobs: list[LayerJob],
    stimuli: StimulusSet,
) -> NameFn:
    """Create ``OUT/run.json`` or check that it matches this run (settings, seed, weights).

    Each call appends an invocation record (layers, stimuli, model loads,
    time) to ``run.json``. The recorded settings bind the folder only once it
    holds a finished metamer: a folder whose runs finished none takes this
    run's settings (their checkpoints are removed). Call it holding the
    folder's lock, so that the check and the write are one step.

    Parameters
    ----------
    out
        The run's output folder (created if missing).
    models
        The generating models; their names and weight fingerprints must match
        the recorded ones.
    settings
        The synthesis settings; their digest must match the recorded one.
    seed
        The run's seed; must match the recorded one.
    jobs
        The layer jobs of this invocation (recorded, not checked).
    stimuli
        The stimuli of this invocation (recorded, not checked).

    Returns
    -------
    callable
        The folder's id-to-folder-name mapping: :func:`~metamers.io.path_name`, or
        :func:`legacy_name` for a folder of an earlier version that holds metamers.

    Raises
    ------
    ConfigError
        ``out`` holds metamers made with other settings, seed or model weights,
        or its ``run.json`` is not readable.
    """
    identity = {
        "settings": settings.model_dump(mode="json"),
        "settings_digest": settings.digest(),
        "seed": seed,
        "models": [{"name": m.name, "fingerprint": m.fingerprint()} for m in models],
    }
    path = out / RUN
    invocation = {
        "layers": [list(job.record) for job in jobs],
        "stimuli": stimuli.spec,
        "n_stimuli": len(stimuli),
        "model_loads": [load_spec(m) for m in models],
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    run = None
    if path.is_file():
        try:
            run = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path} is not readable JSON ({exc}); use another --out") from None
    holds = _holds_metamers(out)
    if run is not None and holds:
        differ = [k for k in ("settings_digest", "seed", "models") if run.get(k) != identity[k]]
        if differ:
            detail = _settings_difference(run.get("settings", {}), identity["settings"])
            raise ConfigError(
                f"{out} holds metamers made with other {', '.join(differ)}{detail}; "
                "use another --out folder"
            )
    elif run is None or any(run.get(k) != identity[k] for k in identity):
        if run is not None:  # bound by nothing finished: this run's settings replace them
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)  # states of those settings
        run = identity | {"versions": versions(), "invocations": [], "naming": NAMING}
    else:
        run["naming"] = NAMING  # nothing finished yet, so no folder of the old naming counts
    run.setdefault("invocations", []).append(invocation)
    write_json_atomic(path, run)
    return path_name if run.get("naming") == NAMING else legacy_name


def _holds_metamers(out: Path) -> bool:
    """Whether ``out`` holds a finished (not failed) metamer."""
    for path in out.rglob(RECORD):
        if CHECKPOINTS in path.relative_to(out).parts:
            continue
        try:
            if json.loads(path.read_text()).get("status", "done") == "done":
                return True
        except (OSError, ValueError):
            return True  # a damaged record still marks a result: be strict
    return False


def _settings_difference(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return f" ({shown})" if shown else ""


class _Progress:
    """Accumulates counts across batches and forwards them to the user's callback."""

    def __init__(self, callback: ProgressFn | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0
        self.last_time, self.last_iteration = time.perf_counter(), 0

    def report(self, job: LayerJob, synthesis: MetamerSynthesis | None, done_in_batch: int) -> None:
        if self.callback is None:
            return
        summary = synthesis.summary() if synthesis is not None else {}
        now = time.perf_counter()
        iteration = summary.get("iteration", 0)
        rate = (iteration - self.last_iteration) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_iteration = now, iteration
        self.callback(
            {
                "job": job.label,
                "items_done": self.done + done_in_batch,
                "items_total": self.total,
                "steps_per_s": rate,
                "best_loss": summary.get("best_loss", float("nan")),
                "median_loss": summary.get("median_loss", float("nan")),
            }
        )


class _Item:
    """One (stimulus, layer job) item of the queue: its references, folder and stored result."""

    def __init__(
        self, stimulus: Stimulus, refs: list[torch.Tensor], folder: Path, digest: str
    ) -> None:
        self.stimulus, self.refs, self.folder, self.digest = stimulus, refs, folder, digest
        self.stored: MetamerResult | None = None


class _JobRunner:
    """One layer job by continuous batching: a queue of items feeds a fixed-capacity batch.

    Items are taken in stimulus order; when items stop (at a sync of the
    loop) they are written and new items take their slots, each with its own
    seed, start, optimiser state and schedule position, so the batch stays
    full until the queue is empty. One checkpoint per job holds the slots;
    a re-run skips stored items, puts the checkpoint's items back in their
    slots and feeds the rest of the queue in the same order, so a resumed run
    equals an uninterrupted one.
    """

    def __init__(
        self,
        models: list[PixelModel],
        job: LayerJob,
        stimuli: StimulusSet,
        out: Path,
        settings: SynthesisSettings,
        seed: int,
        name: NameFn,
        capacity: int,
    ) -> None:
        self.models, self.job, self.stimuli = models, job, stimuli
        self.settings, self.seed, self.name = settings, seed, name
        self.capacity = capacity
        self.engine_options: dict = {}
        self.folder = job_folder(out, models, job, name)
        self.checkpoint = out / CHECKPOINTS / self.folder.relative_to(out) / QUEUE_CHECKPOINT
        self.loaded: set[str] = set()
        self.results: dict[str, MetamerResult] = {}
        self.waiting: deque[_Item] = deque()
        self.slots: list[_Item] = []
        self.written: set[int] = set()
        self.work = {"evaluations": 0, "rows_evaluated": 0, "slot_steps": 0}

    # ----------------------------------------------------------------- queue
    def _stream(self) -> Iterator[_Item]:
        """Every loadable stimulus as an item, in order, its stored result checked."""
        for chunk, per_model in _load_batches(self.stimuli, self.models, self.capacity):
            for i, stimulus in enumerate(chunk):
                self.loaded.add(stimulus.id)
                refs = [r[i] for r in per_model]
                item = _Item(stimulus, refs, self.folder / self.name(stimulus.id), "")
                item.digest = reference_digest(refs)
                item.stored = self._stored(item)
                yield item

    def _next(self, stream: Iterator[_Item], tracker: _Progress) -> _Item | None:
        """The next item still to make (stored ones are collected on the way)."""
        if self.waiting:
            return self.waiting.popleft()
        for item in stream:
            if item.stored is None:
                return item
            self.results[item.stimulus.id] = item.stored
            tracker.done += 1
        return None

    # ------------------------------------------------------------------- run
    def run(self, tracker: _Progress, stop_criterion: StopCriterion | None) -> list[MetamerResult]:
        stream = self._stream()
        synthesis = self._resume(stream, tracker)
        if synthesis is None:
            first = []
            while len(first) < self.capacity and (item := self._next(stream, tracker)):
                first.append(item)
            if not first:
                return self._ordered()
            synthesis = self._fresh(first)
        saved = [synthesis.iteration]
        start = synthesis.iteration  # a resumed batch counts only this run's work

        def after_iteration(s: MetamerSynthesis) -> None:
            if s.synced and s.iteration - saved[0] >= self.settings.checkpoint_every:
                s.save(self.checkpoint)
                saved[0] = s.iteration
            tracker.report(self.job, s, 0)

        def on_items_done(_: list[int]) -> None:
            self._write_finished(synthesis, tracker)
            vacant = [
                i
                for i in range(synthesis.n_items)
                if i in self.written and synthesis.status_of(i) != "active"
            ]
            self._admit(synthesis, vacant, stream, tracker)

        on_items_done([])
        synthesis.synthesize(
            stop_criterion=stop_criterion, callback=after_iteration, on_items_done=on_items_done
        )
        self._write_finished(synthesis, tracker)
        self.work["evaluations"] += synthesis.evaluations
        self.work["rows_evaluated"] += synthesis.rows_evaluated
        self.work["slot_steps"] += synthesis.n_items * (synthesis.iteration - start)
        for done in self.checkpoint.parent.glob("*.safetensors"):
            done.unlink()  # this job's queue, and per-batch states of earlier versions
        return self._ordered()

    def _ordered(self) -> list[MetamerResult]:
        # the stream must have been read to its end (the queue is empty)
        return [self.results[s.id] for s in self.stimuli if s.id in self.results]

    def _admit(
        self,
        synthesis: MetamerSynthesis,
        vacant: list[int],
        stream: Iterator[_Item],
        tracker: _Progress,
    ) -> None:
        """New items into the vacant slots (stopped and written), in slot order."""
        slots, items = [], []
        for slot in vacant:
            item = self._next(stream, tracker)
            if item is None:
                break
            slots.append(slot)
            items.append(item)
        if not items:
            return
        synthesis.admit(
            slots,
            [torch.stack([it.refs[m] for it in items]) for m in range(len(self.models))],
            [it.stimulus.id for it in items],
            [item_seed(self.seed, it.stimulus.id) for it in items],
            init_source=self._init_source(synthesis.shape),
        )
        for slot, item in zip(slots, items):
            self.slots[slot] = item
            self.written.discard(slot)

    def _resume(self, stream: Iterator[_Item], tracker: _Progress) -> MetamerSynthesis | None:
        """The checkpoint's batch with its items back in their slots, or ``None``."""
        ids = _checkpoint_item_ids(self.checkpoint)
        if ids is None:
            return None
        found: dict[str, _Item] = {}
        while len(found) < len(ids):
            item = next(stream, None)
            if item is None:
                break
            if item.stimulus.id in ids:
                found[item.stimulus.id] = item
            elif item.stored is None:
                self.waiting.append(item)
            else:
                self.results[item.stimulus.id] = item.stored
                tracker.done += 1
        slots = [found.get(i) for i in ids]
        if any(item is None for item in slots):  # a stimulus of the batch is gone
            self.checkpoint.unlink()
            self.waiting.extendleft(reversed([it for it in found.values() if it.stored is None]))
            self._collect_stored(found.values(), tracker)
            return None
        synthesis = self._build(slots)
        if synthesis is None:
            self.waiting.extendleft(reversed([it for it in slots if it.stored is None]))
            self._collect_stored(slots, tracker)
            return None
        self.slots = slots
        for i, item in enumerate(slots):
            if item.stored is None:
                continue
            if synthesis.status_of(i) == "active":
                synthesis.retire([i], reason="stored")
            self.results[item.stimulus.id] = item.stored
            self.written.add(i)
            tracker.done += 1
        return synthesis

    def _collect_stored(self, items, tracker: _Progress) -> None:
        for item in items:
            if item.stored is not None:
                self.results[item.stimulus.id] = item.stored
                tracker.done += 1

    def _build(self, slots: list[_Item]) -> MetamerSynthesis | None:
        synthesis = self._synthesis(slots)
        try:
            synthesis.load(self.checkpoint)
        except (ConfigError, ModelError):
            self.checkpoint.unlink()  # stale: another synthesis's state; start afresh
            return None
        except Exception as exc:  # truncated or garbled: safetensors raises its own types
            moved = set_aside(self.checkpoint)
            warnings.warn(
                f"checkpoint {self.checkpoint} cannot be read ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); set aside as "
                f"{moved.name}, its items restart",
                stacklevel=4,
            )
            return None
        if synthesis.settings.digest() != self.settings.digest():
            self.checkpoint.unlink()  # made with other settings (a folder re-bound)
            return None
        return synthesis

    def _synthesis(self, items: list[_Item]) -> MetamerSynthesis:
        return MetamerSynthesis(
            self.models,
            self.job,
            [torch.stack([it.refs[m] for it in items]) for m in range(len(self.models))],
            settings=self.settings,
            item_ids=[it.stimulus.id for it in items],
            **self.engine_options,
        )

    def _fresh(self, items: list[_Item]) -> MetamerSynthesis:
        synthesis = self._synthesis(items)
        synthesis.setup(
            item_seeds=[item_seed(self.seed, it.stimulus.id) for it in items],
            init_source=self._init_source(synthesis.shape),
        )
        self.slots = list(items)
        return synthesis

    def _init_source(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        if self.settings.init != "stimulus" or not self.settings.init_source:
            return None
        from metamers.stimuli import fit_image

        raw = load_image(self.settings.init_source)
        return fit_image(raw, shape)

    # ---------------------------------------------------------------- stored
    def _stored(self, item: _Item) -> MetamerResult | None:
        """The item's stored result if it is this item's (see the module docstring), else ``None``.

        A damaged result is set aside and made again; a failed item of other
        settings is made again; a finished metamer of another stimulus or
        settings is refused.
        """
        folder = item.folder
        try:
            record = read_record(folder)
            if record is None:
                return None
            result = read_result(folder, record)
        except DamagedResult as exc:
            moved = set_aside(exc.path)
            (folder / RECORD).unlink(missing_ok=True)
            warnings.warn(f"{exc}: set aside as {moved.name}; making it again", stacklevel=5)
            return None
        differ = self._identity_difference(item, record, result)
        if not differ:
            return result
        if result.status != "done":
            (folder / RECORD).unlink()  # a failed attempt under other settings: try again
            return None
        raise ConfigError(
            f"{folder} holds a finished metamer of {item.stimulus.id!r} made with another "
            f"{', '.join(differ)}; it is not reused or replaced: use another --out folder"
        )

    def _identity_difference(self, item: _Item, record: dict, result: MetamerResult) -> list[str]:
        """What differs between an item's stored record and the item (empty: nothing)."""
        recorded = record.get("reference_digest")
        if recorded is None:  # earlier versions: the stored reference itself
            same = any(
                tuple(c.shape) == tuple(result.reference.shape)
                and tensor_digest(c) == tensor_digest(result.reference)
                for c in item.refs
            )
        else:
            same = recorded == item.digest
        differ = [] if same else ["stimulus (reference content digest)"]
        if _record_settings_digest(record) != self.settings.digest():
            differ.append("settings")
        if record.get("base_seed", self.seed) != self.seed:
            differ.append("seed")
        fingerprints = record.get("model_fingerprints")
        if fingerprints is not None and fingerprints != [m.fingerprint() for m in self.models]:
            differ.append("model weights")
        return differ

    # ----------------------------------------------------------------- write
    def _write_finished(self, synthesis: MetamerSynthesis, tracker: _Progress) -> None:
        """Write the stopped items not yet written."""
        for i in range(synthesis.n_items):
            if i in self.written or synthesis.status_of(i) == "active":
                continue
            item = self.slots[i]
            write_metamer(
                item.folder,
                synthesis.metamers[i],
                synthesis.references[i],
                synthesis.losses(i),
                self._record(synthesis, i, item),
                sample_rate=int(self.models[0].info.get("sample_rate", DEFAULT_SAMPLE_RATE)),
            )
            self.results[item.stimulus.id] = read_result(item.folder)
            self.written.add(i)
            tracker.done += 1

    def _record(self, synthesis: MetamerSynthesis, i: int, item: _Item) -> dict:
        stimulus = item.stimulus
        losses = synthesis.losses(i)
        return {
            "stimulus_id": stimulus.id,
            "stimulus": {
                "source": stimulus.source,
                "label": stimulus.label,
                "target": stimulus.target,
                "label_space": self.stimuli.label_space,
                "labels_file": self.stimuli.labels_file,
                "set": self.stimuli.spec,
            },
            "reference_digest": item.digest,
            "models": [m.name for m in self.models],
            "model_fingerprints": [m.fingerprint() for m in self.models],
            "model_loads": [load_spec(m) for m in self.models],
            "layers": list(self.job.record),
            "fake_relu": synthesis.fake_relu,
            "status": synthesis.status_of(i),
            "stop_reason": synthesis.stop_reasons[i],
            "steps": int(synthesis.steps[i]),
            "final_loss": float(losses[-1]) if len(losses) else None,
            "initial_loss": float(losses[0]) if len(losses) else None,
            "restarts": int(synthesis.failures[i]),
            "seed": synthesis.seeds[i],
            "base_seed": self.seed,
            "settings": synthesis.settings.model_dump(mode="json"),
            "settings_digest": self.settings.digest(),
            "versions": versions(),
            "timing": {
                "batch_seconds": round(synthesis.elapsed, 3),
                "batch_size": synthesis.n_items,
                "device": str(synthesis.device),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        }


def _checkpoint_item_ids(path: Path) -> list[str] | None:
    """The item ids (one per slot) of a job's checkpoint, or ``None`` (none, or unreadable)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["synthesis"])
        return [str(i) for i in meta["item_ids"]]
    except Exception as exc:  # truncated or garbled: safetensors raises its own types
        moved = set_aside(path)
        warnings.warn(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); set aside as "
            f"{moved.name}, its items restart",
            stacklevel=5,
        )
        return None


def _record_settings_digest(record: dict) -> str | None:
    """The settings digest a record holds (computed from its settings for earlier versions)."""
    if "settings_digest" in record:
        return record["settings_digest"]
    try:
        return SynthesisSettings(**record.get("settings", {})).digest()
    except Exception:  # settings of another version: not these settings
        return None
