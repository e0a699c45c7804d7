"""Decoding sound files into mono waveforms at a model's sample rate and length.

WAV, FLAC and OGG files are read with :mod:`soundfile` (any subtype: 8-, 16-,
24-, 32-bit integer or float), mixed down to mono, resampled with :mod:`soxr`
to the model's rate, centre-cropped or zero-padded to the model's length, and
then demeaned and scaled to RMS 0.1, the convention of the published word
recognition models (Feather et al. 2019, 2023). Only the frames a model's
length needs are read, so long files load in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile
import soxr
import torch

from metamers.errors import StimulusError


class HasSource(Protocol):
    """What the loader reads of a stimulus: its ``source`` file (a ``Stimulus`` fits)."""

    source: str


__all__ = [
    "DEFAULT_RMS",
    "DEFAULT_SAMPLE_RATE",
    "SOUND_SUFFIXES",
    "WAV_PEAK",
    "SoundLoader",
    "load_sound",
    "model_sample_rate",
    "wav_bytes",
]

SOUND_SUFFIXES = (".wav", ".flac", ".ogg")
DEFAULT_SAMPLE_RATE = 20_000
"""The published models' rate (Hz): 2-s clips of 40,000 samples at 20 kHz."""
DEFAULT_RMS = 0.1
"""The published stimuli's RMS, after mean removal."""
_BLOCK = 1 << 16
"""Frames read at a time when a whole file is decoded."""
_SILENT = 1e-8
"""An RMS at or below this (after mean removal) is silence: it cannot be scaled."""


def model_sample_rate(model: Any) -> int:
    """The sample rate (Hz) an audio model expects.

    Parameters
    ----------
    model
        A model; its ``info["sample_rate"]`` or ``sample_rate`` attribute is read.

    Returns
    -------
    int
        That rate, or :data:`DEFAULT_SAMPLE_RATE` (20,000 Hz, the published rate)
        when the model declares none.
    """
    info = getattr(model, "info", None)
    if isinstance(info, dict) and info.get("sample_rate"):
        return int(info["sample_rate"])
    rate = getattr(model, "sample_rate", None)
    return int(rate) if rate else DEFAULT_SAMPLE_RATE


