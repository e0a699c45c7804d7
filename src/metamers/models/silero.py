"""silero-vad, a pretrained speech detector no one here trained, ported to plain torch.

The ``silero-vad`` wheel (PyPI, MIT licence) ships the weights of its 16-kHz
voice-activity detector as ``silero_vad/data/silero_vad_16k.safetensors`` and
documents the network in plain code (``silero_vad/tinygrad_model.py``). This
module rebuilds that network in torch and loads the weights with
``safetensors`` only (no TorchScript, no pickle), checked by SHA-256.

The detector is streaming: it reads 512 samples at a time (32 ms at 16 kHz),
each preceded by the last 64 samples of the previous chunk (zeros before the
first), and carries its LSTM state from chunk to chunk; the clip is padded
with zeros to a whole number of chunks (``OnnxWrapper.audio_forward`` of the
wheel). Per chunk:

1. right reflect-pad by 64 (576 → 640 samples); an STFT as a ``conv1d`` with
   258 fixed filters (129 cosine and 129 sine rows, kernel 256, stride 128):
   4 frames; magnitude ``sqrt(re² + im²)`` of 129 bins;
2. four ``conv1d`` + ReLU (129→128, 128→64 stride 2, 64→64 stride 2,
   64→128): one frame;
3. an ``LSTMCell(128, 128)`` (state carried), ReLU, a 1×1 ``conv1d`` and a
   sigmoid: the speech probability of the chunk.

Here the whole clip runs at once: the chunk-local stages run on every chunk
as one batch, and each named layer returns its activations **concatenated over
chunks in time**, so that every layer is one module called once per forward
(as :class:`~metamers.models.PixelModel` layers must be). For 2 s (32,000
samples, 63 chunks) the layers are ``stft`` ``(129, 252)``, ``conv1``/``relu1``
``(128, 252)``, ``conv2``/``relu2`` ``(64, 126)``, ``conv3``/``relu3``
``(64, 63)``, ``conv4``/``relu4`` ``(128, 63)``, ``lstm`` (hidden states)
``(128, 63)``, ``lstm_relu``, ``final_conv`` ``(1, 63)`` and ``speech``
(probabilities) ``(1, 63)``; the model's output (``logits``) is the ``(63,)``
speech probability per chunk.

The port equals the wheel's ONNX model (``silero_vad_16k_op15.onnx``, run by
onnxruntime chunk by chunk with its state input) on spoken words to about
1e-6 (``tests/test_silero.py``).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from metamers.errors import ModelError
from metamers.models.base import PixelModel

SAMPLE_RATE = 16_000
"""The detector's sample rate (Hz); the 16-kHz weights accept no other."""
CHUNK = 512
"""Samples per chunk (32 ms)."""
CONTEXT = 64
"""Samples of the previous chunk put before each chunk."""
N_FFT = 256
HOP = 128
BINS = N_FFT // 2 + 1
DURATION_S = 2.0
"""The model's input: 2 s, like the word models' (32,000 samples at 16 kHz)."""
WEIGHTS_FILE = "silero_vad_16k.safetensors"
WEIGHTS_SHA256 = "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1"
"""SHA-256 of ``silero_vad_16k.safetensors`` in silero-vad 6.2.3."""
SILERO_VERSION = "6.2.3"
REFERENCE_ONNX = "silero_vad_16k_op15.onnx"
"""The wheel's ONNX export of the same 16-kHz network (the test's reference)."""
STUDY_LAYERS = ("stft", "relu2", "lstm")
"""An early, a middle and a late layer for studies."""

_KEY_MAP = {"stft_conv.": "stft.", "lstm_cell.": "lstm."}


