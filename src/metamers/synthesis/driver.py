"""Generating metamers for a stimulus set into an output folder, resumably.

:func:`generate_metamers` is what ``metamers generate`` and the studies call.
It makes one metamer per (layer job, stimulus), in batches, writes
each as soon as it finishes, checkpoints unfinished batches, and on a re-run
skips finished metamers and resumes unfinished ones from their checkpoint.

An output folder is tied to one set of synthesis settings, seed and model
weights (``OUT/run.json``); running other settings into it raises
:class:`~metamers.errors.ConfigError` (use another folder). Adding layers or
stimuli to an existing folder is fine.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from metamers.errors import ConfigError
from metamers.io import write_json_atomic
from metamers.models import PixelModel
from metamers.stimuli import Stimulus, StimulusSet, load_image
from metamers.synthesis.engine import ACTIVE, MetamerSynthesis, StopCriterion
from metamers.synthesis.jobs import LayerJob, parse_layer_jobs
from metamers.synthesis.results import MetamerResult
from metamers.synthesis.settings import FAST, SynthesisSettings
from metamers.synthesis.storage import (
    CHECKPOINTS,
    DEFAULT_SAMPLE_RATE,
    is_done,
    read_result,
    safe_name,
    versions,
    write_metamer,
)

ProgressFn = Callable[[dict], None]


def generate_metamers(
    models: PixelModel | Sequence[PixelModel],
    layers: str | LayerJob | Sequence[str | LayerJob | Sequence[str | Sequence[str]]],
    stimuli: StimulusSet,
    out_dir: str | Path,
    settings: SynthesisSettings | None = None,
    *,
    batch_size: int = 8,
    seed: int = 0,
    limit: int | None = None,
    progress: ProgressFn | None = None,
    stop_criterion: StopCriterion | None = None,
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
        The references.
    out_dir
        Output folder (see :mod:`metamers.synthesis.storage` for the layout).
    settings
        Synthesis settings (default: the ``fast`` preset).
    batch_size
        Items optimised together.
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

    Returns
    -------
    list[MetamerResult]
        The finished metamers (already stored ones included), failed ones excluded.
    """
    models = [models] if isinstance(models, PixelModel) else list(models)
    settings = settings or FAST
    stimuli = stimuli.limit(limit)
    if not len(stimuli):
        raise ConfigError("no stimuli to make metamers of")
    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    jobs = [job.check(models) for job in parse_layer_jobs(layers, len(models))]
    out = Path(out_dir)
    check_run_folder(out, models, settings, seed, jobs, stimuli)
    tracker = _Progress(progress, len(jobs) * len(stimuli))
    results: list[MetamerResult] = []
    for job in jobs:
        for start in range(0, len(stimuli), batch_size):
            chunk = list(stimuli)[start : start + batch_size]
            runner = _BatchRunner(models, job, chunk, stimuli, out, settings, seed)
            results += runner.run(tracker, stop_criterion)
    return [r for r in results if r.status == "done"]


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


