"""Sound stimuli: decoding, resampling, fitting, levels and bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from metamers.errors import StimulusError
from metamers.stimuli import SoundLoader, load_sound, model_sample_rate, resolve_stimuli

RATE = 20_000


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


def peak_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.fft.rfftfreq(wave.shape[0], 1 / rate)[spectrum.argmax()])


def rms(wave: torch.Tensor) -> float:
    return float(wave.double().pow(2).mean().sqrt())


def test_one_file_is_an_audio_set(tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", tone(440, RATE, 1.0), RATE)
    stimuli = resolve_stimuli(str(path))
    assert stimuli.modality == "audio" and stimuli.ids == ["a"]
    wave = stimuli.load(stimuli[0], (RATE,))
    assert wave.shape == (RATE,) and wave.dtype == torch.float32
    assert abs(rms(wave) - 0.1) < 1e-4 and abs(float(wave.double().mean())) < 1e-6
    assert float(wave.abs().max()) <= 1.0
    raw = stimuli.load_raw(stimuli[0])
    assert raw.shape == (RATE,) and abs(rms(raw) - 0.1) < 1e-4


def test_class_folders_label_sounds(tmp_path: Path) -> None:
    for word, freq in (("cat", 300), ("dog", 600)):
        for i in range(2):
            write(tmp_path / word / f"{i}.flac", tone(freq + i, RATE, 0.5), RATE)
    stimuli = resolve_stimuli(str(tmp_path))
    assert stimuli.modality == "audio" and stimuli.label_space == "folders"
    assert stimuli.ids == ["cat/0", "cat/1", "dog/0", "dog/1"]
    assert [s.target for s in stimuli] == [0, 0, 1, 1]
    assert [s.label for s in stimuli] == ["cat", "cat", "dog", "dog"]
    _, batch = next(stimuli.batches((8000,), 4))
    assert batch.shape == (4, 8000)


def test_comma_list_and_ogg(tmp_path: Path) -> None:
    a = write(tmp_path / "a.wav", tone(300, RATE, 0.5), RATE)
    b = write(tmp_path / "b.ogg", tone(500, RATE, 0.5), RATE)
    stimuli = resolve_stimuli(f"{a},{b}")
    assert stimuli.modality == "audio" and stimuli.ids == ["a", "b"]
    assert abs(peak_hz(stimuli.load(stimuli[1], (RATE // 2,)), RATE) - 500) <= 2


def test_images_and_sounds_do_not_mix(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    write(tmp_path / "y.wav", tone(300, RATE, 0.1), RATE)
    with pytest.raises(StimulusError, match="mixes sounds"):
        resolve_stimuli(str(tmp_path))


@pytest.mark.parametrize("source_rate", [44_100, 96_000, 8_000])
def test_resampling_keeps_the_frequency(tmp_path: Path, source_rate: int) -> None:
    path = write(tmp_path / "t.wav", tone(1000, source_rate, 1.0), source_rate)
    stimuli = resolve_stimuli(str(path))
    fitted = stimuli.load(stimuli[0], (RATE,))
    raw = stimuli.load_raw(stimuli[0])
    assert abs(raw.shape[0] - RATE) <= 1
    assert abs(peak_hz(fitted, RATE) - 1000) <= 1
    assert abs(peak_hz(raw, RATE) - 1000) <= 1.5


def test_model_rate_is_used(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", tone(1000, 44_100, 1.0), 44_100)
    stimuli = resolve_stimuli(str(path))

    class Model:
        def __init__(self) -> None:
            self.info = {"sample_rate": 16_000}

    rate = model_sample_rate(Model())
    assert rate == 16_000 and model_sample_rate(object()) == RATE
    wave = stimuli.load(stimuli[0], (16_000,), sample_rate=rate)
    assert abs(peak_hz(wave, 16_000) - 1000) <= 1
    assert (
        abs(resolve_stimuli(str(path), sample_rate=16_000).load_raw(stimuli[0]).shape[0] - 16_000)
        <= 1
    )


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    left, right = tone(300, RATE, 0.5), tone(700, RATE, 0.5, amp=0.25)
    path = write(tmp_path / "s.wav", np.stack([left, right], axis=1), RATE)
    wave = load_sound(path, RATE, rms=None)
    assert wave.shape == (RATE // 2,)
    np.testing.assert_allclose(wave.numpy(), (left + right) / 2, atol=1e-4)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_subtypes(tmp_path: Path, subtype: str) -> None:
    path = write(tmp_path / "t.wav", tone(500, RATE, 0.5), RATE, subtype=subtype)
    assert soundfile.info(str(path)).subtype == subtype
    wave = load_sound(path, RATE, rms=None)
    tol = 0.02 if subtype == "PCM_U8" else 1e-3
    np.testing.assert_allclose(wave.numpy(), tone(500, RATE, 0.5), atol=tol)
    assert abs(peak_hz(load_sound(path, RATE), RATE) - 500) <= 2


def test_crop_and_pad_keep_the_centre(tmp_path: Path) -> None:
    data = np.zeros(1000, dtype=np.float32)
    data[500] = 1.0  # an impulse at the centre
    path = write(tmp_path / "i.wav", data, RATE, subtype="FLOAT")
    cropped = load_sound(path, RATE, length=100, rms=None)
    assert cropped.shape == (100,) and int(cropped.abs().argmax()) == 50
    padded = load_sound(path, RATE, length=3000, rms=None)
    assert padded.shape == (3000,) and int(padded.abs().argmax()) == 1500
    assert float(padded[:1000].abs().max()) == 0.0 and float(padded[2000:].abs().max()) == 0.0


def test_level_is_configurable(tmp_path: Path) -> None:
    data = tone(440, RATE, 0.5, amp=0.2) + 0.3  # a DC offset
    path = write(tmp_path / "t.wav", data, RATE, subtype="FLOAT")
    wave = resolve_stimuli(str(path), rms=0.05).load(resolve_stimuli(str(path))[0], (RATE // 2,))
    assert abs(rms(wave) - 0.05) < 1e-4 and abs(float(wave.double().mean())) < 1e-6
    kept = resolve_stimuli(str(path), rms=None)
    assert abs(float(kept.load(kept[0], (RATE // 2,)).double().mean()) - 0.3) < 1e-3
    assert resolve_stimuli(str(path), rms=0.05).fingerprint() != kept.fingerprint()
    assert isinstance(kept.loader, SoundLoader)


def _bad_inputs(tmp_path: Path) -> list[Path]:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    good = tmp_path / "tmp.wav"
    write(good, tone(300, RATE, 0.5), RATE)
    corrupt.write_bytes(good.read_bytes()[:30])
    good.unlink()
    not_audio = tmp_path / "text.wav"
    not_audio.write_text("this is not a sound\n" * 50)
    no_frames = write(tmp_path / "noframes.wav", np.zeros(0, dtype=np.float32), RATE)
    silent = write(tmp_path / "silent.wav", np.zeros(RATE, dtype=np.float32), RATE)
    dc = write(tmp_path / "dc.wav", np.full(RATE, 0.5, dtype=np.float32), RATE)
    nan = np.full(100, np.nan, dtype=np.float32)
    nans = write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    return [empty, corrupt, not_audio, no_frames, silent, dc, nans]


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    for path in _bad_inputs(tmp_path):
        stimuli = resolve_stimuli(str(path))
        for fitted in (True, False):
            with pytest.raises(StimulusError) as info:
                if fitted:
                    stimuli.load(stimuli[0], (RATE,))
                else:
                    stimuli.load_raw(stimuli[0])
            message = str(info.value)
            assert str(path) in message and "\n" not in message, message
            assert "nan" not in message.lower() or path.name == "nan.wav"


def test_bad_inputs_are_skipped(tmp_path: Path) -> None:
    bad = _bad_inputs(tmp_path)
    write(tmp_path / "good.wav", tone(300, RATE, 0.5), RATE)
    stimuli = resolve_stimuli(str(tmp_path), skip_bad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(stimuli.batches((RATE,), 8))
    assert [s.id for s in batches[0][0]] == ["good"]
    assert torch.isfinite(batches[0][1]).all()
    assert len(caught) == len(bad)
    strict = resolve_stimuli(str(tmp_path))
    with pytest.raises(StimulusError):
        list(strict.batches((RATE,), 8))


def test_ten_minute_file_reads_only_what_is_needed(tmp_path: Path, monkeypatch) -> None:
    rate = 4000  # low rate keeps the file small; ten minutes of it
    seconds = 600
    t = np.arange(rate * seconds) / rate
    path = write(
        tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate
    )
    read_frames: list[int] = []
    original = soundfile.SoundFile.read

    def counting(self, frames=-1, *args, **kwargs):
        out = original(self, frames, *args, **kwargs)
        read_frames.append(len(out))
        return out

    monkeypatch.setattr(soundfile.SoundFile, "read", counting)
    stimuli = resolve_stimuli(str(path))
    wave = stimuli.load(stimuli[0], (2 * RATE,))
    assert wave.shape == (2 * RATE,) and abs(rms(wave) - 0.1) < 1e-3
    assert abs(peak_hz(wave, RATE) - 200) <= 1
    assert sum(read_frames) < 3 * rate  # about two seconds, not ten minutes
    read_frames.clear()
    raw = stimuli.load_raw(stimuli[0])  # whole file, read block by block
    assert abs(raw.shape[0] - RATE * seconds) <= 2
    assert max(read_frames) <= 1 << 16
