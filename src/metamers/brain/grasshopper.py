"""A real-data example that runs offline: a grasshopper auditory receptor neuron (nitime).

``nitime`` ships two recordings of a grasshopper auditory receptor neuron
(``grasshopper_stimulus{1,2}.txt``: the stimulus's amplitude envelope every
50 µs for 10 s; ``grasshopper_spike_times{1,2}.txt``: spike times in µs).
The sound the neuron heard is that envelope on a 2.5 kHz carrier at 20 kHz.
The example turns the recording into a mapping problem: the sound is cut
into windows (the "stimuli"), each window's features are an audio front
end's output (:class:`metamers.audio.Cochleagram` or
:class:`~metamers.audio.LogMelSpectrogram`) over the window and the history
before it, pooled into lag bins, and the target is the spike rate in the
window. Splits are contiguous blocks of time (k-fold), so that neighbouring
windows never sit on both sides of a split. One trial per window: no noise
correction; the held-out Pearson r is the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metamers.brain.data import NeuralData
from metamers.brain.encoding import EncodingResult, fit_encoding
from metamers.brain.presets import get_preset
from metamers.brain.splits import Split, Splits
from metamers.errors import ConfigError

SAMPLE_RATE = 20_000
CARRIER_HZ = 2_500.0
FRONT_ENDS = ("cochleagram", "logmel")


@dataclass
class GrasshopperExample:
    """The example's result.

    Attributes
    ----------
    result
        The encoding (one target: the spike rate; one layer per front end, and
        a control layer of the same features in shuffled window order).
    held_out_r
        Median over folds of the held-out r, per layer.
    n_windows, n_spikes
        What the data hold.
    """

    result: EncodingResult
    held_out_r: dict[str, float]
    n_windows: int
    n_spikes: int


def nitime_data_dir() -> Path:
    """The folder of nitime's bundled recordings."""
    try:
        import nitime
    except ImportError:  # pragma: no cover - nitime is a test dependency
        raise ConfigError("the grasshopper example needs `pip install nitime`") from None
    return Path(nitime.__file__).parent / "data"


