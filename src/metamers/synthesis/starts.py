"""Starting points for synthesis, drawn per item from that item's own seed.

Every random start is drawn on the CPU from a generator seeded per item, so
an item starts from the same point whatever batch it is in and whatever device
the run uses. Images live in ``[0, 1]``, waveforms in ``[-1, 1]``.

Internal module: use it through metamers.synthesis (``SynthesisSettings.init``); not part of the public API.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from metamers.errors import ConfigError
from metamers.synthesis.settings import SynthesisSettings

PUBLISHED_NOISE = {"image": (0.5, 1 / 20), "audio": (0.0, 1e-7)}
"""Published noise start ``(mean, std)`` per modality (Feather et al. 2023)."""


def item_generator(seed: int) -> torch.Generator:
    """A CPU generator for one item.

    Parameters
    ----------
    seed
        The item's seed (e.g. from
        :func:`~metamers.synthesis.driver.item_seed`), taken modulo ``2**63``.
    """
    return torch.Generator().manual_seed(int(seed) % (2**63))


def starting_points(
    settings: SynthesisSettings,
    references: torch.Tensor,
    seeds: list[int],
    input_range: tuple[float, float],
    source: torch.Tensor | None = None,
) -> torch.Tensor:
    """Starting stimuli for a batch, clamped to ``input_range``.

    Parameters
    ----------
    settings
        ``init`` and its parameters.
    references
        ``(N, *shape)`` references (for reference-based starts; also fixes shape).
    seeds
        One seed per item.
    input_range
        Valid range of the stimuli.
    source
        ``(*shape)`` or ``(N, *shape)`` stimulus for ``init="stimulus"``.
    """
    refs = references.detach().float().cpu()
    modality = "audio" if refs.ndim == 2 else "image"
    starts = (
        torch.stack(
            [_one(settings, ref, item_generator(seed), modality) for ref, seed in zip(refs, seeds)]
        )
        if settings.init != "stimulus"
        else _from_source(source, refs)
    )
    return starts.clamp(*input_range).to(references.device)


def _one(
    settings: SynthesisSettings, ref: torch.Tensor, gen: torch.Generator, modality: str
) -> torch.Tensor:
    default_mean, default_std = PUBLISHED_NOISE[modality]
    mean = default_mean if settings.init_mean is None else settings.init_mean
    std = default_std if settings.init_std is None else settings.init_std
    kind = settings.init
    if kind == "noise":
        return mean + std * torch.randn(ref.shape, generator=gen)
    if kind == "uniform":
        low, high = (0.0, 1.0) if modality == "image" else (-1.0, 1.0)
        return low + (high - low) * torch.rand(ref.shape, generator=gen)
    if kind == "constant":
        value = settings.init_value if settings.init_value is not None else mean
        return torch.full(ref.shape, float(value))
    if kind == "pink":
        pink_std = settings.init_std if settings.init_std is not None else 0.1
        return mean + pink_std * pink_noise(ref.shape, gen)
    if kind == "reference_noise":
        centred = ref - ref.mean()
        noise_std = centred.pow(2).mean().sqrt() / 10 ** (settings.init_snr_db / 20)
        return ref + noise_std * torch.randn(ref.shape, generator=gen)
    if kind == "blur":
        return gaussian_blur(ref, settings.init_sigma)
    if kind == "downsample":
        return downsample(ref, settings.init_factor)
    raise ConfigError(f"unknown init {kind!r}")


def _from_source(source: torch.Tensor | None, refs: torch.Tensor) -> torch.Tensor:
    if source is None:
        raise ConfigError("init='stimulus' needs a source stimulus (init_source)")
    source = source.detach().float().cpu()
    if source.shape == refs.shape[1:]:
        return source.expand_as(refs).clone()
    if source.shape == refs.shape:
        return source.clone()
    raise ConfigError(
        f"init stimulus has shape {tuple(source.shape)}; expected {tuple(refs.shape[1:])}"
    )


def pink_noise(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Zero-mean, unit-std noise with a ``1/f`` amplitude spectrum over the last 1 or 2 dims.

    Parameters
    ----------
    shape
        ``(T,)`` for a waveform or ``(..., H, W)`` for images; the spectrum is
        shaped over the last dimension or the last two.
    gen
        The CPU generator of the white noise.

    Returns
    -------
    torch.Tensor
        Noise of ``shape``, normalised over the whole tensor (the zero frequency
        is removed).
    """
    white = torch.randn(shape, generator=gen)
    dims = (-1,) if len(shape) == 1 else (-2, -1)
    spectrum = torch.fft.rfftn(white, dim=dims)
    if len(shape) == 1:
        freq = torch.fft.rfftfreq(shape[-1])
    else:
        fy = torch.fft.fftfreq(shape[-2])[:, None]
        fx = torch.fft.rfftfreq(shape[-1])[None, :]
        freq = torch.sqrt(fy**2 + fx**2)
    scale = torch.where(freq > 0, 1.0 / freq.clamp_min(1e-12), torch.zeros_like(freq))
    noise = torch.fft.irfftn(spectrum * scale, s=[shape[d] for d in dims], dim=dims)
    return (noise - noise.mean()) / noise.std().clamp_min(1e-12)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(C, H, W)`` image or ``(T,)`` waveform (reflect padding).

    Parameters
    ----------
    x
        A ``(C, H, W)`` image or ``(T,)`` waveform.
    sigma
        Standard deviation of the Gaussian in pixels (samples); the kernel
        reaches ``ceil(3 * sigma)`` (at least 1) to each side.
    """
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    if x.ndim == 1:
        padded = F.pad(x[None, None], (radius, radius), mode="reflect")
        return F.conv1d(padded, kernel[None, None])[0, 0]
    channels = x.shape[0]
    out = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.expand(channels, 1, 1, -1), groups=channels)
    out = F.conv2d(out, kernel[:, None].expand(channels, 1, -1, 1), groups=channels)
    return out[0]


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Reduce by ``factor`` (antialiased) and enlarge back to the original size.

    Parameters
    ----------
    x
        A ``(C, H, W)`` image (antialiased bilinear down, bilinear up) or a
        ``(T,)`` waveform (average pooling down, linear up).
    factor
        The reduction factor per spatial or time axis (an image side never goes
        below 1 pixel).

    Returns
    -------
    torch.Tensor
        Of ``x``'s shape, without the detail finer than ``factor``.
    """
    if x.ndim == 1:
        small = F.avg_pool1d(x[None, None], factor, ceil_mode=True)
        return F.interpolate(small, size=x.shape[-1], mode="linear", align_corners=False)[0, 0]
    size = x.shape[-2:]
    small_size = [max(1, s // factor) for s in size]
    small = F.interpolate(x[None], size=small_size, mode="bilinear", antialias=True)
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)[0]
