"""Deterministic CPU training of the word models on the ``bundled:words`` corpus.

The cochleagram has no parameters, so standard training runs on cached
cochleagrams of the training clips (clean, and in noise drawn by the corpus
recipe): the same numbers the full model computes, without recomputing the
front end every epoch. Robust models are fine-tuned from the standard model
of the same architecture and seed on adversarial *waveforms* (PGD through the
cochleagram), as published. Reproducibility as for the MNIST zoo: one thread,
deterministic kernels, every draw from the spec's seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from metamers.models.words.architectures import WORD_ARCHITECTURES, word_cochleagram
from metamers.models.words.specs import WordSpec
from metamers.models.zoo.attack import PGDConfig, accuracy, pgd_attack, robust_accuracy
from metamers.models.zoo.training import deterministic
from metamers.stimuli.words import WordCorpus, word_corpus

TRAIN_ATTACK = PGDConfig(epsilon=8e-4, steps=2, step_size=6e-4)
"""L∞ PGD on the waveform inside robust fine-tuning: the published ε = 0.002 at RMS 0.1,
scaled to the corpus level (RMS 0.04); 2 steps from a random start to fit 2 CPU cores."""

EVAL_ATTACK = PGDConfig(epsilon=8e-4, steps=5, step_size=3e-4)
"""L∞ PGD on the waveform for measuring robustness (5 steps, as in published training)."""

EVAL_ATTACK_CLIPS = 256
"""Clean test clips attacked to measure robust accuracy (each attack runs the cochleagram)."""

NOISY_VERSIONS = 1
"""Noisy mixtures cached per training clip; each epoch shows it or the clean clip."""


def build_word_net(arch: str, n_classes: int) -> nn.Sequential:
    """A word network of architecture ``arch`` (see :mod:`.architectures`).

    Parameters
    ----------
    arch
        ``cnn`` or ``resnet``.
    n_classes
        Output classes.
    """
    return WORD_ARCHITECTURES[arch](n_classes)


@dataclass(frozen=True)
class WordTrainResult:
    """A trained word network and how it did on the unseen test voices.

    Attributes
    ----------
    net
        The trained network (cochleagram first), eval mode.
    accuracy
        Accuracy on the clean test clips.
    noisy_accuracy
        Accuracy on the test clips in noise (-10 ... +10 dB SNR).
    robust_accuracy
        Accuracy on the first :data:`EVAL_ATTACK_CLIPS` clean test clips under
        :data:`EVAL_ATTACK`.
    seconds
        Training wall-clock time.
    final_loss
        Mean training loss over the last epoch.
    """

    net: nn.Sequential
    accuracy: float
    noisy_accuracy: float
    robust_accuracy: float
    seconds: float
    final_loss: float


def _features_key(corpus: WordCorpus, versions: int) -> str:
    settings = word_cochleagram().settings.to_dict()
    text = json.dumps([corpus.settings.key(), settings, versions], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cochleagrams(waves: list[np.ndarray], batch: int = 16) -> torch.Tensor:
    front = word_cochleagram()
    out = []
    with torch.no_grad():
        for start in range(0, len(waves), batch):
            x = torch.as_tensor(np.stack(waves[start : start + batch]), dtype=torch.float32)
            out.append(front(x).to(torch.float16))
    return torch.cat(out)


def cached_features(
    corpus: WordCorpus, progress: Callable[[str], None] | None = None
) -> dict[str, torch.Tensor]:
    """Cochleagrams of the training clips (clean + noisy versions) and of the test clips.

    Computed once per corpus and front end and kept as safetensors in the
    corpus folder (``features/``); ``float16`` (the cochleagram's compressed
    range needs no more).

    Parameters
    ----------
    corpus
        The word corpus.
    progress
        Called with a message before each stage that takes a while.

    Returns
    -------
    dict
        ``train_clean`` ``(N, 1, F, T)``, ``train_noisy`` ``(V, N, 1, F, T)``,
        ``train_targets``; ``test_clean``, ``test_noisy``, ``test_targets``.
    """
    path = corpus.root / "features" / f"{_features_key(corpus, NOISY_VERSIONS)}.safetensors"
    if path.is_file():
        return load_file(str(path))
    say = progress or (lambda message: None)
    train = corpus.rows("train", "clean")
    clean = [corpus.read(f) for f in train["file"]]
    say(f"cochleagrams of {len(clean)} clean training clips")
    features = {"train_clean": _cochleagrams(clean)}
    noisy = []
    for version in range(NOISY_VERSIONS):
        say(
            f"cochleagrams of {len(clean)} training clips in noise ({version + 1}/{NOISY_VERSIONS})"
        )
        mixed = [
            corpus.random_mixture(
                wave, np.random.default_rng([corpus.settings.seed, 11, version, i])
            )[0]
            for i, wave in enumerate(clean)
        ]
        noisy.append(_cochleagrams(mixed))
    features["train_noisy"] = torch.stack(noisy)
    features["train_targets"] = torch.tensor(train["target"].tolist(), dtype=torch.long)
    for kind in ("clean", "noisy"):
        rows = corpus.rows("test", kind)
        say(f"cochleagrams of {len(rows)} {kind} test clips")
        features[f"test_{kind}"] = _cochleagrams([corpus.read(f) for f in rows["file"]])
    features["test_targets"] = torch.tensor(rows["target"].tolist(), dtype=torch.long)
    from metamers.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in features.items()}, str(tmp))
    return features


def held_out_waveforms(corpus: WordCorpus, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` clean test clips as waveforms, and their classes.

    Parameters
    ----------
    corpus
        The word corpus.
    n
        How many (in set order: every word once before any repeats).
    """
    rows = corpus.rows("test", "clean").head(n)
    waves = torch.as_tensor(np.stack([corpus.read(f) for f in rows["file"]]), dtype=torch.float32)
    return waves, torch.tensor(rows["target"].tolist(), dtype=torch.long)