def chunk_frames(length: int) -> int:
    """Number of 512-sample chunks the detector reads from ``length`` samples (padded up).

    Parameters
    ----------
    length
        Samples of the clip.

    Examples
    --------
    >>> chunk_frames(32_000)
    63
    """
    return -(-int(length) // CHUNK)


class ChunkedSTFT(nn.Module):
    """Chunks with context, right reflect-pad, the STFT as a ``conv1d``, magnitude.

    Input ``(N, T)``; output ``(N, 129, 4 K)`` for ``K`` chunks (4 frames each,
    concatenated in time).
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2 * BINS, 1, N_FFT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Magnitude spectrogram of every chunk, chunks concatenated in time.

        Parameters
        ----------
        x
            ``(N, T)`` waveforms at 16 kHz.
        """
        n, length = x.shape
        k = chunk_frames(length)
        x = F.pad(x, (CONTEXT, k * CHUNK - length))
        chunks = x.unfold(-1, CHUNK + CONTEXT, CHUNK).reshape(n * k, 1, CHUNK + CONTEXT)
        chunks = F.pad(chunks, (0, N_FFT // 4), mode="reflect")
        spec = F.conv1d(chunks, self.weight, stride=HOP)
        power = spec[:, :BINS].square() + spec[:, BINS:].square()
        # clamp only below 1e-20 (a magnitude of 1e-10): a finite gradient where both are 0
        magnitude = power.clamp_min(1e-20).sqrt()
        frames = magnitude.shape[-1]
        return magnitude.reshape(n, k, BINS, frames).permute(0, 2, 1, 3).reshape(n, BINS, -1)


class ChunkedConv1d(nn.Conv1d):
    """A ``conv1d`` applied to each chunk on its own (its padding is the chunk's).

    Input ``(N, C, K · frames)``; output ``(N, C', K · frames')``.

    Parameters
    ----------
    frames
        Frames per chunk in the input.
    *args, **kwargs
        Those of :class:`torch.nn.Conv1d`.
    """

    def __init__(self, frames: int, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve every chunk separately.

        Parameters
        ----------
        x
            ``(N, C, K · frames)``.
        """
        n, c, t = x.shape
        k = t // self.frames
        per_chunk = x.reshape(n, c, k, self.frames).permute(0, 2, 1, 3).reshape(n * k, c, -1)
        out = super().forward(per_chunk)
        return out.reshape(n, k, *out.shape[1:]).permute(0, 2, 1, 3).reshape(n, out.shape[1], -1)


class StreamingLSTM(nn.LSTMCell):
    """An ``LSTMCell`` run over the chunks in order from a zero state.

    Input ``(N, 128, K)``; output the hidden states ``(N, 128, K)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Hidden state after each chunk.

        Parameters
        ----------
        x
            ``(N, input_size, K)``, one feature vector per chunk.
        """
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = x.new_zeros(x.shape[0], self.hidden_size)
        states = []
        for step in range(x.shape[-1]):
            h, c = super().forward(x[..., step], (h, c))
            states.append(h)
        return torch.stack(states, dim=-1)


class SileroVAD(nn.Module):
    """The silero-vad 16-kHz network over a whole clip (see the module docs).

    Output ``(N, K)``: the speech probability of each 512-sample chunk.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stft = ChunkedSTFT()
        self.conv1 = ChunkedConv1d(4, BINS, 128, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = ChunkedConv1d(4, 128, 64, kernel_size=3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = ChunkedConv1d(2, 64, 64, kernel_size=3, stride=2, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = ChunkedConv1d(1, 64, 128, kernel_size=3, padding=1)
        self.relu4 = nn.ReLU()
        self.lstm = StreamingLSTM(128, 128)
        self.lstm_relu = nn.ReLU()
        self.final_conv = nn.Conv1d(128, 1, 1)
        self.speech = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Speech probability per chunk.

        Parameters
        ----------
        x
            ``(N, T)`` waveforms at 16 kHz.
        """
        x = self.stft(x)
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.lstm_relu(self.lstm(x))
        return self.speech(self.final_conv(x)).squeeze(1)


def silero_weights_path() -> Path | None:
    """Where the installed ``silero_vad`` package keeps its 16-kHz weights (``None``: not installed)."""
    try:
        path = resources.files("silero_vad.data").joinpath(WEIGHTS_FILE)
    except ModuleNotFoundError:
        return None
    path = Path(str(path))
    return path if path.is_file() else None


def load_silero_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The weights of the port, read with ``safetensors`` and checked by SHA-256.

    Parameters
    ----------
    path
        The ``.safetensors`` file (default: :func:`silero_weights_path`).

    Raises
    ------
    ModelError
        The package is not installed, or the file is not silero-vad 6.2.3's.
    """
    from safetensors.torch import load

    path = Path(path) if path else silero_weights_path()
    if path is None:
        raise ModelError(
            f"silero_vad is not installed; pip install silero-vad=={SILERO_VERSION} "
            "(a dependency of metamers)"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ModelError(
            f"{path}: SHA-256 {digest[:16]}… is not silero-vad {SILERO_VERSION}'s "
            f"{WEIGHTS_SHA256[:16]}…; pip install silero-vad=={SILERO_VERSION}"
        )
    state = {}
    for key, tensor in load(data).items():
        for old, new in _KEY_MAP.items():
            key = key.replace(old, new, 1) if key.startswith(old) else key
        state[key] = tensor
    return state


def build_silero_vad(*, random_weights: bool = False) -> PixelModel:
    """silero-vad as a :class:`PixelModel`: 2 s of 16-kHz waveform in, per-chunk speech probability out.

    Parameters
    ----------
    random_weights
        Keep the architecture's random initialisation (seeded) instead of the weights.

    Returns
    -------
    PixelModel
        Input ``(32000,)`` in ``[-1, 1]``; no label space (a speech detector has
        no classes: it serves the representation test, not recognisability).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SileroVAD()
    if not random_weights:
        net.load_state_dict(load_silero_state(), strict=True)
    return PixelModel(
        net,
        name="silero_vad",
        input_shape=(round(SAMPLE_RATE * DURATION_S),),
        input_range=(-1.0, 1.0),
        label_space=None,
        source="pretrained",
        info={
            "sample_rate": SAMPLE_RATE,
            "classifier": False,
            "study_layers": list(STUDY_LAYERS),
            "weights": f"silero-vad {SILERO_VERSION} (MIT), {WEIGHTS_FILE}",
            "task": "voice activity detection (no word labels)",
        },
    )
