"""Each participant's trial sequence, made on the server from the bundle's design.

Conditions are counterbalanced across participants in a Latin square: with
``C`` conditions there are ``C`` lists, and list ``k`` shows main item ``i``
in condition ``(i + k) mod C`` (over the conditions the item exists in), so
each participant sees every main item once and, over any ``C`` consecutive
participants, each item appears in every condition once. Participants are
given lists in rotation by their arrival number (:func:`list_for`). The order
of trials within a block is random per participant, from a seed the server
draws and stores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PHASES", "list_for", "n_lists", "public_trial", "timeline"]

PHASES = ("headphone", "practice", "screening", "main")
"""Blocks in their order; ``headphone`` only in audio experiments."""


def n_lists(manifest: dict[str, Any]) -> int:
    """How many Latin-square lists a bundle has (its number of conditions)."""
    return max(1, len(manifest["conditions"]))


def list_for(arrival: int, manifest: dict[str, Any]) -> int:
    """The list of the participant who arrived ``arrival``-th (from 1): a rotation.

    Parameters
    ----------
    arrival
        The participant's arrival number (the database row number).
    manifest
        The bundle manifest.
    """
    return (arrival - 1) % n_lists(manifest)


def timeline(manifest: dict[str, Any], list_index: int, seed: int) -> list[dict[str, Any]]:
    """Every trial one participant will do, in order.

    Parameters
    ----------
    manifest
        The bundle manifest.
    list_index
        The participant's Latin-square list.
    seed
        The participant's order seed.

    Returns
    -------
    list of dict
        Each trial: ``index``, ``phase``, ``stimulus`` (an opaque id),
        ``condition``, ``item``, ``answer``, ``catch`` and ``break_before``.
    """
    rng = np.random.default_rng(seed)
    stimuli = manifest["stimuli"]
    trials: list[dict[str, Any]] = []

    def add(phase: str, stimulus: str, catch: bool = False, answer: str | None = None) -> None:
        info = stimuli[stimulus]
        trials.append(
            {
                "index": len(trials),
                "phase": phase,
                "stimulus": stimulus,
                "condition": info.get("condition", phase),
                "item": info.get("item", ""),
                "answer": answer if answer is not None else info["label"],
                "catch": catch,
                "break_before": False,
            }
        )

    for check in manifest.get("headphone", []):
        add("headphone", check["stimulus"], answer=check["answer"])
    for stimulus in manifest["practice"]:
        add("practice", stimulus)
    for stimulus in _shuffled(manifest["screening"], rng):
        add("screening", stimulus)
    main = [
        (_assigned(entry, position, list_index, manifest), False)
        for position, entry in enumerate(manifest["items"])
    ]
    main += [(stimulus, True) for stimulus in manifest["catch"]]
    order = rng.permutation(len(main))
    first_main = len(trials)
    for k in order:
        stimulus, catch = main[int(k)]
        add("main", stimulus, catch=catch)
    _place_breaks(trials, first_main, manifest["config"]["breaks"])
    return trials


def _shuffled(values: list[str], rng: np.random.Generator) -> list[str]:
    return [values[int(k)] for k in rng.permutation(len(values))]


def _assigned(entry: dict[str, Any], position: int, list_index: int, manifest: dict) -> str:
    names = [c["name"] for c in manifest["conditions"] if c["name"] in entry["stimuli"]]
    condition = names[(position + list_index) % len(names)]
    return entry["stimuli"][condition]


def _place_breaks(trials: list[dict[str, Any]], first: int, breaks: int) -> None:
    n_main = len(trials) - first
    for k in range(1, breaks + 1):
        position = first + round(k * n_main / (breaks + 1))
        if first < position < len(trials):
            trials[position]["break_before"] = True


def public_trial(trial: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """What the browser may know of a trial: no answer, condition, item or catch flag.

    Parameters
    ----------
    trial
        A trial of :func:`timeline`.
    manifest
        The bundle manifest.
    """
    return {
        "index": trial["index"],
        "phase": trial["phase"],
        "stimulus": trial["stimulus"],
        "break_before": trial["break_before"],
    }
