"""Speak a list of utterances with eSpeak NG and write them to an ``.npz`` file.

Run as a script in a fresh process (``python _espeak_worker.py OUT.npz`` with a
JSON list of ``[text, voice, rate, pitch]`` on stdin), not imported:
libespeak-ng keeps state from one utterance to the next (pitch flutter,
noise sources), so the same utterance comes out bit-identical only at the
same position of a sequence spoken by a fresh library. One process per voice
makes every clip of the corpus reproducible. It imports nothing but ctypes,
json, numpy and ``espeakng_loader`` (the library and its voices ship in that
wheel), so it starts fast.

Internal module: used by :mod:`metamers.stimuli.words`.
"""

from __future__ import annotations

import ctypes
import json
import sys

import numpy as np

_SYNCHRONOUS = 2
_RATE, _PITCH = 1, 3
_CHARS_UTF8, _POS_CHARACTER = 1, 1
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def speak_all(utterances: list[list], out: str) -> None:
    """Speak each ``[text, voice, rate, pitch]`` and save ``rate`` and ``clip_{i}`` arrays.

    Parameters
    ----------
    utterances
        Text, eSpeak voice name (``en-us+m3``), rate (words per minute), pitch (0-99).
    out
        The ``.npz`` file to write (16-bit samples at the library's rate).
    """
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise SystemExit(f"espeak-ng failed to initialise ({rate})")
    chunks: list[np.ndarray] = []

    @_CALLBACK
    def collect(wave, count, events):  # called by the library with each block of samples
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wave, shape=(count,)).copy())
        return 0

    lib.espeak_SetSynthCallback(collect)
    clips = {}
    for index, (text, voice, words_per_minute, pitch) in enumerate(utterances):
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SystemExit(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, int(words_per_minute), 0)
        lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        chunks.clear()
        data = text.encode()
        lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        clips[f"clip_{index}"] = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    np.savez(out, rate=np.array(rate), **clips)


if __name__ == "__main__":
    speak_all(json.load(sys.stdin), sys.argv[1])
