"""The one judgement: acceptance, the acceptance stop and the representation test agree.

Planted accept/reject cases on a tiny split model, reports, every criterion.
"""

import warnings

import numpy as np
import pytest
import torch

from metamers.decisions import LabelSpace
from metamers.errors import ConfigError, LayerError
from metamers.evaluation.representation import representation_table
from metamers.models import load_model
from metamers.null import NullCriterion, SmallNullWarning, compute_null
from metamers.null.plots import plot_null_histograms, plot_similarity_matrix
from metamers.stimuli import resolve_stimuli
from metamers.synthesis.results import MetamerResult
from metamers.validation import (
    AcceptanceStop,
    accept,
    check_validation,
    judge,
    similarity_matrix,
    validate_results,
)
from null_fixtures import SIZE, split_model

LAYER = "left.1"


def quiet_null(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallNullWarning)
        return compute_null(*args, **kwargs)


@pytest.fixture(scope="module")
def photos():
    return resolve_stimuli("bundled:photos")


@pytest.fixture(scope="module")
def model():
    return split_model()


@pytest.fixture(scope="module")
def null(model, photos):
    return quiet_null(model, [LAYER, "logits"], photos, 400, use_cache=False)


@pytest.fixture(scope="module")
def planted(photos):
    """References, near-copies (accept), other photos (reject) and a label-only failure."""
    images = torch.stack([photos.load(s, (3, SIZE, SIZE)) for s in photos.limit(6)])
    references = images[:3].clone()
    noise = 1e-4 * torch.randn(references.shape, generator=torch.Generator().manual_seed(0))
    near = (references + noise).clamp(0, 1)
    others = images[3:6]
    relabelled = references.clone()
    half = SIZE // 2
    # Same left half (layer left.1 sees only it); right half recoloured to flip the label.
    label = references[:, :, :, half:].mean(dim=(2, 3)).argmax(dim=1)
    relabelled[:, :, :, half:] = 0.0
    for i, k in enumerate(label.tolist()):
        relabelled[i, (k + 1) % 3, :, half:] = 1.0
    return references, near, others, relabelled


def test_near_copy_is_accepted_and_other_photo_rejected(model, null, planted):
    references, near, others, _ = planted
    metamers = torch.cat([near, others])
    table = accept(model, metamers, torch.cat([references, references]), LAYER, null)
    assert table["accepted"].tolist() == [True] * 3 + [False] * 3
    assert (table["failed"][:3] == "").all()
    for failed in table["failed"][3:]:
        assert {"spearman", "pearson", "snr_db"} <= set(failed.split(","))
    assert (table["spearman"][:3] > table["spearman_null_max"][:3]).all()
    assert (table["null_pairs"] == 400).all() and (table["null_stimuli"] == 18).all()
    assert "400-pair null" in table["criterion"][0]


def test_label_failure_is_reported_alone(model, null, planted):
    references, _, _, relabelled = planted
    table = accept(model, relabelled, references, LAYER, null)
    assert not table["label_match"].any()
    assert (table["failed"] == "label").all()
    assert table["spearman_pass"].all() and not table["accepted"].any()


def test_alternative_criteria(model, null, planted):
    references, near, others, _ = planted
    metamers, refs = torch.cat([near, others]), torch.cat([references, references])
    for criterion in (NullCriterion("quantile", q=0.99), NullCriterion("p_value", alpha=0.01)):
        table = accept(model, metamers, refs, LAYER, null, criterion=criterion)
        assert table["accepted"].tolist() == [True] * 3 + [False] * 3
    with pytest.raises(ConfigError, match="cannot give p <"):
        accept(model, near, references, LAYER, null, criterion=NullCriterion("p_value", alpha=1e-4))
    # The p-value threshold is the order statistic equivalent to p < alpha.
    rule = NullCriterion("p_value", alpha=0.01)
    threshold = rule.threshold(null, LAYER, "pearson")
    assert null.p_value(LAYER, "pearson", np.nextafter(threshold, np.inf)) < 0.01
    assert null.p_value(LAYER, "pearson", threshold) >= 0.01


def test_layer_and_model_mismatch_are_refused(model, null, planted, photos):
    references, near, _, _ = planted
    small = quiet_null(model, ["logits"], photos, 20, use_cache=False)
    with pytest.raises(LayerError, match="covers layers"):
        accept(model, near, references, LAYER, small)
    other = split_model(seed=5)
    with pytest.raises(ConfigError, match="weights"):
        accept(other, near, references, LAYER, null)
    with pytest.raises(ConfigError, match="16-way labels need an ImageNet model"):
        accept(model, near, references, LAYER, null, labels=LabelSpace("16-way"))
    with pytest.raises(ConfigError, match="differ"):
        accept(model, near[:, :, :8], references, LAYER, null)


