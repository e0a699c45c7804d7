"""Labels files: a CSV of stimulus → label that sets the labels of any stimulus set.

Two layouts are read:

``stimulus,label`` (the header is optional)
    ``label`` is an ImageNet WordNet id (``n07920052``), an ImageNet class
    name (any synonym of timm's descriptions, case-insensitive: ``espresso``)
    or an integer ImageNet-1k index (``967``); the set's label space is then
    ``imagenet``. An optional ``label_space`` column (one value for every row,
    e.g. ``mnist``) declares integer labels in that model label space instead.
ImageNet's ``LOC_val_solution.csv`` (``ImageId,PredictionString``)
    The label is the WordNet id that starts ``PredictionString``
    (``n01751748 111 3 486 420``).

``stimulus`` names a stimulus by its id (``n07920052/ILSVRC2012_val_00000001``
in a class folder, ``coffee`` in ``bundled:photos``), by its file name or by its
file stem (``ILSVRC2012_val_00000001``, as ``LOC_val_solution.csv`` does).
Rows naming no stimulus of the set are ignored (one file can label many
subsets); a stimulus without a row, or a label that names no class, is an
error naming the stimuli.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from metamers.errors import StimulusError

IMAGENET = "imagenet"
"""The label space of WordNet ids, ImageNet class names and plain integer labels."""

_KEY_COLUMNS = ("stimulus", "stimulus_id", "id", "file", "filename", "image", "imageid", "path")
_LABEL_COLUMNS = ("label", "class", "target", "wnid", "predictionstring")
_SPACE_COLUMN = "label_space"


class _Named(Protocol):
    id: str
    source: str


def file_labels(stimuli: Sequence[_Named], path: str | Path) -> tuple[str, list[tuple[int, str]]]:
    """The label space of a labels file and each stimulus's ``(target, label)`` in it.

    :func:`metamers.stimuli.sets.apply_labels` applies them to a set.

    Parameters
    ----------
    stimuli
        The stimuli to label (anything with an ``id`` and a ``source``).
    path
        A labels file (see the module docs for its layouts).

    Returns
    -------
    tuple
        ``(label_space, [(target, label), ...])``, one pair per stimulus, in order:
        ``"imagenet"`` (unless the file declares another), ImageNet indices and
        class names.

    Raises
    ------
    StimulusError
        The file is missing or unreadable, a stimulus has no row, or a label
        names no class of the label space (the message names the stimuli).
    """
    rows, space = read_labels_file(path)
    lookup = _lookup(rows)
    labelled: list[tuple[int, str]] = []
    missing: list[str] = []
    unmapped: list[str] = []
    for stimulus in stimuli:
        raw = _row_of(stimulus, lookup)
        if raw is None:
            missing.append(stimulus.id)
            continue
        try:
            labelled.append(_parse_label(raw, space))
        except ValueError as exc:
            unmapped.append(f"{stimulus.id} ({exc})")
    if missing:
        raise StimulusError(
            f"labels file {path} has no row for {len(missing)} of {len(stimuli)} stimuli: "
            f"{_few(missing)} (rows name a stimulus id, file name or file stem)"
        )
    if unmapped:
        raise StimulusError(
            f"labels file {path}: {len(unmapped)} label(s) name no {space} class: {_few(unmapped)}"
        )
    return space, labelled


def read_labels_file(path: str | Path) -> tuple[dict[str, str], str]:
    """The rows of a labels file, ``({stimulus key: raw label}, label space)``.

    Keys and labels are as written, except that a label that starts with a
    WordNet id (a ``LOC_val_solution.csv`` prediction string) is cut to it.

    Parameters
    ----------
    path
        A labels file (see the module docs).

    Raises
    ------
    StimulusError
        The file is missing or unreadable, a row has fewer than two columns, one
        stimulus has two different labels, or rows declare different label spaces.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise StimulusError(f"cannot read labels file {path}: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    delimiter = "\t" if lines and "\t" in lines[0] and "," not in lines[0] else ","
    table = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    if not table:
        raise StimulusError(f"labels file {path} is empty")
    label_at, space_at, first = 1, None, 1
    header = [cell.casefold() for cell in table[0]]
    if header[0] in _KEY_COLUMNS:
        label_at = next((i for i, c in enumerate(header) if c in _LABEL_COLUMNS), 1)
        space_at = header.index(_SPACE_COLUMN) if _SPACE_COLUMN in header else None
        table, first = table[1:], 2
    rows: dict[str, str] = {}
    spaces: set[str] = set()
    for number, row in enumerate(table, start=first):
        if len(row) <= label_at:
            raise StimulusError(f"labels file {path}, row {number}: expected stimulus,label")
        key, label = row[0], _first_wnid(row[label_at])
        if space_at is not None and len(row) > space_at and row[space_at]:
            spaces.add(row[space_at])
        if rows.get(key, label) != label:
            raise StimulusError(
                f"labels file {path}: {key} has two labels, {rows[key]} and {label}"
            )
        rows[key] = label
    if len(spaces) > 1:
        raise StimulusError(f"labels file {path} mixes label spaces {sorted(spaces)}")
    return rows, spaces.pop() if spaces else IMAGENET


def _first_wnid(label: str) -> str:
    from metamers.labels import WNID_PATTERN

    words = label.split()
    return words[0] if len(words) > 1 and WNID_PATTERN.fullmatch(words[0]) else label


def _lookup(rows: dict[str, str]) -> dict[str, str]:
    """Rows by key as written, and by key less its folder and file suffix (``a/b.JPEG`` → ``b``)."""
    short: dict[str, set[str]] = {}
    for key, label in rows.items():
        path = Path(key.replace("\\", "/"))
        for name in (str(path.with_suffix("")), path.stem):
            short.setdefault(name, set()).add(label)
    unique = {name: labels.pop() for name, labels in short.items() if len(labels) == 1}
    return unique | rows


def _row_of(stimulus: _Named, lookup: dict[str, str]) -> str | None:
    source = Path(stimulus.source)
    for key in (stimulus.id, source.name, source.stem, stimulus.id.rsplit("/", 1)[-1]):
        if key in lookup:
            return lookup[key]
    return None


def _parse_label(raw: str, space: str) -> tuple[int, str]:
    """``(target, label)`` of one raw label in ``space``; ``ValueError`` if it names no class."""
    text = raw.strip()
    if space != IMAGENET:
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a class index")
        return int(text), text
    from metamers.labels import imagenet_class_names, imagenet_index

    if text.isdigit():
        index: int | None = int(text) if int(text) < 1000 else None
    else:
        index = imagenet_index(text)  # ValueError for an ambiguous name
    if index is None:
        raise ValueError(f"{text!r} is no ImageNet-1k WordNet id, class name or index")
    return index, imagenet_class_names()[index]


def _few(items: list[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
