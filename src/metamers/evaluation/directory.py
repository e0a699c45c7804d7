"""Evaluating a ``metamers generate`` output folder across observer models.

Reads the stored metamers, keeps the accepted ones (validating them first if
``validation.parquet`` is missing), runs recognisability and, optionally, the
representation test on each observer, and writes tables and heat maps under
``DIR/evaluation/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from metamers.decisions import LabelSpace
from metamers.errors import ConfigError
from metamers.evaluation.transfer import (
    TransferResults,
    evaluate_transfer,
    recognition_heatmap,
    representation_heatmap,
)
from metamers.io import atomic_path, path_name, write_table
from metamers.models import PixelModel, load_model
from metamers.null.criterion import DEFAULT_NULL_PAIRS, NullCriterion
from metamers.stimuli import Target
from metamers.synthesis.jobs import LayerJob
from metamers.synthesis.results import MetamerResult
from metamers.validation import (
    accepted_mask,
    check_validation,
    null_provider,
    validate_results,
)

VALIDATION_FILE = "validation.parquet"

EVALUATION_FOLDER = "evaluation"


def accepted_results(
    out_dir: Path,
    results: list[MetamerResult],
    *,
    null_stimuli: str | None,
    n_pairs: int | None,
    seed: int,
    models: Callable[[str], PixelModel] | None = None,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
) -> list[MetamerResult]:
    """The metamers accepted by their generators, from ``validation.parquet`` or a fresh validation.

    A stored validation is used only when it describes exactly these metamers
    and was made with the same label space and criterion (and null size, when
    ``n_pairs`` is given): :func:`metamers.validation.check_validation` refuses
    it otherwise, with the command that redoes it. Without a stored validation
    one is made (with ``n_pairs`` or :data:`metamers.null.DEFAULT_NULL_PAIRS` pairs) and written.

    Parameters
    ----------
    out_dir
        The generate folder.
    results
        Its metamers (``load_results(out_dir)``).
    null_stimuli, n_pairs, seed
        The null of a fresh validation.
    models
        ``load(name) -> PixelModel`` for the generators.
    labels, criterion
        The acceptance settings (defaults as in :func:`metamers.validation.accept`).
    """
    path = out_dir / VALIDATION_FILE
    if path.exists():
        table = pd.read_parquet(path)
        check_validation(
            table,
            results,
            labels=labels,
            criterion=criterion,
            n_pairs=n_pairs,
            models=models,
            source=str(path),
        )
    else:
        pairs = n_pairs if n_pairs is not None else DEFAULT_NULL_PAIRS
        nulls = null_provider(null_stimuli, pairs, seed=seed)
        table = validate_results(results, nulls, models=models, labels=labels, criterion=criterion)
        write_table(table, path.with_suffix(""))
    mask = accepted_mask(table, len(results))
    return [r for r, ok in zip(results, mask, strict=True) if ok]


_UNRECORDED_LABEL_SPACES = {"bundled:photos": "imagenet", "bundled:mnist": "mnist"}
"""Label spaces of records written before the label space was recorded with the target.

