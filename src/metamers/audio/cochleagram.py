"""A differentiable cochleagram (half-cosine ERB filter bank on the rFFT).

The processing order and numerics follow the published ``cochleagram_1`` front end of
Feather et al. (2023), as implemented in chcochleagram (MIT licence):

1. rFFT of the waveform (one-sided spectrum, DC ... Nyquist);
2. multiplication by half-cosine filters equally spaced on the ERB-number scale
   (``erb(f) = 9.265 ln(1 + f / (24.7 * 9.265))``), ``sample_factor`` times overcomplete,
   with low- and high-pass edge filters ``sqrt(1 - bp**2)``, all divided by
   ``sqrt(sample_factor)`` so that the squared responses sum to one;
3. envelope: the filtered one-sided spectrum zero-padded over the negative frequencies
   (no doubling), inverse complex FFT, magnitude ``sqrt(max(re**2 + im**2, 1e-16))``
   (a unit sine at a filter's centre frequency therefore gives 0.25);
4. downsampling by cross-correlation with a Kaiser-windowed sinc kernel;
5. compression ``(relu(x) + offset) ** power`` with switchable gradient conventions.

Examples
--------
>>> import torch
>>> from metamers.audio import Cochleagram
>>> coch = Cochleagram.feather2023()
>>> coch(torch.zeros(2, 40000)).shape
torch.Size([2, 1, 211, 390])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.signal.windows import kaiser

__all__ = ["Cochleagram", "CochleagramSettings", "erb2freq", "freq2erb"]


def freq2erb(freq: np.ndarray | float) -> np.ndarray:
    """Convert frequency (Hz) to ERB number.

    Parameters
    ----------
    freq : array_like
        Frequencies in Hz.

    Returns
    -------
    numpy.ndarray
        ``9.265 * ln(1 + f / (24.7 * 9.265))``.
    """
    return 9.265 * np.log(1 + np.asarray(freq, dtype=np.float64) / (24.7 * 9.265))


def erb2freq(erb: np.ndarray | float) -> np.ndarray:
    """Convert ERB number to frequency (Hz); the inverse of :func:`freq2erb`.

    Parameters
    ----------
    erb : array_like
        ERB numbers.

    Returns
    -------
    numpy.ndarray
        Frequencies in Hz.
    """
    return 24.7 * 9.265 * (np.exp(np.asarray(erb, dtype=np.float64) / 9.265) - 1)


@dataclass(frozen=True)
class CochleagramSettings:
    """Every number and gradient convention of a cochleagram.

    Parameters
    ----------
    sample_rate : int
        Waveform sample rate (Hz).
    low_hz, high_hz : float
        Lower and upper limits of the band-pass filters (Hz); ``high_hz`` above Nyquist is
        lowered to the highest frequency bin.
    n : int
        Number of band-pass filters at ``sample_factor`` 1.
    sample_factor : int
        Overcompleteness; there are ``sample_factor * (n + 1) - 1`` band-pass filters plus
        ``sample_factor`` low-pass and ``sample_factor`` high-pass filters.
    env_sr : int
        Envelope sample rate (Hz) after downsampling; ``sample_rate / env_sr`` must be an
        integer (the stride).
    kernel_length : int
        Length of the Kaiser-windowed sinc downsampling kernel (samples).
    kernel_beta : float
        Kaiser window beta.
    downsample_padding : {"valid", "same"}
        ``"valid"``: no padding (390 frames for 2 s at 20 kHz); ``"same"``: ``(kernel_length
        - 1) // 2`` zeros on each side (400 frames).
    envelope_scale : float
        Factor applied to the downsampled envelope before compression.
    compression_power : float
        Exponent of the compression.
    compression_offset : float
        Added after the ReLU, before the power.
    relu_backward : {"identity", "relu"}
        Gradient of the ReLU before the compression: ``"identity"`` passes the gradient
        unchanged (the published convention), ``"relu"`` is the true ReLU gradient.
    power_grad_clip : float or None
        The local derivative of the power is clipped to ``[-clip, clip]``; ``None`` keeps the
        exact derivative.
    """

    sample_rate: int = 20000
    low_hz: float = 50.0
    high_hz: float = 10000.0
    n: int = 50
    sample_factor: int = 4
    env_sr: int = 200
    kernel_length: int = 1001
    kernel_beta: float = 5.0
    downsample_padding: Literal["valid", "same"] = "valid"
    envelope_scale: float = 1.0
    compression_power: float = 0.3
    compression_offset: float = 1e-8
    relu_backward: Literal["identity", "relu"] = "identity"
    power_grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        if self.sample_rate % self.env_sr:
            raise ValueError(
                f"sample_rate {self.sample_rate} is not a multiple of env_sr {self.env_sr}"
            )
        if self.relu_backward not in ("identity", "relu"):
            raise ValueError(
                f"relu_backward must be 'identity' or 'relu', not {self.relu_backward!r}"
            )
        if self.downsample_padding not in ("valid", "same"):
            raise ValueError(
                f"downsample_padding must be 'valid' or 'same', not {self.downsample_padding!r}"
            )
        if not 0 < self.low_hz < self.high_hz:
            raise ValueError("need 0 < low_hz < high_hz")

    @property
    def stride(self) -> int:
        """Downsampling stride in samples."""
        return self.sample_rate // self.env_sr

    @property
    def padding(self) -> int:
        """Zeros added on each side before downsampling."""
        return (self.kernel_length - 1) // 2 if self.downsample_padding == "same" else 0

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dictionary (to record with results).

        Returns
        -------
        dict
            Field name to value.
        """
        return dataclasses.asdict(self)


