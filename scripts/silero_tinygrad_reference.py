"""Record the reference speech probabilities of silero-vad's safetensors weights.

The silero-vad 6.2.3 wheel ships ``silero_vad_16k.safetensors`` with the code that
runs it, ``silero_vad/tinygrad_model.py``. This script runs that model, chunk by
chunk with its state carried (as its docstring shows), on 8 chunks (0.26 s) cut
around the first two spoken test words of ``bundled:words`` at 16 kHz, and writes
``tests/data/silero_tinygrad_reference.npz`` (the waveforms and the probabilities)
for ``tests/test_silero.py``.

Needs ``pip install tinygrad==0.14.0`` (not a dependency of metamers). Without a
C compiler for tinygrad's CPU device, run it on the pure-Python device, which takes
a few minutes::

    DEV=PYTHON python scripts/silero_tinygrad_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from silero_vad.tinygrad_model import TinySileroVAD
from tinygrad import Tensor
from tinygrad.nn.state import load_state_dict, safe_load

from metamers.models.silero import CHUNK, CONTEXT, build_silero_vad, silero_weights_path
from metamers.stimuli import resolve_stimuli

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "silero_tinygrad_reference.npz"
START, CHUNKS = 13_952, 8
"""The cut: samples 13,952 … 18,047 of the 2-s clip at 16 kHz (the word is centred at 1 s)."""


def main() -> None:
    torch.set_num_threads(1)
    port = build_silero_vad()
    words = resolve_stimuli("bundled:words", limit=2)
    clips = [words.load_for(s, port).numpy() for s in words]
    waveform = np.stack([c[START : START + CHUNKS * CHUNK] for c in clips]).astype(np.float32)
    reference = TinySileroVAD()
    load_state_dict(reference, safe_load(str(silero_weights_path())))
    padded = np.pad(waveform, ((0, 0), (CONTEXT, 0)))
    state, out = None, []
    for i in range(CHUNKS):
        probability, state = reference(
            Tensor(padded[:, i * CHUNK : (i + 1) * CHUNK + CONTEXT]), state
        )
        state = state.realize()  # else each chunk recomputes the whole history
        out.append(probability.numpy()[:, 0])
    probability = np.stack(out, axis=1)
    with torch.no_grad():
        ours = port.net(torch.from_numpy(waveform)).numpy()
    np.savez_compressed(OUT, waveform=waveform, probability=probability)
    print(f"wrote {OUT}; max abs difference of the port: {np.abs(ours - probability).max():.2e}")


if __name__ == "__main__":
    main()