Then only the built-in sets and class folders (``"folders"``, alphabetical
positions) gave targets.
"""


def stimulus_targets(results: Sequence[MetamerResult]) -> dict[str, Target | None]:
    """True label of each reference and its label space, as recorded at generation time.

    Parameters
    ----------
    results
        The metamers of a generate folder; each records its stimulus settings
        (``record.json``: ``stimulus.target`` and ``stimulus.label_space``).

    Returns
    -------
    dict
        ``{stimulus_id: Target(index, label_space)}``; ``None`` where no target
        was recorded. Records without a label space (older folders) get
        the built-in set's, or ``"folders"`` for other sets.
    """
    targets: dict[str, Target | None] = {}
    for result in results:
        stimulus = result.settings.get("stimulus", {})
        target = stimulus.get("target")
        if target is None:
            targets[result.stimulus_id] = None
            continue
        if "label_space" in stimulus:
            space = stimulus["label_space"]
        else:
            spec = str(stimulus.get("set", ""))
            space = _UNRECORDED_LABEL_SPACES.get(
                spec, None if spec.startswith("bundled:") else "folders"
            )
        targets[result.stimulus_id] = Target(int(target), space)
    return targets


def evaluate_directory(
    out_dir: str | Path,
    observers: Sequence[str | PixelModel],
    *,
    models: Callable[[str], PixelModel] | None = None,
    representation_test: bool = False,
    observer_layers: dict[str, Sequence[str]] | None = None,
    null_stimuli: str | None = None,
    n_pairs: int | None = None,
    accepted_only: bool = True,
    labels: LabelSpace | None = None,
    criterion: NullCriterion | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> TransferResults:
    """Evaluate every (accepted) metamer of a generate folder on observer models.

    Parameters
    ----------
    out_dir
        A ``metamers generate`` output folder.
    observers
        Observer models (names or loaded models). Generators may be included;
        a generator given loaded is used as it is (e.g. one with its own
        weights), one not given is loaded by name with ``models``.
    models
        Loads a model by name (observers given by name, generators not among
        the observers); default :func:`~metamers.models.load_model` with its
        default weights.
    representation_test
        Also run the representation test against each observer's null.
    observer_layers
        Observer layers per observer name; default: the generation layers that
        the observer also has.
    null_stimuli, n_pairs
        Natural stimuli (default by modality, see
        :func:`~metamers.validation.null_provider`) and number of pairs of every
        null (validation and representation test). ``n_pairs=None``: the size of the stored
        validation's null, else :data:`metamers.null.DEFAULT_NULL_PAIRS`.
    accepted_only
        Evaluate only metamers that pass their generator's acceptance test. A
        stored ``validation.parquet`` made under other settings is refused.
    labels
        Label space of acceptance and recognition (default ``LabelSpace()``:
        16-way for ImageNet models, as published).
    criterion
        How similarities meet a null, in acceptance and the representation
        test (default ``NullCriterion()``: ``> max``).
    n_boot, seed
        Bootstrap size and seed (also the null seed).

    Returns
    -------
    TransferResults
        Also written to ``out_dir/evaluation/`` with heat maps.

    Raises
    ------
    ConfigError
        No (accepted) metamers, or a generating model whose weights differ from
        the ones recorded with its metamers.
    """
    from metamers.synthesis import load_results

    out = Path(out_dir)
    results = load_results(out)
    if not results:
        raise ConfigError(f"{out} holds no finished metamers; run `metamers generate` first")
    cache = {o.name: o for o in observers if isinstance(o, PixelModel)}
    load = models or load_model

    def get_model(name: str) -> PixelModel:
        if name not in cache:
            cache[name] = load(name)
        return cache[name]

    models = [get_model(o) if isinstance(o, str) else o for o in observers]
    if accepted_only:
        results = accepted_results(
            out,
            results,
            null_stimuli=null_stimuli,
            n_pairs=n_pairs,
            seed=seed,
            models=get_model,
            labels=labels,
            criterion=criterion,
        )
        if not results:
            raise ConfigError(f"no metamer in {out} is accepted; nothing to evaluate")
    layers = _observer_layers(results, models, observer_layers)
    nulls = None
    if representation_test:
        pairs = n_pairs or _stored_null_pairs(out) or DEFAULT_NULL_PAIRS
        get_null = null_provider(null_stimuli, pairs, seed=seed)
        nulls = {m.name: get_null(m, layers[m.name]) for m in models}
    generators = {name: get_model(name) for r in results if len(r.models) == 1 for name in r.models}
    evaluation = evaluate_transfer(
        results,
        models,
        generators=generators,
        targets=stimulus_targets(results),
        nulls=nulls,
        observer_layers=layers,
        labels=labels,
        criterion=criterion,
        n_boot=n_boot,
        seed=seed,
    )
    save_evaluation(evaluation, out / EVALUATION_FOLDER)
    return evaluation


def _stored_null_pairs(out: Path) -> int | None:
    """The null size of the folder's stored validation, if there is one."""
    path = out / VALIDATION_FILE
    if not path.exists():
        return None
    sizes = pd.read_parquet(path, columns=["null_pairs"])["null_pairs"].unique()
    return int(sizes.max()) if len(sizes) else None


def _observer_layers(
    results: Sequence[MetamerResult],
    observers: Sequence[PixelModel],
    given: dict[str, Sequence[str]] | None,
) -> dict[str, list[str]]:
    generation_layers = list(
        dict.fromkeys(
            layer
            for r in results
            for layers in LayerJob.from_record(r.layers).layers
            for layer in layers
        )
    )
    layers = {}
    for observer in observers:
        if given and observer.name in given:
            layers[observer.name] = observer.check_layers(given[observer.name])
            continue
        shared = [layer for layer in generation_layers if layer in observer.layer_names()]
        if not shared:
            raise ConfigError(
                f"observer {observer.name} has none of the generation layers {generation_layers}; "
                "name its layers with --observer-layers"
            )
        layers[observer.name] = shared
    return layers


def save_evaluation(evaluation: TransferResults, folder: Path) -> list[Path]:
    """Write the tables and heat maps of an evaluation to ``folder``.

    Writes the tables (:meth:`TransferResults.save`), ``recognisability.png`` and
    one ``representation_OBSERVER.png`` per observer with a representation test.

    Parameters
    ----------
    evaluation
        The evaluation to write.
    folder
        The destination folder (created if missing).

    Returns
    -------
    list of Path
        Every file written.
    """
    written = evaluation.save(folder)
    figures = {}
    if not evaluation.recognition_summary.empty:
        figures["recognisability.png"] = recognition_heatmap(evaluation.recognition_summary)
    summary = evaluation.representation_summary
    for observer in summary["observer"].unique() if not summary.empty else []:
        file_name = f"representation_{path_name(str(observer))}.png"
        figures[file_name] = representation_heatmap(summary, observer)
    for name, figure in figures.items():
        with atomic_path(folder / name) as tmp:
            figure.savefig(tmp, format="png", dpi=120)
        written.append(folder / name)
    return written
