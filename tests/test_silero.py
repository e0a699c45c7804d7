"""silero-vad, a foreign pretrained observer: the port equals the wheel's reference implementations."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.decisions import LabelSpace, classify
from metamers.errors import ConfigError, ModelError
from metamers.evaluation import recognition_table
from metamers.models import load_model, validate_model
from metamers.models.silero import (
    CHUNK,
    CONTEXT,
    REFERENCE_ONNX,
    build_silero_vad,
    load_silero_state,
    silero_weights_path,
)
from metamers.null import compute_null
from metamers.stimuli import resolve_stimuli
from metamers.synthesis import MetamerResult
from metamers.validation import judge

TINYGRAD_REFERENCE = Path(__file__).parent / "data" / "silero_tinygrad_reference.npz"
ONNX_NAMES = {
    "model.stft.forward_basis_buffer": "stft.weight",
    **{f"model.encoder.{i}.reparam_conv.": f"conv{i + 1}." for i in range(4)},
    "model.decoder.rnn.": "lstm.",
    "model.decoder.decoder.2.": "final_conv.",
}


@pytest.fixture(scope="module")
def model():
    return load_model("silero_vad")


@pytest.fixture(scope="module")
def clips(model):
    """Six clean and six noisy spoken test words, resampled to 16 kHz (2 s: 32,000 samples)."""
    waves = []
    for spec in ("bundled:words", "bundled:words-noisy"):
        words = resolve_stimuli(spec, limit=6)
        waves += [words.load_for(s, model) for s in words]
    return torch.stack(waves)


def onnx_reference(waves: torch.Tensor) -> np.ndarray:
    """The wheel's ONNX model run by onnxruntime as its ``OnnxWrapper.audio_forward`` does."""
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    path = str(resources.files("silero_vad.data").joinpath(REFERENCE_ONNX))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    wave = waves.numpy().astype(np.float32)
    chunks = -(-wave.shape[1] // CHUNK)
    wave = np.pad(wave, ((0, 0), (0, chunks * CHUNK - wave.shape[1])))
    context = np.zeros((wave.shape[0], CONTEXT), np.float32)
    state = np.zeros((2, wave.shape[0], 128), np.float32)
    out = []
    for i in range(chunks):
        x = np.concatenate([context, wave[:, i * CHUNK : (i + 1) * CHUNK]], axis=1)
        probability, state = session.run(
            None, {"input": x, "state": state, "sr": np.array(16_000, np.int64)}
        )
        out.append(probability[:, 0])
        context = x[:, -CONTEXT:]
    return np.stack(out, axis=1)


def test_silero_vad_follows_the_model_contract(model):
    validate_model(model)
    assert model.modality == "audio" and model.input_shape == (32_000,)
    assert model.info["sample_rate"] == 16_000 and model.source == "pretrained"
    assert model.label_space is None and not model.is_classifier
    shapes = model.layer_shapes()
    assert shapes["stft"] == (129, 252) and shapes["relu2"] == (64, 126)
    assert shapes["lstm"] == (128, 63) and shapes["logits"] == (63,)


def test_the_port_equals_the_wheels_tinygrad_model_on_its_safetensors_weights(model):
    """Reference: ``silero_vad/tinygrad_model.py`` of the wheel with ``silero_vad_16k.safetensors``.

    Recorded with tinygrad 0.14.0 (its pure-Python device), chunk by chunk with the state
    carried, on 8 chunks around two spoken test words (``scripts/silero_tinygrad_reference.py``).
    """
    reference = np.load(TINYGRAD_REFERENCE)
    with torch.no_grad():
        ours = model.net(torch.from_numpy(reference["waveform"])).numpy()
    assert reference["probability"].min() > 0.5  # the words are speech to the detector
    assert np.abs(ours - reference["probability"]).max() <= 1e-5


def test_the_port_equals_the_wheels_onnx_model_given_the_onnx_weights(model, clips):
    """The network and the streaming (chunks, context, carried state) equal onnxruntime's.

    The wheel's ONNX files hold another checkpoint than its safetensors (upstream issue
    snakers4/silero-vad#768), so the port is loaded here with the ONNX file's own weights.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = str(resources.files("silero_vad.data").joinpath(REFERENCE_ONNX))
    state = {}
    for tensor in onnx.load(path).graph.initializer:
        for prefix, ours in ONNX_NAMES.items():
            if tensor.name.startswith(prefix):
                value = numpy_helper.to_array(tensor).copy()
                state[ours + tensor.name[len(prefix) :]] = torch.from_numpy(value)
    port = build_silero_vad(random_weights=True)
    port.net.load_state_dict(state, strict=True)
    with torch.no_grad():
        ours = port(clips).numpy()
    assert np.abs(ours - onnx_reference(clips)).max() <= 1e-4


def test_the_safetensors_checkpoint_agrees_with_the_onnx_model_on_speech(model, clips):
    with torch.no_grad():
        ours = model(clips).numpy()
    reference = onnx_reference(clips)
    assert ((ours > 0.5) == (reference > 0.5)).mean() > 0.95  # measured 0.97-0.99
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.95
    clean, noisy = ours[:6], ours[6:]
    assert (clean.max(axis=1) > 0.9).all() and (clean[:, :5] < 0.1).all()  # word, silence
    assert (noisy > 0.5).mean() > (clean > 0.5).mean()  # babble is speech to a VAD


def test_layers_are_chunk_activations_concatenated_in_time(model, clips):
    x = clips[:2]
    acts = model.activations(x, ["stft", "relu2", "lstm", "logits"])
    # the first chunk alone (with its zero context) gives the first frames of the whole clip
    head = model.activations(x[:, :CHUNK], ["stft", "relu2", "lstm", "logits"])
    assert torch.allclose(acts["stft"][..., :4], head["stft"], atol=1e-5)
    assert torch.allclose(acts["relu2"][..., :2], head["relu2"], atol=1e-5)
    assert torch.allclose(acts["lstm"][..., :1], head["lstm"], atol=1e-6)
    assert torch.allclose(acts["logits"][:, :1], head["logits"], atol=1e-6)
    x.requires_grad_(True)
    model.activations(x, ["lstm"])["lstm"].square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_weights_are_checked_by_sha256(tmp_path):
    assert silero_weights_path() is not None
    tampered = tmp_path / "silero_vad_16k.safetensors"
    data = bytearray(silero_weights_path().read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_silero_state(tampered)


def test_classify_refuses_a_speech_detector_in_one_line():
    _register_commands()
    done = CliRunner().invoke(
        app, ["classify", "silero_vad", "--stimuli", "bundled:words", "--limit", "1"]
    )
    assert isinstance(done.exception, ConfigError)  # `main` prints it as one line, exit 2
    message = str(done.exception)
    assert message.startswith("silero_vad is not a classifier") and "\n" not in message


def test_a_speech_detector_has_no_decisions_on_any_path(model, clips):
    with pytest.raises(ConfigError, match="silero_vad is not a classifier"):
        classify(model, clips[:2])
    with pytest.raises(ConfigError, match="not a classifier"):
        LabelSpace().decide(model, model(clips[:2]))


@pytest.mark.filterwarnings("ignore::metamers.null.distribution.SmallNullWarning")
def test_recognition_skips_a_detector_and_acceptance_judges_only_its_similarities(model, clips):
    word_model = load_model("word_cnn_s1")
    words = resolve_stimuli("bundled:words", limit=2)
    waves = torch.stack([words.load_for(s, word_model) for s in words])
    results = [
        MetamerResult(s.id, ("word_cnn_s0",), ("relu0",), w, w, np.zeros(1))
        for s, w in zip(words, waves, strict=True)
    ]
    table = recognition_table(results, [model, word_model])
    assert set(table["observer"]) == {"word_cnn_s1"} and len(table) == 2

    pool = resolve_stimuli("bundled:words-noisy", limit=8)
    null = compute_null(model, ["stft"], pool, 20, use_cache=False)
    judged = judge(model, clips[:2], clips[:2], ["stft"], null, check_label=True)
    assert "label_match" not in judged.columns
    assert judged["passed"].all()  # identical waveforms beat any null of different clips
    moved = judge(model, clips[:2].flip(0), clips[:2], ["stft"], null, check_label=True)
    assert not moved["passed"].any() and not moved["failed"].str.contains("label").any()
