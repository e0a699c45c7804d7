"""Stimulus labels: ImageNet folders (WordNet ids, class names), labels files, label spaces.

A folder laid out as an ImageNet validation set (``n07920052/…``) is labelled
with ImageNet indices, so EfficientNet-Lite0 is scored correct on the bundled
photos it recognises; a labels file (``stimulus,label`` or ImageNet's
``LOC_val_solution.csv``) labels any set, in the CLI and in a study; a target
in another label space than the observer's is NaN with a warning, never
compared with an index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.decisions import LabelSpace
from metamers.errors import StimulusError
from metamers.evaluation.directory import evaluate_directory, stimulus_targets
from metamers.evaluation.recognition import recognition_table
from metamers.labels import imagenet_wnids
from metamers.stimuli import Target, apply_labels, resolve_stimuli
from metamers.stimuli.bundled import PHOTOS, load_packaged
from metamers.studies import load_study
from metamers.studies.planner import plan_study, reference_stimuli
from metamers.synthesis import generate_metamers, load_results
from metamers.synthesis.results import MetamerResult
from metamers.synthesis.settings import get_preset

NATIVE = LabelSpace("native")
ESPRESSO, TABBY, TRIPOD = 967, 281, 872


def save_photo(photo: str, path) -> None:
    """Write a bundled photo (``coffee``, ...) to ``path`` as an image file."""
    image = load_packaged(PHOTOS[photo][0])
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array.squeeze()).save(path)


def photo_folder(root, layout: dict[str, list[str]]):
    """``root/<class folder>/<photo>.png`` for each class folder and its bundled photos."""
    root.mkdir(parents=True, exist_ok=True)
    for folder, photos in layout.items():
        (root / folder).mkdir(parents=True)
        for photo in photos:
            save_photo(photo, root / folder / f"{photo}.png")
    return root


@pytest.fixture(scope="module")
def wnid_folder(tmp_path_factory):
    """An ImageNet-validation-style folder of bundled photos with known ImageNet classes."""
    wnids = imagenet_wnids()
    return photo_folder(
        tmp_path_factory.mktemp("imagenet_val"),
        {wnids[ESPRESSO]: ["coffee"], wnids[TABBY]: ["chelsea"], wnids[TRIPOD]: ["camera"]},
    )


def test_bundled_photos_know_their_imagenet_classes(photos):
    assert photos.label_space == "imagenet"
    assert {s.id: s.target for s in photos}["coffee"] == ESPRESSO == PHOTOS["coffee"][1]
    assert imagenet_wnids()[ESPRESSO] == "n07920052"


def test_wordnet_id_folders_are_imagenet_labels(wnid_folder):
    stimuli = resolve_stimuli(str(wnid_folder))
    assert stimuli.label_space == "imagenet"
    labels = {s.id.split("/")[1]: (s.target, s.label) for s in stimuli}
    # not the folders' alphabetical positions (0, 1, 2): their ImageNet indices
    assert labels == {
        "coffee": (ESPRESSO, "espresso"),
        "chelsea": (TABBY, "tabby"),
        "camera": (TRIPOD, "tripod"),
    }
    assert stimuli.targets()["n07920052/coffee"] == Target(ESPRESSO, "imagenet")


def test_class_name_folders_any_synonym_any_case(tmp_path):
    folder = photo_folder(
        tmp_path, {"Espresso": ["coffee"], "tabby_cat": ["chelsea"], "military uniform": []}
    )
    stimuli = resolve_stimuli(str(folder))
    assert stimuli.label_space == "imagenet"
    assert [(s.id, s.target, s.label) for s in stimuli] == [
        ("Espresso/coffee", ESPRESSO, "espresso"),
        ("tabby_cat/chelsea", TABBY, "tabby"),
    ]


def test_integer_folders_keep_their_numbers_and_other_names_their_positions(tmp_path):
    digits = photo_folder(tmp_path / "digits", {"3": ["coffee"], "7": ["camera"]})
    stimuli = resolve_stimuli(str(digits))
    assert stimuli.label_space == "folders" and [s.target for s in stimuli] == [3, 7]
    named = photo_folder(tmp_path / "named", {"faces": ["grace_hopper"], "scenes": ["china"]})
    stimuli = resolve_stimuli(str(named))
    assert stimuli.label_space == "folders" and [s.target for s in stimuli] == [0, 1]


def test_folders_that_only_partly_map_are_an_error_naming_the_rest(tmp_path):
    photo_folder(tmp_path, {"n07920052": ["coffee"], "holiday": ["china"], "extra": []})
    with pytest.raises(StimulusError, match=r"n07920052 name ImageNet classes but extra, holiday"):
        resolve_stimuli(str(tmp_path))
    # a labels file labels such a folder instead of its names
    (tmp_path / "labels.csv").write_text("stimulus,label\ncoffee,espresso\nchina,palace\n")
    stimuli = resolve_stimuli(str(tmp_path), labels=tmp_path / "labels.csv")
    assert [s.target for s in stimuli] == [698, ESPRESSO]  # holiday/china, n07920052/coffee


def test_an_ambiguous_class_name_asks_for_a_wordnet_id(tmp_path):
    photo_folder(tmp_path, {"crane": ["camera"]})
    with pytest.raises(StimulusError, match="ambiguous: use a WordNet id, n02012849"):
        resolve_stimuli(str(tmp_path))


def test_lite0_scores_wordnet_folder_photos_correct(lite0, wnid_folder):
    stimuli = resolve_stimuli(str(wnid_folder))
    results = [
        MetamerResult(s.id, (lite0.name,), ("blocks.1",), image, image, np.zeros(1))
        for s in stimuli
        for image in [stimuli.load(s, lite0.input_shape)]
    ]
    native = recognition_table(results, [lite0], targets=stimuli.targets(), labels=NATIVE)
    correct = dict(zip(native["stimulus_id"], native["correct_vs_label"], strict=True))
    # Lite0 calls the espresso espresso and the tripod a tripod; the tabby it calls an
    # Egyptian cat (wrong 1000-way) ...
    assert correct == {"n07920052/coffee": 1.0, "n04485082/camera": 1.0, "n02123045/chelsea": 0.0}
    # ... but a cat (right 16-way, where espresso and tripod belong to no category)
    sixteen = recognition_table(results, [lite0], targets=stimuli.targets(), labels=LabelSpace())
    correct = dict(zip(sixteen["stimulus_id"], sixteen["correct_vs_label"], strict=True))
    assert correct["n02123045/chelsea"] == 1.0
    assert np.isnan(correct["n07920052/coffee"]) and np.isnan(correct["n04485082/camera"])


def test_evaluate_scores_a_generated_wordnet_folder_correct(lite0, wnid_folder, tmp_path):
    stimuli = resolve_stimuli(str(wnid_folder)).select(["n07920052/coffee", "n04485082/camera"])
    # metamers that are the references plus faint noise: Lite0 must still know them
    settings = get_preset("fast", max_steps=0, init="reference_noise", init_snr_db=40.0)
    generate_metamers(lite0, ["blocks.1"], stimuli, tmp_path, settings, batch_size=2)
    records = [r.settings["stimulus"] for r in load_results(tmp_path)]
    assert {(r["target"], r["label_space"]) for r in records} == {
        (ESPRESSO, "imagenet"),
        (TRIPOD, "imagenet"),
    }
    evaluation = evaluate_directory(
        tmp_path, [lite0], accepted_only=False, labels=NATIVE, n_boot=10
    )
    assert evaluation.recognition["correct_vs_label"].tolist() == [1.0, 1.0]


def test_targets_in_another_label_space_are_nan_with_a_warning(lite0):
    image = torch.full((3, 32, 32), 0.5)
    results = [
        MetamerResult(i, (lite0.name,), ("blocks.1",), image, image, np.zeros(1))
        for i in ("a", "b", "c")
    ]
    targets = {"a": Target(0, "folders"), "b": Target(1, "folders"), "c": Target(ESPRESSO, None)}
    with pytest.warns(UserWarning) as caught:
        table = recognition_table(results, [lite0], targets=targets, labels=NATIVE)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "1 stimulus is labelled in a label space not recorded (c)" in messages[0]
    assert "2 stimuli are labelled in label space 'folders' (a, b)" in messages[1]
    assert table["correct_vs_label"].isna().all()


def test_records_without_a_label_space_are_read_as_before(lite0):
    def result(stimulus_id, stimulus):
        image = torch.zeros(3, 8, 8)
        return MetamerResult(
            stimulus_id, ("m",), ("l",), image, image, np.zeros(1), {"stimulus": stimulus}
        )

    results = [
        result("photo", {"target": ESPRESSO, "set": "bundled:photos"}),
        result("folder", {"target": 1, "set": "/data/classes"}),
        result("new", {"target": 3, "label_space": "mnist", "set": "/data/digits"}),
        result("none", {"target": None, "set": "/data/files"}),
    ]
    assert stimulus_targets(results) == {
        "photo": Target(ESPRESSO, "imagenet"),
        "folder": Target(1, "folders"),
        "new": Target(3, "mnist"),
        "none": None,
    }


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    """A flat ImageNet-validation folder and its ``LOC_val_solution.csv``."""
    root = tmp_path_factory.mktemp("val")
    (root / "images").mkdir()
    names = {"coffee": "ILSVRC2012_val_00000007", "camera": "ILSVRC2012_val_00000011"}
    for photo, name in names.items():
        save_photo(photo, root / "images" / f"{name}.png")
    (root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000011,n04485082 10 20 300 400 n04485082 5 5 90 90\n"
        "ILSVRC2012_val_00000003,n01751748 111 3 486 420\n"  # not in the folder: ignored
        "ILSVRC2012_val_00000007,n07920052 0 0 100 100\n"
    )
    return root


def test_loc_val_solution_labels_a_flat_folder(val_folder):
    plain = resolve_stimuli(str(val_folder / "images"))
    assert plain.label_space is None and all(s.target is None for s in plain)
    stimuli = apply_labels(plain, val_folder / "LOC_val_solution.csv")
    assert stimuli.label_space == "imagenet"
    assert [(s.id, s.target, s.label) for s in stimuli] == [
        ("ILSVRC2012_val_00000007", ESPRESSO, "espresso"),
        ("ILSVRC2012_val_00000011", TRIPOD, "tripod"),
    ]
    assert stimuli.fingerprint() != plain.fingerprint()


def test_plain_csv_takes_wordnet_ids_class_names_and_indices(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "stimulus,label\ncoffee,n02123045\nchelsea,Tabby Cat\nchina.jpg,967\n"
    )
    stimuli = resolve_stimuli(
        "bundled:photos", labels=tmp_path / "labels.csv", ids=["coffee", "chelsea", "china"]
    )
    assert [(s.target, s.label) for s in stimuli] == [
        (TABBY, "tabby"),
        (TABBY, "tabby"),
        (ESPRESSO, "espresso"),
    ]
    with pytest.raises(StimulusError, match="no row for 15 of 18 stimuli"):
        resolve_stimuli("bundled:photos", labels=tmp_path / "labels.csv")
    (tmp_path / "digits.csv").write_text("stimulus,label,label_space\na,3,mnist\nb,7,mnist\n")
    photo_folder(tmp_path / "flat", {})
    for name in ("a", "b"):
        save_photo("coffee", tmp_path / "flat" / f"{name}.png")
    digits = resolve_stimuli(str(tmp_path / "flat"), labels=tmp_path / "digits.csv")
    assert digits.label_space == "mnist" and [s.target for s in digits] == [3, 7]


def test_labels_file_problems_are_one_line_errors(tmp_path):
    folder = photo_folder(tmp_path / "flat", {})
    save_photo("coffee", folder / "a.png")
    save_photo("camera", folder / "b.png")
    problems = {
        "stimulus,label\na,espresso\n": "no row for 1 of 2 stimuli: b",
        "stimulus,label\na,espresso\nb,sofa bed\n": r"name no imagenet class: b \('sofa bed'",
        "stimulus,label\na,espresso\nb,1000\n": "1000",
        "a,espresso\na,tripod\nb,tripod\n": "a has two labels",
    }
    for text, message in problems.items():
        (tmp_path / "labels.csv").write_text(text)
        with pytest.raises(StimulusError, match=message):
            resolve_stimuli(str(folder), labels=tmp_path / "labels.csv")
    with pytest.raises(StimulusError, match="cannot read labels file"):
        resolve_stimuli(str(folder), labels=tmp_path / "missing.csv")


def test_classify_shows_the_labels_of_a_labels_file(val_folder):
    _register_commands()
    result = CliRunner().invoke(
        app,
        [
            "classify",
            "efficientnet_lite0",
            "--stimuli",
            str(val_folder / "images"),
            "--labels",
            str(val_folder / "LOC_val_solution.csv"),
            "--top",
            "1",
            "--device",
            "cpu",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "ILSVRC2012_val" in line]
    assert len(rows) == 2
    assert "espresso" in rows[0] and rows[0].count("espresso") == 2  # label and prediction
    assert rows[1].count("tripod") == 2


def test_cli_labels_error_is_one_line(tmp_path):
    (tmp_path / "labels.csv").write_text("stimulus,label\ncoffee,sofa bed\n")
    labels = ["--labels", str(tmp_path / "labels.csv")]
    _register_commands()
    result = CliRunner().invoke(
        app,
        ["classify", "efficientnet_lite0", "--stimuli", "bundled:photos", "--limit", "1", *labels],
    )
    assert isinstance(result.exception, StimulusError)  # `metamers` prints it as one line
    assert "'sofa bed' is no ImageNet-1k" in str(result.exception)


def write_study(folder, labels: str | None) -> object:
    stimuli = {"spec": "bundled:photos", "ids": ["coffee", "chelsea"], "chunk": 2}
    if labels is not None:
        stimuli["labels"] = labels
    study = {
        "name": "labels",
        "output": str(folder / "out"),
        "models": {
            "generators": [
                {"name": "efficientnet_lite0", "label": "lite0", "layers": ["blocks.1"]}
            ],
            "observers": [{"name": "efficientnet_lite0", "layers": ["blocks.1"]}],
        },
        "stimuli": stimuli,
        "synthesis": {"max_steps": 0, "init": "reference_noise", "init_snr_db": 40.0},
        "null": {"enabled": False},
        "validation": {"label_space": "native"},
        "evaluation": {
            "recognisability": True,
            "representation_test": False,
            "transfer": False,
            "features": False,
            "similarity": [],
            "bootstraps": 10,
        },
    }
    import yaml

    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return load_study(path)


def test_study_labels_are_relative_to_the_yaml_and_replan_tasks(tmp_path):
    (tmp_path / "labels.csv").write_text("stimulus,label\ncoffee,tabby\nchelsea,n07920052\n")
    study = write_study(tmp_path, "labels.csv")
    assert study.stimuli.labels == str(tmp_path / "labels.csv")
    stimuli = reference_stimuli(study)
    assert [(s.id, s.target) for s in stimuli] == [("coffee", TABBY), ("chelsea", ESPRESSO)]
    plan = plan_study(study)
    generate = plan.of_kind("generate")[0]
    assert generate.settings["stimuli"]["labels"] == str(tmp_path / "labels.csv")
    unlabelled = plan_study(write_study(tmp_path, None)).of_kind("generate")[0]
    assert "labels" not in unlabelled.settings["stimuli"] and unlabelled.key != generate.key
    (tmp_path / "labels.csv").write_text("stimulus,label\ncoffee,espresso\nchelsea,tabby\n")
    relabelled = plan_study(write_study(tmp_path, "labels.csv")).of_kind("generate")[0]
    assert relabelled.key != generate.key


@pytest.mark.slow
def test_a_study_run_uses_its_labels_file(tmp_path, monkeypatch):
    from metamers.studies import StudyStore, run_study

    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "labels.csv").write_text("stimulus,label\ncoffee,n07920052\nchelsea,tabby\n")
    study = write_study(tmp_path, "labels.csv")
    summary = run_study(study)  # generate and evaluate (the report needs a reporter)
    assert not summary.failed and len(summary.computed) == 2, summary
    with StudyStore(study.output_dir) as store:
        records = {r.kind: r for r in store.records()}
        stimulus = json.loads(
            next((store.task_dir(records["generate"])).rglob("record.json")).read_text()
        )["stimulus"]
        recognition = __import__("pandas").read_parquet(
            store.task_dir(records["evaluate"]) / "recognition.parquet"
        )
    assert stimulus["labels_file"] == str(tmp_path / "labels.csv")
    assert stimulus["label_space"] == "imagenet"
    correct = dict(zip(recognition["stimulus_id"], recognition["correct_vs_label"], strict=True))
    assert correct == {"coffee": 1.0, "chelsea": 0.0}  # espresso right; tabby called Egyptian cat