def load_recording(recording: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The stimulus envelope (20 kHz) and the spike times (seconds) of one recording.

    Parameters
    ----------
    recording
        1 or 2.
    """
    if recording not in (1, 2):
        raise ConfigError("nitime ships grasshopper recordings 1 and 2")
    folder = nitime_data_dir()
    stimulus = np.loadtxt(folder / f"grasshopper_stimulus{recording}.txt")
    spikes = np.loadtxt(folder / f"grasshopper_spike_times{recording}.txt")
    return stimulus[:, 1], spikes / 1e6


def carrier_sound(envelope: np.ndarray) -> np.ndarray:
    """The envelope on a 2.5 kHz carrier, mean removed, RMS 0.1 (the package's sound level).

    Parameters
    ----------
    envelope
        Amplitude envelope sampled at 20 kHz.
    """
    time = np.arange(len(envelope)) / SAMPLE_RATE
    wave = envelope * np.sin(2 * np.pi * CARRIER_HZ * time)
    wave = wave - wave.mean()
    return 0.1 * wave / np.sqrt(np.mean(wave**2))


def front_end_frames(sound: np.ndarray, front_end: str) -> tuple[np.ndarray, float]:
    """``(channels, frames)`` of an audio front end and its frame rate (Hz).

    Parameters
    ----------
    sound
        Waveform at 20 kHz.
    front_end
        ``"cochleagram"`` (Feather et al. 2023, 200 Hz frames) or ``"logmel"``.
    """
    from metamers.audio import Cochleagram, LogMelSpectrogram

    if front_end not in FRONT_ENDS:
        raise ConfigError(f"unknown front end {front_end!r}; choose one of {', '.join(FRONT_ENDS)}")
    module = (
        Cochleagram.feather2023() if front_end == "cochleagram" else LogMelSpectrogram.standard()
    )
    wave = torch.as_tensor(sound, dtype=torch.float32)[None]
    with torch.inference_mode():
        frames = module(wave)[0, 0].double().numpy()
    times = module.frame_times(len(sound))
    rate = 1.0 / float(np.median(np.diff(times)))
    return frames, rate


def windowed_features(
    frames: np.ndarray, rate: float, n_windows: int, window_s: float, history_s: float, lag_s: float
) -> np.ndarray:
    """Per window, the frames over the window and the history before it, averaged in lag bins.

    Parameters
    ----------
    frames
        ``(channels, frames)`` at ``rate`` Hz.
    rate
        Frame rate.
    n_windows
        Windows (the first starts at ``history_s``).
    window_s, history_s, lag_s
        Window length, history length and lag-bin width, in seconds.
    """
    per_bin = max(1, round(lag_s * rate))
    n_bins = round((window_s + history_s) / lag_s)
    rows = []
    for w in range(n_windows):
        end = round((history_s + (w + 1) * window_s) * rate)
        start = end - n_bins * per_bin
        block = frames[:, start:end].reshape(frames.shape[0], n_bins, per_bin).mean(2)
        rows.append(block.ravel())
    return np.stack(rows)


def grasshopper_example(
    *,
    recording: int = 1,
    front_end: str = "cochleagram",
    seconds: float | None = None,
    window_s: float = 0.05,
    history_s: float = 0.1,
    lag_s: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> GrasshopperExample:
    """Fit the spike rate of the grasshopper receptor neuron from an audio front end's features.

    Parameters
    ----------
    recording
        nitime's recording 1 or 2.
    front_end
        ``"cochleagram"`` or ``"logmel"``.
    seconds
        Use only the first seconds of the 10-s recording (``None``: all).
    window_s, history_s, lag_s
        Window, history and lag-bin lengths in seconds.
    folds
        Contiguous blocks of windows; each is the test set once.
    seed
        Seed of the shuffled-window control.

    Returns
    -------
    GrasshopperExample
        The encoding and the held-out r of the features and of the control.
    """
    envelope, spikes = load_recording(recording)
    if seconds is not None:
        envelope = envelope[: round(seconds * SAMPLE_RATE)]
    duration = len(envelope) / SAMPLE_RATE
    frames, rate = front_end_frames(carrier_sound(envelope), front_end)
    n_windows = int((min(duration, frames.shape[1] / rate) - history_s) // window_s)
    if n_windows < 4 * folds:
        raise ConfigError(f"{duration:.1f} s gives {n_windows} windows: too few for {folds} folds")
    features = windowed_features(frames, rate, n_windows, window_s, history_s, lag_s)
    edges = history_s + window_s * np.arange(n_windows + 1)
    counts = np.histogram(spikes, bins=edges)[0]
    ids = [f"w{i:04d}" for i in range(n_windows)]
    data = NeuralData(
        (counts / window_s)[:, None, None],
        ids,
        pd.DataFrame({"target_id": [f"grasshopper{recording}"], "participant": ["grasshopper"]}),
        meta={"dataset": f"nitime grasshopper recording {recording}", "unit": "spikes/s"},
    )
    control = features[np.random.default_rng(seed).permutation(n_windows)]
    preset = get_preset("default", noise_correction=False)
    result = fit_encoding(
        {front_end: features, f"{front_end}_shuffled": control},
        data,
        preset=preset,
        splits=block_splits(ids, folds),
        model=f"{front_end} front end",
    )
    held_out = result.scores.groupby("layer", sort=False)["r"].median()
    return GrasshopperExample(result, held_out.to_dict(), n_windows, int(counts.sum()))


def block_splits(stimulus_ids: list[str], folds: int) -> Splits:
    """k-fold splits of contiguous blocks (for time series: no neighbours across a split).

    Parameters
    ----------
    stimulus_ids
        Ids in time order.
    folds
        Number of blocks.
    """
    blocks = np.array_split(np.arange(len(stimulus_ids)), folds)
    splits = []
    for i, test in enumerate(blocks):
        train = np.concatenate([b for j, b in enumerate(blocks) if j != i])
        splits.append(
            Split(tuple(stimulus_ids[k] for k in train), tuple(stimulus_ids[k] for k in test))
        )
    return Splits(tuple(splits), tuple(stimulus_ids), "blocks", 0)
