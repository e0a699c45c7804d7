"""The project's word-recognition models: cochleagram networks trained on ``bundled:words``.

Two architectures in the spirit of the published CochCNN9 and CochResNet50,
three seeds each, plus a PGD-robust (waveform) variant of each, trained on
CPU from fixed seeds by ``metamers zoo train NAME``. Committed weights live
in ``metamers/data/words`` (safetensors) with a ``words.json`` manifest. See
``docs/audio.md``.
"""

from __future__ import annotations

from metamers.models.words.manifest import (
    load_word_model,
    read_word_manifest,
    save_word_weights,
    words_dir,
    wrap_word_net,
)
from metamers.models.words.specs import WORD_SPECS, WORD_STUDY_LAYERS, WordSpec

__all__ = [
    "WORD_SPECS",
    "WORD_STUDY_LAYERS",
    "WordSpec",
    "load_word_model",
    "read_word_manifest",
    "save_word_weights",
    "words_dir",
    "wrap_word_net",
]