def word_robust_accuracy(
    net: nn.Module, corpus: WordCorpus, attack: PGDConfig = EVAL_ATTACK
) -> float:
    """Accuracy of a word network on the first :data:`EVAL_ATTACK_CLIPS` clean test clips under PGD.

    The attack is seeded, so the same network gets the same number every time
    (what ``words.json`` records as ``robust_accuracy``).

    Parameters
    ----------
    net
        A word network (cochleagram first), in eval mode.
    corpus
        The word corpus.
    attack
        The waveform attack (default :data:`EVAL_ATTACK`).
    """
    waves, targets = held_out_waveforms(corpus, EVAL_ATTACK_CLIPS)
    return robust_accuracy(net, waves, targets, attack, batch_size=32, input_range=(-1.0, 1.0))


def _body(net: nn.Sequential) -> nn.Sequential:
    """The network after its cochleagram (what runs on cached cochleagrams)."""
    return net[1:]


def train_word_net(
    spec: WordSpec,
    *,
    corpus: WordCorpus | None = None,
    base_weights: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
    message: Callable[[str], None] | None = None,
) -> WordTrainResult:
    """Train one word network and measure it on the unseen test voices.

    Parameters
    ----------
    spec
        The recipe.
    corpus
        The word corpus (default: ``bundled:words``'s, built if needed).
    base_weights
        Robust models: the standard model's safetensors to fine-tune from.
    progress
        Called as ``progress(epoch, mean_loss)`` after each epoch.
    message
        Called with a line before long preparation steps.

    Returns
    -------
    WordTrainResult
    """
    corpus = corpus or word_corpus()
    features = cached_features(corpus, message)
    n_classes = len(corpus.settings.words)
    start = time.perf_counter()
    with deterministic(spec.seed):
        net = build_word_net(spec.arch, n_classes)
        generator = torch.Generator().manual_seed(spec.seed)
        if spec.robust:
            if base_weights is None:
                raise ValueError(f"{spec.name} is fine-tuned from {spec.base}: give its weights")
            net.load_state_dict(load_file(str(base_weights)), strict=True)
            final_loss = _fit_adversarial(net, spec, corpus, generator, progress)
        else:
            final_loss = _fit(_body(net), spec, features, generator, progress)
        net.eval()
        seconds = time.perf_counter() - start
        body = _body(net)
        targets = features["test_targets"]
        clean = accuracy(lambda x: body(x.float()), features["test_clean"], targets)
        noisy = accuracy(lambda x: body(x.float()), features["test_noisy"], targets)
        robust = word_robust_accuracy(net, corpus)
    net.requires_grad_(False)
    return WordTrainResult(net, clean, noisy, robust, seconds, final_loss)


def _schedule(model: nn.Module, spec: WordSpec, steps: int):
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=steps)
    return optimizer, schedule


def _step(
    model, optimizer, schedule, x: torch.Tensor, y: torch.Tensor, frozen_norms: bool = False
) -> float:
    model.train()
    if frozen_norms:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.detach().item()


