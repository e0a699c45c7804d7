"""Reports: figures as functions of data, and a self-contained HTML page per study."""

from metamers.report.page import Section, figure_png, render_page, write_page, write_tables
from metamers.report.study import build_report

__all__ = ["Section", "build_report", "figure_png", "render_page", "write_page", "write_tables"]
