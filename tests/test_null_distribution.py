"""Null distributions: pairs of different stimuli, counts, warnings, caching, save/load,
the published pairing and zero test, bad input."""

import os
import warnings

import numpy as np
import pytest
import torch

from metamers.errors import ConfigError, LayerError, StimulusError
from metamers.null import (
    Augmentation,
    NullCacheError,
    NullCacheWarning,
    NullDistribution,
    SmallNullWarning,
    compute_null,
    default_cache_dir,
)
from metamers.null.cache import FORMAT_VERSION, save_arrays
from metamers.null.distribution import _pair_schedule, _source_schedule
from metamers.stimuli import resolve_stimuli
from null_fixtures import split_model

LAYER = "left.1"


@pytest.fixture(scope="module")
def model():
    return split_model()


@pytest.fixture(scope="module")
def photos():
    return resolve_stimuli("bundled:photos")


def quiet_null(*args, **kwargs) -> NullDistribution:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        return compute_null(*args, **kwargs)


def count_forwards(model) -> list[int]:
    calls = [0]
    model.net.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_null_pairs_join_different_stimuli_and_report_counts(model, photos):
    with pytest.warns(SmallNullWarning, match="18 distinct stimuli"):
        null = compute_null(model, [LAYER, "logits"], photos, 300, use_cache=False)
    assert null.n_pairs == 300 and null.values["spearman"].shape == (300, 2)
    assert np.all(null.first != null.second)
    assert null.n_stimuli == 18 and null.pool_size == 18
    assert 100 < null.n_distinct_pairs <= 18 * 17 // 2
    assert all(np.isfinite(v).all() for v in null.values.values())
    # Unrelated natural images: correlations well below 1 at the feature layer.
    assert null.max(LAYER, "pearson") < 0.999
    summary = null.summary()
    assert set(summary["metric"]) == {"spearman", "pearson", "snr_db"}
    assert (summary["min"] <= summary["median"]).all() and (summary["q99"] <= summary["max"]).all()


def test_null_is_reproducible_and_depends_on_seed(model, photos):
    a = quiet_null(model, [LAYER], photos, 64, seed=3, use_cache=False)
    b = quiet_null(model, [LAYER], photos, 64, seed=3, use_cache=False)
    c = quiet_null(model, [LAYER], photos, 64, seed=4, use_cache=False)
    np.testing.assert_array_equal(a.values["pearson"], b.values["pearson"])
    assert not np.array_equal(a.values["pearson"], c.values["pearson"])


def test_augmentation_changes_the_views(model, photos):
    plain = quiet_null(
        model, [LAYER], photos, 64, augmentation=Augmentation.none(), use_cache=False
    )
    augmented = quiet_null(model, [LAYER], photos, 64, use_cache=False)
    assert not np.allclose(plain.values["pearson"], augmented.values["pearson"])


def test_p_value_and_quantiles(model, photos):
    null = quiet_null(model, [LAYER], photos, 99, use_cache=False)
    top = null.max(LAYER, "spearman")
    assert null.p_value(LAYER, "spearman", top + 1e-9) == pytest.approx(1 / 100)
    assert null.p_value(LAYER, "spearman", -2.0) == pytest.approx(1.0)
    assert null.quantile(LAYER, "spearman", 0.5) <= top


def test_cache_hit_does_not_run_the_model(photos, tmp_path):
    model = split_model()
    calls = count_forwards(model)
    first = quiet_null(model, [LAYER], photos, 100, cache_dir=tmp_path)
    assert not first.from_cache and first.path.exists() and calls[0] > 0
    stamp, before = first.path.stat().st_mtime_ns, calls[0]
    second = quiet_null(model, [LAYER], photos, 100, cache_dir=tmp_path)
    assert second.from_cache and second.path == first.path
    assert calls[0] == before and first.path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.values["snr_db"], second.values["snr_db"])
    assert second.n_distinct_pairs == first.n_distinct_pairs


def test_cache_layer_order_is_kept(model, photos, tmp_path):
    a = quiet_null(model, [LAYER, "logits"], photos, 40, cache_dir=tmp_path)
    b = quiet_null(model, ["logits", LAYER], photos, 40, cache_dir=tmp_path)
    assert b.from_cache and b.layers == ("logits", LAYER)
    np.testing.assert_array_equal(a.column(LAYER, "pearson"), b.column(LAYER, "pearson"))


