"""Audio metamers on disk: exact float tensors, a 16-bit WAV that plays, its gain and the levels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from metamers.synthesis.storage import write_metamer


@pytest.mark.parametrize("peak", [0.5, 1.7])
def test_wav_round_trips_to_the_stored_float_within_16_bit_quantisation(tmp_path, peak):
    t = torch.arange(40_000) / 20_000
    metamer = peak * torch.sin(2 * torch.pi * 300 * t) * torch.hann_window(40_000)
    reference = 0.2 * torch.sin(2 * torch.pi * 200 * t)
    write_metamer(tmp_path, metamer, reference, np.array([1.0, 0.5]), {"stimulus_id": "x"})
    record = json.loads((tmp_path / "record.json").read_text())
    audio = record["audio"]
    assert audio["sample_rate"] == 20_000
    gain = audio["metamer"]["wav_gain"]
    top = float(metamer.abs().max())
    assert gain == pytest.approx(min(1.0, 0.99 / top)) and (gain < 1) == (peak > 1)
    assert audio["metamer"]["peak"] == pytest.approx(top, rel=1e-6)
    assert audio["reference"]["rms"] == pytest.approx(0.2 / np.sqrt(2), rel=1e-3)
    played, rate = soundfile.read(tmp_path / "metamer.wav", dtype="float64")
    info = soundfile.info(tmp_path / "metamer.wav")
    assert rate == 20_000 and info.subtype == "PCM_16"
    assert np.abs(played / gain - metamer.double().numpy()).max() <= 1.0 / 32_767 / gain
