"""Extraction equals a direct forward, for several layers, with early exit; files are atomic."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metamers.errors import MetamersError
from metamers.extraction import Extractor, get_extractor, save_features
from metamers.extraction.writers import read_features

LAYERS = ["blocks.1", "blocks.3"]


@pytest.fixture(scope="module")
def six_photos():
    from metamers.stimuli import resolve_stimuli

    return resolve_stimuli("bundled:photos").limit(6)


def _direct(model, stimuli, layer):
    """Reference: run the timm network by hand, module by module, to the layer."""
    x = torch.stack([stimuli.load(s, model.input_shape) for s in stimuli])
    net = model.net
    with torch.inference_mode():
        h = net.bn1(net.conv_stem(model.preprocess(x)))
        for i, block in enumerate(net.blocks):
            h = block(h)
            if layer == f"blocks.{i}":
                return h.flatten(1).numpy()
    raise AssertionError(layer)


def test_extract_matches_direct_forward(lite0, six_photos):
    features = Extractor(lite0, batch_size=4).extract(six_photos, LAYERS)
    for layer in LAYERS:
        np.testing.assert_allclose(features[layer], _direct(lite0, six_photos, layer), atol=1e-5)


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".pt"])
def test_save_features_round_trip(lite0, six_photos, tmp_path, suffix):
    out = tmp_path / f"features{suffix}"
    save_features(Extractor(lite0, batch_size=4), six_photos, LAYERS, out)
    ids, arrays = read_features(out)
    assert ids == six_photos.ids
    direct = Extractor(lite0, batch_size=6).extract(six_photos, LAYERS)
    for layer in LAYERS:
        np.testing.assert_allclose(arrays[layer], direct[layer], atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_center_and_normalize(lite0, six_photos, tmp_path):
    out = tmp_path / "f.h5"
    save_features(Extractor(lite0), six_photos, ["blocks.1"], out, center=True, normalize=True)
    with h5py.File(out) as h5:
        data = h5["blocks.1"][:]
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)


def test_no_partial_file_on_failure(lite0, tmp_path):
    from metamers.stimuli import resolve_stimuli

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "bad.png").write_bytes(b"junk")
    out = tmp_path / "out.h5"
    with pytest.raises(MetamersError):
        save_features(Extractor(lite0), resolve_stimuli(str(tmp_path / "imgs")), LAYERS, out)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["imgs"]


def test_get_extractor_shows_layers():
    extractor = get_extractor("efficientnet_lite0", batch_size=2)
    assert "blocks.6" in extractor.show_model()


def test_cli_extract_and_errors(tmp_path):
    from metamers.cli.app import _register_commands, app

    _register_commands()
    runner = CliRunner()
    out = tmp_path / "f.npz"
    result = runner.invoke(
        app,
        [
            "extract",
            "efficientnet_lite0",
            "--layers",
            "blocks.2",
            "--stimuli",
            "bundled:photos",
            "--limit",
            "3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_features(out)[1]["blocks.2"].shape[0] == 3
    bad = runner.invoke(
        app,
        [
            "extract",
            "efficientnet_lite0",
            "--layers",
            "blocks.22",
            "--stimuli",
            "bundled:photos",
            "--out",
            str(tmp_path / "g.h5"),
        ],
    )
    assert bad.exit_code != 0 and not (tmp_path / "g.h5").exists()
