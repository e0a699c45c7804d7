"""Image-quality metrics of a metamer against its reference, and a naturalness measure.

Images follow the project's convention: ``(C, H, W)`` (or ``(H, W)``) tensors
or arrays with values in ``[0, 1]``.

- :func:`ssim`: structural similarity (Wang et al. 2004) via
  :func:`skimage.metrics.structural_similarity`, with the paper's settings
  (11 × 11 Gaussian window, σ = 1.5, population covariances), averaged over channels.
- :func:`ms_ssim`: multi-scale SSIM (Wang, Simoncelli & Bovik 2003): contrast–structure
  terms at five dyadic scales and the luminance term at the coarsest, with the
  published exponents.
- :func:`pixel_correlation`: Pearson r over all pixel values.
- :func:`spectral_slope` / :func:`naturalness_deviation`: the slope of the
  radially averaged power spectrum on log–log axes. Natural photographs have
  power falling roughly as ``1 / f^2`` (slope ≈ −2, Field 1987; van der Schaaf &
  van Hateren 1996); white noise is flat (slope 0). The deviation
  ``|slope + 2|`` is a crude, reference-free naturalness score: 0 is
  natural-like, larger is less so. It says nothing about content. Photographs
  with blur or shallow depth of field fall faster (the bundled photos measure
  −2.1 to −3.0), so :func:`image_quality` also reports the slope difference from
  the metamer's own reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from metamers.errors import MetamersError

ImageLike = torch.Tensor | np.ndarray

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
NATURAL_SPECTRAL_SLOPE = -2.0
_SIGMA = 1.5
_TRUNCATE = 3.5  # with sigma 1.5: an 11 x 11 window, as in Wang et al. 2004
_WINDOW = 2 * int(_TRUNCATE * _SIGMA + 0.5) + 1
_K1, _K2 = 0.01, 0.03


def as_image(image: ImageLike) -> np.ndarray:
    """Return an image as a ``(C, H, W)`` ``float64`` array (``(H, W)`` gains ``C = 1``).

    Parameters
    ----------
    image
        A ``(C, H, W)`` or ``(H, W)`` tensor or array; tensors are detached and
        moved to the CPU.

    Raises
    ------
    MetamersError
        The image has another number of dimensions, or a NaN or infinite value.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise MetamersError(f"expected a (C, H, W) or (H, W) image, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetamersError("image contains NaN or infinite values")
    return array


def _pair(image: ImageLike, reference: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_image(image), as_image(reference)
    if a.shape != b.shape:
        raise MetamersError(f"image and reference differ in shape: {a.shape} vs {b.shape}")
    return a, b


def ssim(image: ImageLike, reference: ImageLike, *, data_range: float = 1.0) -> float:
    """Mean structural similarity of two images (1 when identical).

    Parameters
    ----------
    image, reference
        ``(C, H, W)`` or ``(H, W)`` images of equal shape, at least 11 pixels a side.
    data_range
        Span of possible pixel values (1 for ``[0, 1]`` images).
    """
    a, b = _pair(image, reference)
    _check_size(a.shape[1:], 1)
    return float(
        structural_similarity(
            a,
            b,
            data_range=data_range,
            channel_axis=0,
            gaussian_weights=True,
            sigma=_SIGMA,
            use_sample_covariance=False,
        )
    )


def _check_size(spatial: Sequence[int], scales: int) -> None:
    smallest = _WINDOW * 2 ** (scales - 1)
    if min(spatial) < smallest:
        raise MetamersError(
            f"images of {spatial[0]}x{spatial[1]} px are too small for {scales} SSIM scale(s) "
            f"(need >= {smallest} px a side); use fewer scales"
        )


def ssim_terms(
    image: np.ndarray, reference: np.ndarray, data_range: float = 1.0
) -> tuple[float, float, float]:
    """Mean luminance, contrast–structure and SSIM maps, averaged over positions and channels.

    Positions within half a window of the border are left out, as in
    :func:`skimage.metrics.structural_similarity` (whose value the third term reproduces).

    Parameters
    ----------
    image, reference
        ``(C, H, W)`` or ``(H, W)`` images of equal shape.
    data_range
        Span of possible pixel values (1 for ``[0, 1]`` images); scales the
        stabilising constants ``C1 = (0.01 * data_range)**2`` and
        ``C2 = (0.03 * data_range)**2``.

    Returns
    -------
    luminance, contrast_structure, ssim : float
        The three mean terms.

    Raises
    ------
    MetamersError
        The images differ in shape or are not valid images (see :func:`as_image`).
    """
    a, b = _pair(image, reference)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    luminance, contrast_structure, combined = [], [], []
    pad = (_WINDOW - 1) // 2
    for x, y in zip(a, b, strict=True):
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        cs = (2 * cov + c2) / (var_x + var_y + c2)
        inner = (slice(pad, -pad), slice(pad, -pad))
        luminance.append(lum[inner].mean())
        contrast_structure.append(cs[inner].mean())
        combined.append((lum * cs)[inner].mean())
    return float(np.mean(luminance)), float(np.mean(contrast_structure)), float(np.mean(combined))


def ms_ssim(
    image: ImageLike,
    reference: ImageLike,
    *,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003); 1 when the images are identical.

    At each of ``len(weights)`` scales (halved by 2 × 2 averaging) the mean
    contrast–structure term is raised to that scale's weight; the coarsest
    scale also contributes its luminance term. Negative terms are clipped to 0
    before exponentiation (as common implementations do).

    Parameters
    ----------
    image, reference
        ``(C, H, W)`` or ``(H, W)`` images of equal shape; five scales need ≥ 176 px a side.
    data_range
        Span of possible pixel values.
    weights
        Per-scale exponents, finest first; pass fewer for small images.
    """
    a, b = _pair(image, reference)
    exponents = np.asarray(weights, dtype=np.float64)
    if exponents.ndim != 1 or exponents.size == 0 or np.any(exponents < 0):
        raise MetamersError("weights must be a non-empty list of non-negative exponents")
    _check_size(a.shape[1:], len(exponents))
    score = 1.0
    for scale, exponent in enumerate(exponents):
        luminance, contrast_structure, _ = ssim_terms(a, b, data_range)
        score *= max(contrast_structure, 0.0) ** exponent
        if scale == len(exponents) - 1:
            score *= max(luminance, 0.0) ** exponent
        else:
            a, b = _halve(a), _halve(b)
    return float(score)


def _halve(image: np.ndarray) -> np.ndarray:
    channels, height, width = image.shape
    cropped = image[:, : height - height % 2, : width - width % 2]
    return cropped.reshape(channels, height // 2, 2, width // 2, 2).mean(axis=(2, 4))


def pixel_correlation(image: ImageLike, reference: ImageLike) -> float:
    """Pearson correlation between all pixel values of two images (``nan`` if one is constant).

    Parameters
    ----------
    image, reference
        ``(C, H, W)`` or ``(H, W)`` images of equal shape.

    Raises
    ------
    MetamersError
        The images differ in shape.
    """
    a, b = _pair(image, reference)
    x, y = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")


def radial_power_spectrum(image: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of an image's luminance (mean over channels).

    The image is mean-subtracted and Hann-windowed to suppress edge artefacts.

    Parameters
    ----------
    image
        A ``(C, H, W)`` or ``(H, W)`` image.

    Returns
    -------
    frequencies, power
        Integer radial frequencies ``1 .. min(H, W) // 2`` in cycles per image,
        and the mean power in each unit-wide ring.
    """
    gray = as_image(image).mean(axis=0)
    height, width = gray.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fftshift(np.fft.fft2((gray - gray.mean()) * window))) ** 2
    fy = np.arange(height) - height // 2
    fx = np.arange(width) - width // 2
    radius = np.rint(np.hypot(*np.meshgrid(fy, fx, indexing="ij"))).astype(int)
    top = min(height, width) // 2
    sums = np.bincount(radius.ravel(), weights=power.ravel(), minlength=top + 1)
    counts = np.bincount(radius.ravel(), minlength=top + 1)
    frequencies = np.arange(1, top + 1)
    return frequencies.astype(np.float64), sums[1 : top + 1] / counts[1 : top + 1]


def spectral_slope(image: ImageLike, *, band: tuple[float, float] = (0.02, 0.4)) -> float:
    """Slope of log power against log radial frequency (natural images: about −2).

    Parameters
    ----------
    image
        ``(C, H, W)`` or ``(H, W)`` image, at least 32 px a side.
    band
        Fitted frequency range as fractions of the sampling rate (cycles per pixel);
        the default skips the lowest frequencies (few samples, window leakage) and the
        highest (aliasing, JPEG and resampling artefacts).
    """
    array = as_image(image)
    size = min(array.shape[1:])
    if size < 32:
        raise MetamersError(f"spectral slope needs images of at least 32 px a side, got {size}")
    frequencies, power = radial_power_spectrum(array)
    cycles_per_pixel = frequencies / size
    keep = (cycles_per_pixel >= band[0]) & (cycles_per_pixel <= band[1]) & (power > 0)
    if keep.sum() < 3:
        raise MetamersError(f"too few frequencies in band {band} to fit a slope")
    slope, _ = np.polyfit(np.log(frequencies[keep]), np.log(power[keep]), 1)
    return float(slope)


def naturalness_deviation(image: ImageLike) -> float:
    """``|spectral_slope(image) + 2|``: 0 for a natural-like ``1/f²`` power spectrum.

    Parameters
    ----------
    image
        A ``(C, H, W)`` or ``(H, W)`` image, at least 32 px a side (see
        :func:`spectral_slope`, whose default band is fitted).
    """
    return abs(spectral_slope(image) - NATURAL_SPECTRAL_SLOPE)


def image_quality(
    image: ImageLike, reference: ImageLike, *, data_range: float = 1.0
) -> dict[str, float]:
    """All metrics of one metamer against its reference.

    Parameters
    ----------
    image
        The metamer: ``(C, H, W)`` or ``(H, W)``, at least 32 px a side.
    reference
        Its reference, of the same shape.
    data_range
        Span of possible pixel values, for SSIM and MS-SSIM.

    Returns
    -------
    dict
        ``ssim``, ``ms_ssim`` (``nan`` when the images are too small for five scales),
        ``pixel_r``, ``spectral_slope`` and ``naturalness_deviation`` of ``image``,
        ``reference_spectral_slope``, and ``spectral_slope_difference`` (image minus
        reference: how far the metamer's spectrum departs from its own reference's).

    Raises
    ------
    MetamersError
        The images differ in shape or are too small for SSIM or the spectral slope.
    """
    a, b = _pair(image, reference)
    try:
        multi_scale = ms_ssim(a, b, data_range=data_range)
    except MetamersError:
        multi_scale = float("nan")
    slope, reference_slope = spectral_slope(a), spectral_slope(b)
    return {
        "ssim": ssim(a, b, data_range=data_range),
        "ms_ssim": multi_scale,
        "pixel_r": pixel_correlation(a, b),
        "spectral_slope": slope,
        "naturalness_deviation": abs(slope - NATURAL_SPECTRAL_SLOPE),
        "reference_spectral_slope": reference_slope,
        "spectral_slope_difference": slope - reference_slope,
    }
