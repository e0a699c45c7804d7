"""Model comparison (RSA/CKA matrices, CLI), image-quality metrics and human-comparison statistics."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity
from typer.testing import CliRunner

import metamers.cli.evaluation as cli_evaluation
from metamers.cli.app import _register_commands, app
from metamers.errors import ConfigError, MetamersError
from metamers.evaluation.compare import compare_models, save_similarity_matrix
from metamers.evaluation.human import (
    correlate_with_human,
    load_human_recognition,
    other_model_recognition,
)
from metamers.evaluation.image_quality import (
    image_quality,
    ms_ssim,
    pixel_correlation,
    spectral_slope,
    ssim,
    ssim_terms,
)
from metamers.models import PixelModel, load_model
from metamers.stimuli import resolve_stimuli

EARLY = "blocks.1"


@pytest.fixture(scope="module")
def six_photos():
    return resolve_stimuli("bundled:photos").limit(6)


# --- compare_models ---------------------------------------------------------------------------


def test_rsa_of_a_model_with_itself_is_one(lite0: PixelModel, six_photos) -> None:
    second_copy = load_model("efficientnet_lite0")
    matrix = compare_models(
        {"lite0": lite0, "lite0_again": second_copy},
        [EARLY, "blocks.2"],
        six_photos,
        method="rsa",
        batch_size=3,
    )
    assert matrix.shape == (4, 4)
    assert list(matrix.index.names) == ["model", "layer"]
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    for layer in (EARLY, "blocks.2"):
        assert matrix.loc[("lite0", layer), ("lite0_again", layer)] == pytest.approx(1.0)
    between_layers = matrix.loc[("lite0", EARLY), ("lite0_again", "blocks.2")]
    assert -1.0 < between_layers < 0.99
    assert matrix.attrs["stimulus_ids"] == six_photos.ids


def test_cka_matrix_saved_atomically_and_read_back(lite0: PixelModel, six_photos, tmp_path) -> None:
    matrix = compare_models(
        [lite0],
        {"efficientnet_lite0": ["conv_stem", EARLY]},
        six_photos,
        method="cka",
        unbiased=True,
    )
    assert np.allclose(np.diag(matrix), 1.0)
    paths = save_similarity_matrix(matrix, tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["parquet"]), matrix, check_like=False)
    from_csv = pd.read_csv(paths["csv"], header=[0, 1], index_col=[0, 1])
    np.testing.assert_allclose(from_csv.to_numpy(), matrix.to_numpy())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["similarity.csv", "similarity.parquet", "similarity.png"]
    )


def test_compare_rejects_bad_requests(lite0: PixelModel, six_photos) -> None:
    with pytest.raises(ConfigError, match="twice"):
        compare_models([lite0, lite0], [EARLY], six_photos)
    with pytest.raises(ConfigError, match="distance"):
        compare_models([lite0], [EARLY], six_photos, distance="manhattan")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="models are"):
        compare_models([lite0], {"other": [EARLY]}, six_photos)
    with pytest.raises(MetamersError, match="no_such_layer"):
        compare_models([lite0], ["no_such_layer"], six_photos)


def test_layers_option_syntax() -> None:
    parse = cli_evaluation.parse_layers_option
    assert parse("a, b", ["m1", "m2"]) == ["a", "b"]
    assert parse("m1=a,b; m2=c", ["m1", "m2"]) == {"m1": ["a", "b"], "m2": ["c"]}
    with pytest.raises(ConfigError, match="models compared"):
        parse("m1=a", ["m1", "m2"])
    with pytest.raises(ConfigError, match="MODEL=layer"):
        parse("m1=a;=b", ["m1", "m2"])


@pytest.mark.slow
def test_cli_compare_two_lite_models(tmp_path: Path) -> None:
    _register_commands()
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "efficientnet_lite0,efficientnet_lite1",
            "--layers",
            "efficientnet_lite0=blocks.0,blocks.2;efficientnet_lite1=blocks.2",
            "--stimuli",
            "bundled:photos",
            "--limit",
            "6",
            "--method",
            "cka",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    matrix = pd.read_parquet(tmp_path / "similarity_cka.parquet")
    assert list(matrix.index) == [
        ("efficientnet_lite0", "blocks.0"),
        ("efficientnet_lite0", "blocks.2"),
        ("efficientnet_lite1", "blocks.2"),
    ]
    same_block = matrix.loc[("efficientnet_lite0", "blocks.2"), ("efficientnet_lite1", "blocks.2")]
    other_block = matrix.loc[("efficientnet_lite0", "blocks.0"), ("efficientnet_lite1", "blocks.2")]
    assert 0.0 < other_block < same_block <= 1.0
    assert (tmp_path / "similarity_cka.png").is_file()
    assert "blocks.2" in result.output


# --- image quality ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()[:224, 100:324].transpose(2, 0, 1) / 255.0


def _noisy(image: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + level * rng.normal(size=image.shape), 0.0, 1.0)


def test_ssim_terms_reproduce_skimage(astronaut: np.ndarray) -> None:
    noisy = _noisy(astronaut, 0.1)
    expected = structural_similarity(
        noisy,
        astronaut,
        data_range=1.0,
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(noisy, astronaut) == pytest.approx(expected)
    assert ssim_terms(noisy, astronaut)[2] == pytest.approx(expected, rel=1e-9)


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise(astronaut: np.ndarray) -> None:
    assert ms_ssim(astronaut, astronaut) == pytest.approx(1.0)
    assert ms_ssim(torch.from_numpy(astronaut), astronaut) == pytest.approx(1.0)
    scores = [ms_ssim(_noisy(astronaut, level), astronaut) for level in (0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a > b for a, b in itertools.pairwise(scores))
    assert scores[0] > 0.9 and scores[-1] < 0.6
    assert ms_ssim(_noisy(astronaut, 0.1), astronaut) > ssim(_noisy(astronaut, 0.1), astronaut)


def test_ms_ssim_rejects_images_too_small_for_its_scales(astronaut: np.ndarray) -> None:
    small = astronaut[:, :64, :64]
    with pytest.raises(MetamersError, match="fewer scales"):
        ms_ssim(small, small)
    assert ms_ssim(small, small, weights=(0.3, 0.3, 0.4)) == pytest.approx(1.0)


def test_pixel_correlation(astronaut: np.ndarray) -> None:
    assert pixel_correlation(astronaut, 0.5 * astronaut + 0.1) == pytest.approx(1.0)
    assert pixel_correlation(astronaut, 1.0 - astronaut) == pytest.approx(-1.0)
    noise = np.random.default_rng(1).random(astronaut.shape)
    assert abs(pixel_correlation(astronaut, noise)) < 0.05


def test_spectral_slope_separates_white_pink_and_photos(astronaut: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    frequency = np.fft.fftfreq(256)
    radius = np.hypot(*np.meshgrid(frequency, frequency))
    radius[0, 0] = 1.0
    pink = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(256, 256))) / radius))
    assert spectral_slope(rng.random((256, 256))) == pytest.approx(0.0, abs=0.2)
    assert spectral_slope(pink) == pytest.approx(-2.0, abs=0.2)
    assert -3.5 < spectral_slope(astronaut) < -1.8
    report = image_quality(_noisy(astronaut, 0.2), astronaut)
    assert report["spectral_slope_difference"] > 0.5  # noise flattens the spectrum
    assert report["naturalness_deviation"] == pytest.approx(abs(report["spectral_slope"] + 2))
    assert set(report) >= {"ssim", "ms_ssim", "pixel_r"}


# --- human comparison -------------------------------------------------------------------------


def _conditions(n: int) -> list[tuple[str, str]]:
    return [(f"model{i % 4}", f"layer{i // 4}") for i in range(n)]


def test_bootstrap_recovers_planted_relationship() -> None:
    rng = np.random.default_rng(0)
    conditions = _conditions(40)
    model_recognition = rng.uniform(0.0, 1.0, size=40)
    noise_sd, slope = 0.1, 0.8
    human = 0.1 + slope * model_recognition + rng.normal(0.0, noise_sd, size=40)
    true_r2 = slope**2 / 12 / (slope**2 / 12 + noise_sd**2)  # uniform(0, 1) variance = 1/12
    keys = pd.DataFrame(conditions, columns=["model", "layer"])
    models = keys.assign(model_recognition=model_recognition)
    humans = keys.assign(human_recognition=human).sample(frac=1.0, random_state=0)
    result = correlate_with_human(models, humans, n_boot=500, seed=1)
    r2 = result.loc["r2"]
    assert r2["ci_low"] < true_r2 < r2["ci_high"]
    assert result.loc["spearman_rho", "ci_low"] > 0.7
    assert result.loc["r2", "n_conditions"] == 40
    again = correlate_with_human(models, humans, n_boot=500, seed=1)
    pd.testing.assert_frame_equal(result, again)

    unrelated = keys.assign(human_recognition=rng.uniform(0.0, 1.0, size=40))
    null = correlate_with_human(models, unrelated, n_boot=500, seed=1)
    assert null.loc["spearman_rho", "ci_low"] < 0.0 < null.loc["spearman_rho", "ci_high"]


def test_other_model_recognition_excludes_self_and_weights_recognisers_equally() -> None:
    trials = pd.DataFrame(
        {
            "model": ["a"] * 5 + ["b"] * 2,
            "layer": ["l1"] * 7,
            "recogniser": ["a", "b", "b", "b", "c", "a", "c"],
            "correct": [1, 1, 1, 0, 0, 1, 0],
        }
    )
    summary = other_model_recognition(trials).set_index(["model", "layer"])
    assert summary.loc[("a", "l1"), "model_recognition"] == pytest.approx((2 / 3 + 0) / 2)
    assert summary.loc[("a", "l1"), "n_recognisers"] == 2
    assert summary.loc[("b", "l1"), "model_recognition"] == pytest.approx(0.5)


def test_bundled_human_table_and_join_errors() -> None:
    human = load_human_recognition()
    assert human.set_index("layer").loc["layer4", "human_recognition"] == pytest.approx(0.21)
    assert human["human_recognition"].is_monotonic_decreasing
    models = human[["model", "layer"]].assign(model_recognition=[0.9, 0.85, 0.7, 0.3, 0.2])
    result = correlate_with_human(models, human, n_boot=100)
    assert result.loc["spearman_rho", "estimate"] > 0.9
    with pytest.raises(ConfigError, match="conditions appear in both"):
        correlate_with_human(models.assign(model="other"), human)
    with pytest.raises(ConfigError, match="lacks column"):
        correlate_with_human(models.drop(columns="layer"), human)
