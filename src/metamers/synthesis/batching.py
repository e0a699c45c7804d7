"""The batch size of a synthesis for its device.

On the CPU a small batch (:data:`CPU_BATCH`): more items per step buy nothing
there. On CUDA the largest batch that fits in the device's memory for the
models, layer job and settings, found once by a probe and cached (in this
process and in ``$METAMERS_CACHE/batch_sizes.json``, else
``~/.cache/metamers/batch_sizes.json``, keyed by device, torch version, model
fingerprints, job and the settings that change memory).

The probe runs two real synthesis steps at two small batch sizes, reads the
peak memory of each, extrapolates the memory per item to the free memory
(with a margin) and confirms the result with a real run at that size,
halving on an out-of-memory error.

Internal module: use it through metamers.synthesis (``generate_metamers(batch_size=None)``); not part of the public API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from metamers.io import write_json_atomic
from metamers.models import PixelModel
from metamers.synthesis.jobs import LayerJob
from metamers.synthesis.settings import SynthesisSettings

CPU_BATCH = 8
"""Batch capacity on the CPU (and any device that is not CUDA)."""
MAX_BATCH = 1024
"""The largest batch the probe proposes."""
MEMORY_MARGIN = 0.85
"""Fraction of the free device memory a probed batch may use at its peak."""
_CACHE: dict[str, int] = {}

PeakFn = Callable[[int], int | None]
"""``peak(n)``: peak device bytes of synthesis steps at batch ``n``, ``None`` when out of memory."""


def device_batch_size(
    models: Sequence[PixelModel],
    job: LayerJob,
    settings: SynthesisSettings,
    n_items: int | None = None,
) -> int:
    """The batch capacity for these models and this job on their device.

    Parameters
    ----------
    models
        The generating models (their device decides).
    job
        The layer job (a deeper layer takes more memory per item).
    settings
        The synthesis settings (optimiser state and ``amp`` change memory).
    n_items
        How many items there are (no probe is needed for fewer than the CPU batch).

    Returns
    -------
    int
        :data:`CPU_BATCH` off CUDA; on CUDA the probed largest batch (cached).
    """
    device = models[0].device
    if device.type != "cuda" or (n_items is not None and n_items <= CPU_BATCH):
        return CPU_BATCH
    key = _cache_key(models, job, settings)
    if key not in _CACHE:
        stored = _read_disk_cache().get(key)
        _CACHE[key] = stored or _probe_and_store(key, models, job, settings)
    return _CACHE[key]


def choose_batch_size(peak: PeakFn, free_bytes: int, limit: int = MAX_BATCH) -> int:
    """The largest batch whose peak memory fits ``MEMORY_MARGIN`` of ``free_bytes``.

    Measures ``peak`` at batches 2 and 8, extrapolates linearly, rounds down
    to a multiple of 8 (at most ``limit``) and confirms it with ``peak``,
    halving while it does not fit.

    Parameters
    ----------
    peak
        Peak bytes of real synthesis steps at a batch size (``None``: out of memory).
    free_bytes
        Device memory free for the synthesis.
    limit
        The largest batch to propose.

    Returns
    -------
    int
        At least 1.
    """
    budget = free_bytes * MEMORY_MARGIN
    small, large = peak(2), peak(8)
    if small is None:
        return 1
    if large is None:
        return _largest_fitting(peak, 4, budget)
    per_item = max((large - small) / 6, 1.0)
    base = small - 2 * per_item
    guess = int((budget - base) // per_item)
    guess = max(8, min(limit, guess - guess % 8))
    return _largest_fitting(peak, guess, budget)


def _largest_fitting(peak: PeakFn, start: int, budget: float) -> int:
    size = start
    while size > 1:
        used = peak(size)
        if used is not None and used <= budget:
            return size
        size //= 2
    return 1


def _cache_key(models: Sequence[PixelModel], job: LayerJob, settings: SynthesisSettings) -> str:
    device = models[0].device
    parts = {
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "models": [m.fingerprint() for m in models],
        "job": job.label,
        "optimizer": settings.optimizer,
        "lbfgs_history": settings.lbfgs_history if settings.optimizer == "lbfgs" else None,
        "amp": settings.amp,
        "objective": settings.objective,
    }
    return json.dumps(parts, sort_keys=True)


def _cache_file() -> Path:
    root = os.environ.get("METAMERS_CACHE")
    folder = Path(root) if root else Path.home() / ".cache" / "metamers"
    return folder / "batch_sizes.json"


def _read_disk_cache() -> dict[str, int]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _probe_and_store(
    key: str, models: Sequence[PixelModel], job: LayerJob, settings: SynthesisSettings
) -> int:
    device = models[0].device
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    size = choose_batch_size(lambda n: _peak_bytes(models, job, settings, n), free)
    try:
        write_json_atomic(_cache_file(), _read_disk_cache() | {key: size})
    except OSError:
        pass  # a read-only home: the probe is cached in this process only
    return size


def _peak_bytes(
    models: Sequence[PixelModel], job: LayerJob, settings: SynthesisSettings, n: int
) -> int | None:
    """Peak CUDA bytes of two synthesis steps at batch ``n`` (``None``: out of memory)."""
    from metamers.synthesis.engine import MetamerSynthesis

    device = models[0].device
    shape = max((m.input_shape for m in models), key=lambda s: torch.Size(s).numel())
    refs = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0))
    low, high = models[0].input_range
    refs = (low + (high - low) * refs).to(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    try:
        synthesis = MetamerSynthesis(list(models), job, refs, settings=settings)
        synthesis.setup(seed=0).synthesize(max_steps=2)
        torch.cuda.synchronize(device)
        used = torch.cuda.max_memory_allocated(device) - before
    except torch.cuda.OutOfMemoryError:
        used = None
    finally:
        synthesis = None
        torch.cuda.empty_cache()
    return used
