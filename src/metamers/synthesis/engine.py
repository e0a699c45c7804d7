"""The batched metamer synthesis object.

:class:`MetamerSynthesis` follows plenoptic's lifecycle — construct (cheap,
validated; targets computed once) → :meth:`~MetamerSynthesis.setup` →
:meth:`~MetamerSynthesis.synthesize` (call again to continue) →
:meth:`~MetamerSynthesis.save` / :meth:`~MetamerSynthesis.load` — but
optimises many items at once. Every item has its own loss, step count, step
size, optimiser state and stopping; finished items leave the active batch, so
they stop costing compute and never hold the others back.

Per-item stop criterion (the plug-in point for acceptance tests)
----------------------------------------------------------------
``synthesize(stop_criterion=fn)`` calls ``fn(synthesis, stimuli, indices)``
every ``settings.stop_check_every`` steps of an item, with

- ``synthesis``: this object (``models``, ``layers``, ``references``,
  ``item_ids``, ``targets(i)`` give the context),
- ``stimuli``: ``(n, *shape)`` detached current stimuli of the items due a
  check (on the synthesis device, in the input range),
- ``indices``: ``(n,)`` long tensor of those items' indices in ``synthesis``,

and expects a ``(n,)`` bool tensor (or array/list): ``True`` = stop this
item now, it is finished (stop reason ``"criterion"``). The criterion must
not modify ``stimuli``. This is the one stop-criterion shape of the package:
:func:`~metamers.synthesis.generate_metamers` passes the same object to every
batch, and :class:`metamers.validation.AcceptanceStop` implements it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from metamers.errors import ConfigError, LayerError, ModelError
from metamers.io import atomic_path
from metamers.models import PixelModel, is_relu_layer
from metamers.stimuli.fit import fit_to_input
from metamers.synthesis.jobs import LayerJobSpec, as_layer_job
from metamers.synthesis.objectives import get_objective, range_penalty
from metamers.synthesis.optimizers import make_optimizer
from metamers.synthesis.schedules import make_schedule
from metamers.synthesis.settings import FAST, SynthesisSettings, with_overrides
from metamers.synthesis.starts import starting_points

ACTIVE, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {ACTIVE: "active", DONE: "done", FAILED: "failed"}
FORMAT_VERSION = 1


class StopCriterion(Protocol):
    """``(synthesis, stimuli (n, ...), indices (n,)) -> bool mask (n,)``: which items to stop now."""

    def __call__(
        self, synthesis: MetamerSynthesis, stimuli: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor: ...


LayerSpec = LayerJobSpec


class MetamerSynthesis:
    """Metamers of a batch of references at named layers of one or several models.

    Parameters
    ----------
    models
        One :class:`~metamers.models.PixelModel`, or several for an ensemble
        metamer (one stimulus matched at every model; weighted sum of losses).
    layers
        The one layer job these metamers match
        (:class:`~metamers.synthesis.jobs.LayerJob`; read by
        :func:`~metamers.synthesis.jobs.as_layer_job`): a name for every
        model (``"blocks.3"``), layers matched jointly (``"a+b"``, or with one
        model a list of names), or one entry per model (a name, or a list of
        names whose losses are summed). Several jobs are
        :func:`~metamers.synthesis.generate_metamers`'s business.
    references
        ``(N, *shape)`` references at the synthesis resolution (the largest
        model input; resized per model), or one tensor per model fitted to
        that model's input shape (the first one of the largest size is the
        stored reference).
    settings
        :class:`~metamers.synthesis.SynthesisSettings` (default: the ``fast`` preset).
    item_ids
        A name per item (default ``"0"``, ``"1"``, ...).

    Attributes
    ----------
    references
        ``(N, *shape)`` references at the synthesis resolution.
    shape
        Shape of one stimulus, ``(C, H, W)`` or ``(T,)``.
    """

    def __init__(
        self,
        models: PixelModel | Sequence[PixelModel],
        layers: LayerSpec,
        references: torch.Tensor | Sequence[torch.Tensor],
        *,
        settings: SynthesisSettings | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> None:
        self.models = [models] if isinstance(models, PixelModel) else list(models)
        _check_models(self.models)
        self.layers = _layer_lists(self.models, layers)
        self.settings = settings or FAST
        self.device = self.models[0].device
        self.input_range = self.models[0].input_range
        self.shape = _synthesis_shape(self.models)
        self.references, per_model = _fit_references(self.models, references, self.shape)
        self.n_items = self.references.shape[0]
        if self.n_items == 0:
            raise ConfigError("no references to synthesise metamers for")
        self.item_ids = [str(i) for i in (item_ids or range(self.n_items))]
        if len(self.item_ids) != self.n_items or len(set(self.item_ids)) != self.n_items:
            raise ConfigError("item_ids must be unique, one per reference")
        self.fake_relu = self._fake_relu_layers()
        self._targets = self._compute_targets(per_model)
        self._ready = False

    # ------------------------------------------------------------------ setup
    def setup(
        self,
        init: str | torch.Tensor | None = None,
        optimizer: str | None = None,
        schedule: str | None = None,
        *,
        seed: int = 0,
        item_seeds: Sequence[int] | None = None,
        init_source: torch.Tensor | None = None,
        **overrides: object,
    ) -> MetamerSynthesis:
        """Choose the starting point, optimiser and schedule; allocate per-item state.

        Parameters
        ----------
        init
            A starting-point name (see ``SynthesisSettings.init``) or an explicit
            ``(N, *shape)`` tensor of starting stimuli.
        optimizer, schedule
            Names overriding the settings.
        seed
            Base seed; item ``i`` uses ``seed + i`` unless ``item_seeds`` is given.
        item_seeds
            One seed per item (makes an item's start independent of its batch).
        init_source
            The stimulus for ``init="stimulus"``, at the synthesis resolution.
        **overrides
            Any other setting (``lr=0.01``, ``max_steps=500``, ...).
        """
        explicit = init if isinstance(init, torch.Tensor) else None
        self.settings = with_overrides(
            self.settings,
            init=None if explicit is not None else init,
            optimizer=optimizer,
            schedule=schedule,
            **overrides,
        )
        seeds = (
            list(item_seeds) if item_seeds is not None else [seed + i for i in range(self.n_items)]
        )
        if len(seeds) != self.n_items:
            raise ConfigError(f"got {len(seeds)} item seeds for {self.n_items} items")
        self.seeds = [int(s) for s in seeds]
        if explicit is not None:
            start = _check_explicit_start(explicit, self.references).to(self.device)
        else:
            start = starting_points(
                self.settings, self.references, self.seeds, self.input_range, init_source
            )
        self._optimizer = make_optimizer(self.settings)
        self._schedule = make_schedule(self.settings)
        self._init_state(start.float())
        self._ready = True
        return self

    def _init_state(self, start: torch.Tensor) -> None:
        n, dev = self.n_items, self.device
        self.x = start.clone()
        self.x_good = start.clone()
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.good_steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.lr_scale = torch.ones(n, device=dev)
        self.failures = torch.zeros(n, dtype=torch.long, device=dev)
        self.status = torch.full((n,), ACTIVE, dtype=torch.long, device=dev)
        self.best_loss = torch.full((n,), math.inf, device=dev)
        self.best_step = torch.zeros(n, dtype=torch.long, device=dev)
        self.histories: list[list[float]] = [[] for _ in range(n)]
        self.stop_reasons: list[str | None] = [None] * n
        self.elapsed = 0.0
        self.iteration = 0
        self._optimizer.init_state(self.x)
        self._schedule.init_state(n, dev)

    # ------------------------------------------------------------- synthesis
    def synthesize(
        self,
        max_steps: int | None = None,
        *,
        stop_criterion: StopCriterion | None = None,
        callback: Callable[[MetamerSynthesis], None] | None = None,
        on_items_done: Callable[[list[int]], None] | None = None,
    ) -> MetamerSynthesis:
        """Optimise the active items; call again to continue.

        Items stop by themselves (``settings.max_steps`` updates, loss
        threshold, loss plateau, the stop criterion, or too many non-finite
        restarts).

        Parameters
        ----------
        max_steps
            At most this many further iterations in this call (default: until
            every item has stopped).
        stop_criterion
            Per-item stop test, see the module docstring.
        callback
            Called with this object after every iteration (progress,
            checkpoints; it may raise to interrupt).
        on_items_done
            Called with the indices of items that just finished or failed.

        Returns
        -------
        MetamerSynthesis
            ``self``.
        """
        if not self._ready:
            raise ConfigError("call setup() before synthesize()")
        done_here = 0
        while bool((self.status == ACTIVE).any()) and (max_steps is None or done_here < max_steps):
            started = time.perf_counter()
            finished = self._iterate(stop_criterion)
            self.elapsed += time.perf_counter() - started
            self.iteration += 1
            done_here += 1
            if finished and on_items_done is not None:
                on_items_done(finished)
            if callback is not None:
                callback(self)
        return self

    def retire(self, indices: Sequence[int], reason: str = "skipped") -> None:
        """Remove items from the active batch without changing them (e.g. already stored).

        Items that are not active (already done or failed) are left as they are.

        Parameters
        ----------
        indices
            Positions of items in the batch (``0 .. n_items - 1``).
        reason
            The stop reason recorded for each retired item.
        """
        for i in indices:
            if int(self.status[i]) == ACTIVE:
                self.status[i] = DONE
                self.stop_reasons[i] = reason

    def _iterate(self, stop_criterion: StopCriterion | None) -> list[int]:
        idx = torch.nonzero(self.status == ACTIVE).flatten()
        # While every item is active, work on the full tensors in place: no
        # gathers, scatters or fresh stimulus-sized buffers per step.
        full = len(idx) == self.n_items
        x_active = (self.x if full else self.x[idx]).detach().requires_grad_(True)
        loss = self._loss(x_active, None if full else idx)
        (grad,) = torch.autograd.grad(loss.sum(), x_active)
        loss = loss.detach()
        ok = torch.isfinite(loss) & torch.isfinite(grad.flatten(1)).all(dim=1)
        finished = []
        if not bool(ok.all()):
            finished = self._restart(idx[~ok])
            idx, loss, grad, full = idx[ok], loss[ok], grad[ok], False
        if len(idx) == 0:
            return finished
        for i, value in zip(idx.tolist(), loss.tolist()):
            self.histories[i].append(value)
        if full:
            self.x_good.copy_(self.x)
            self.good_steps.copy_(self.steps)
        else:
            self.x_good[idx] = self.x[idx]
            self.good_steps[idx] = self.steps[idx]
        self._track_best(idx, loss)
        self._schedule.observe(idx, loss)
        stop = self._stop_mask(idx, loss, stop_criterion)
        finished += idx[stop].tolist()
        if not bool(stop.any()):
            self._update(idx, grad, full)
        elif not bool(stop.all()):
            self._update(idx[~stop], grad[~stop], False)
        return finished

    def _loss(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        """Per-item loss of ``x``: items ``idx`` (``None``: all items, in order)."""
        objective = get_objective(self.settings.objective)
        weights = self.settings.model_weights or (1.0,) * len(self.models)
        if len(weights) != len(self.models):
            raise ConfigError(
                f"model_weights has {len(weights)} values for {len(self.models)} models"
            )
        total = torch.zeros(x.shape[0], device=x.device)
        for m, model in enumerate(self.models):
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.settings.amp):
                acts = model.activations(
                    fit_to_input(x, model.input_shape), self.layers[m], fake_relu=self.fake_relu[m]
                )
            for layer in self.layers[m]:
                target = self._targets[m][layer]
                target = target if idx is None else target[idx]
                total = total + weights[m] * objective(acts[layer], target)
        if self.settings.range_mode == "penalty":
            total = total + self.settings.range_penalty * range_penalty(x, *self.input_range)
        return total

    def _update(self, idx: torch.Tensor, grad: torch.Tensor, full: bool) -> None:
        factor = self._schedule.factor(idx, self.steps[idx])
        lr = self.settings.lr * factor * self.lr_scale[idx]
        if full:
            new = self._optimizer.step(None, self.x, grad, lr)
            if self.settings.range_mode == "clamp":
                new = new.clamp_(*self.input_range)
            if new is not self.x:
                self.x.copy_(new)
            self.steps += 1
            return
        new = self._optimizer.step(idx, self.x[idx], grad, lr)
        if self.settings.range_mode == "clamp":
            new = new.clamp_(*self.input_range)
        self.x[idx] = new.detach()
        self.steps[idx] += 1

    def _track_best(self, idx: torch.Tensor, loss: torch.Tensor) -> None:
        improved = loss < self.best_loss[idx] * (1 - self.settings.stop_plateau_tol)
        self.best_step[idx] = torch.where(improved, self.steps[idx], self.best_step[idx])
        self.best_loss[idx] = torch.minimum(self.best_loss[idx], loss)

    def _stop_mask(
        self, idx: torch.Tensor, loss: torch.Tensor, criterion: StopCriterion | None
    ) -> torch.Tensor:
        s = self.settings
        steps = self.steps[idx]
        reasons = {"max_steps": steps >= s.max_steps}
        if s.loss_threshold is not None:
            reasons["threshold"] = loss <= s.loss_threshold
        if s.stop_plateau_steps is not None:
            reasons["plateau"] = steps - self.best_step[idx] >= s.stop_plateau_steps
        if criterion is not None:
            reasons["criterion"] = self._ask_criterion(criterion, idx, steps)
        stop = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        for reason, mask in reasons.items():
            new = mask & ~stop
            for i in idx[new].tolist():
                self.status[i] = DONE
                self.stop_reasons[i] = reason
            stop |= mask
        return stop

    def _ask_criterion(
        self, criterion: StopCriterion, idx: torch.Tensor, steps: torch.Tensor
    ) -> torch.Tensor:
        due = (steps > 0) & (steps % self.settings.stop_check_every == 0)
        mask = torch.zeros(len(idx), dtype=torch.bool, device=idx.device)
        if not bool(due.any()):
            return mask
        asked = idx[due]
        answer = torch.as_tensor(criterion(self, self.x[asked].detach(), asked), dtype=torch.bool)
        if answer.shape != (len(asked),):
            raise ConfigError(
                f"stop criterion returned shape {tuple(answer.shape)}; expected ({len(asked)},)"
            )
        mask[due] = answer.to(idx.device)
        return mask

    def _restart(self, bad: torch.Tensor) -> list[int]:
        """Non-finite loss or gradient: back to the last good state with half the step size."""
        failed = []
        self.failures[bad] += 1
        for i in bad.tolist():
            if int(self.failures[i]) > self.settings.max_failures:
                self.status[i] = FAILED
                self.stop_reasons[i] = "non-finite"
                failed.append(i)
            self.histories[i] = self.histories[i][: int(self.good_steps[i])]
        self.x[bad] = self.x_good[bad]
        self.steps[bad] = self.good_steps[bad]
        self.lr_scale[bad] *= 0.5
        self._optimizer.reset(bad)
        self._schedule.reset(bad)
        return failed

    # --------------------------------------------------------------- results
    @property
    def metamers(self) -> torch.Tensor:
        """``(N, *shape)`` current stimuli, in the input range."""
        return self.x.detach().clamp(*self.input_range)

    def losses(self, i: int) -> np.ndarray:
        """Loss per evaluation of item ``i`` (the last is the loss of its current stimulus).

        Parameters
        ----------
        i
            The item's position in the batch.
        """
        return np.asarray(self.histories[i], dtype=np.float64)

    def status_of(self, i: int) -> str:
        """``active``, ``done`` or ``failed``.

        Parameters
        ----------
        i
            The item's position in the batch.
        """
        return STATUS_NAMES[int(self.status[i])]

    def targets(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        """Target activations of item ``i``: ``{model name: {layer: tensor}}``.

        Parameters
        ----------
        i
            The item's position in the batch.
        """
        return {
            model.name: {layer: t[i] for layer, t in self._targets[m].items()}
            for m, model in enumerate(self.models)
        }

    def summary(self) -> dict[str, float | int]:
        """Counts and losses for progress displays."""
        status = self.status.tolist()
        last = [h[-1] for h in self.histories if h]
        return {
            "items": self.n_items,
            "active": status.count(ACTIVE),
            "done": status.count(DONE),
            "failed": status.count(FAILED),
            "iteration": self.iteration,
            "best_loss": float(min(last)) if last else math.nan,
            "median_loss": float(np.median(last)) if last else math.nan,
        }

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> None:
        """Save the full state (safetensors, atomically); :meth:`load` it into a fresh object.

        Parameters
        ----------
        path
            The ``.safetensors`` file to write (parents are created); the stimuli,
            losses, optimiser and schedule state and the settings all go in it.

        Raises
        ------
        ConfigError
            :meth:`setup` has not been called.
        """
        if not self._ready:
            raise ConfigError("nothing to save: call setup() first")
        tensors = {
            "x": self.x,
            "x_good": self.x_good,
            "steps": self.steps,
            "good_steps": self.good_steps,
            "lr_scale": self.lr_scale,
            "failures": self.failures,
            "status": self.status,
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "histories": _pad_histories(self.histories),
            "history_lengths": torch.tensor([len(h) for h in self.histories]),
        }
        tensors |= {f"optimizer.{k}": v for k, v in self._optimizer.state.items()}
        tensors |= {f"schedule.{k}": v for k, v in self._schedule.state.items()}
        meta = self._identity() | {
            "settings": self.settings.model_dump(mode="json"),
            "seeds": self.seeds,
            "stop_reasons": self.stop_reasons,
            "elapsed": self.elapsed,
            "iteration": self.iteration,
            "format": FORMAT_VERSION,
        }
        with atomic_path(path) as tmp:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                str(tmp),
                metadata={"synthesis": json.dumps(meta)},
            )

    def load(self, path: str | Path) -> MetamerSynthesis:
        """Restore a state saved by :meth:`save` into this (freshly built) object.

        The models (by weight fingerprint), layers, item ids and references
        must be the ones the state was saved with.

        Parameters
        ----------
        path
            A ``.safetensors`` file written by :meth:`save`.

        Returns
        -------
        MetamerSynthesis
            This object, ready to :meth:`run` on.

        Raises
        ------
        ConfigError
            The file is not a synthesis state or belongs to another synthesis.
        ModelError
            A model's weights differ from the ones the state was made with.
        """
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta_text = (handle.metadata() or {}).get("synthesis")
        if meta_text is None:
            raise ConfigError(f"{path} is not a saved synthesis state")
        meta = json.loads(meta_text)
        self._check_identity(meta, path)
        tensors = load_file(str(path), device=str(self.device))
        self.settings = SynthesisSettings(**meta["settings"])
        self.seeds = meta["seeds"]
        self._optimizer = make_optimizer(self.settings)
        self._schedule = make_schedule(self.settings)
        for name in ("x", "x_good", "steps", "good_steps", "lr_scale", "failures", "status"):
            setattr(self, name, tensors[name])
        self.best_loss, self.best_step = tensors["best_loss"], tensors["best_step"]
        lengths = tensors["history_lengths"].tolist()
        rows = tensors["histories"].cpu().tolist()
        self.histories = [row[:n] for row, n in zip(rows, lengths)]
        self._optimizer.state = _prefixed(tensors, "optimizer.")
        self._schedule.state = _prefixed(tensors, "schedule.")
        self.stop_reasons = meta["stop_reasons"]
        self.elapsed, self.iteration = meta["elapsed"], meta["iteration"]
        self._ready = True
        return self

    def _identity(self) -> dict:
        return {
            "models": [{"name": m.name, "fingerprint": m.fingerprint()} for m in self.models],
            "layers": self.layers,
            "item_ids": self.item_ids,
            "references": tensor_digest(self.references),
        }

    def _check_identity(self, meta: dict, path: str | Path) -> None:
        mine = self._identity()
        for saved, model in zip(meta["models"], self.models):
            if saved["fingerprint"] != model.fingerprint():
                raise ModelError(
                    f"{path} was made with model {saved['name']} fingerprint "
                    f"{saved['fingerprint']}; {model.name} has {model.fingerprint()}"
                )
        for key in ("models", "layers", "item_ids", "references"):
            if meta[key] != mine[key]:
                raise ConfigError(f"{path} belongs to another synthesis ({key} differ)")

    # -------------------------------------------------------------- internal
    def _fake_relu_layers(self) -> list[list[str]]:
        mode = self.settings.fake_relu
        out = []
        for model, layers in zip(self.models, self.layers):
            relu = [layer for layer in layers if is_relu_layer(model, layer)]
            if mode == "on" and len(relu) != len(layers):
                bad = [layer for layer in layers if layer not in relu]
                raise LayerError(
                    f"fake_relu='on' but {model.name} layer(s) {bad} are not ReLU-like"
                )
            out.append(relu if mode != "off" else [])
        return out

    def _compute_targets(self, per_model: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        targets = []
        with torch.no_grad():
            for model, layers, refs in zip(self.models, self.layers, per_model):
                acts = model.activations(refs, layers)
                targets.append({k: v.detach().float() for k, v in acts.items()})
        return targets


def tensor_digest(x: torch.Tensor) -> str:
    """SHA-256 (16 hex digits) of a tensor's float32 values.

    Parameters
    ----------
    x
        Any tensor; its values are converted to ``float32`` on the CPU, so the
        digest does not depend on dtype beyond float32 precision or on device.
    """
    data = x.detach().float().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _check_models(models: list[PixelModel]) -> None:
    if not models:
        raise ModelError("no model given")
    for model in models:
        if not isinstance(model, PixelModel):
            raise ModelError(f"expected a PixelModel, got {type(model).__name__} (use load_model)")
    first = models[0]
    for model in models[1:]:
        if model.device != first.device:
            raise ModelError(f"models are on different devices: {first.device} and {model.device}")
        if model.modality != first.modality or model.input_range != first.input_range:
            raise ModelError(
                f"ensemble models must share modality and input range: {first.name} "
                f"{first.input_range} vs {model.name} {model.input_range}"
            )
        if model.modality == "image" and model.input_shape[0] != first.input_shape[0]:
            raise ModelError(
                f"ensemble models have different channel counts ({first.name}, {model.name})"
            )


def _layer_lists(models: list[PixelModel], layers: LayerSpec) -> list[list[str]]:
    """Per model, the layers of the one job ``layers`` describes (names checked)."""
    job = as_layer_job(layers, len(models)).check(models)
    return [list(names) for names in job.layers]


def _synthesis_shape(models: list[PixelModel]) -> tuple[int, ...]:
    return max((m.input_shape for m in models), key=lambda s: math.prod(s[-2:]))


def _fit_references(
    models: list[PixelModel], references: torch.Tensor | Sequence[torch.Tensor], shape
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    device = models[0].device
    if isinstance(references, torch.Tensor):
        refs = references[None] if references.ndim == len(shape) else references
        _check_reference_shape(refs, shape, "references")
        refs = refs.detach().float().to(device)
        return refs, [fit_to_input(refs, m.input_shape) for m in models]
    per_model = [r.detach().float().to(device) for r in references]
    if len(per_model) != len(models):
        raise ConfigError(f"got {len(per_model)} reference tensors for {len(models)} models")
    if len({r.shape[0] for r in per_model}) != 1:
        raise ConfigError("per-model references must have the same number of items")
    fitted = []
    for model, refs in zip(models, per_model):
        _check_reference_shape(refs, model.input_shape, f"references for {model.name}", resize=True)
        fitted.append(fit_to_input(refs, model.input_shape))
    canonical = next((r for r in per_model if tuple(r.shape[1:]) == tuple(shape)), None)
    if canonical is None:
        canonical = fit_to_input(per_model[0], shape)
    return canonical, fitted


def _check_reference_shape(refs: torch.Tensor, shape, what: str, resize: bool = False) -> None:
    ok = refs.ndim == len(shape) + 1 and (
        tuple(refs.shape[1:]) == tuple(shape) or (resize and refs.shape[1] == shape[0])
    )
    if not ok:
        raise ConfigError(
            f"{what} have shape {tuple(refs.shape)}; expected (N, {', '.join(map(str, shape))})"
        )


def _check_explicit_start(start: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    if start.shape != refs.shape:
        raise ConfigError(f"start has shape {tuple(start.shape)}; expected {tuple(refs.shape)}")
    if not bool(torch.isfinite(start).all()):
        raise ConfigError("start contains non-finite values")
    return start.detach().float()


def _pad_histories(histories: list[list[float]]) -> torch.Tensor:
    width = max((len(h) for h in histories), default=0)
    out = torch.full((len(histories), max(width, 1)), math.nan, dtype=torch.float64)
    for i, h in enumerate(histories):
        out[i, : len(h)] = torch.tensor(h, dtype=torch.float64)
    return out


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
