"""Every heat-map cell and every table of the report says how many stimuli stand behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metamers.evaluation.recognition import summarize_recognition
from metamers.evaluation.representation import summarize_representation
from metamers.evaluation.transfer import recognition_heatmap, representation_heatmap
from metamers.report import render_page
from metamers.report.study import (
    acceptance_rates,
    null_summary,
    recognition_section,
    representation_section,
    with_counts,
)


def _recognition_items() -> pd.DataFrame:
    """g / l1 seen by o1 on three stimuli (all agree), by o2 on six (half agree)."""
    rows = [
        {"generator": "g", "layer": "l1", "observer": "o1", "stimulus_id": f"s{i}", "agree": 1.0}
        for i in range(3)
    ] + [
        {"generator": "g", "layer": "l1", "observer": "o2", "stimulus_id": f"s{i}", "agree": i % 2}
        for i in range(6)
    ]
    items = pd.DataFrame(rows)
    return items.assign(
        agrees_with_reference=items.pop("agree").astype(float),
        correct_vs_label=np.nan,
        correct_vs_generator=np.nan,
    )


def _representation_items() -> pd.DataFrame:
    rows = [
        {
            "generator": "g",
            "layer": "l1",
            "observer": "o1",
            "observer_layer": layer,
            "stimulus_id": f"s{i}",
            "passed": True,
            "null_pairs": 40,
            "p_value": 0.02,
        }
        for layer, count in [("a", 3), ("b", 5)]
        for i in range(count)
    ]
    return pd.DataFrame(rows)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_recognition_heat_maps_and_table_show_n():
    summary = summarize_recognition(_recognition_items(), n_boot=50)
    assert list(summary["agrees_with_reference_n"]) == [3, 6]
    assert "1.00\n[1.00, 1.00]\nn=3" in _texts(recognition_heatmap(summary))
    section = recognition_section(summary)
    (figure,) = section.figures  # only the measure with values is drawn
    texts = _texts(figure)
    assert "1.00\n[1.00, 1.00]\nn=3" in texts
    assert any(t.startswith("0.50\n") and t.endswith("\nn=6") for t in texts)
    (table,) = section.tables
    assert list(table.columns[:5]) == ["generator", "layer", "observer", "measure", "n"]
    assert list(table["n"]) == [3, 6]
    page = render_page("r", [section])
    assert "<th>n</th>" in page and "<td>6</td>" in page


def test_representation_heat_maps_and_table_show_n():
    summary = summarize_representation(_representation_items(), n_boot=50)
    assert list(summary["n"]) == [3, 5]
    assert _texts(representation_heatmap(summary, "o1")) == [
        "1.00\n[1.00, 1.00]\nn=3",
        "1.00\n[1.00, 1.00]\nn=5",
    ]
    section = representation_section(summary)
    assert sorted(_texts(section.figures[0])) == [
        "1.00\n[1.00, 1.00]\nn=3",
        "1.00\n[1.00, 1.00]\nn=5",
    ]
    (table,) = section.tables
    assert list(table["n"]) == [3, 5]
    assert "<th>n</th>" in render_page("r", [section])


def test_counts_a_summary_lacks_come_from_its_items():
    items = _recognition_items()
    old = summarize_recognition(items, n_boot=20).drop(
        columns=[c for c in summarize_recognition(items, n_boot=20) if c.endswith("_n")]
    )
    keys = ["generator", "layer", "observer"]
    filled = with_counts(old, items, keys, {"agrees_with_reference_n": "agrees_with_reference"})
    assert list(filled["agrees_with_reference_n"]) == [3, 6]
    assert "1.00\n[1.00, 1.00]\nn=3" in _texts(recognition_section(filled).figures[0])
    # a count the summary has is kept as it is
    assert (
        with_counts(
            filled.assign(agrees_with_reference_n=9),
            items,
            keys,
            {"agrees_with_reference_n": "agrees_with_reference"},
        )["agrees_with_reference_n"]
        .eq(9)
        .all()
    )


def test_acceptance_and_null_tables_have_n():
    acceptance = pd.DataFrame(
        {
            "model": "g",
            "generation_layer": ["l1"] * 3 + ["l2"] * 2,
            "accepted": [True, True, True, False, True],
            "label_match": True,
            "spearman_pass": True,
            "pearson_pass": True,
            "snr_db_pass": [True, True, True, False, True],
        }
    )
    rates = acceptance_rates(acceptance)
    assert list(rates.columns[:5]) == [
        "model",
        "generation_layer",
        "n",
        "accepted",
        "accepted_fraction",
    ]
    assert list(rates["n"]) == [3, 2] and list(rates["accepted_fraction"]) == [1.0, 0.5]
    null = pd.DataFrame(
        {"layer": "l1", "metric": ["pearson"] * 4, "value": [0.1, 0.2, np.nan, 0.4]}
    )
    assert null_summary(null)[["n", "max"]].values.tolist() == [[3, 0.4]]
