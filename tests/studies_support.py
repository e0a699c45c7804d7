"""Helpers for the study tests: a tiny model file and small study files."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_MODEL = '''
import os
import time
from collections import OrderedDict

import torch
from torch import nn

from metamers.models import PixelModel


class Pause(nn.Module):
    """Sleeps TINY_MODEL_DELAY seconds per forward (to make runs slow enough to kill)."""

    def forward(self, x):
        time.sleep(float(os.environ.get("TINY_MODEL_DELAY", "0")))
        return x


def build_model(pretrained=True, seed=0, width=8, name="tiny"):
    generator = torch.Generator().manual_seed(seed)
    net = nn.Sequential(OrderedDict(
        pause=Pause(),
        conv1=nn.Conv2d(3, width, 3, padding=1),
        relu1=nn.ReLU(),
        conv2=nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        fc=nn.Linear(2 * width, 10),
    ))
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return PixelModel(net, name=name, input_shape=(3, 32, 32))


def build_other(pretrained=True):
    return build_model(pretrained, seed=1, width=6, name="tiny_other")
'''


def write_tiny_model(folder: Path) -> Path:
    """Write the tiny model file into ``folder`` and return its path."""
    path = folder / "tiny_model.py"
    path.write_text(TINY_MODEL)
    return path


def tiny_study(folder: Path, *, name: str = "tiny", **sections) -> dict:
    """A small but complete study on the tiny models: every task kind, a few steps each.

    ``sections`` update the study's sections (``synthesis={"max_steps": 5}``).
    """
    model = write_tiny_model(folder)
    study = {
        "name": name,
        "seed": 0,
        "output": str(folder / "out"),
        "models": {
            "generators": [
                {
                    "name": f"file:{model}",
                    "label": "tiny_a",
                    "layers": ["conv1", "relu2"],
                    "trust_code": True,
                },
            ],
            "observers": [
                {
                    "name": f"file:{model}:build_other",
                    "label": "tiny_b",
                    "layers": ["relu1"],
                    "trust_code": True,
                },
            ],
        },
        "stimuli": {"spec": "bundled:photos", "limit": 3, "chunk": 2},
        "synthesis": {"preset": "fast", "max_steps": 20, "lr": 0.05},
        "null": {"enabled": True, "pairs": 40},
        "evaluation": {
            "features": True,
            "recognisability": True,
            "representation_test": True,
            "transfer": True,
            "similarity": ["cka"],
            "bootstraps": 50,
        },
        # the same threads under every executor make results bitwise identical
        "executor": {"cpus_per_task": 1},
    }
    for section, values in sections.items():
        study[section] = {**study.get(section, {}), **values}
    return study


def write_study(folder: Path, study: dict, filename: str = "study.yaml") -> Path:
    """Write a study mapping as YAML."""
    path = folder / filename
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