@pytest.mark.parametrize(
    "change",
    ["pairs", "seed", "layers", "augmentation", "stimuli", "weights", "batch", "pairing", "zero"],
)
def test_cache_miss_when_any_key_part_changes(photos, tmp_path, change):
    model = split_model()
    base = {"n_pairs": 40, "seed": 0, "augmentation": Augmentation(), "batch_size": 32}
    layers, pool = [LAYER], photos
    reference = quiet_null(model, layers, pool, cache_dir=tmp_path, **base)
    if change == "pairs":
        base["n_pairs"] = 41
    elif change == "seed":
        base["seed"] = 1
    elif change == "layers":
        layers = [LAYER, "logits"]
    elif change == "augmentation":
        base["augmentation"] = Augmentation(brightness=0.2)
    elif change == "stimuli":
        pool = photos.limit(10)
    elif change == "weights":
        model = split_model(seed=1)
    elif change == "batch":
        base["batch_size"] = 16
    elif change == "pairing":
        base["pairs_per_view"] = 1
    elif change == "zero":
        base["zero_test"] = "sum"
    changed = quiet_null(model, layers, pool, cache_dir=tmp_path, **base)
    assert not changed.from_cache and changed.path != reference.path
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_cache_dir_from_environment(model, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "null"
    null = quiet_null(model, [LAYER], photos, 20)
    assert null.path.parent == tmp_path / "null"


def test_corrupt_cache_is_recomputed_or_refused(model, photos, tmp_path):
    null = quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path)
    null.path.write_bytes(b"not an npz file")
    with pytest.raises(NullCacheError, match="corrupt null cache file"):
        quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path, on_stale="raise")
    with pytest.warns(NullCacheWarning, match="recomputing"):
        again = quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path)
    assert not again.from_cache
    np.testing.assert_array_equal(again.values["pearson"], null.values["pearson"])
    assert quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path).from_cache


def test_stale_cache_from_another_format_is_detected(model, photos, tmp_path, monkeypatch):
    null = quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path)
    monkeypatch.setattr("metamers.null.cache.FORMAT_VERSION", 0)
    save_arrays(null.path, {"key": null.key}, {"first": null.first})  # an "old" file, same key
    monkeypatch.undo()
    with pytest.raises(NullCacheError, match="stale null cache file .* format version 0"):
        quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path, on_stale="raise")
    with pytest.warns(NullCacheWarning):
        assert not quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path).from_cache


def test_no_partial_cache_file_after_failure(photos, tmp_path):
    model = split_model()

    def fail(*_):
        raise RuntimeError("interrupted")

    model.net.left.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError):
        quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_give_clear_errors(model, photos, tmp_path):
    with pytest.raises(StimulusError, match="at least 2 different stimuli"):
        compute_null(model, [LAYER], photos.limit(1), 10, cache_dir=tmp_path)
    with pytest.raises(LayerError, match="unknown layer"):
        compute_null(model, ["left.9"], photos, 10, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="at least 1"):
        compute_null(model, [LAYER], photos, 0, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="zero_test must be one of"):
        compute_null(model, [LAYER], photos, 10, zero_test="mean", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="pairs_per_view must be at least 1"):
        compute_null(model, [LAYER], photos, 10, pairs_per_view=0, cache_dir=tmp_path)
    null = quiet_null(model, [LAYER], photos, 10, use_cache=False)
    with pytest.raises(LayerError, match="covers layers"):
        null.column("logits", "pearson")
    assert not os.listdir(tmp_path)


def test_two_stimuli_suffice(model, photos):
    null = quiet_null(model, [LAYER], photos.limit(2), 10, batch_size=2, use_cache=False)
    assert null.n_distinct_pairs == 1 and np.all(null.first != null.second)
    assert torch.get_num_threads() >= 1


