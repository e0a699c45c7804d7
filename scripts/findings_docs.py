"""Tables and figures of docs/findings.md, from the findings studies' report tables.

    metamers run examples/findings.yaml            # writes metamers-studies/findings
    metamers run examples/findings_imagenet.yaml   # writes metamers-studies/findings-imagenet
    python scripts/findings_docs.py                # figures into docs/images, tables to stdout

Every number in docs/findings.md is printed by this script from the tables
the report wrote (``STUDY/report/tables/findings_*.parquet``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from metamers.report.findings import contrast_figure, depth_figure
from metamers.report.page import figure_png

ROOT = Path(__file__).resolve().parents[1]


def _ci(mean: float, low: float, high: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _cis(frame: pd.DataFrame, mean: str, low: str, high: str, digits: int = 2) -> list[str]:
    """``mean [low, high]`` for each row of three columns of ``frame``."""
    return [_ci(m, lo, hi, digits) for m, lo, hi in zip(frame[mean], frame[low], frame[high])]


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def depth_markdown(depth: pd.DataFrame) -> str:
    """Question 1's table: recognisability and acceptance per generator and depth."""
    rows = depth.assign(
        recognisability=[
            _ci(m, lo, hi)
            for m, lo, hi in zip(depth["recognisability"], depth["ci_low"], depth["ci_high"])
        ],
        accepted=[
            f"{k:.0%} of {n}" if n else "—"
            for k, n in zip(depth["accepted_fraction"], depth["accepted_n"])
        ],
    )
    table = rows.pivot_table(
        index=["generator", "training", "kind"],
        columns="depth",
        values=["recognisability", "accepted"],
        aggfunc="first",
        sort=False,
    )
    order = [d for d in ("early", "middle", "late") if d in set(depth["depth"])]
    out = pd.DataFrame(index=table.index)
    for d in order:
        out[f"{d}: recognisability [95% CI]"] = table[("recognisability", d)]
        out[f"{d}: accepted"] = table[("accepted", d)]
    return _markdown(out.reset_index())


def contrast_markdown(contrasts: pd.DataFrame, question: str) -> str:
    """One question's contrasts: both sides, the difference with its CI, n and p."""
    rows = contrasts[contrasts["question"].astype(str) == question]
    table = pd.DataFrame(
        {
            "contrast": rows["contrast"],
            "a": rows["a"].round(2),
            "b": rows["b"].round(2),
            "a − b [95% CI]": _cis(rows, "diff", "ci_low", "ci_high"),
            "n (a, b)": [f"{a}, {b}" for a, b in zip(rows["n_a"], rows["n_b"])],
            "p": rows["p"].round(3),
        }
    )
    return _markdown(table)


def conditions_markdown(conditions: pd.DataFrame) -> str:
    """Question 6's table."""
    table = pd.DataFrame(
        {
            "generator": conditions["generator"],
            "depth": conditions["depth"],
            "accepted [95% CI]": _cis(
                conditions, "accepted_fraction", "accepted_ci_low", "accepted_ci_high"
            ),
            "steps to SNR criterion, median [95% CI]": _cis(
                conditions, "steps_median", "steps_ci_low", "steps_ci_high", 0
            ),
            "recognisability [95% CI]": _cis(conditions, "recognisability", "ci_low", "ci_high"),
            "pull (class: share)": [
                f"{c}: {s:.2f}" if pd.notna(s) else "—"
                for c, s in zip(conditions["pull_class"], conditions["pull_share"])
            ],
        }
    )
    return _markdown(table)


def measures_markdown(measures: pd.DataFrame) -> str:
    """Question 5's table: each contrast by both measures."""
    table = pd.DataFrame(
        {
            "Q": measures["question"],
            "contrast": measures["contrast"],
            "recognisability: diff [CI], z": [
                f"{_ci(d, lo, hi)}, {z:.1f}" if pd.notna(z) else _ci(d, lo, hi)
                for d, lo, hi, z in zip(
                    measures["rec_diff"],
                    measures["rec_ci_low"],
                    measures["rec_ci_high"],
                    measures["rec_z"],
                )
            ],
            "representation test: diff [CI], z": [
                f"{_ci(d, lo, hi)}, {z:.1f}" if pd.notna(z) else _ci(d, lo, hi)
                for d, lo, hi, z in zip(
                    measures["rep_diff"],
                    measures["rep_ci_low"],
                    measures["rep_ci_high"],
                    measures["rep_z"],
                )
            ],
            "sharper": measures["sharper"],
        }
    )
    return _markdown(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="metamers-studies/findings")
    parser.add_argument("--imagenet", default="metamers-studies/findings-imagenet")
    parser.add_argument("--images", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    images = Path(args.images)
    for name, folder in (("findings", args.mnist), ("findings_imagenet", args.imagenet)):
        tables = Path(folder) / "report" / "tables"
        if not (tables / "findings_depth.parquet").is_file():
            print(f"<!-- {folder}: no findings tables (run the study first) -->")
            continue
        read = {
            t: pd.read_parquet(tables / f"findings_{t}.parquet")
            for t in ("depth", "contrasts", "conditions", "measures")
            if (tables / f"findings_{t}.parquet").is_file()
        }
        (images / f"{name}_depth.png").write_bytes(figure_png(depth_figure(read["depth"]), dpi=110))
        if name == "findings":  # the ImageNet part has one contrast
            (images / f"{name}_contrasts.png").write_bytes(
                figure_png(contrast_figure(read["contrasts"]), dpi=110)
            )
        print(f"\n## {name}: question 1 (depth)\n\n{depth_markdown(read['depth'])}")
        for question in ("1", "2", "3", "4", "6"):
            if question in set(read["contrasts"]["question"].astype(str)):
                print(f"\n### {name}: contrasts of question {question}\n")
                print(contrast_markdown(read["contrasts"], question))
        if "conditions" in read:
            print(f"\n## {name}: question 6\n\n{conditions_markdown(read['conditions'])}")
        if "measures" in read:
            print(f"\n## {name}: question 5\n\n{measures_markdown(read['measures'])}")


if __name__ == "__main__":
    main()
