"""The README tour computes each null once: `null`, `validate` and `--stop-accepted` agree on it.

The tour's commands are read from README.md and parsed by the CLI itself
(click contexts, defaults filled in, nothing run), so a changed default or a
changed tour line that would make `validate` compute a second null fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import typer

from metamers.cli.app import _register_commands, app
from metamers.defaults import NULL_STIMULI

README = Path(__file__).resolve().parent.parent / "README.md"
NULL_SETTINGS = ("pairs", "seed", "batch_size", "cache_dir")


def tour_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Five-minute tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("metamers "):
            commands.append(shlex.split(line)[1:])
    return commands


def parsed(args: list[str]) -> dict:
    _register_commands()
    group = typer.main.get_command(app)
    command = group.get_command(click.Context(group), args[0])
    with command.make_context(args[0], list(args[1:]), resilient_parsing=False) as context:
        return dict(context.params)


def test_the_tour_computes_the_generators_null_once():
    commands = {args[0]: args for args in tour_commands()}
    assert {"generate", "null", "validate", "evaluate"} <= set(commands)
    generate, null, validate = (parsed(commands[v]) for v in ("generate", "null", "validate"))
    # `null` precomputes exactly the null `validate` asks for: same model and layers as the
    # metamers, same natural stimuli, same size, seed and sampling -> one cache entry.
    assert null["model"] == generate["models"]
    assert null["layers"] == generate["layers"]
    # validate's default pool follows the model's modality: photos for the tour's image model
    assert null["stimuli"] == (validate["null_stimuli"] or NULL_STIMULI["image"])
    for name in NULL_SETTINGS:
        assert null[name] == validate[name], name
    # a metamer stopped "at acceptance" is judged against the same-size null as validate's
    assert generate["null_pairs"] == validate["pairs"]
    # evaluate reads the stored validation (no --pairs given: it uses the stored null size)
    evaluate = parsed(commands["evaluate"])
    assert evaluate["pairs"] is None


def test_every_tour_command_parses():
    for args in tour_commands():
        parsed(args)
