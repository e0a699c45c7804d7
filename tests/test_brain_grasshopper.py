"""The offline real-data example: nitime's grasshopper receptor neuron from cochleagram features."""

from __future__ import annotations

import numpy as np
import pytest

from metamers.brain.grasshopper import block_splits, grasshopper_example, load_recording
from metamers.errors import ConfigError


def test_recordings_are_what_nitime_ships():
    envelope, spikes = load_recording(1)
    assert envelope.shape == (200_000,)  # 10 s every 50 µs
    assert 800 < len(spikes) < 1000 and 0 < spikes.min() < spikes.max() < 10
    with pytest.raises(ConfigError, match="1 and 2"):
        load_recording(3)


def test_spike_rate_is_predicted_on_held_out_time_blocks():
    example = grasshopper_example(recording=1, front_end="cochleagram")
    scores = example.result.scores
    assert example.n_windows == 196 and example.n_spikes > 800
    features = scores[scores["layer"] == "cochleagram"]
    assert (features["r"] > 0.15).all() and features["r"].median() > 0.3
    control = scores[scores["layer"] == "cochleagram_shuffled"]
    assert control["r_reported"].median() < 0.1
    assert "r2_corrected" not in scores  # one trial: no noise correction


def test_block_splits_keep_time_blocks_together():
    ids = [f"w{i}" for i in range(10)]
    splits = block_splits(ids, 5)
    assert [s.test for s in splits] == [(f"w{2 * i}", f"w{2 * i + 1}") for i in range(5)]
    assert all(not set(s.train) & set(s.test) for s in splits)
    assert np.all([len(s.train) == 8 for s in splits])
