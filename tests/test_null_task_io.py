"""A study's null task stores its null with NullDistribution.save; load_null reads it back
(never recomputing) and refuses a null computed under other settings than the task's."""

import warnings

import pytest

from metamers.errors import MetamersError
from metamers.null import NullDistribution, SmallNullWarning, compute_null
from metamers.stimuli import resolve_stimuli
from metamers.studies.planner import stimulus_settings
from metamers.studies.tasks import NULL_FILE, InputRef, TaskContext, load_null
from null_fixtures import split_model

LAYERS = ["left.1", "logits"]


@pytest.fixture(scope="module")
def pool():
    return resolve_stimuli("bundled:photos").limit(6)


def settings(pool, **changes) -> dict:
    base = {
        "model": {"name": "splitnet"},
        "layers": LAYERS,
        "stimuli": stimulus_settings(pool),
        "pairs": 24,
        "seed": 5,
    }
    return base | changes


def stored_null(folder, pool, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        null = compute_null(split_model(), LAYERS, pool, 24, seed=5, use_cache=False, **options)
    null.save(folder / NULL_FILE)
    return null


def test_load_null_reads_the_stored_file_without_computing(pool, tmp_path):
    stored = stored_null(tmp_path, pool)
    model = split_model()
    model.net.register_forward_pre_hook(lambda *_: pytest.fail("load_null ran the model"))
    null = load_null(InputRef("k", "null", settings(pool), str(tmp_path)), model)
    assert null.from_cache and null.path == tmp_path / NULL_FILE
    assert null.max("left.1", "pearson") == stored.max("left.1", "pearson")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"pairs": 25}, "pairs 24 != 25"),
        ({"seed": 6}, "seed 5 != 6"),
        ({"layers": ["left.1"]}, "layers"),
        ({"pairs_per_view": 1}, "pairs_per_view 8 != 1"),
        ({"zero_test": "sum"}, "zero_test all != sum"),
        ({"stimuli": None}, "stimuli fingerprint"),
    ],
)
def test_load_null_refuses_a_null_of_other_settings(pool, tmp_path, change, named):
    stored_null(tmp_path, pool)
    if change.get("stimuli", 0) is None:
        change = {"stimuli": stimulus_settings(pool.limit(5))}
    ref = InputRef("k", "null", settings(pool, **change), str(tmp_path))
    with pytest.raises(MetamersError, match=f"does not match its task .*{named}"):
        load_null(ref, split_model())


def test_load_null_refuses_other_weights_and_missing_files(pool, tmp_path):
    stored_null(tmp_path, pool)
    ref = InputRef("k", "null", settings(pool), str(tmp_path))
    with pytest.raises(MetamersError, match="model fingerprint"):
        load_null(ref, split_model(seed=1))
    (tmp_path / NULL_FILE).write_bytes(b"garbage")
    with pytest.raises(MetamersError, match="corrupt null file .* delete the study's null tasks"):
        load_null(ref, split_model())
    empty = InputRef("k", "null", settings(pool), str(tmp_path / "empty"))
    with pytest.raises(MetamersError, match="no null file at"):
        load_null(empty, split_model())


def test_published_settings_of_a_null_task_are_stored_and_checked(pool, tmp_path):
    stored = stored_null(tmp_path, pool, pairs_per_view=1, zero_test="sum")
    ref = InputRef("k", "null", settings(pool, pairs_per_view=1, zero_test="sum"), str(tmp_path))
    null = load_null(ref, split_model())
    assert (null.pairs_per_view, null.zero_test) == (1, "sum")
    assert null.n_views == 2 * null.n_pairs == 2 * stored.n_pairs


def test_run_null_writes_a_loadable_file(pool, tmp_path, monkeypatch):
    from metamers.studies import tasks

    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))
    model = split_model()
    monkeypatch.setattr(TaskContext, "model", lambda self, spec: model)
    ctx = TaskContext(settings(pool, pairs_per_view=1), (), tmp_path / "out", "cpu")
    ctx.out.mkdir()
    summary = tasks.KINDS["null"].runner(ctx)
    assert summary["file"] == NULL_FILE and summary["pairs"] == 24
    assert (ctx.out / "null.parquet").exists()
    null = NullDistribution.load(ctx.out / NULL_FILE)
    assert null.pairs_per_view == 1 and null.n_views == 48
    ref = InputRef("k", "null", ctx.settings, str(ctx.out))
    assert load_null(ref, model).n_pairs == 24
