"""Re-measure the committed word models' robust accuracy after a change of the evaluation attack.

Run from the repository root: ``python scripts/remeasure_word_robustness.py [NAME ...]``
(default: every standard word model). Weights are unchanged; each model's
``robust_accuracy`` in ``src/metamers/data/words/words.json`` is replaced by
:func:`~metamers.models.words.training.word_robust_accuracy` under the current
``EVAL_ATTACK`` and ``EVAL_ATTACK_CLIPS``, and the manifest's attack header with it.
It is the number ``metamers zoo train NAME`` would measure on retraining (the attack
is seeded). Models whose recipe changed must be retrained instead.
"""

from __future__ import annotations

import sys

import torch

from metamers.models.words import WORD_SPECS, read_word_manifest
from metamers.models.words.manifest import load_word_model, save_word_weights, words_dir
from metamers.models.words.training import word_robust_accuracy
from metamers.stimuli.words import word_corpus

KEPT = ("accuracy", "noisy_accuracy", "train_seconds", "final_loss")


def main() -> None:
    """Re-measure and rewrite the manifest entries of the named models."""
    torch.set_num_threads(1)
    names = sys.argv[1:] or [name for name, spec in WORD_SPECS.items() if not spec.robust]
    entries = read_word_manifest()["models"]
    corpus = word_corpus()
    for name in names:
        spec = WORD_SPECS[name]
        entry = entries[name]
        if any(entry.get(key) != value for key, value in spec.hyper_parameters().items()):
            raise SystemExit(f"{name}: its recipe changed since it was trained; retrain it")
        model = load_word_model(name)
        robust = word_robust_accuracy(model.net, corpus)
        record = {key: entry[key] for key in KEPT} | {"robust_accuracy": robust}
        save_word_weights(words_dir(), spec, model.net, record)
        print(f"{name}: robust accuracy {entry['robust_accuracy']:.4f} -> {robust:.4f}", flush=True)


if __name__ == "__main__":
    main()
