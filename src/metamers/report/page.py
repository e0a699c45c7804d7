"""A self-contained HTML page: sections of text, tables and base64-embedded PNG figures.

Internal module: use it through metamers.report (``build_report``); not part of the public API.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from metamers.io import atomic_path, write_table
from metamers.report.sounds import Sound

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
.sounds { display: flex; flex-wrap: wrap; gap: 0.8em; }
.sound { margin: 0; font-size: 0.8em; } .sound img { width: 300px; margin: 0.2em 0; }
.note { color: #666; font-size: 0.9em; }
"""


@dataclass
class Section:
    """One titled section of the page."""

    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    """Table column → prefix: that column's values are relative paths, shown as links
    to ``prefix + value`` (e.g. ``{"folder": "../"}`` from ``STUDY/report``)."""
    sounds: list[list[Sound]] = field(default_factory=list)
    """Rows of sounds (e.g. a reference, then its metamers), each played by an
    ``<audio>`` element with its WAV embedded and its cochleagram under it."""


def figure_png(fig: Figure, *, dpi: int = 90) -> bytes:
    """Render a figure to PNG bytes and close it.

    Parameters
    ----------
    fig
        The figure; closed afterwards (with pyplot), so it cannot be reused.
    dpi
        Resolution of the PNG in dots per inch.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def render_page(title: str, sections: list[Section], *, subtitle: str = "") -> str:
    """The HTML text of a page with every figure embedded as a base64 PNG.

    Parameters
    ----------
    title
        The page title and top heading (HTML-escaped).
    sections
        The sections in order; their figures are rendered (and closed) with
        :func:`figure_png`.
    subtitle
        A note under the title; empty for none.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="note">{html.escape(subtitle)}</p>')
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for table in section.tables:
            if section.links.keys() & set(table.columns):
                parts.append(_linked_table(table, section.links))
            else:
                parts.append(
                    table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
                )
        parts += [_sound_row(row) for row in section.sounds]
        for fig in section.figures:
            encoded = base64.b64encode(figure_png(fig)).decode()
            parts.append(
                f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
            )
        for note in section.notes:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _sound_row(row: list[Sound]) -> str:
    """A row of ``<figure>``s, each a caption, an ``<audio>`` player and a picture."""
    cells = []
    for item in row:
        audio = base64.b64encode(item.wav).decode()
        cell = [
            f'<figure class="sound"><figcaption>{html.escape(item.caption)}</figcaption>',
            f'<audio controls preload="auto" data-seconds="{item.seconds:.3f}" '
            f'src="data:audio/wav;base64,{audio}"></audio>',
        ]
        if item.picture is not None:
            picture = base64.b64encode(figure_png(item.picture)).decode()
            cell.append(
                f'<img alt="cochleagram: {html.escape(item.caption)}" '
                f'src="data:image/png;base64,{picture}">'
            )
        cells.append("".join(cell) + "</figure>")
    return '<div class="sounds">' + "".join(cells) + "</div>"


def _linked_table(table: pd.DataFrame, links: dict[str, str]) -> str:
    """A table whose ``links`` columns are ``<a href>`` links (every cell HTML-escaped)."""

    def cell(column: str, value) -> str:
        if pd.isna(value) or value == "":
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        text = html.escape(str(value))
        if column in links:
            return f'<a href="{html.escape(links[column] + str(value))}">{text}</a>'
        return text

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = [
        "<tr>" + "".join(f"<td>{cell(c, v)}</td>" for c, v in zip(table.columns, row)) + "</tr>"
        for row in table.itertuples(index=False)
    ]
    return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def write_page(
    path: str | Path, title: str, sections: list[Section], *, subtitle: str = ""
) -> Path:
    """Render and write the page atomically.

    Parameters
    ----------
    path
        The ``.html`` file to write (parents are created).
    title, sections, subtitle
        As in :func:`render_page`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_page(title, sections, subtitle=subtitle), encoding="utf-8")
    return path


def write_tables(folder: str | Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Write each table as ``NAME.parquet`` and ``NAME.csv`` (atomically); return the paths.

    Columns holding arrays or tensors (images) are left out of the files.

    Parameters
    ----------
    folder
        The folder written into (created if missing).
    tables
        ``{NAME: table}``.
    """
    folder = Path(folder)
    written = []
    for name, table in tables.items():
        written += write_table(_plain_columns(table), folder / name)
    return written


def _plain_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Drop columns holding tensors/arrays (images), which belong in figures, not tables."""
    keep = [
        c
        for c in table.columns
        if not table[c].map(lambda v: hasattr(v, "shape") and getattr(v, "ndim", 0) > 0).any()
    ]
    return table[keep].reset_index(drop=True)