def _erb_cos_filters(length: int, s: CochleagramSettings) -> tuple[np.ndarray, np.ndarray]:
    """Half-cosine ERB filters for a signal of ``length`` samples (pycochleagram layout).

    Returns ``(filters, centre_freqs)``: filters ``(n_filters, length // 2 + 1)`` ordered from
    low to high frequency, float64; centre frequencies in Hz.
    """
    sr, sf = s.sample_rate, s.sample_factor
    if length % 2 == 0:
        n_freqs = length // 2
        max_freq = sr / 2
    else:
        n_freqs = (length - 1) // 2
        max_freq = sr * (length - 1) / 2 / length
    hi_lim = min(s.high_hz, max_freq) if s.high_hz > sr / 2 else s.high_hz
    n_bp = sf * (s.n + 1) - 1
    freqs = np.linspace(0, max_freq, n_freqs + 1)
    filts = np.zeros((n_freqs + 1, n_bp + 2 * sf))
    cfs, spacing = np.linspace(freq2erb(s.low_hz), freq2erb(hi_lim), n_bp + 2, retstep=True)
    cfs = cfs[1:-1]
    freqs_erb = freq2erb(freqs)
    for i in range(n_bp):
        lo = cfs[i] - sf * spacing
        hi = cfs[i] + sf * spacing
        inside = (freqs_erb > lo) & (freqs_erb < hi)
        filts[inside, i + sf] = np.cos((freqs_erb[inside] - (lo + hi) / 2) / (hi - lo) * np.pi)
    for i in range(sf):
        i_off = i + sf
        lp_h = np.nonzero(freqs < erb2freq(cfs[i]))[0].max()
        filts[: lp_h + 1, i] = np.sqrt(1 - filts[: lp_h + 1, i_off] ** 2)
        hp_l = np.nonzero(freqs > erb2freq(cfs[-1 - i]))[0].min()
        filts[hp_l:, -1 - i] = np.sqrt(1 - filts[hp_l:, -1 - i_off] ** 2)
    cfs_all = erb2freq(np.concatenate((cfs[:sf] - sf * spacing, cfs, cfs[-sf:] + sf * spacing)))
    return (filts / np.sqrt(sf)).T.copy(), cfs_all


