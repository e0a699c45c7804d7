"""The batched metamer synthesis object.

:class:`MetamerSynthesis` follows plenoptic's lifecycle — construct (cheap,
validated; targets computed once) → :meth:`~MetamerSynthesis.setup` →
:meth:`~MetamerSynthesis.synthesize` (call again to continue) →
:meth:`~MetamerSynthesis.save` / :meth:`~MetamerSynthesis.load` — but
optimises many items at once. Every item has its own loss, step count, step
size, optimiser state and stopping; finished items leave the active batch, so
they stop costing compute and never hold the others back, and new items can
take their slots (:meth:`~MetamerSynthesis.admit`, continuous batching).

The loop is tensor operations on the device between host *syncs* (every
``sync_every`` iterations, and whenever an item reaches ``max_steps`` or is
due a stop-criterion check): losses and histories, stops, restarts and the
schedule are updated under masks and read back only at a sync (see
:meth:`~MetamerSynthesis.synthesize` and docs/synthesis.md).

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
REASON_NAMES = [None, "max_steps", "threshold", "plateau", "criterion", "non-finite"]
REASON_CODES = {name: code for code, name in enumerate(REASON_NAMES) if name}
FORMAT_VERSION = 1
DEVICE_SYNC_EVERY = 10
"""Default iterations between host syncs of the loop off the CPU (see ``sync_every``)."""


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
    sync_every
        Iterations between host syncs of the loop (see :meth:`synthesize`);
        default :attr:`sync_every`.
    compile
        A ``torch.compile`` backend (``"inductor"``, ``"cudagraphs"``, ...;
        ``"inductor:reduce-overhead"`` adds a mode) for
        the loss (and so its gradient) and for the step's bookkeeping and
        update (fused into a few kernels; dynamic batch shapes); ``None``:
        eager, as always before. A measured option for GPUs (``bench/gpu.py``).

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
        sync_every: int | None = None,
        compile: str | None = None,
    ) -> None:
        if sync_every is not None and sync_every < 1:
            raise ConfigError("sync_every must be at least 1")
        self._sync_every = sync_every
        self.compile = compile
        self._compiled_fns: dict[str, Callable] = {}
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

    @property
    def sync_every(self) -> int:
        """Iterations between host syncs: as given, else 1 on the CPU (a sync costs nothing
        there, and items leave the batch the step they stop) and :data:`DEVICE_SYNC_EVERY`
        on other devices (a sync every few steps costs little; an item that stops on a loss
        rule rides along frozen until the next one, which wastes a slot)."""
        if self._sync_every is not None:
            return self._sync_every
        return 1 if self.device.type == "cpu" else DEVICE_SYNC_EVERY

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
        self._init_loop_state()

    def _init_loop_state(self) -> None:
        """Device-side bookkeeping of the loop and its host mirror (as of the last sync)."""
        n, dev = self.n_items, self.device
        self._hist_len = torch.tensor([len(h) for h in self.histories], device=dev)
        self._reason = torch.zeros(n, dtype=torch.long, device=dev)
        self._evaluations = torch.zeros((), dtype=torch.long, device=dev)
        self._pending: list[tuple[torch.Tensor, ...]] = []
        self._host_status = self.status.tolist()
        self._host_steps = self.steps.tolist()
        self._segment_rows: list[int] = []
        self.rows_evaluated = 0
        self.evaluations = 0
        self.synced = True

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

        The loop keeps its state on the device and reads it on the host only
        at a *sync*, every :attr:`sync_every` iterations at most: losses,
        stops and restarts are tensor operations in between. A sync also
        comes when an item reaches ``max_steps`` or is due a stop-criterion
        check (both known in advance from the step counts), so those happen
        at the same step as with a sync every step. An item that stops on a
        loss rule (threshold, plateau, non-finite) between syncs is frozen in
        place until the next sync (no update, no history), then leaves the
        batch.

        Parameters
        ----------
        max_steps
            At most this many further iterations in this call (default: until
            every item has stopped).
        stop_criterion
            Per-item stop test, see the module docstring.
        callback
            Called with this object after every iteration (progress,
            checkpoints; it may raise to interrupt). It should not read device
            state between syncs (:attr:`synced` says whether this iteration
            ended with one); :meth:`summary` is the host view as of the last sync.
        on_items_done
            Called at a sync with the indices of items that finished or failed
            since the previous one.

        Returns
        -------
        MetamerSynthesis
            ``self``.
        """
        if not self._ready:
            raise ConfigError("call setup() before synthesize()")
        done_here = 0
        while max_steps is None or done_here < max_steps:
            active = [i for i, code in enumerate(self._host_status) if code == ACTIVE]
            if not active:
                break
            budget = None if max_steps is None else max_steps - done_here
            length = self._segment_length(active, stop_criterion is not None, budget)
            idx = None if len(active) == self.n_items else torch.tensor(active, device=self.device)
            self._segment_rows = active
            for j in range(length):
                started = time.perf_counter()
                last = j == length - 1
                self._iterate(idx, len(active), stop_criterion if last else None)
                finished = self._sync() if last else []
                self.synced = last
                self.elapsed += time.perf_counter() - started
                self.iteration += 1
                done_here += 1
                if finished and on_items_done is not None:
                    on_items_done(finished)
                if callback is not None:
                    callback(self)
        return self

    def _segment_length(self, active: list[int], criterion: bool, budget: int | None) -> int:
        """Iterations until the next sync: the interval, or sooner if an item then stops on
        ``max_steps`` or is due a criterion check (from the step counts at this sync)."""
        every = self.settings.stop_check_every
        ahead = [max(self.settings.max_steps - self._host_steps[i], 0) for i in active]
        if criterion:
            ahead += [(-self._host_steps[i]) % every or every for i in active]
        length = min(self.sync_every, min(ahead) + 1)
        return length if budget is None else max(min(length, budget), 1)

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
        self._sync()
        for i in indices:
            if self._host_status[i] == ACTIVE:
                self.status[i] = DONE
                self._host_status[i] = DONE
                self.stop_reasons[i] = reason

    def admit(
        self,
        slots: Sequence[int],
        references: torch.Tensor | Sequence[torch.Tensor],
        item_ids: Sequence[str],
        seeds: Sequence[int],
        init_source: torch.Tensor | None = None,
    ) -> None:
        """Put new items into slots whose items have stopped (continuous batching).

        Each new item gets its own start (from its seed), fresh optimiser and
        schedule state, step count 0 and an empty history, exactly as if it had
        started in a batch of its own.

        Parameters
        ----------
        slots
            Positions of stopped items (done or failed, already taken care of).
        references
            The new items' references, as for the constructor (one tensor, or one
            per model).
        item_ids
            Their names (unique in the batch).
        seeds
            Their seeds.
        init_source
            The stimulus for ``init="stimulus"``.

        Raises
        ------
        ConfigError
            A slot still holds an active item, or the counts differ.
        """
        if not self._ready:
            raise ConfigError("call setup() before admit()")
        self._sync()
        slots = [int(i) for i in slots]
        if any(self._host_status[i] == ACTIVE for i in slots):
            raise ConfigError("admit() needs slots whose items have stopped")
        if not len(slots) == len(item_ids) == len(seeds):
            raise ConfigError("admit() needs one reference, id and seed per slot")
        refs, per_model = _fit_references(self.models, references, self.shape)
        others = {self.item_ids[i] for i in range(self.n_items) if i not in slots}
        if len(refs) != len(slots) or others & set(item_ids) or len(set(item_ids)) < len(slots):
            raise ConfigError("admit() needs one reference per slot and unique item ids")
        where = torch.tensor(slots, device=self.device)
        self.references = self.references.clone()  # never write into the caller's tensor
        self.references[where] = refs
        for m, targets in enumerate(self._compute_targets(per_model)):
            for layer, target in targets.items():
                self._targets[m][layer][where] = target
        start = starting_points(self.settings, refs, list(seeds), self.input_range, init_source)
        self._start_items(where, start.float().to(self.device))
        for slot, item_id, seed in zip(slots, item_ids, seeds):
            self.item_ids[slot], self.seeds[slot] = str(item_id), int(seed)
            self.histories[slot], self.stop_reasons[slot] = [], None
            self._host_status[slot], self._host_steps[slot] = ACTIVE, 0

    def _start_items(self, where: torch.Tensor, start: torch.Tensor) -> None:
        self.x[where] = start
        self.x_good[where] = start
        for tensor in (self.steps, self.good_steps, self.failures, self.best_step):
            tensor[where] = 0
        for tensor in (self._hist_len, self._reason):
            tensor[where] = 0
        self.lr_scale[where] = 1.0
        self.best_loss[where] = math.inf
        self.status[where] = ACTIVE
        self._optimizer.reset(where)
        self._schedule.start(where)

    def _iterate(self, idx: torch.Tensor | None, rows: int, criterion: StopCriterion | None):
        """One step of the items ``idx`` (``None``: all) with tensor operations only.

        Items among them that stopped since the last sync ride along frozen.
        Only ``criterion`` (asked at a sync) reads device values on the host.
        """
        x_active = _at(self.x, idx).detach().requires_grad_(True)
        loss = self._compiled("_loss")(x_active, idx)
        (grad,) = torch.autograd.grad(loss.sum(), x_active)
        self.rows_evaluated += rows
        advance = self._advance if criterion is not None else self._compiled("_advance")
        self._pending.append(advance(idx, loss.detach(), grad, criterion))

    def _advance(
        self,
        idx: torch.Tensor | None,
        loss: torch.Tensor,
        grad: torch.Tensor,
        criterion: StopCriterion | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything after the gradient: restarts, bookkeeping, stops, the update.

        Returns the history entry ``(loss, steps, good)`` of this step.
        """
        ok = torch.isfinite(loss) & torch.isfinite(grad.flatten(1)).all(dim=1)
        active = _at(self.status, idx) == ACTIVE
        good, bad = active & ok, active & ~ok
        self._evaluations += active.sum()
        self._restart(idx, bad)
        x_rows = _at(self.x, idx)  # restarted items are back at their last good stimulus
        steps = _at(self.steps, idx).clone()
        _put(self._hist_len, idx, torch.where(good, steps + 1, _at(self._hist_len, idx)))
        _put(self.x_good, idx, torch.where(_per_item(good, x_rows), x_rows, _at(self.x_good, idx)))
        _put(self.good_steps, idx, torch.where(good, steps, _at(self.good_steps, idx)))
        self._track_best(idx, loss, steps, good)
        self._schedule.observe(idx, loss, good)
        stop = self._stop_mask(idx, loss, steps, good, criterion)
        self._update(idx, x_rows, grad, good & ~stop)
        return loss, steps, good

    def _compiled(self, name: str) -> Callable:
        """Method ``name``, through ``torch.compile`` when :attr:`compile` names a backend."""
        if self.compile is None:
            return getattr(self, name)
        if name not in self._compiled_fns:
            backend, _, mode = self.compile.partition(":")
            options = {"mode": mode} if mode else {}
            self._compiled_fns[name] = torch.compile(
                getattr(self, name), backend=backend, dynamic=True, **options
            )
        return self._compiled_fns[name]

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
                target = _at(self._targets[m][layer], idx)
                total = total + weights[m] * objective(acts[layer], target)
        if self.settings.range_mode == "penalty":
            total = total + self.settings.range_penalty * range_penalty(x, *self.input_range)
        return total

    def _update(
        self, idx: torch.Tensor | None, x_rows: torch.Tensor, grad: torch.Tensor, move: torch.Tensor
    ) -> None:
        steps = _at(self.steps, idx)
        factor = self._schedule.factor(idx, steps)
        lr = self.settings.lr * factor * _at(self.lr_scale, idx)
        new = self._optimizer.step(idx, x_rows, grad, lr, mask=move)
        if self.settings.range_mode == "clamp":
            new = new.clamp_(*self.input_range)
        _put(self.x, idx, torch.where(_per_item(move, new), new, x_rows).detach())
        _put(self.steps, idx, steps + move.long())

    def _track_best(
        self, idx: torch.Tensor | None, loss: torch.Tensor, steps: torch.Tensor, good: torch.Tensor
    ) -> None:
        best_loss, best_step = _at(self.best_loss, idx), _at(self.best_step, idx)
        improved = good & (loss < best_loss * (1 - self.settings.stop_plateau_tol))
        _put(self.best_step, idx, torch.where(improved, steps, best_step))
        _put(self.best_loss, idx, torch.where(good, torch.minimum(best_loss, loss), best_loss))

    def _stop_mask(
        self,
        idx: torch.Tensor | None,
        loss: torch.Tensor,
        steps: torch.Tensor,
        good: torch.Tensor,
        criterion: StopCriterion | None,
    ) -> torch.Tensor:
        """Which items stop now; their status and reason are set with tensor operations."""
        s = self.settings
        reasons = [("max_steps", steps >= s.max_steps)]
        if s.loss_threshold is not None:
            reasons.append(("threshold", loss <= s.loss_threshold))
        if s.stop_plateau_steps is not None:
            reasons.append(("plateau", steps - _at(self.best_step, idx) >= s.stop_plateau_steps))
        if criterion is not None:
            reasons.append(("criterion", self._ask_criterion(criterion, idx, steps, good)))
        stop = torch.zeros_like(good)
        reason = torch.zeros_like(steps)
        for name, mask in reasons:
            mask = mask & good
            code = REASON_CODES[name]
            reason = torch.where(mask & ~stop, code, reason)
            stop |= mask
        _put(self.status, idx, torch.where(stop, DONE, _at(self.status, idx)))
        _put(self._reason, idx, torch.where(stop, reason, _at(self._reason, idx)))
        return stop

    def _ask_criterion(
        self,
        criterion: StopCriterion,
        idx: torch.Tensor | None,
        steps: torch.Tensor,
        good: torch.Tensor,
    ) -> torch.Tensor:
        due = good & (steps > 0) & (steps % self.settings.stop_check_every == 0)
        mask = torch.zeros_like(due)
        if not bool(due.any()):
            return mask
        rows = torch.arange(len(due), device=due.device) if idx is None else idx
        asked = rows[due]
        answer = torch.as_tensor(criterion(self, self.x[asked].detach(), asked), dtype=torch.bool)
        if answer.shape != (len(asked),):
            raise ConfigError(
                f"stop criterion returned shape {tuple(answer.shape)}; expected ({len(asked)},)"
            )
        mask[due] = answer.to(due.device)
        return mask

    def _restart(self, idx: torch.Tensor | None, bad: torch.Tensor) -> None:
        """Non-finite loss or gradient: back to the last good state with half the step size
        (tensor operations; after ``max_failures`` restarts the item is failed)."""
        failures = _at(self.failures, idx) + bad.long()
        failed = bad & (failures > self.settings.max_failures)
        good_steps = _at(self.good_steps, idx)
        _put(self.failures, idx, failures)
        _put(self.status, idx, torch.where(failed, FAILED, _at(self.status, idx)))
        _put(
            self._reason,
            idx,
            torch.where(failed, REASON_CODES["non-finite"], _at(self._reason, idx)),
        )
        _put(self._hist_len, idx, torch.where(bad, good_steps, _at(self._hist_len, idx)))
        x_rows = _at(self.x, idx)
        _put(self.x, idx, torch.where(_per_item(bad, x_rows), _at(self.x_good, idx), x_rows))
        _put(self.steps, idx, torch.where(bad, good_steps, _at(self.steps, idx)))
        scale = _at(self.lr_scale, idx)
        _put(self.lr_scale, idx, torch.where(bad, scale * 0.5, scale))
        self._optimizer.reset(idx, bad)
        self._schedule.reset(idx, bad)

    def _sync(self) -> list[int]:
        """Copy the loop's device state to the host; return the items stopped since the last sync."""
        self._flush_histories()
        state = (
            torch.cat(
                [
                    torch.stack([self.status, self.steps, self._reason]).flatten(),
                    self._evaluations[None],
                ]
            )
            .cpu()
            .tolist()
        )
        n = self.n_items
        status, steps, reasons = state[:n], state[n : 2 * n], state[2 * n : 3 * n]
        self.evaluations = state[-1]
        finished = []
        for i, (before, now) in enumerate(zip(self._host_status, status)):
            if before == ACTIVE and now != ACTIVE:
                finished.append(i)
                self.stop_reasons[i] = REASON_NAMES[reasons[i]]
        self._host_status, self._host_steps = status, steps
        return finished

    def _flush_histories(self) -> None:
        """Append the losses evaluated since the last flush to the items' histories.

        An entry is the loss at an item's step count, so a restart (which set
        the item back to its last good step) truncates the history there.
        """
        if not self._pending:
            return
        rows = self._segment_rows
        lengths = self._hist_len[rows].cpu().tolist()
        loss, steps, good = (torch.stack(parts).cpu() for parts in zip(*self._pending))
        self._pending = []
        for column, item in enumerate(rows):
            history = self.histories[item]
            kept = good[:, column]
            values = loss[:, column][kept].tolist()
            at = steps[:, column][kept].tolist()
            if at and at[0] == len(history) and at[-1] == at[0] + len(at) - 1:
                history.extend(values)
            else:
                for step, value in zip(at, values):
                    del history[step:]
                    history.append(value)
            del history[lengths[column] :]

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
        self._flush_histories()
        return np.asarray(self.histories[i], dtype=np.float64)

    def status_of(self, i: int) -> str:
        """``active``, ``done`` or ``failed``, as of the last host sync (no device read).

        Between syncs (inside :meth:`synthesize`'s callback when :attr:`synced` is
        false) an item that has just stopped still reads ``active``.

        Parameters
        ----------
        i
            The item's position in the batch.
        """
        return STATUS_NAMES[self._host_status[i]]

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
        """Counts and losses for progress displays, as of the last host sync (no sync)."""
        status = self._host_status
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
        self._flush_histories()
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
        # targets as computed (an admitted item's was computed alone, which a rebuilt
        # batch would not reproduce to the bit)
        for m, targets in enumerate(self._targets):
            tensors |= {f"target.{m}.{layer}": t for layer, t in targets.items()}
        meta = self._identity() | {
            "settings": self.settings.model_dump(mode="json"),
            "seeds": self.seeds,
            "stop_reasons": self._device_stop_reasons(),
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
        for m, targets in enumerate(self._targets):
            for layer in targets:
                saved = tensors.get(f"target.{m}.{layer}")
                if saved is not None and saved.shape == targets[layer].shape:
                    targets[layer] = saved
        self.stop_reasons = meta["stop_reasons"]
        self.elapsed, self.iteration = meta["elapsed"], meta["iteration"]
        self._init_loop_state()
        self._ready = True
        return self

    def _device_stop_reasons(self) -> list[str | None]:
        """Stop reasons including items stopped on the device since the last sync."""
        codes = self._reason.tolist()
        return [
            reason if reason is not None else REASON_NAMES[code]
            for reason, code in zip(self.stop_reasons, codes)
        ]

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


def _at(tensor: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows ``idx`` of a per-item tensor (the tensor itself for ``None``)."""
    return tensor if idx is None else tensor[idx]


def _put(tensor: torch.Tensor, idx: torch.Tensor | None, rows: torch.Tensor) -> None:
    """Write rows ``idx`` of a per-item tensor (all of it, in place, for ``None``)."""
    if idx is None:
        if rows is not tensor:
            tensor.copy_(rows)
    else:
        tensor[idx] = rows


def _per_item(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(n,)`` values shaped to broadcast against ``(n, ...)``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))
