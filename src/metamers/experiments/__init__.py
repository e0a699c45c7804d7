"""Human recognition experiments: bundles, a served jsPsych experiment, export and analysis.

``build_bundle`` turns accepted metamers (or a stimulus folder) into a bundle of
opaquely named stimuli and a counterbalanced design; ``create_app`` serves it
(FastAPI, SQLAlchemy: SQLite or PostgreSQL); ``export_tables`` writes the
trial and participant tables; ``analyze`` applies the exclusions and measures
human recognition per (model, layer) against other models' recognition.
See docs/experiments.md.
"""

from __future__ import annotations

from metamers.experiments.analysis import HumanAnalysis, analyze
from metamers.experiments.bundle import build_bundle, load_manifest
from metamers.experiments.config import TASKS, ExperimentConfig, load_config, parse_config
from metamers.experiments.export import export_tables

__all__ = [
    "TASKS",
    "ExperimentConfig",
    "HumanAnalysis",
    "analyze",
    "build_bundle",
    "create_app",
    "export_tables",
    "load_config",
    "load_manifest",
    "parse_config",
]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI loads only when a server is made
        from metamers.experiments.server import create_app

        return create_app
    raise AttributeError(name)