def _sinc_kaiser_kernel(s: CochleagramSettings) -> np.ndarray:
    """Downsampling kernel ``sinc(t / stride) / stride * kaiser(K, beta)``.

    ``t`` runs from ``-(K / 2)`` in unit steps (``-500.5 ... 499.5`` for ``K = 1001``), the
    published sampling of the kernel.
    """
    k = s.kernel_length
    t = np.arange(k, dtype=np.float64) - k / 2
    return np.sinc(t / s.stride) / s.stride * kaiser(k, s.kernel_beta)


class _Compression(torch.autograd.Function):
    """``(relu(x) + offset) ** power`` with switchable backward conventions."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        power: float,
        offset: float,
        relu_identity: bool,
        clip: float | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.conf = (power, offset, relu_identity, clip)
        return (x.clamp_min(0) + offset) ** power

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        power, offset, relu_identity, clip = ctx.conf
        d = power * (x.clamp_min(0) + offset) ** (power - 1)
        if clip is not None:
            d = d.clamp(-clip, clip)
        if not relu_identity:
            d = d * (x > 0).to(d.dtype)
        return grad * d, None, None, None, None


class FilterCache:
    """A front end's numpy-built filters, cast and kept per (length, dtype, device).

    Built outside inference mode, so filters first made under
    ``torch.inference_mode`` (a classification) still serve autograd later (a
    metamer's gradient).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        length: int,
        dtype: torch.dtype,
        device: torch.device,
        build: Callable[[int], tuple[np.ndarray, ...]],
    ) -> tuple[torch.Tensor, ...]:
        """The filters for a waveform length, built by ``build(length)`` on first use.

        Parameters
        ----------
        length
            Waveform length in samples.
        dtype, device
            What the filters are cast to.
        build
            Makes the float64 numpy filters for ``length`` (may raise ``ValueError``).
        """
        key = (length, dtype, device)
        if key not in self._entries:
            arrays = build(length)
            with torch.inference_mode(False):
                self._entries[key] = tuple(
                    torch.as_tensor(a, dtype=dtype, device=device) for a in arrays
                )
        return self._entries[key]


