"""The neural-data format, the published file layouts, and the published split draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from metamers.brain import (
    NeuralData,
    Splits,
    fit_encoding,
    get_preset,
    legacy_splits,
    load_b2021,
    load_neural_data,
    load_nh2015,
    load_nh2015_components,
    random_splits,
)
from metamers.errors import ConfigError

IDS = [f"stim{i}_sound" for i in range(165)]


def _published_draw(n: int, seed: int, n_splits: int = 10) -> list[tuple[list, list]]:
    """The published code, verbatim in effect: the global generator, seeded once."""
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002
        draws = []
        for _ in range(n_splits):
            train = np.random.choice(n, size=83, replace=False)  # noqa: NPY002
            rest = set(np.arange(n)) - set(train)
            test = np.random.choice(list(rest), size=82, replace=False)  # noqa: NPY002
            draws.append((train.tolist(), test.tolist()))
        return draws
    finally:
        np.random.set_state(state)  # noqa: NPY002


@pytest.mark.parametrize("seed", [0, 3882])
def test_legacy_splits_reproduce_the_published_draws(seed):
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    splits = legacy_splits(IDS, seed=seed)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002 (global generator untouched)
    for split, (train, test) in zip(splits, _published_draw(165, seed), strict=True):
        assert split.train == tuple(IDS[i] for i in train)
        assert split.test == tuple(IDS[i] for i in test)
        assert not set(split.train) & set(split.test)


def test_presets_draw_their_published_seeds():
    assert get_preset("tuckute2023").make_splits(IDS).splits[0].train[:3] == (
        "stim45_sound",
        "stim51_sound",
        "stim108_sound",
    )
    feather = get_preset("feather2023").make_splits(IDS)
    assert feather.seed == 3882 and len(feather) == 10
    assert feather.splits[0] == legacy_splits(IDS, seed=3882).splits[0]


def test_splits_are_saved_by_stimulus_id(tmp_path):
    splits = random_splits(IDS[:20], n_splits=3, seed=4)
    assert len(splits.splits[0].train) == 10 and len(splits.splits[0].test) == 10
    again = Splits.load(splits.save(tmp_path / "splits.json"))
    assert again == splits
    shuffled = list(reversed(IDS[:20]))
    train, _ = again.indices(shuffled)[0]
    assert [shuffled[i] for i in train] == list(splits.splits[0].train)
    with pytest.raises(ConfigError, match="not in the data"):
        again.indices(IDS[:5])


def _data(**kwargs) -> NeuralData:
    rng = np.random.default_rng(0)
    return NeuralData(rng.normal(size=(6, 4, 3)), [f"s{i}" for i in range(6)], **kwargs)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_round_trip(tmp_path, suffix):
    targets = pd.DataFrame({"participant": ["a", "a", "b", "b"], "roi": ["x", "y", "x", "y"]})
    stimuli = pd.DataFrame({"category": list("ABCABC")})
    data = _data(targets=targets, stimuli=stimuli, meta={"dataset": "toy"})
    path = data.save(tmp_path / f"toy{suffix}")
    back = load_neural_data(path)
    np.testing.assert_array_equal(back.responses, data.responses)
    assert back.stimulus_ids == data.stimulus_ids
    pd.testing.assert_frame_equal(back.targets, targets)
    pd.testing.assert_frame_equal(back.stimuli, stimuli)
    assert back.meta == {"dataset": "toy"}


def test_bad_inputs_give_one_line_errors(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(ConfigError, match="stimuli, targets, repetitions"):
        NeuralData(rng.normal(size=(2, 3, 4, 5)), ["a", "b"])
    with pytest.raises(ConfigError, match="3 stimulus ids"):
        NeuralData(rng.normal(size=(2, 3, 2)), ["a", "b", "c"])
    with pytest.raises(ConfigError, match="duplicate stimulus ids"):
        NeuralData(rng.normal(size=(2, 3, 2)), ["a", "a"])
    with pytest.raises(ConfigError, match="target table has 2 rows"):
        NeuralData(rng.normal(size=(2, 3, 2)), ["a", "b"], pd.DataFrame({"v": [1, 2]}))
    values = rng.normal(size=(4, 3, 2))
    values[1, 2, 0] = np.nan
    with pytest.raises(ConfigError, match="1 of 3 targets have NaN"):
        NeuralData(values, list("abcd"))
    assert NeuralData.finite_targets(values, list("abcd")).n_targets == 2
    with pytest.raises(ConfigError, match="at least 2 repetitions"):
        fit_encoding(
            {"l": rng.normal(size=(12, 3))},
            NeuralData(rng.normal(size=(12, 3)), list("abcdefghijkl")),
        )
    with pytest.raises(ConfigError, match="2 of 3 stimuli have no responses"):
        _data().align(["s1", "x", "y"])
    with pytest.raises(ConfigError, match="no neural-data file"):
        load_neural_data(tmp_path / "missing.h5")
    with pytest.raises(ConfigError, match="known layout"):
        load_neural_data(tmp_path)
    with pytest.raises(ConfigError, match="features for 5 stimuli"):
        fit_encoding({"l": rng.normal(size=(5, 3))}, _data())


def write_nh2015(folder, *, n_voxels=12, n_sounds=165, seed=0):
    """Small files in exactly the published NH2015 layout."""
    rng = np.random.default_rng(seed)
    stim = np.zeros(
        n_sounds, dtype=[("stim_name", "S40"), ("sound_idx", "<i8"), ("category", "S20")]
    )
    stim["stim_name"] = [f"stim{i}_sound.wav".encode() for i in range(n_sounds)]
    stim["sound_idx"] = np.arange(n_sounds)
    stim["category"] = [f"cat{i % 11}".encode() for i in range(n_sounds)]
    meta = np.zeros(
        n_voxels,
        dtype=[
            ("subj_idx", "<i8"),
            ("hemi", "S2"),
            ("x_ras", "<i8"),
            ("y_ras", "<i8"),
            ("voxel_id", "<i8"),
            ("n_reps", "<i8"),
        ],
    )
    meta["subj_idx"] = np.repeat([0, 1, 2, 3], n_voxels // 4)
    meta["hemi"] = [b"lh", b"rh"] * (n_voxels // 2)
    meta["x_ras"] = rng.integers(0, 50, n_voxels)
    meta["y_ras"] = rng.integers(0, 50, n_voxels)
    meta["voxel_id"] = np.arange(n_voxels) + 1000
    meta["n_reps"] = 3
    meta["n_reps"][1] = 2
    array = rng.normal(size=(n_sounds, n_voxels, 3))
    array[:, 1, 2] = np.nan  # a 2-run voxel: its third run is missing
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "neural_stim_meta.npy", stim)
    np.save(folder / "voxel_features_meta.npy", meta)
    np.save(folder / "voxel_features_array.npy", array)
    return array, meta


def test_nh2015_layout(tmp_path):
    array, meta = write_nh2015(tmp_path / "NH2015")
    rois = pd.DataFrame({"tonotopic": [1, 0] * 5 + [0], "roi_label_general": ["Primary"] * 11})
    rois.to_parquet(tmp_path / "NH2015" / "df_roi_meta.parquet")
    data = load_neural_data(tmp_path / "NH2015")
    assert data.responses.shape == (165, 11, 3)
    assert data.stimulus_ids[:2] == ("stim0_sound", "stim1_sound")
    np.testing.assert_array_equal(data.responses, array[:, meta["n_reps"] == 3])
    assert list(data.targets["participant"].unique()) == ["0", "1", "2", "3"]
    assert data.targets["hemi"].iloc[0] == "lh" and "tonotopic" in data.targets
    assert data.stimuli["category"].iloc[12] == "cat1"
    assert data.meta["dropped_voxels"] == 1
    (tmp_path / "NH2015" / "df_roi_meta.parquet").unlink()
    with pytest.raises(ConfigError, match="never loaded"):
        load_nh2015(tmp_path / "NH2015", roi_table=tmp_path / "df_roi_meta.pkl")
    with pytest.raises(ConfigError, match="12 rows for 11 voxels"):
        pd.DataFrame({"a": range(12)}).to_csv(tmp_path / "rois.csv", index=False)
        load_nh2015(tmp_path / "NH2015", roi_table=tmp_path / "rois.csv")
    np.save(tmp_path / "NH2015" / "voxel_features_array.npy", array[:100])
    with pytest.raises(ConfigError, match="expected \\(165 sounds"):
        load_nh2015(tmp_path / "NH2015")


def test_b2021_layout(tmp_path):
    rng = np.random.default_rng(2)
    names = np.empty((170, 1), dtype=object)
    for i in range(170):
        names[i, 0] = np.array([f"stim{i}_sound"])
    savemat(tmp_path / "stim_info_v4.mat", {"stim_info": {"stim_names": names}})
    array = rng.normal(size=(170, 8, 4))
    np.save(tmp_path / "voxel_features_array.npy", array)
    pd.DataFrame({"subj_idx": np.repeat([0, 1], 4)}).to_csv(tmp_path / "df_roi_meta.csv")
    data = load_b2021(tmp_path)
    assert data.responses.shape == (165, 8, 3)
    assert data.stimulus_ids[164] == "stim164_sound"
    assert set(data.participants()) == {"0", "1"}
    np.testing.assert_array_equal(data.responses, array[:165, :, :3])


def test_nh2015_components_layout(tmp_path):
    rng = np.random.default_rng(3)
    stim_names = np.empty((1, 165), dtype=object)
    for i in range(165):
        stim_names[0, i] = np.array([f"stim{164 - i}_sound"])
    component_names = np.empty((6, 1), dtype=object)
    labels = ["lowfreq", "highfreq", "envsounds", "pitch", "speech", "music"]
    for i, label in enumerate(labels):
        component_names[i, 0] = np.array([label])
    response = rng.normal(size=(165, 6))
    savemat(
        tmp_path / "components.mat",
        {"R": response, "stim_names": stim_names, "component_names": component_names},
    )
    data = load_nh2015_components(tmp_path)
    assert data.targets["component"].tolist() == labels
    assert data.n_repetitions == 1 and data.stimulus_ids[0] == "stim164_sound"
    aligned = data.align(IDS)
    np.testing.assert_array_equal(aligned.responses[0, :, 0], response[164])
