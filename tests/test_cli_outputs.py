"""Outputs a researcher can use (issue 15): summaries, machine-readable CLI output, wide tables."""

from __future__ import annotations

import numpy as np

from metamers.null import NullDistribution


def test_null_distribution_repr_is_a_summary_not_the_values():
    n = 5000
    rng = np.random.default_rng(0)
    null = NullDistribution(
        model="mnist_cnn_s0",
        model_fingerprint="abc",
        layers=("conv1", "fc"),
        values={m: rng.random((n, 2)) for m in ("spearman", "pearson", "snr_db")},
        first=np.arange(n) % 7,
        second=(np.arange(n) + 1) % 7,
        stimulus_ids=tuple(f"s{i}" for i in range(7)),
        stimuli_spec="bundled:mnist",
        stimuli_fingerprint="def",
        augmentation={},
        seed=0,
        n_views=2 * n,
        pairs_per_view=1,
    )
    text = repr(null)
    assert len(text) < 400 and "\n" not in text
    for part in ("mnist_cnn_s0", "conv1", "n_pairs=5000", "n_stimuli=7", "published"):
        assert part in text
    assert "array" not in text
    assert str(null) == text
