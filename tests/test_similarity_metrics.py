"""Row-wise similarity metrics: agreement with scipy, invariances, the zero rule and its tests."""

import numpy as np
import pytest
import scipy.stats
import torch

from metamers.similarity.metrics import (
    all_zero_pairs,
    cosine,
    indexed_similarities,
    pearson,
    rank_average,
    similarities,
    snr_db,
    spearman,
    zero_rows,
)


@pytest.fixture(scope="module")
def tied_pairs():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, size=(8, 4, 5, 5)).astype(np.float64)  # many ties
    b = np.maximum(rng.normal(size=(8, 4, 5, 5)), 0)  # ReLU-like: ties at zero
    return a, b


def test_spearman_matches_scipy_with_ties(tied_pairs):
    a, b = tied_pairs
    ours = spearman(torch.tensor(a), torch.tensor(b)).numpy()
    theirs = [scipy.stats.spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_rank_average_matches_rankdata(tied_pairs):
    a, _ = tied_pairs
    ours = rank_average(torch.tensor(a)).numpy()
    np.testing.assert_array_equal(ours, scipy.stats.rankdata(a.reshape(8, -1), axis=1))


def test_pearson_matches_scipy_on_float32_input():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 300)).astype(np.float32)
    b = (0.3 * a + rng.normal(size=(6, 300))).astype(np.float32)
    ours = pearson(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    theirs = [
        scipy.stats.pearsonr(x.astype(float), y.astype(float)).statistic for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_snr_conventional_is_twice_published_and_matches_formula():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(5, 50))
    m = s + 0.1 * rng.normal(size=(5, 50))
    expected = 20 * np.log10(np.linalg.norm(s, axis=1) / np.linalg.norm(s - m, axis=1))
    conventional = snr_db(torch.tensor(s), torch.tensor(m)).numpy()
    published = snr_db(torch.tensor(s), torch.tensor(m), variant="published").numpy()
    np.testing.assert_allclose(conventional, expected, rtol=1e-12)
    np.testing.assert_allclose(published, expected / 2, rtol=1e-12)
    assert np.all(conventional > 15)  # 10 % noise ≈ 20 dB


def test_cosine_matches_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cosine(torch.tensor(a), torch.tensor(b)).numpy(), expected)


def test_invariances():
    rng = np.random.default_rng(4)
    a = torch.tensor(rng.normal(size=(3, 200)))
    b = torch.tensor(rng.normal(size=(3, 200)))
    np.testing.assert_allclose(pearson(3 * a + 2, b), pearson(a, b), atol=1e-12)
    np.testing.assert_allclose(spearman(torch.exp(a), b), spearman(a, b), atol=1e-12)
    assert torch.allclose(spearman(a, a), torch.ones(3, dtype=torch.float64))
    assert torch.isinf(snr_db(a, a)).all()


def test_all_zero_rule_scores_zero_and_never_nan():
    x = torch.rand(4, 10)
    zero = torch.zeros(4, 10)
    constant = torch.full((4, 10), 2.0)
    for metric in (spearman, pearson, snr_db, cosine):
        assert torch.equal(metric(zero, x), torch.zeros(4, dtype=torch.float64))
        assert torch.equal(metric(x, zero), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(pearson(constant, x), torch.zeros(4, dtype=torch.float64))
    assert all_zero_pairs(zero, x).all() and not all_zero_pairs(x, constant).any()


def test_indexed_similarities_equal_pairwise_metrics():
    x = torch.relu(torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(5)))
    x[4] = 0
    first, second = torch.tensor([0, 1, 4, 7, 11]), torch.tensor([3, 2, 5, 1, 0])
    batched = indexed_similarities(x, first, second)
    direct = similarities(x[first], x[second])
    for name, value in batched.items():
        np.testing.assert_allclose(value.numpy(), direct[name].numpy(), atol=1e-9)
    assert batched["spearman"][2] == 0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        pearson(torch.rand(3, 4), torch.rand(3, 5))
    with pytest.raises(ValueError, match="unknown metric"):
        similarities(torch.rand(2, 3), torch.rand(2, 3), ("euclid",))


def _signed_cancelling():
    """Row 0 sums to exactly 0 but is not all zero (a signed layer); row 1 is ordinary."""
    a = torch.tensor([[1.0, -1.0, 2.0, -2.0, 0.5, -0.5], [0.3, 0.1, 0.4, 0.1, 0.5, 0.9]])
    b = torch.tensor([[2.0, -1.0, 3.0, -2.0, 1.0, -1.0], [0.2, 0.7, 0.1, 0.8, 0.2, 0.8]])
    return a, b


def test_zero_test_sum_is_the_published_rule():
    a, b = _signed_cancelling()
    assert zero_rows(a, "sum").tolist() == [True, False]
    assert zero_rows(a, "all").tolist() == [False, False]
    published = similarities(a, b, ("spearman", "pearson", "snr_db", "cosine"), zero_test="sum")
    ours = similarities(a, b, ("spearman", "pearson", "snr_db", "cosine"))
    for name in published:
        assert published[name][0] == 0, name  # the cancelling row scores 0 …
        assert ours[name][0] != 0, name  # … only under the published test
        assert published[name][1] == ours[name][1], name  # other rows are unaffected
    assert ours["pearson"][0] > 0.9  # a perfectly ordinary, highly similar pair
    # the second member's sum counts too
    assert similarities(b, a, ("pearson",), zero_test="sum")["pearson"][0] == 0


def test_indexed_similarities_honour_the_zero_test():
    a, b = _signed_cancelling()
    rows = torch.cat([a, b])
    first, second = torch.tensor([0, 1, 2]), torch.tensor([2, 3, 1])
    for zero_test in ("all", "sum"):
        batched = indexed_similarities(rows, first, second, zero_test=zero_test)
        direct = similarities(rows[first], rows[second], zero_test=zero_test)
        for name, value in batched.items():
            np.testing.assert_allclose(value.numpy(), direct[name].numpy(), atol=1e-9)
        assert (batched["pearson"][0] == 0) == (zero_test == "sum")


def test_unknown_zero_test_is_refused_in_one_line():
    a, b = _signed_cancelling()
    for call in (
        lambda: similarities(a, b, zero_test="any"),
        lambda: indexed_similarities(a, torch.tensor([0]), torch.tensor([1]), zero_test="any"),
        lambda: snr_db(a, b, zero_test="any"),
        lambda: zero_rows(a, "any"),
    ):
        with pytest.raises(
            ValueError, match=r"^unknown zero test 'any'; use one of \('all', 'sum'\)$"
        ):
            call()