def augment_cochleagrams(
    x: torch.Tensor, spec: WordSpec, generator: torch.Generator
) -> torch.Tensor:
    """Shift each cochleagram in frequency and time and mask one band and one stretch.

    A shift of a few channels on the ERB axis mimics another speaker's vocal tract
    (formants move by a constant factor, i.e. a constant ERB offset at high
    frequencies); the time shift moves the word off the exact centre; the masks
    are SpecAugment's (Park et al. 2019). Edges are filled with the input's floor.

    Parameters
    ----------
    x
        ``(N, 1, F, T)`` cochleagrams.
    spec
        ``freq_shift``, ``time_shift``, ``freq_mask``, ``time_mask`` (maximum sizes).
    generator
        The random source.
    """
    n, _, channels, frames = x.shape
    floor = x.amin(dim=(1, 2, 3), keepdim=True)
    df = torch.randint(-spec.freq_shift, spec.freq_shift + 1, (n,), generator=generator)
    dt = torch.randint(-spec.time_shift, spec.time_shift + 1, (n,), generator=generator)
    f_index = torch.arange(channels)[None, :] - df[:, None]
    t_index = torch.arange(frames)[None, :] - dt[:, None]
    f_ok = (f_index >= 0) & (f_index < channels)
    t_ok = (t_index >= 0) & (t_index < frames)
    rows = f_index.clamp(0, channels - 1)[:, None, :, None].expand(n, 1, channels, frames)
    out = torch.gather(x, 2, rows)
    cols = t_index.clamp(0, frames - 1)[:, None, None, :].expand(n, 1, channels, frames)
    out = torch.gather(out, 3, cols)
    keep = f_ok[:, None, :, None] & t_ok[:, None, None, :]
    keep = keep & ~_band(n, channels, spec.freq_mask, generator)[:, None, :, None]
    keep = keep & ~_band(n, frames, spec.time_mask, generator)[:, None, None, :]
    return torch.where(keep, out, floor)


def _band(n: int, size: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """One random stretch of up to ``width`` positions per item, as a boolean mask."""
    widths = torch.randint(0, width + 1, (n,), generator=generator)
    starts = (torch.rand(n, generator=generator) * (size - widths + 1)).long()
    index = torch.arange(size)[None, :]
    return (index >= starts[:, None]) & (index < (starts + widths)[:, None])


def _fit(
    body: nn.Sequential,
    spec: WordSpec,
    features: dict[str, torch.Tensor],
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None,
) -> float:
    clean, noisy, targets = (
        features["train_clean"],
        features["train_noisy"],
        features["train_targets"],
    )
    n = len(targets)
    optimizer, schedule = _schedule(body, spec, spec.epochs * math.ceil(n / spec.batch_size))
    mean_loss = float("nan")
    for epoch in range(spec.epochs):
        order = torch.randperm(n, generator=generator)
        use_clean = torch.rand(n, generator=generator) < spec.clean_fraction
        version = torch.randint(len(noisy), (n,), generator=generator)
        total = 0.0
        for batch in order.split(spec.batch_size):
            x = torch.where(
                use_clean[batch, None, None, None], clean[batch], noisy[version[batch], batch]
            ).float()
            x = augment_cochleagrams(x, spec, generator)
            total += _step(body, optimizer, schedule, x, targets[batch]) * len(batch)
        mean_loss = total / n
        if progress is not None:
            progress(epoch + 1, mean_loss)
    return mean_loss


def _fit_adversarial(
    net: nn.Sequential,
    spec: WordSpec,
    corpus: WordCorpus,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None,
) -> float:
    """Adversarial fine-tuning: half of each batch PGD-attacked waveforms, half unattacked.

    Each clip is clean with probability ``clean_fraction``, else in noise drawn by
    the corpus recipe. Batch-norm statistics stay those of the standard model
    (its layers in eval mode), so a short fine-tuning cannot shift them.
    """
    rows = corpus.rows("train", "clean")
    if spec.robust_examples > len(rows):
        raise ValueError(
            f"{spec.name}: robust_examples={spec.robust_examples} but the corpus has "
            f"{len(rows)} training clips; use more epochs instead"
        )
    targets = rows["target"].to_numpy()
    steps = spec.epochs * math.ceil(spec.robust_examples / spec.batch_size)
    optimizer, schedule = _schedule(net, spec, steps)
    mean_loss = float("nan")
    for epoch in range(spec.epochs):
        picks = torch.randperm(len(rows), generator=generator)[: spec.robust_examples].tolist()
        total = 0.0
        for start in range(0, len(picks), spec.batch_size):
            batch = picks[start : start + spec.batch_size]
            rng = np.random.default_rng([spec.seed, 13, epoch, start])
            x = torch.as_tensor(np.stack([_example(corpus, rows, i, spec, rng) for i in batch]))
            y = torch.as_tensor(targets[batch], dtype=torch.long)
            half = len(batch) // 2
            net.eval()
            attacked = pgd_attack(
                net, x[:half], y[:half], TRAIN_ATTACK, generator=generator, input_range=(-1, 1)
            )
            x = torch.cat([attacked, x[half:]])
            total += _step(net, optimizer, schedule, x, y, frozen_norms=True) * len(batch)
        mean_loss = total / len(picks)
        if progress is not None:
            progress(epoch + 1, mean_loss)
    return mean_loss


def _example(corpus: WordCorpus, rows, i: int, spec: WordSpec, rng) -> np.ndarray:
    clean = corpus.read(rows["file"][i])
    if rng.random() < spec.clean_fraction:
        return clean.astype(np.float32)
    return corpus.random_mixture(clean, rng)[0].astype(np.float32)