def test_validate_results_on_in_memory_records(model, null, planted):
    references, near, others, _ = planted
    results = [
        MetamerResult("a", ("splitnet",), (LAYER,), near[0], references[0], np.zeros(3)),
        MetamerResult("b", ("splitnet",), (LAYER,), others[0], references[0], np.zeros(3)),
        MetamerResult("c", ("splitnet",), ("logits",), near[1], references[1], np.zeros(3)),
    ]
    table = validate_results(results, null, models={"splitnet": model})
    assert table["stimulus_id"].tolist() == ["a", "b", "c"]
    assert table["layer"].tolist() == [LAYER, LAYER, "logits"]
    # The 3-unit logits: random pairs often share the rank order (null max ρ = 1), so
    # even a near-copy cannot exceed it there.
    assert table["accepted"].tolist() == [True, False, False]
    assert table["spearman_null_max"][2] == 1.0 and "spearman" in table["failed"][2]
    assert table["accepted_all_models"].tolist() == [True, False, False]
    bad = [MetamerResult("d", ("splitnet",), ("left.0",), near[0], references[0], np.zeros(3))]
    with pytest.raises(LayerError, match="covers layers"):
        validate_results(bad, {"splitnet": null}, models={"splitnet": model})
    with pytest.raises(ConfigError, match="no null given"):
        validate_results(results, {"other": null}, models={"splitnet": model})


def test_validate_results_refuses_a_generator_with_other_weights(model, null, planted):
    references, near, _, _ = planted
    recorded = {"model_fingerprints": [model.fingerprint()]}
    result = MetamerResult("a", ("splitnet",), (LAYER,), near[0], references[0], np.zeros(3))
    result.settings = recorded
    assert validate_results([result], null, models={"splitnet": model})["accepted"].all()
    other = split_model(seed=5)
    with pytest.raises(ConfigError, match=f"made with {model.fingerprint()}"):
        validate_results([result], null, models={"splitnet": other})


def test_ensemble_result_gets_one_row_per_model(model, null, planted, photos):
    references, near, _, _ = planted
    twin = split_model(name="twin")
    twin_null = quiet_null(twin, [LAYER], photos, 50, use_cache=False)
    result = MetamerResult("e", ("splitnet", "twin"), (LAYER, LAYER), near[2], references[2], [])
    table = validate_results(
        [result], {"splitnet": null, "twin": twin_null}, models={"splitnet": model, "twin": twin}
    )
    assert table["model"].tolist() == ["splitnet", "twin"]
    assert table["generator"].tolist() == ["splitnet+twin"] * 2
    assert table["accepted_all_models"].all()


CRITERIA = [
    NullCriterion(),
    NullCriterion.feather2023(),
    NullCriterion("quantile", q=0.99),
    NullCriterion("p_value", alpha=0.01),
]


class _Batch:
    """What the acceptance stop reads of a synthesis: models, layers, references."""

    def __init__(self, model, layer, references):
        self.models, self.layers, self.references = [model], [[layer]], references


@pytest.mark.parametrize("criterion", CRITERIA, ids=lambda c: f"{c.kind}-{c.inclusive}")
def test_acceptance_stop_agrees_with_accept_under_every_criterion(model, null, planted, criterion):
    references, near, others, relabelled = planted
    metamers = torch.cat([near, others, relabelled])
    refs = torch.cat([references] * 3)
    stop = AcceptanceStop(null, criterion=criterion)
    mask = stop(_Batch(model, LAYER, refs), metamers, torch.arange(9))
    assert mask.dtype == torch.bool and mask.shape == (9,)
    expected = accept(model, metamers, refs, LAYER, null, criterion=criterion)["accepted"]
    np.testing.assert_array_equal(mask.numpy(), expected.to_numpy())
    assert mask.tolist() == [True] * 3 + [False] * 6
    similarity_only = AcceptanceStop(null, criterion=criterion, check_label=False)
    assert similarity_only(_Batch(model, LAYER, refs), metamers, torch.arange(9))[6:].all()
    subset = torch.tensor([0, 4])
    assert stop(_Batch(model, LAYER, refs), metamers[subset], subset).tolist() == [True, False]


@pytest.mark.parametrize("criterion", CRITERIA, ids=lambda c: f"{c.kind}-{c.inclusive}")
def test_representation_test_honours_the_criterion(model, null, planted, criterion):
    references, near, others, _ = planted
    results = [
        MetamerResult(str(i), ("gen",), ("x",), m, r, np.zeros(1))
        for i, (m, r) in enumerate(zip(torch.cat([near, others]), torch.cat([references] * 2)))
    ]
    table = representation_table(results, model, null, [LAYER], criterion=criterion)
    judged = judge(
        model,
        torch.cat([near, others]),
        torch.cat([references] * 2),
        [LAYER],
        null,
        criterion=criterion,
        check_label=False,
    )
    np.testing.assert_array_equal(table["passed"].to_numpy(), judged["passed"].to_numpy())
    assert table["passed"].tolist() == [True] * 3 + [False] * 3
    assert (table["criterion_kind"] == criterion.kind).all()


