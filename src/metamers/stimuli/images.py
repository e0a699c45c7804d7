"""Decoding image files into float tensors, whatever their mode or size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from metamers.errors import StimulusError
from metamers.stimuli.fit import fit_to_input, match_channels

__all__ = ["IMAGE_SUFFIXES", "LossyImageWarning", "fit_image", "load_image", "match_channels"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_DECODED_SIDE = 4096
"""Images larger than this on their longest side are reduced while decoding."""


class LossyImageWarning(UserWarning):
    """An image was decoded with a loss: 16 bits per channel reduced to 8, only the first
    frame of an animation, or float values clipped to ``[0, 1]``.

    Each kind is reported once per process (naming the first file), not once per file.
    """


_WARNED: set[str] = set()


def _warn_once(kind: str, message: str) -> None:
    if kind not in _WARNED:
        _WARNED.add(kind)
        warnings.warn(
            f"{message} (later images with the same loss are not reported)",
            LossyImageWarning,
            stacklevel=4,
        )


def load_image(path: str | Path) -> torch.Tensor:
    """Decode an image file into a float tensor of shape ``(C, H, W)`` in ``[0, 1]``.

    Grey images give one channel; every other mode (RGBA, palette, CMYK, 16-bit)
    gives three, composited on white where there is transparency. EXIF
    orientation is applied. Huge images are reduced while decoding so memory
    stays bounded. A lossy decoding -- colour images with 16 bits per channel
    (read with 8), animations and multi-page files (first frame only), float
    images with values outside ``[0, 1]`` (clipped) -- warns once per kind
    with a :class:`LossyImageWarning`.

    Parameters
    ----------
    path
        The image file.

    Returns
    -------
    torch.Tensor
        ``float32`` tensor, ``(1, H, W)`` or ``(3, H, W)``.

    Raises
    ------
    StimulusError
        The file is missing or is not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                losses = _lossy_decoding(img, path)
                img.draft("RGB", (MAX_DECODED_SIDE, MAX_DECODED_SIDE))
                img = ImageOps.exif_transpose(img)
                img.load()
                if img.mode == "F":
                    values = np.asarray(img)
                    if values.size and (np.nanmin(values) < 0.0 or np.nanmax(values) > 1.0):
                        losses["float-clipped"] = (
                            f"{path}: float values in [{np.nanmin(values):.3g}, "
                            f"{np.nanmax(values):.3g}] clipped to [0, 1]"
                        )
                tensor = pil_to_tensor(_shrink(img))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise StimulusError(f"cannot decode image {path}: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise StimulusError(f"image {path} is too large to decode safely: {exc}") from exc
    for kind, message in losses.items():
        _warn_once(kind, message)
    return tensor


def _lossy_decoding(img: Image.Image, path: Path) -> dict[str, str]:
    """Losses the decoding of ``img`` will have (checked before it is loaded)."""
    losses = {}
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        losses["first-frame"] = f"{path}: {frames} frames; only the first is used"
    rawmodes = []
    for tile in getattr(img, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmodes.append(args if isinstance(args, str) else (args[0] if args else ""))
    if not img.mode.startswith("I") and any(
        isinstance(raw, str) and ";16" in raw for raw in rawmodes
    ):
        losses["16-bit"] = f"{path}: 16 bits per channel read as 8 (mode {img.mode})"
    return losses


def _shrink(img: Image.Image) -> Image.Image:
    factor = int(np.ceil(max(img.size) / MAX_DECODED_SIDE))
    if factor > 1:
        img = img.reduce(factor) if img.mode in ("L", "RGB", "RGBA", "I", "F") else img
    return img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL image of any mode to a ``(C, H, W)`` float tensor in ``[0, 1]``.

    16-bit modes are scaled by 65535, float mode ``F`` is clipped to ``[0, 1]``,
    and transparent images are composited on white.

    Parameters
    ----------
    img
        A decoded PIL image.

    Returns
    -------
    torch.Tensor
        ``(1, H, W)`` for greyscale modes, ``(3, H, W)`` otherwise.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        return torch.from_numpy(np.ascontiguousarray(arr))[None]
    if img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return torch.from_numpy((arr / scale).astype(np.float32))[None]
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        return torch.from_numpy(np.clip(arr, 0.0, 1.0))[None]
    if img.mode in ("1", "L"):
        return array_to_tensor(np.asarray(img.convert("L")))
    if img.mode == "LA" or (img.mode == "P" and "transparency" in img.info) or img.mode == "RGBA":
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return array_to_tensor(np.asarray(img.convert("RGB")))


def array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W)`` or ``(H, W, C)`` integer or float array to ``(C, H, W)`` in ``[0, 1]``.

    Integer arrays are scaled by their dtype's maximum; float arrays are
    assumed to be in ``[0, 1]`` already and are clipped. A fourth (alpha)
    channel is composited on white.

    Parameters
    ----------
    arr
        An ``(H, W)`` or ``(H, W, C)`` integer, boolean or float array.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)`` ``float32``, three channels after alpha compositing.

    Raises
    ------
    StimulusError
        ``arr`` has neither 2 nor 3 dimensions.
    """
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        data = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    elif arr.dtype == bool:
        data = arr.astype(np.float32)
    else:
        data = np.clip(arr.astype(np.float32), 0.0, 1.0)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise StimulusError(f"expected an image array of 2 or 3 dimensions, got shape {arr.shape}")
    if data.shape[-1] == 4:
        rgb, alpha = data[..., :3], data[..., 3:]
        data = rgb * alpha + (1.0 - alpha)
    if data.shape[-1] not in (1, 3):
        raise StimulusError(f"expected 1, 3 or 4 channels, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))


def fit_image(image: torch.Tensor, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Square-crop (centre), resize and match channels to a model's input shape.

    The published convention: the largest centred square is cut out, then
    resized (bilinear, antialiased) to the model's input size.

    Parameters
    ----------
    image
        ``(C, H, W)`` tensor in ``[0, 1]`` with one or three channels.
    input_shape
        ``(C, H, W)`` the model expects.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)`` tensor matching ``input_shape``, in ``[0, 1]``.
    """
    _, h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[:, top : top + side, left : left + side].clamp(0.0, 1.0)
    return fit_to_input(square[None], input_shape)[0]
