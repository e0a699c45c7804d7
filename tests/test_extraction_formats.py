"""Issue 15: extraction files carry metadata; ``.npy`` folders and ``.mat`` files join.

Every format round-trips the model name, weights fingerprint, per-layer shape
before flattening and per-stimulus ids, labels and sources; the ``.npy`` and
``.mat`` outputs load with plain numpy/scipy and equal a direct forward; an
unsupported suffix is refused before any model is loaded.
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import scipy.io

from metamers.errors import MetamersError
from metamers.extraction import Extractor, check_features_path, read_features, save_features
from metamers.extraction.writers import matlab_names

LAYERS = ["conv1", "conv2"]
FORMATS = [".h5", ".npz", ".pt", ".npy", ".mat"]


@pytest.fixture(scope="module")
def stimuli():
    from metamers.stimuli import resolve_stimuli

    return resolve_stimuli("bundled:photos").limit(3)


@pytest.fixture(scope="module")
def model():
    from conftest import make_tiny_model

    return make_tiny_model()


@pytest.fixture(scope="module")
def direct(model, stimuli):
    return Extractor(model, batch_size=3).extract(stimuli, LAYERS, flatten=False)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("flatten", [True, False])
def test_metadata_round_trips(model, stimuli, direct, tmp_path, suffix, flatten):
    out = tmp_path / f"features{suffix}"
    save_features(Extractor(model, batch_size=2), stimuli, LAYERS, out, flatten=flatten)
    ids, arrays, meta = read_features(out, with_metadata=True)
    assert ids == stimuli.ids
    assert meta["model"] == model.name
    assert meta["weights_fingerprint"] == model.fingerprint()
    assert meta["flatten"] is flatten
    assert meta["stimuli"]["ids"] == stimuli.ids
    assert meta["stimuli"]["labels"] == [s.label for s in stimuli]
    assert meta["stimuli"]["targets"] == [s.target for s in stimuli]
    assert meta["stimuli"]["sources"] == [str(s.source) for s in stimuli]
    assert list(arrays) == LAYERS
    for layer in LAYERS:
        shape = list(direct[layer].shape[1:])
        assert meta["layers"][layer]["original_shape"] == shape
        expected = direct[layer].reshape(len(ids), -1) if flatten else direct[layer]
        np.testing.assert_allclose(arrays[layer], expected, atol=1e-5)
    assert read_features(out)[0] == ids  # the two-value form still works


def test_npy_folder_loads_with_numpy(model, stimuli, direct, tmp_path):
    out = tmp_path / "features.npy"
    save_features(Extractor(model), stimuli, LAYERS, out)
    assert out.is_dir()
    meta = json.loads((out / "metadata.json").read_text())
    for layer in LAYERS:
        array = np.load(out / meta["layers"][layer]["file"])
        np.testing.assert_allclose(array, direct[layer].reshape(3, -1), atol=1e-5)
    with open(out / "stimuli.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == stimuli.ids
    assert [r["label"] for r in rows] == [s.label or "" for s in stimuli]
    # writing again replaces the folder; nothing is left beside it
    save_features(Extractor(model), stimuli, ["conv1"], out)
    assert sorted(p.name for p in out.iterdir()) == ["conv1.npy", "metadata.json", "stimuli.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["features.npy"]


def test_npy_refuses_a_foreign_folder(model, stimuli, tmp_path):
    out = tmp_path / "mine.npy"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(MetamersError, match="folder of other files"):
        save_features(Extractor(model), stimuli, LAYERS, out)
    assert (out / "thesis.tex").exists()


def test_mat_loads_with_scipy(model, stimuli, direct, tmp_path):
    out = tmp_path / "features.mat"
    save_features(Extractor(model), stimuli, LAYERS, out)
    data = scipy.io.loadmat(out, squeeze_me=True)
    assert list(data["layer_names"]) == LAYERS
    assert list(data["layer_variables"]) == ["conv1", "conv2"]
    assert list(data["stimulus_ids"]) == stimuli.ids
    for layer in LAYERS:
        np.testing.assert_allclose(data[layer], direct[layer].reshape(3, -1), atol=1e-5)
    meta = json.loads(str(data["metadata_json"]))
    assert meta["layers"]["conv1"]["matlab_name"] == "conv1"


def test_matlab_names_are_safe_and_distinct():
    names = matlab_names(["blocks.1", "blocks_1", "1.x", "stimulus_ids", "a" * 80, "a" * 81])
    assert names["blocks.1"] == "blocks_1" and names["blocks_1"] == "blocks_1_2"
    assert names["1.x"] == "L_1_x" and names["stimulus_ids"] == "stimulus_ids_2"
    assert len(set(names.values())) == 6
    assert all(len(n) <= 63 and n[0].isalpha() for n in names.values())


@pytest.mark.parametrize("name", ["features.csv", "features", "features.NPZX"])
def test_bad_suffix_refused(name, tmp_path):
    with pytest.raises(MetamersError, match="unsupported output format"):
        check_features_path(tmp_path / name)


def test_cli_bad_suffix_fails_before_the_model_loads(tmp_path, monkeypatch, capsys):
    from metamers.cli import main
    from metamers.cli.app import _register_commands

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the suffix was checked")

    _register_commands()
    import metamers.cli.common
    import metamers.cli.models

    monkeypatch.setattr(metamers.cli.models, "open_model", refuse)
    monkeypatch.setattr(metamers.cli.common, "load_model", refuse)
    monkeypatch.setattr("metamers.models.registry.load_model", refuse)
    out = tmp_path / "features.csv"
    argv = ["metamers", "extract", "tiny", "--layers", "conv1", "--stimuli", "bundled:photos"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "unsupported output format" in err and ".mat" in err
    assert not out.exists()


def test_cli_extract_npy_and_mat(tmp_path):
    from typer.testing import CliRunner

    from metamers.cli.app import _register_commands, app

    _register_commands()
    for name in ("f.npy", "f.mat"):
        result = CliRunner().invoke(
            app,
            [
                "extract",
                "efficientnet_lite0",
                "--layers",
                "blocks.1",
                "--stimuli",
                "bundled:photos",
                "--limit",
                "2",
                "--out",
                str(tmp_path / name),
            ],
        )
        assert result.exit_code == 0, result.output
        _, arrays, meta = read_features(tmp_path / name, with_metadata=True)
        assert arrays["blocks.1"].shape[0] == 2 and meta["model"] == "efficientnet_lite0"
        assert len(meta["layers"]["blocks.1"]["original_shape"]) == 3