def test_a_value_at_the_null_maximum_passes_only_the_inclusive_rule(model, null):
    threshold = null.max(LAYER, "pearson")
    assert not NullCriterion().passes(threshold, null, LAYER, "pearson")
    assert NullCriterion.feather2023().passes(threshold, null, LAYER, "pearson")
    assert NullCriterion().passes(np.nextafter(threshold, 2.0), null, LAYER, "pearson")
    with pytest.raises(ConfigError, match="inclusive"):
        NullCriterion("p_value", inclusive=True)


def test_a_stored_validation_is_refused_under_other_settings(model, null, planted):
    references, near, others, _ = planted
    results = [
        MetamerResult("a", ("splitnet",), (LAYER,), near[0], references[0], np.zeros(3)),
        MetamerResult("b", ("splitnet",), (LAYER,), others[0], references[0], np.zeros(3)),
    ]
    models = {"splitnet": model}
    table = validate_results(results, null, models=models)
    assert (table["label_space"] == "native (unknown)").all()
    check_validation(table, results, models=models)  # same settings: fine
    check_validation(table, results, models=models, n_pairs=400)
    with pytest.raises(ConfigError, match="criterion_inclusive"):
        check_validation(table, results, models=models, criterion=NullCriterion.feather2023())
    with pytest.raises(ConfigError, match="criterion_kind"):
        check_validation(table, results, models=models, criterion=NullCriterion("quantile"))
    with pytest.raises(ConfigError, match="null of \\[400\\] pairs"):
        check_validation(table, results, models=models, n_pairs=1000)
    with pytest.raises(ConfigError, match="other metamers"):
        check_validation(table, results[:1], models=models)


def test_matrix_and_plots(model, null, planted):
    references, near, others, _ = planted
    metamers = torch.cat([near, others])
    matrix = similarity_matrix(
        model,
        metamers,
        torch.cat([references, references]),
        [LAYER] * 3 + ["logits"] * 3,
        [LAYER, "logits"],
        null,
    )
    assert len(matrix) == 6 * 2 * 3
    diagonal = matrix[matrix["diagonal"]]
    assert len(diagonal) == 6 * 3
    near_rows = matrix[
        (matrix["measured_layer"] == LAYER) & matrix["stimulus_id"].isin(["0", "1", "2"])
    ]
    assert near_rows["exceeds_null_max"].all()
    fig = plot_null_histograms(null, matrix)
    assert len(fig.axes) == 6
    assert len(plot_similarity_matrix(matrix, "pearson").axes) == 2
    fig.savefig(_tmp_png())


def _tmp_png():
    import tempfile

    return tempfile.NamedTemporaryFile(suffix=".png").name


@pytest.mark.slow
def test_planted_case_on_efficientnet_lite0(photos):
    """Real ImageNet model: a near-copy passes at an early block, another photo fails."""
    model = load_model("efficientnet_lite0")
    layer = "blocks.1"
    with pytest.warns(SmallNullWarning):
        null = compute_null(model, [layer], photos, 128, use_cache=False)
    images = torch.stack([photos.load(s, model.input_shape) for s in photos.limit(3)])
    references = images[:2]
    near = (references + 1e-3 * torch.randn(references.shape)).clamp(0, 1)
    table = accept(model, torch.cat([near, images[2:3]]), images[[0, 1, 0]], layer, null)
    assert table["accepted"].tolist() == [True, True, False]
    assert table["label_space"][0] == "16-way (feather2023)"  # the default for ImageNet models


def test_acceptance_stop_ends_synthesis_items_once_accepted(model, null, planted):
    """Wired into the synthesis engine: items stop (reason "criterion") before max_steps."""
    from metamers.synthesis import MetamerSynthesis, get_preset

    references = planted[0][:2]
    settings = get_preset("fast", max_steps=400, stop_check_every=10, lr=0.05)
    synthesis = MetamerSynthesis(model, LAYER, references, settings=settings).setup(seed=0)
    synthesis.synthesize(stop_criterion=AcceptanceStop(null, check_label=False))
    assert synthesis.stop_reasons == ["criterion", "criterion"]
    assert (synthesis.steps < 400).all()
    table = accept(model, synthesis.metamers, references, LAYER, null)
    assert table[["spearman_pass", "pearson_pass", "snr_db_pass"]].all().all()


def test_a_joint_job_is_accepted_only_at_every_layer(model, null, planted):
    references, near, _, _ = planted
    joint = MetamerResult("j", ("splitnet",), (f"{LAYER}+logits",), near[0], references[0], [])
    single = MetamerResult("s", ("splitnet",), (LAYER,), near[0], references[0], [])
    table = validate_results([joint, single], null, models={"splitnet": model})
    rows = table[table["stimulus_id"] == "j"]
    assert rows["layer"].tolist() == [LAYER, "logits"]
    assert rows["generation_layer"].tolist() == [f"{LAYER}+logits"] * 2
    # passes at left.1 but not at the 3-unit logits (null max rho = 1): not accepted
    assert rows["accepted"].tolist() == [True, False]
    assert not rows["accepted_all_models"].any()
    assert table.loc[table["stimulus_id"] == "s", "accepted_all_models"].all()
