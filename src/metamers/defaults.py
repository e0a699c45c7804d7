"""Named choices and defaults that the command line shows in its help, importable without torch.

They live here so that ``metamers --help`` (which builds every option) does not
load torch, numpy or pandas; the modules that use them re-export them
(:mod:`metamers.labels`, :mod:`metamers.decisions`, :mod:`metamers.null.criterion`).
"""

from __future__ import annotations

SIXTEEN_WAY_RULES = ("feather2023", "geirhos2021")
"""Named 16-way decision rules; see :func:`metamers.labels.sixteen_way_choice`."""

DEFAULT_SIXTEEN_WAY_RULE = "feather2023"
"""The published rule of the metamer work this package reproduces (see docs/validation.md)."""

LABEL_SPACES = ("auto", "native", "16-way")
"""Label spaces of model decisions (:class:`metamers.decisions.LabelSpace`)."""

CRITERION_KINDS = ("max", "quantile", "p_value")
"""Null criteria (:class:`metamers.null.NullCriterion`)."""

DEFAULT_NULL_PAIRS = 10_000
"""Null size every command uses unless told otherwise (``validate``, ``--stop-accepted``,
a fresh validation by ``evaluate``): the smallest the published work used (10^4–10^6
pairs). The maximum of a null grows with its size, so one default everywhere keeps a
metamer stopped "at acceptance" accepted by a later validation."""

NULL_STIMULI = {"image": "bundled:photos", "audio": "bundled:words-null"}
"""The natural stimuli of a null distribution when none are given, by the model's modality:
photos for image models; for audio models different clips of speech in noise
(the word corpus's validation clips, as published: clips like the training set's)."""
