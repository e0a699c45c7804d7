"""Report figures are functions of plain data; the page is one self-contained HTML file."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
import torch

from metamers.report import Section, render_page, write_tables
from metamers.report.figures import (
    heatmap_with_ci,
    loss_curves,
    metamer_grid,
    null_histograms,
    similarity_matrix,
    to_display,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(n):
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(3, 16, 16, generator=generator) for _ in range(n)]


def test_to_display_maps_range_and_channels():
    image = torch.tensor([[[-1.0, 0.0], [1.0, 3.0]]])  # (1, 2, 2) in [-1, 1]
    shown = to_display(image, (-1.0, 1.0))
    assert shown.shape == (2, 2)
    np.testing.assert_allclose(shown, [[0.0, 0.5], [1.0, 1.0]])
    assert to_display(torch.zeros(3, 4, 5)).shape == (4, 5, 3)


def test_metamer_grid_has_reference_plus_one_column_per_layer():
    references = dict(zip(["a", "b"], _images(2), strict=True))
    rows = [
        {"stimulus": s, "layer": layer, "image": img, "accepted": layer != "late"}
        for s in references
        for layer, img in zip(["early", "late"], _images(2), strict=True)
    ]
    fig = metamer_grid(references, pd.DataFrame(rows), title="tiny")
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["reference", "early", "late"]
    assert all(len(ax.images) == 1 for ax in fig.axes)
    # a rejected metamer is framed in red
    assert axes[0, 2].spines["top"].get_visible() and not axes[0, 1].spines["top"].get_visible()


def test_loss_curves_plot_median_per_layer_on_log_scale():
    steps = np.arange(1, 11)
    rows = [
        {"generator": "g", "layer": layer, "stimulus": s, "step": int(t), "loss": scale / t}
        for layer, scale in [("early", 1.0), ("late", 10.0)]
        for s in ["a", "b"]
        for t in steps
    ]
    fig = loss_curves(pd.DataFrame(rows))
    (axis,) = fig.axes
    assert axis.get_yscale() == "log"
    medians = [line for line in axis.lines if line.get_linewidth() == 2]
    assert [m.get_label() for m in medians] == ["early", "late"]
    np.testing.assert_allclose(medians[1].get_ydata(), 10.0 / steps)


def test_null_histograms_mark_null_max_and_metamers():
    rng = np.random.default_rng(0)
    null = pd.DataFrame(
        {
            "layer": np.repeat(["l1", "l2"], 100),
            "metric": "pearson",
            "value": rng.uniform(0, 0.5, 200),
        }
    )
    metamers = pd.DataFrame({"layer": ["l1", "l2"], "metric": "pearson", "value": [0.9, 0.95]})
    fig = null_histograms(null, metamers)
    assert len(fig.axes) == 2
    first = fig.axes[0]
    xs = sorted(line.get_xdata()[0] for line in first.lines)
    assert xs == pytest.approx([null.value[:100].max(), 0.9])
    assert first.get_title() == "l1 (n=100)"


def test_heatmap_annotates_value_and_ci():
    table = pd.DataFrame(
        {
            "generator": ["g/l1", "g/l1", "g/l2", "g/l2"],
            "observer": ["o1", "o2", "o1", "o2"],
            "value": [0.9, 0.8, 0.3, 0.2],
            "ci_low": [0.85, 0.7, 0.2, 0.1],
            "ci_high": [0.95, 0.9, 0.4, 0.3],
        }
    )
    fig = heatmap_with_ci(table, row="generator", column="observer", title="recognisability")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.90\n[0.85, 0.95]" in texts and len(texts) == 4
    counted = heatmap_with_ci(table.assign(n=[3, 6, 6, 0]), row="generator", column="observer")
    texts = [t.get_text() for t in counted.axes[0].texts]
    assert "0.90\n[0.85, 0.95]\nn=3" in texts and "0.80\n[0.70, 0.90]\nn=6" in texts


def test_heatmap_n_comes_from_the_named_column():
    table = pd.DataFrame(
        {"row": ["a"], "column": ["o"], "m_mean": [1.0], "m_lo": [1.0], "m_hi": [1.0], "m_n": [3]}
    )
    fig = heatmap_with_ci(
        table, row="row", column="column", value="m_mean", low="m_lo", high="m_hi", n="m_n"
    )
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.00\n[1.00, 1.00]\nn=3"]


def test_similarity_matrix_and_page_are_self_contained(tmp_path):
    matrix = pd.DataFrame(np.eye(3), index=list("abc"), columns=list("abc"))
    page = render_page(
        "Study <x>",
        [
            Section(
                "Matrices",
                figures=[similarity_matrix(matrix, title="CKA")],
                tables=[matrix.reset_index()],
            )
        ],
    )
    assert "Study &lt;x&gt;" in page
    assert "<script" not in page and 'src="http' not in page
    (encoded,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)
    written = write_tables(
        tmp_path,
        {"m": pd.DataFrame({"a": [1, 2], "image": [torch.zeros(2), torch.ones(2)]})},
    )
    assert sorted(p.name for p in written) == ["m.csv", "m.parquet"]
    assert list(pd.read_parquet(tmp_path / "m.parquet").columns) == ["a"]  # tensors left out
