"""The word models: committed weights, recognition of unseen voices, layers, retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.errors import ModelError
from metamers.models import load_model
from metamers.models.words import WORD_SPECS, read_word_manifest, words_dir
from metamers.stimuli import resolve_stimuli
from metamers.stimuli.words import WORDS, word_corpus

MANIFEST = read_word_manifest()


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


@pytest.fixture(scope="module")
def first_words():
    """The first 100 clean test clips: every word once, by the four unseen voices."""
    words = resolve_stimuli("bundled:words", limit=len(WORDS))
    waves = torch.cat([x for _, x in words.batches((40_000,), 50)])
    return waves, torch.tensor([s.target for s in words])


def test_every_word_model_is_committed_with_its_accuracies():
    assert sorted(MANIFEST["models"]) == sorted(WORD_SPECS)
    for name, entry in MANIFEST["models"].items():
        assert (words_dir() / entry["file"]).is_file()
        assert entry["accuracy"] > 0.5 and entry["noisy_accuracy"] > 0.1, name  # chance is 0.01


@pytest.mark.parametrize("name", ["word_cnn_s0", "word_resnet_s1"])
def test_word_models_recognise_unseen_voices_far_above_chance(name, first_words):
    model = load_model(name)
    assert model.modality == "audio" and model.label_space == "words"
    assert model.class_names == WORDS and model.info["sample_rate"] == 20_000
    waves, targets = first_words
    with torch.no_grad():
        correct = float((model(waves).argmax(1) == targets).float().mean())
    assert correct > 0.5  # 100 words: chance is 1 %
    assert correct == pytest.approx(MANIFEST["models"][name]["accuracy"], abs=0.15)


def test_classify_prints_word_names(runner):
    done = runner.invoke(
        app, ["classify", "word_cnn_s0", "--stimuli", "bundled:words", "--limit", "8",
              "--top", "1", "--format", "json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(records) == 8 and all(r["class"] in WORDS for r in records)
    assert sum(r["class"] == r["label"] for r in records) >= 5


def test_layers_list_the_cochleagram_and_extract_reads_it(runner, tmp_path):
    done = runner.invoke(app, ["layers", "word_cnn_s0"])
    assert done.exit_code == 0
    layers = done.stdout.split()
    assert layers[0] == "cochleagram" and {"relu0", "relu2", "relufc", "final"} <= set(layers)
    model = load_model("word_resnet_s0")
    x = resolve_stimuli("bundled:words", limit=2)
    batch = torch.stack([x.load(s, (40_000,)) for s in x])
    acts = model.activations(batch, ["cochleagram", "layer2"])
    assert acts["cochleagram"].shape == (2, 1, 52, 190)
    assert torch.isfinite(acts["layer2"]).all()


def test_zoo_list_shows_the_word_models(runner):
    done = runner.invoke(app, ["zoo", "list"])
    assert done.exit_code == 0, done.output
    for name in WORD_SPECS:
        assert name in done.stdout


def test_a_tampered_weights_file_is_refused(tmp_path):
    from metamers.models.words import load_word_model

    (tmp_path / "word_cnn_s0.safetensors").write_bytes(
        (words_dir() / "word_cnn_s0.safetensors").read_bytes()[:-8] + b"00000000"
    )
    (tmp_path / "words.json").write_text(json.dumps(MANIFEST))
    with pytest.raises(ModelError, match="sha256"):
        load_word_model("word_cnn_s0", directory=tmp_path)
    with pytest.raises(ModelError, match="unknown word model"):
        load_word_model("word_cnn_s9")


def test_training_lowers_the_loss_on_real_cochleagrams():
    from dataclasses import replace

    from metamers.models.words.training import _cochleagrams, _fit, build_word_net

    corpus = word_corpus()
    rows = corpus.rows("train", "clean").head(64)
    clean = [corpus.read(f) for f in rows["file"]]
    rng = np.random.default_rng(0)
    features = {
        "train_clean": _cochleagrams(clean),
        "train_noisy": _cochleagrams([corpus.random_mixture(w, rng)[0] for w in clean])[None],
        "train_targets": torch.tensor(rows["target"].tolist()),
    }
    spec = replace(WORD_SPECS["word_cnn_s0"], epochs=15, batch_size=16, time_mask=0, freq_mask=0)
    losses = []
    torch.manual_seed(0)
    net = build_word_net("cnn", len(WORDS))
    _fit(
        net[1:],
        spec,
        features,
        torch.Generator().manual_seed(0),
        lambda e, loss: losses.append(loss),
    )
    assert losses[-1] < 0.85 * losses[0]  # 100 classes from 64 clips: a clear fall


def test_robust_fine_tuning_runs_pgd_on_waveforms():
    from dataclasses import replace

    from safetensors.torch import load_file

    from metamers.models.words.training import TRAIN_ATTACK, _fit_adversarial, build_word_net

    spec = replace(WORD_SPECS["word_cnn_robust_s0"], robust_examples=8, batch_size=4)
    net = build_word_net("cnn", len(WORDS))
    net.load_state_dict(load_file(str(words_dir() / "word_cnn_s0.safetensors")))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = []
    _fit_adversarial(net, spec, word_corpus(), torch.Generator().manual_seed(0),
                     lambda e, loss: losses.append(loss))  # fmt: skip
    assert np.isfinite(losses).all() and TRAIN_ATTACK.epsilon == pytest.approx(8e-4)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_robust_fine_tuning_refuses_more_clips_per_pass_than_the_corpus_has():
    from dataclasses import replace

    from metamers.models.words.training import _fit_adversarial, build_word_net

    spec = replace(WORD_SPECS["word_cnn_robust_s0"], robust_examples=10**6)
    with pytest.raises(ValueError, match="training clips; use more epochs"):
        _fit_adversarial(
            build_word_net("cnn", len(WORDS)), spec, word_corpus(), torch.Generator(), None
        )


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_robust_word_models_beat_standard_ones_under_attack(arch, first_words):
    from dataclasses import replace

    from metamers.models.words.training import EVAL_ATTACK
    from metamers.models.zoo.attack import robust_correct

    standard, robust = f"word_{arch}_s0", f"word_{arch}_robust_s0"
    entries = MANIFEST["models"]
    assert entries[robust]["robust_accuracy"] > entries[standard]["robust_accuracy"] + 0.05
    waves, targets = first_words[0][:32], first_words[1][:32]
    attack = replace(
        EVAL_ATTACK, epsilon=2 * EVAL_ATTACK.epsilon, step_size=2 * EVAL_ATTACK.step_size
    )
    correct = {
        name: int(
            robust_correct(
                load_model(name).net, waves, targets, attack, input_range=(-1.0, 1.0)
            ).sum()
        )
        for name in (standard, robust)
    }
    assert correct[robust] > correct[standard], correct