def job_folder(out: Path, models: list[PixelModel], job: LayerJob) -> Path:
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

    Returns
    -------
    Path
        Both parts made file-name safe (see
        :func:`~metamers.synthesis.storage.safe_name`).
    """
    generator = "+".join(m.name for m in models)
    return out / safe_name(generator) / safe_name(job.label)


def check_run_folder(
    out: Path,
    models: list[PixelModel],
    settings: SynthesisSettings,
    seed: int,
    jobs: list[LayerJob],
    stimuli: StimulusSet,
) -> None:
    """Create ``OUT/run.json`` or check that it matches this run (settings, seed, weights).

    Each call appends an invocation record (layers, stimuli, time) to
    ``run.json``.

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

    Raises
    ------
    ConfigError
        ``out`` holds metamers made with other settings, seed or model weights.
    """
    identity = {
        "settings": settings.model_dump(mode="json"),
        "settings_digest": settings.digest(),
        "seed": seed,
        "models": [{"name": m.name, "fingerprint": m.fingerprint()} for m in models],
    }
    path = out / "run.json"
    invocation = {
        "layers": [list(job.record) for job in jobs],
        "stimuli": stimuli.spec,
        "n_stimuli": len(stimuli),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if path.is_file():
        run = json.loads(path.read_text())
        differ = [k for k in ("settings_digest", "seed", "models") if run.get(k) != identity[k]]
        if differ:
            detail = _settings_difference(run.get("settings", {}), identity["settings"])
            raise ConfigError(
                f"{out} holds metamers made with other {', '.join(differ)}{detail}; "
                "use another --out folder"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        run = identity | {"versions": versions(), "invocations": []}
    run["invocations"].append(invocation)
    write_json_atomic(path, run)


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


class _BatchRunner:
    """One batch of one job: build, resume, synthesise, write, clean up."""

    def __init__(
        self,
        models: list[PixelModel],
        job: LayerJob,
        chunk: list[Stimulus],
        stimuli: StimulusSet,
        out: Path,
        settings: SynthesisSettings,
        seed: int,
    ) -> None:
        self.models, self.job, self.chunk, self.stimuli = models, job, chunk, stimuli
        self.settings, self.seed = settings, seed
        self.folder = job_folder(out, models, job)
        self.item_folders = [self.folder / safe_name(s.id) for s in chunk]
        key = hashlib.sha256("\n".join(s.id for s in chunk).encode()).hexdigest()[:16]
        self.checkpoint = out / CHECKPOINTS / self.folder.relative_to(out) / f"{key}.safetensors"
        self.written: set[int] = set()

    def run(self, tracker: _Progress, stop_criterion: StopCriterion | None) -> list[MetamerResult]:
        stored = [i for i, f in enumerate(self.item_folders) if is_done(f)]
        if len(stored) == len(self.chunk):
            tracker.done += len(stored)
            return [read_result(f) for f in self.item_folders]
        synthesis = self._build()
        synthesis.retire(stored, reason="stored")
        self.written = set(stored)
        self._write_finished(synthesis)

        def after_iteration(s: MetamerSynthesis) -> None:
            if s.iteration % self.settings.checkpoint_every == 0:
                s.save(self.checkpoint)
            tracker.report(self.job, s, len(self.written))

        synthesis.synthesize(
            stop_criterion=stop_criterion,
            callback=after_iteration,
            on_items_done=lambda _: self._write_finished(synthesis),
        )
        self._write_finished(synthesis)
        tracker.done += len(self.chunk)
        self.checkpoint.unlink(missing_ok=True)
        return [read_result(f) for f in self.item_folders]

    def _build(self) -> MetamerSynthesis:
        per_model = [
            torch.stack([self.stimuli.load(s, m.input_shape) for s in self.chunk])
            for m in self.models
        ]
        synthesis = MetamerSynthesis(
            self.models,
            self.job,
            per_model,
            settings=self.settings,
            item_ids=[s.id for s in self.chunk],
        )
        source = self._init_source(synthesis.shape)
        synthesis.setup(
            item_seeds=[item_seed(self.seed, s.id) for s in self.chunk], init_source=source
        )
        if self.checkpoint.is_file():
            try:
                synthesis.load(self.checkpoint)
            except ConfigError:
                self.checkpoint.unlink()  # stale: the stimuli changed; start afresh
        return synthesis

    def _init_source(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        if self.settings.init != "stimulus" or not self.settings.init_source:
            return None
        from metamers.stimuli import fit_image

        raw = load_image(self.settings.init_source)
        return fit_image(raw, shape)

    def _write_finished(self, synthesis: MetamerSynthesis) -> None:
        for i in range(synthesis.n_items):
            if i in self.written or int(synthesis.status[i]) == ACTIVE:
                continue
            write_metamer(
                self.item_folders[i],
                synthesis.metamers[i],
                synthesis.references[i],
                synthesis.losses(i),
                self._record(synthesis, i),
                sample_rate=int(self.models[0].info.get("sample_rate", DEFAULT_SAMPLE_RATE)),
            )
            self.written.add(i)

    def _record(self, synthesis: MetamerSynthesis, i: int) -> dict:
        stimulus = self.chunk[i]
        losses = synthesis.losses(i)
        return {
            "stimulus_id": stimulus.id,
            "stimulus": {
                "source": stimulus.source,
                "label": stimulus.label,
                "target": stimulus.target,
                "set": self.stimuli.spec,
            },
            "models": [m.name for m in self.models],
            "model_fingerprints": [m.fingerprint() for m in self.models],
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
            "versions": versions(),
            "timing": {
                "batch_seconds": round(synthesis.elapsed, 3),
                "batch_size": synthesis.n_items,
                "device": str(synthesis.device),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        }