def test_save_and_load_round_trip(model, photos, tmp_path):
    null = quiet_null(model, [LAYER, "logits"], photos, 50, seed=2, use_cache=False)
    path = null.save(tmp_path / "deep" / "null.npz")
    assert path == tmp_path / "deep" / "null.npz"
    assert [p.name for p in path.parent.iterdir()] == ["null.npz"]  # atomic: no temp left
    loaded = NullDistribution.load(path)
    assert loaded.path == path and loaded.from_cache and not null.from_cache
    for name in (
        "model",
        "model_fingerprint",
        "layers",
        "stimulus_ids",
        "stimuli_spec",
        "stimuli_fingerprint",
        "augmentation",
        "seed",
        "n_views",
        "pairs_per_view",
        "zero_test",
        "key",
    ):
        assert getattr(loaded, name) == getattr(null, name), name
    for name in ("first", "second", "first_view", "second_view"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(null, name))
    for metric in null.metrics:
        np.testing.assert_array_equal(loaded.values[metric], null.values[metric])
    assert loaded.describe() == null.describe()
    # self-describing without this package: plain arrays and JSON metadata, no pickles
    with np.load(path, allow_pickle=False) as data:
        assert {"meta", "first", "second", "values_spearman"} <= set(data.files)
        assert '"zero_test": "all"' in str(data["meta"])


def test_cache_file_is_a_saved_null(model, photos, tmp_path):
    null = quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path)
    loaded = NullDistribution.load(null.path)
    np.testing.assert_array_equal(loaded.values["pearson"], null.values["pearson"])
    assert loaded.key == null.key and loaded.key["zero_test"] == "all"
    # and a saved null placed in the cache under its key is a cache hit
    null.path.unlink()
    null.save(null.path)
    assert quiet_null(model, [LAYER], photos, 30, cache_dir=tmp_path).from_cache


def test_load_refuses_bad_files_in_one_line(model, photos, tmp_path):
    with pytest.raises(NullCacheError, match="no null file at"):
        NullDistribution.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz file")
    with pytest.raises(NullCacheError, match="corrupt null file") as info:
        NullDistribution.load(bad)
    assert "\n" not in str(info.value)
    null = quiet_null(model, [LAYER], photos, 20, use_cache=False)
    null.second = null.first.copy()  # every pair joins a stimulus with itself
    null.save(bad)
    with pytest.raises(NullCacheError, match="corrupt null file .* with itself"):
        NullDistribution.load(bad)
    np.savez(bad, meta=np.array("[1, 2]"))
    with pytest.raises(NullCacheError, match="corrupt null file .* not a JSON object"):
        NullDistribution.load(bad)
    np.savez(bad, meta=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NullCacheError, match="corrupt null file"):
        NullDistribution.load(bad)  # pickled content is never unpickled


def test_load_refuses_another_format_version(model, photos, tmp_path, monkeypatch):
    null = quiet_null(model, [LAYER], photos, 20, use_cache=False)
    monkeypatch.setattr("metamers.null.cache.FORMAT_VERSION", 1)
    path = null.save(tmp_path / "old.npz")
    monkeypatch.undo()
    with pytest.raises(
        NullCacheError, match=f"stale null file .* format version 1, expected {FORMAT_VERSION}"
    ):
        NullDistribution.load(path)


def test_published_pairing_uses_every_view_once(model, photos):
    null = quiet_null(model, [LAYER], photos, 101, pairs_per_view=1, batch_size=15, use_cache=False)
    assert null.n_pairs == 101 and null.n_views == 2 * null.n_pairs
    views = np.concatenate([null.first_view, null.second_view])
    assert np.unique(views).size == views.size == null.n_views  # no view reused
    assert np.all(null.first != null.second)
    assert null.pairs_per_view == 1 and "published pairing" in null.describe()
    # balanced use of the pool: each stimulus in 202 / 18 ≈ 11 pairs
    uses = np.bincount(np.concatenate([null.first, null.second]), minlength=18)
    assert uses.max() - uses.min() <= 2


def test_default_pairing_reuses_each_view_in_about_eight_pairs(model, photos):
    null = quiet_null(model, [LAYER], photos, 512, use_cache=False)
    assert null.pairs_per_view == 8 and "pairing" not in null.describe()
    uses = np.bincount(np.concatenate([null.first_view, null.second_view]))
    assert null.n_views == 128 and uses.size == 128
    assert uses.mean() == 8 and uses.min() >= 1 and uses.max() > 8
    assert np.all(null.first_view != null.second_view)