class Cochleagram(torch.nn.Module):
    """Differentiable cochleagram of a batch of waveforms.

    Parameters
    ----------
    settings : CochleagramSettings, optional
        All numbers and gradient conventions; defaults to the ``feather2023`` preset.

    Notes
    -----
    Input ``(N, T)``, ``(N, 1, T)`` or ``(T,)``; output ``(N, 1, filters, frames)``. Filters
    and the downsampling kernel are built on first use and cached per (length, dtype,
    device). Float32 and float64 inputs are supported; the filters are computed in float64
    and cast.
    """

    def __init__(self, settings: CochleagramSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else CochleagramSettings()
        self._cache = FilterCache()

    @classmethod
    def feather2023(cls, **overrides: Any) -> Cochleagram:
        """The ``cochleagram_1`` front end of Feather et al. (2023).

        Parameters
        ----------
        **overrides
            Replacements for any :class:`CochleagramSettings` field.

        Returns
        -------
        Cochleagram
            20 kHz, 50 Hz-10 kHz, 211 filters, 200 Hz envelopes (390 frames for 2 s).
        """
        return cls(CochleagramSettings(**overrides))

    @classmethod
    def feather2019(cls, **overrides: Any) -> Cochleagram:
        """The 2019 variant (Feather et al. 2019), as described in the project reference.

        Parameters
        ----------
        **overrides
            Replacements for any :class:`CochleagramSettings` field.

        Returns
        -------
        Cochleagram
            20 Hz-8 kHz, envelope x 796.87 before compression, power gradient clipped to
            +/-1, 'same' downsampling (400 frames for 2 s at 20 kHz). Not checked against a
            published output.
        """
        base: dict[str, Any] = {
            "low_hz": 20.0,
            "high_hz": 8000.0,
            "envelope_scale": 796.87,
            "power_grad_clip": 1.0,
            "downsample_padding": "same",
        }
        base.update(overrides)
        return cls(CochleagramSettings(**base))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings.to_dict().items())

    def center_frequencies(self, length: int) -> np.ndarray:
        """Centre frequencies (Hz) of the filters, low to high, for ``length`` samples.

        Parameters
        ----------
        length : int
            Waveform length in samples.

        Returns
        -------
        numpy.ndarray
            One frequency per output row.
        """
        return _erb_cos_filters(length, self.settings)[1]

    def n_frames(self, length: int) -> int:
        """Number of output frames for ``length`` samples.

        Parameters
        ----------
        length : int
            Waveform length in samples.

        Returns
        -------
        int
            Frame count.
        """
        s = self.settings
        return (length + 2 * s.padding - s.kernel_length) // s.stride + 1

    def frame_times(self, length: int) -> np.ndarray:
        """Times (s) of the output frames: the waveform time at each kernel's centre.

        Parameters
        ----------
        length : int
            Waveform length in samples.

        Returns
        -------
        numpy.ndarray
            One time per output column.
        """
        s = self.settings
        k = np.arange(self.n_frames(length), dtype=np.float64)
        return (k * s.stride + s.kernel_length / 2 - s.padding) / s.sample_rate

    def _buffers_for(
        self, length: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        return self._cache.get(length, dtype, device, self._build_filters)

    def _build_filters(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if length < self.settings.kernel_length - 2 * self.settings.padding:
            raise ValueError(
                f"waveform of {length} samples is shorter than the downsampling kernel"
            )
        filts, _ = _erb_cos_filters(length, self.settings)
        return filts, _sinc_kaiser_kernel(self.settings).reshape(1, 1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the cochleagram.

        Parameters
        ----------
        x : torch.Tensor
            Waveforms ``(N, T)``, ``(N, 1, T)`` or ``(T,)``, float32 or float64.

        Returns
        -------
        torch.Tensor
            ``(N, 1, filters, frames)``.
        """
        s = self.settings
        x = waveform_batch(x)
        n, length = x.shape
        filts, kernel = self._buffers_for(length, x.dtype, x.device)
        spec = torch.fft.rfft(x, dim=-1)
        sub = spec[:, None, :] * filts[None]
        sub = torch.nn.functional.pad(sub, (0, length - sub.shape[-1]))
        analytic = torch.fft.ifft(sub, dim=-1)
        env = torch.sqrt(torch.clamp(analytic.real**2 + analytic.imag**2, min=1e-16))
        nf = env.shape[1]
        down = torch.nn.functional.conv1d(
            env.reshape(n * nf, 1, length), kernel, stride=s.stride, padding=s.padding
        ).reshape(n, nf, -1)
        if s.envelope_scale != 1.0:
            down = down * s.envelope_scale
        out = _Compression.apply(
            down,
            s.compression_power,
            s.compression_offset,
            s.relu_backward == "identity",
            s.power_grad_clip,
        )
        return out.unsqueeze(1)


def waveform_batch(x: torch.Tensor) -> torch.Tensor:
    """A front end's input as an ``(N, T)`` floating-point batch.

    Parameters
    ----------
    x
        Waveforms ``(N, T)``, ``(N, 1, T)`` or ``(T,)``.

    Returns
    -------
    torch.Tensor
        ``(N, T)``; integer input becomes the default float dtype.

    Raises
    ------
    ValueError
        Any other shape.
    """
    if x.dim() == 1:
        x = x.unsqueeze(0)
    elif x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"expected one channel, got shape {tuple(x.shape)}")
        x = x[:, 0]
    elif x.dim() != 2:
        raise ValueError(f"expected (N, T), (N, 1, T) or (T,), got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())
