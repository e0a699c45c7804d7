"""Audio front ends: a differentiable cochleagram.

Examples
--------
>>> from metamers.audio import Cochleagram
>>> Cochleagram.feather2023().center_frequencies(40000).shape
(211,)
"""

from __future__ import annotations

from metamers.audio.cochleagram import Cochleagram, CochleagramSettings, erb2freq, freq2erb

__all__ = ["Cochleagram", "CochleagramSettings", "erb2freq", "freq2erb"]
