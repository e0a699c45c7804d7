"""Robust accuracy of each standard/robust word-model pair at growing attack radii (docs/audio.md).

Run from the repository root: ``python scripts/word_robustness_curve.py [ARCH ...]``
(``cnn``, ``resnet``; default both). For ``word_ARCH_s0``/``word_ARCH_robust_s0`` it
attacks the first ``EVAL_ATTACK_CLIPS`` clean test clips with ``EVAL_ATTACK`` at 1 and 2
times its radius (step size scaled with it; same seeded starts for both models),
and prints a markdown table: accuracy with 95 % Wilson intervals, and the paired
difference's exact McNemar p-value (the two models see the same clips).
"""

from __future__ import annotations

import dataclasses
import sys

import torch
from scipy.stats import binomtest

from metamers.models.words.manifest import load_word_model
from metamers.models.words.training import EVAL_ATTACK, EVAL_ATTACK_CLIPS, held_out_waveforms
from metamers.models.zoo.attack import robust_correct
from metamers.stimuli.words import word_corpus

ARCHS = ("cnn", "resnet")
MULTIPLES = (1, 2)


def cell(correct: torch.Tensor) -> str:
    """Accuracy in percent with its 95 % Wilson interval.

    Parameters
    ----------
    correct
        ``(N,)`` per-clip outcomes.
    """
    k, n = int(correct.sum()), len(correct)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return f"{100 * k / n:.1f} [{100 * ci.low:.0f}, {100 * ci.high:.0f}]"


def mcnemar(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact two-sided McNemar p-value of paired outcomes ``a`` and ``b``.

    Parameters
    ----------
    a, b
        ``(N,)`` per-clip outcomes of two models on the same clips.
    """
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return binomtest(only_b, only_a + only_b).pvalue if only_a + only_b else 1.0


def main() -> None:
    """Print the table."""
    torch.set_num_threads(1)
    waves, targets = held_out_waveforms(word_corpus(), EVAL_ATTACK_CLIPS)
    print("| models | ε | standard | robust | McNemar p |")
    print("|---|---|---|---|---|")
    for arch in sys.argv[1:] or ARCHS:
        standard, robust = f"word_{arch}_s0", f"word_{arch}_robust_s0"
        nets = [load_word_model(name).net for name in (standard, robust)]
        for multiple in MULTIPLES:
            attack = dataclasses.replace(
                EVAL_ATTACK,
                epsilon=EVAL_ATTACK.epsilon * multiple,
                step_size=EVAL_ATTACK.step_size * multiple,
            )
            a, b = (
                robust_correct(net, waves, targets, attack, batch_size=32, input_range=(-1.0, 1.0))
                for net in nets
            )
            print(
                f"| `{standard}` / `{robust}` | {attack.epsilon:.1e} | {cell(a)} | {cell(b)} "
                f"| {mcnemar(a, b):.1g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