def load_sound(
    path: str | Path,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    length: int | None = None,
    rms: float | None = DEFAULT_RMS,
) -> torch.Tensor:
    """Decode a sound file into a mono ``float32`` waveform.

    Parameters
    ----------
    path
        A WAV, FLAC or OGG file (anything libsndfile reads).
    sample_rate
        The rate (Hz) to resample to.
    length
        Centre-crop or zero-pad to this many samples; only the frames needed
        are read. ``None`` decodes the whole file, block by block.
    rms
        Remove the mean and scale to this RMS; ``None`` leaves the level as it is.

    Returns
    -------
    torch.Tensor
        ``(T,)`` ``float32`` in ``[-1, 1]`` (``T == length`` when given).

    Raises
    ------
    StimulusError
        The file is missing, not a decodable sound, empty, holds non-finite
        samples, or is silent (RMS 0) when an ``rms`` is asked for. The
        message is one line and names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"sound not found: {path}")
    if sample_rate <= 0:
        raise StimulusError(f"{path}: sample rate must be positive, got {sample_rate}")
    try:
        with soundfile.SoundFile(str(path)) as handle:
            wave = _read_mono(handle, sample_rate, length)
    except (RuntimeError, ValueError, TypeError, OSError, soundfile.SoundFileError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StimulusError(f"cannot decode sound {path}: {reason}") from None
    if wave.size == 0:
        raise StimulusError(f"{path}: the sound has no samples")
    if not np.isfinite(wave).all():
        raise StimulusError(f"{path}: the sound holds NaN or infinite samples")
    if length is not None:
        wave = _centre_fit(wave, length)
    if rms is not None:
        wave = wave - wave.mean(dtype=np.float64)
        level = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        if not level > _SILENT:
            raise StimulusError(
                f"{path}: the sound is silent (RMS 0), cannot scale it to RMS {rms}"
            )
        wave = wave * (rms / level)
    return torch.from_numpy(np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False))


def _read_mono(handle: soundfile.SoundFile, rate: int, length: int | None) -> np.ndarray:
    """Read (the centre of) a file, mixed down to mono, at ``rate``."""
    source_rate, frames = handle.samplerate, handle.frames
    if frames <= 0:
        return np.zeros(0, dtype=np.float32)
    if length is not None:
        # Just enough source frames for ``length`` output samples, plus a margin for the filter.
        needed = math.ceil(length * source_rate / rate) + 2 * math.ceil(source_rate / rate) + 64
        if frames > needed and handle.seekable():
            handle.seek((frames - needed) // 2)
            frames = needed
        block = _mono(handle.read(frames, dtype="float32", always_2d=True))
        return block if source_rate == rate else soxr.resample(block, source_rate, rate)
    if source_rate == rate:
        return _mono(handle.read(dtype="float32", always_2d=True))
    stream = soxr.ResampleStream(source_rate, rate, 1, dtype="float32")
    pieces = []
    while True:
        block = _mono(handle.read(_BLOCK, dtype="float32", always_2d=True))
        last = block.shape[0] < _BLOCK
        pieces.append(stream.resample_chunk(block, last=last))
        if last:
            break
    return np.concatenate(pieces)


def _mono(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))


def _centre_fit(wave: np.ndarray, length: int) -> np.ndarray:
    have = wave.shape[0]
    if have >= length:
        start = (have - length) // 2
        return wave[start : start + length]
    pad = length - have
    return np.pad(wave, (pad // 2, pad - pad // 2))


@dataclass(frozen=True)
class SoundLoader:
    """A :class:`~metamers.stimuli.sets.StimulusSet` loader for sound files.

    Called with a stimulus it decodes the whole file at ``sample_rate``;
    :meth:`fitted` decodes only what a model's length needs.

    Attributes
    ----------
    sample_rate
        Rate (Hz) of :meth:`__call__`'s waveforms, and of :meth:`fitted`'s unless told another.
    rms
        RMS after mean removal; ``None`` keeps the file's level.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    rms: float | None = DEFAULT_RMS

    def __call__(self, stimulus: HasSource) -> torch.Tensor:
        """Decode a stimulus's whole file (see :func:`load_sound`).

        Parameters
        ----------
        stimulus
            A stimulus whose ``source`` is a sound file.
        """
        return load_sound(stimulus.source, self.sample_rate, rms=self.rms)

    def fitted(
        self, stimulus: HasSource, length: int, sample_rate: int | None = None
    ) -> torch.Tensor:
        """Decode a stimulus fitted to ``length`` samples (see :func:`load_sound`).

        Parameters
        ----------
        stimulus
            A stimulus whose ``source`` is a sound file.
        length
            The model's input length in samples.
        sample_rate
            The model's rate (Hz); ``None`` uses :attr:`sample_rate`.
        """
        rate = self.sample_rate if sample_rate is None else sample_rate
        return load_sound(stimulus.source, rate, length=length, rms=self.rms)


WAV_PEAK = 0.99
"""The loudest sample of a 16-bit WAV written for listening: louder waveforms are scaled to it."""


def wav_bytes(waveform: torch.Tensor | np.ndarray, sample_rate: int) -> tuple[bytes, float]:
    """A waveform as 16-bit PCM WAV bytes, scaled down only if it would clip.

    A metamer's loudness is not constrained by synthesis, so it may pass 1; the
    gain applied is returned so that it can be recorded (the exact float
    waveform is kept elsewhere).

    Parameters
    ----------
    waveform
        ``(T,)`` samples; NaN and infinities become 0.
    sample_rate
        Its rate in Hz.

    Returns
    -------
    tuple
        The WAV bytes and the gain applied (1.0 unless the peak passed :data:`WAV_PEAK`).
    """
    import io

    wave = np.nan_to_num(np.asarray(torch.as_tensor(waveform).detach().double().cpu()))
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    gain = WAV_PEAK / peak if peak > WAV_PEAK else 1.0
    buffer = io.BytesIO()
    soundfile.write(buffer, wave * gain, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue(), gain
