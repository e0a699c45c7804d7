"""Recognisability, the representation test and transfer matrices, on planted structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.decisions import LabelSpace
from metamers.evaluation.recognition import bootstrap_mean, recognition_table
from metamers.evaluation.representation import representation_table, summarize_representation
from metamers.evaluation.transfer import (
    evaluate_transfer,
    recognition_heatmap,
    representation_heatmap,
    transfer_matrix,
)
from metamers.models.controls import permuted_weights
from metamers.null.distribution import compute_null
from metamers.synthesis.results import MetamerResult

from conftest import make_tiny_model

LAYERS = ["conv1", "relu1", "relu2"]


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model(seed=3, name="tiny")


@pytest.fixture(scope="module")
def pool(photos):
    return photos


@pytest.fixture(scope="module")
def references(tiny, pool):
    chosen = pool.limit(8)
    return chosen.ids, torch.stack([chosen.load(s, tiny.input_shape) for s in chosen])


@pytest.fixture(scope="module")
def tiny_null(tiny, pool):
    with pytest.warns(UserWarning):
        return compute_null(tiny, LAYERS, pool, 300, seed=1, use_cache=False)


NATIVE = LabelSpace("native")  # 1000-way: most bundled photos are in no 16-way category


def _results(ids, metamers, references, layer="relu2"):
    return [
        MetamerResult(sid, ("tiny",), (layer,), m, r, np.array([1.0, 0.1]))
        for sid, m, r in zip(ids, metamers, references, strict=True)
    ]


def test_identical_observer_accepts_perfect_metamers(tiny, references, tiny_null):
    ids, refs = references
    perfect = (refs + 1e-5 * torch.randn_like(refs)).clamp(0, 1)
    table = representation_table(_results(ids, perfect, refs), tiny, tiny_null, LAYERS)
    assert table["passed"].all()
    summary = summarize_representation(table, n_boot=200)
    assert (summary["pass_fraction"] == 1.0).all() and (summary["p_value"] < 1e-6).all()
    recog = recognition_table(_results(ids, perfect, refs), [tiny], {"tiny": tiny})
    assert recog["agrees_with_reference"].mean() == 1.0
    assert recog["correct_vs_generator"].mean() == 1.0


def test_other_natural_images_are_rejected(tiny, references, tiny_null):
    ids, refs = references
    others = refs.roll(1, dims=0)
    table = representation_table(_results(ids, others, refs), tiny, tiny_null, LAYERS)
    assert not table["passed"].any()
    summary = summarize_representation(table, n_boot=200)
    assert (summary["pass_fraction"] == 0.0).all() and (summary["p_value"] == 1.0).all()


def test_permuted_observer_recognition_at_chance(lite0, photos):
    chosen = photos.select(["coffee", "china", "flower", "grace_hopper", "camera"])
    refs = torch.stack([chosen.load(s, lite0.input_shape) for s in chosen])
    targets = {s.id: s.target for s in chosen}
    results = [
        MetamerResult(s.id, (lite0.name,), ("blocks.3",), r, r, np.zeros(1))
        for s, r in zip(chosen, refs, strict=True)
    ]
    control = permuted_weights(lite0, seed=0)
    assert control.fingerprint() != lite0.fingerprint()
    table = recognition_table(results, [lite0, control], targets=targets, labels=NATIVE)
    by_observer = table.groupby("observer")["correct_vs_label"].mean()
    assert by_observer[lite0.name] == 1.0
    assert by_observer[control.name] == 0.0


def test_transfer_tables_and_heatmaps(tiny, references, tiny_null, tmp_path):
    ids, refs = references
    noisy = (refs + 0.02 * torch.randn_like(refs)).clamp(0, 1)
    results = _results(ids, noisy, refs, "relu2") + _results(ids, refs.roll(1, 0), refs, "conv1")
    observer = make_tiny_model(seed=3, name="tiny")
    out = evaluate_transfer(
        results, [observer], generators={"tiny": tiny}, nulls={"tiny": tiny_null}, n_boot=100
    )
    matrix = transfer_matrix(out.representation_summary, "pass_fraction", columns="observer_layer")
    assert list(matrix.index) == ["tiny / relu2", "tiny / conv1"]
    assert (matrix.loc["tiny / relu2"] > 0.5).all() and (matrix.loc["tiny / conv1"] == 0.0).all()
    assert set(out.recognition_summary["observer"]) == {"tiny"}
    written = out.save(tmp_path)
    assert {p.name for p in written} >= {"recognition.parquet", "representation_summary.csv"}
    recognition_heatmap(out.recognition_summary).savefig(tmp_path / "r.png")
    representation_heatmap(out.representation_summary, "tiny").savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_bootstrap_ci_covers_mean():
    stats = bootstrap_mean(np.array([1, 0, 1, 1, np.nan, 0, 1, 1]), n_boot=500, seed=1)
    assert stats["n"] == 7 and stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