def test_published_pairing_with_two_stimuli_and_odd_batches(model, photos):
    pool = photos.limit(2)
    null = quiet_null(model, [LAYER], pool, 7, pairs_per_view=1, batch_size=3, use_cache=False)
    assert null.n_views == 14 and np.all(null.first != null.second)
    assert np.unique(np.concatenate([null.first_view, null.second_view])).size == 14


@pytest.mark.parametrize("pool", [2, 3, 18])
def test_pair_schedule_joins_different_stimuli_and_uses_each_draw_once(pool):
    draws: list[int] = []

    def recorded():
        for s in _source_schedule(np.random.default_rng(0), pool):
            draws.append(s)
            yield s

    pairs = _pair_schedule(recorded())
    chosen = np.array([next(pairs) for _ in range(500)])
    assert np.all(chosen[:, 0] != chosen[:, 1])
    used = np.bincount(chosen.ravel(), minlength=pool)
    drawn = np.bincount(draws, minlength=pool)
    assert np.all(drawn - used <= 1)  # at most one draw held back for the next pair


def test_zero_test_is_recorded_and_described(model, photos, tmp_path):
    null = quiet_null(model, [LAYER], photos, 20, zero_test="sum", cache_dir=tmp_path)
    assert null.zero_test == "sum" and null.key["zero_test"] == "sum"
    assert "zero test 'sum'" in null.describe()
    assert NullDistribution.load(null.path).zero_test == "sum"
    # post-ReLU activations: the two zero tests agree
    plain = quiet_null(model, [LAYER], photos, 20, use_cache=False)
    np.testing.assert_array_equal(plain.values["spearman"], null.values["spearman"])


@pytest.mark.parametrize("pairs_per_view", [8, 1])
def test_a_smaller_null_is_the_first_pairs_of_a_larger_one(model, photos, pairs_per_view):
    kwargs = {"seed": 3, "pairs_per_view": pairs_per_view, "use_cache": False}
    small = quiet_null(model, [LAYER, "logits"], photos, 300, **kwargs)
    large = quiet_null(model, [LAYER, "logits"], photos, 1000, **kwargs)
    for metric in small.metrics:  # 300 is not a whole number of batches of either pairing
        np.testing.assert_array_equal(small.values[metric], large.values[metric][:300])
    for name in ("first", "second", "first_view", "second_view"):
        np.testing.assert_array_equal(getattr(small, name), getattr(large, name)[:300])


@pytest.mark.parametrize("pairs_per_view", [8, 1])
def test_a_cached_larger_null_serves_a_smaller_request(photos, tmp_path, pairs_per_view):
    model = split_model()
    settings = {"seed": 3, "pairs_per_view": pairs_per_view}
    large = quiet_null(model, [LAYER, "logits"], photos, 1000, cache_dir=tmp_path, **settings)
    fresh = quiet_null(model, [LAYER, "logits"], photos, 300, use_cache=False, **settings)

    def refuse(*_):
        raise AssertionError("the model ran: the cached larger null was not used")

    model.net.register_forward_pre_hook(refuse)
    served = quiet_null(model, ["logits", LAYER], photos, 300, cache_dir=tmp_path, **settings)
    assert served.from_cache and served.path == large.path
    assert served.n_pairs == 300 and served.key == fresh.key and served.key["n_pairs"] == 300
    assert served.layers == ("logits", LAYER)
    for metric in fresh.metrics:
        for layer in fresh.layers:
            np.testing.assert_array_equal(served.column(layer, metric), fresh.column(layer, metric))
    for name in ("first", "second", "first_view", "second_view"):
        np.testing.assert_array_equal(getattr(served, name), getattr(fresh, name))
    assert served.n_views == fresh.n_views and served.describe() == fresh.describe()
    assert len(list(tmp_path.glob("*.npz"))) == 1  # nothing new written
    with pytest.raises(AssertionError, match="the model ran"):  # another seed is not served
        quiet_null(model, [LAYER, "logits"], photos, 300, cache_dir=tmp_path, seed=4)
    with pytest.raises(AssertionError, match="the model ran"):  # nor a larger request
        quiet_null(model, [LAYER, "logits"], photos, 1001, cache_dir=tmp_path, **settings)
