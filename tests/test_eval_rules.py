"""Scoring rules of `lpips eval` (lpipscli.analysis.evaluate) against hand computations and independent code.

Expected values are worked out by hand in the comments, or computed by NumPy/SciPy code written here
(the LPIPS repository's loop form of VOC AP, scipy.stats correlations, an own curve_fit of the VQEG
logistic), never by the module under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import voc_ap_loop
from scipy.optimize import curve_fit
from scipy.stats import kendalltau, pearsonr, spearmanr

from lpipscli.analysis.evaluate import (
    bootstrap_ci,
    bootstrap_stratified,
    ensemble_2afc,
    jnd_map,
    mos_correlations,
    score_2afc,
    voc_ap,
)

TOLERANCES = {
    "exact": 1e-12,  # sums of a handful of products of binary fractions
    "ap": 1e-12,  # same operations in another order
    "corr": 1e-10,  # scipy called twice on the same arrays
    "fit": 1e-4,  # two curve_fit runs of the same model from the same start (optimizer tolerance)
}


# ---------------------------------------------------------------------------------------------- 2AFC


def test_2afc_credit_by_hand_with_ties_and_both_directions():
    d0 = [0.1, 0.5, 0.3, 0.2]
    d1 = [0.2, 0.4, 0.3, 0.2]
    judge = [0.25, 0.75, 0.9, 0.0]
    # distance: p0 closer -> 1 - 0.25; p1 closer -> 0.75; tie -> 0.5; tie -> 0.5
    assert score_2afc(d0, d1, judge, False) == pytest.approx([0.75, 0.75, 0.5, 0.5], abs=TOLERANCES["exact"])
    # the same values as a similarity: p1 "closer" in row 1 (0.2 > 0.1) -> 0.25; row 2 p0 -> 0.25
    assert score_2afc(d0, d1, judge, True) == pytest.approx([0.25, 0.25, 0.5, 0.5], abs=TOLERANCES["exact"])


def test_2afc_infinite_psnr_and_nan():
    inf, nan = math.inf, math.nan
    # PSNR: p0 identical to ref (inf) beats p1; both identical: a tie; NaN stays NaN
    credit = score_2afc([inf, inf, 20.0, nan], [30.0, inf, inf, 10.0], [0.2, 0.6, 0.3, 0.5], True)
    assert credit[:3] == pytest.approx([0.8, 0.5, 0.3], abs=TOLERANCES["exact"])
    assert math.isnan(credit[3])


def test_2afc_rejects_bad_judge_and_shapes():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_2afc([1.0], [2.0], [1.5], False)
    with pytest.raises(ValueError, match="same shape"):
        score_2afc([1.0, 2.0], [2.0], [0.5], False)


def test_ensemble_vote_and_mean_by_hand():
    # 3 members, 3 triplets (distances)
    d0 = np.array([[1.0, 2.0, 1.0], [2.0, 1.0, 3.0], [1.0, 1.0, 3.0]])
    d1 = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 2.0, 1.0]])
    judge = np.array([0.1, 0.9, 0.3])
    out = ensemble_2afc(d0, d1, judge, False)
    # triplet 0: votes for p1 = 0 + 1 + 0.5 (tie) = 1.5 = M/2 -> 0.5
    # triplet 1: p1, p0, p0 -> 1 vote for p1 < 1.5 -> p0 -> 1 - 0.9 = 0.1
    # triplet 2: tie (0.5), p1, p1 -> 2.5 > 1.5 -> p1 -> judge = 0.3
    assert out["vote"] == pytest.approx([0.5, 0.1, 0.3], abs=TOLERANCES["exact"])
    # means: d0 = [4/3, 4/3, 7/3], d1 = [4/3, 5/3, 1] -> tie, p0, p1 -> [0.5, 0.1, 0.3]
    assert out["mean"] == pytest.approx([0.5, 0.1, 0.3], abs=TOLERANCES["exact"])


def test_ensemble_vote_differs_from_mean_and_mixed_directions():
    # one member strongly prefers p0, two weakly prefer p1: the vote picks p1, the mean picks p0
    d0 = np.array([[0.0], [0.6], [0.6]])
    d1 = np.array([[1.0], [0.5], [0.5]])
    out = ensemble_2afc(d0, d1, [0.8], False)
    assert out["vote"] == pytest.approx([0.8]) and out["mean"] == pytest.approx([0.2])
    # a similarity member votes with its own direction; no mean is defined across directions
    mixed = ensemble_2afc(np.array([[1.0], [10.0]]), np.array([[2.0], [20.0]]), [0.7], [False, True])
    # member 0 (distance) prefers p0, member 1 (similarity, 20 > 10) prefers p1: a tie -> 0.5
    assert mixed["vote"] == pytest.approx([0.5]) and "mean" not in mixed


def test_ensemble_of_one_member_equals_the_metric():
    rng = np.random.default_rng(3)
    d0, d1, judge = rng.random(50), rng.random(50), rng.random(50)
    out = ensemble_2afc(d0[None], d1[None], judge, False)
    expected = np.where(d0 < d1, 1 - judge, np.where(d1 < d0, judge, 0.5))  # independent form of the rule
    np.testing.assert_allclose(out["vote"], expected, atol=TOLERANCES["exact"])


# ---------------------------------------------------------------------------------------------- JND


def _jnd_reference(ds, same):
    order = np.argsort(ds, kind="stable")
    s = same[order]
    tps = np.cumsum(s)
    fps = np.cumsum(1 - s)
    fns = np.sum(s) - tps
    return voc_ap_loop(tps / (tps + fns), tps / (tps + fps))


def test_jnd_ap_by_hand():
    # sorted by distance: same = 1, 0, 1, 0 -> precision 1, 1/2, 2/3, 1/2; recall 1/2, 1/2, 1, 1
    # monotone precision at the recall steps: 0 -> 1/2 at precision 1, 1/2 -> 1 at precision 2/3
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert jnd_map([0.4, 0.1, 0.3, 0.2], [0, 1, 1, 0], False) == pytest.approx(5 / 6, abs=TOLERANCES["ap"])
    # as a similarity the order reverses: same = 0, 1, 0, 1 -> precision 0, 1/2, 1/3, 1/2; recall 0, 1/2, 1/2, 1
    # monotone precision (from the right): 1/2, 1/2, 1/2, 1/2 -> AP = 1/2 * 1/2 + 1/2 * 1/2 = 1/2
    assert jnd_map([0.4, 0.1, 0.3, 0.2], [0, 1, 1, 0], True) == pytest.approx(0.5, abs=TOLERANCES["ap"])


def test_jnd_perfect_ranking_and_fractional_same():
    assert jnd_map([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], False) == pytest.approx(1.0, abs=TOLERANCES["ap"])
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 200):
        ds = rng.random(n)
        same = rng.integers(0, 4, n) / 3.0  # BAPPS JND holds fractions of 3 votes
        same[0] = 1.0  # at least one positive
        assert jnd_map(ds, same, False) == pytest.approx(_jnd_reference(ds, same), abs=TOLERANCES["ap"])
        assert jnd_map(-ds, same, True) == pytest.approx(_jnd_reference(ds, same), abs=TOLERANCES["ap"])


def test_voc_ap_matches_the_loop_form():
    rng = np.random.default_rng(1)
    rec = np.sort(rng.random(30))
    prec = rng.random(30)
    assert voc_ap(rec, prec) == pytest.approx(voc_ap_loop(rec, prec), abs=TOLERANCES["ap"])


def test_jnd_nan_values_left_out_and_no_positive():
    assert jnd_map([0.4, math.nan, 0.1], [0, 1, 1], False) == pytest.approx(1.0)
    assert math.isnan(jnd_map([0.1, 0.2], [0, 0], False))


# ---------------------------------------------------------------------------------------------- MOS


def _vqeg4(x, b1, b2, b3, b4):
    return b2 + (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4)))


def test_mos_rank_correlations_match_scipy_and_directions():
    rng = np.random.default_rng(0)
    dist = rng.random(40)  # a distance
    mos = 5 - 4 * dist ** 2 + rng.normal(0, 0.3, 40)  # people: higher is better
    out = mos_correlations(dist, mos, False)
    assert out["srocc"] == pytest.approx(spearmanr(-dist, mos).statistic, abs=TOLERANCES["corr"])
    assert out["krocc"] == pytest.approx(kendalltau(-dist, mos).statistic, abs=TOLERANCES["corr"])
    assert out["srocc"] > 0.5 and out["n"] == 40
    # the same data as a DMOS (higher = worse): the signs stay positive
    dmos = mos_correlations(dist, -mos, False, mos_higher_is_better=False)
    assert dmos["srocc"] == pytest.approx(out["srocc"], abs=TOLERANCES["corr"])
    assert dmos["plcc"] == pytest.approx(out["plcc"], abs=TOLERANCES["fit"])
    # a metric read in the wrong direction disagrees with people: every correlation is negative
    wrong = mos_correlations(dist, mos, True)
    assert wrong["srocc"] == pytest.approx(-out["srocc"], abs=TOLERANCES["corr"])
    assert wrong["plcc"] == pytest.approx(-out["plcc"], abs=TOLERANCES["fit"]) and wrong["plcc"] < 0


def test_mos_plcc_and_rmse_after_the_vqeg_logistic():
    rng = np.random.default_rng(2)
    x = np.sort(rng.uniform(-3, 3, 60))
    mos = _vqeg4(x, 4.5, 1.0, 0.3, 0.8) + rng.normal(0, 0.05, 60)
    out = mos_correlations(x, mos, True)
    params, _ = curve_fit(_vqeg4, x, mos, p0=[mos.max(), mos.min(), np.median(x), np.std(x)], maxfev=20000)
    fitted = _vqeg4(x, *params)
    assert out["plcc"] == pytest.approx(pearsonr(fitted, mos).statistic, abs=TOLERANCES["fit"])
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((fitted - mos) ** 2)), abs=TOLERANCES["fit"])
    assert out["plcc"] > 0.99 and out["rmse"] < 0.08  # noise sigma 0.05
    assert "4-parameter" in out["fit"]["model"]
    # raw Pearson is lower on this S-shaped data than after the fit
    assert pearsonr(x, mos).statistic < out["plcc"]


def test_mos_perfectly_monotone_and_inf_excluded():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, math.inf])
    mos = np.array([1.0, 1.5, 3.0, 4.5, 5.0, 9.0])
    out = mos_correlations(x, mos, True)
    assert out["srocc"] == pytest.approx(1.0) and out["krocc"] == pytest.approx(1.0)
    assert out["n"] == 5 and out["n_excluded"] == 1


# ---------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_the_estimate_and_narrows_with_more_items():
    rng = np.random.default_rng(5)
    widths = []
    for n in (25, 400):
        credit = rng.integers(0, 2, n).astype(float)
        low, high = bootstrap_ci(credit, n_resamples=1000, seed=7)
        assert low <= credit.mean() <= high
        widths.append(high - low)
    # the width of a mean's interval scales like 1/sqrt(n): 4x narrower expected, ask for 2x
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_seeded_and_degenerate_cases():
    values = np.random.default_rng(0).random(30)
    assert bootstrap_ci(values, n_resamples=200, seed=3) == bootstrap_ci(values, n_resamples=200, seed=3)
    assert bootstrap_ci(values, n_resamples=200, seed=3) != bootstrap_ci(values, n_resamples=200, seed=4)
    assert bootstrap_ci([0.5], n_resamples=100) is None
    assert bootstrap_ci(values, n_resamples=0) is None
    low, high = bootstrap_ci(np.full(10, 0.75), n_resamples=100)
    assert low == high == 0.75


def test_bootstrap_paired_statistic_contains_the_correlation():
    rng = np.random.default_rng(9)
    x = rng.random(80)
    y = x + rng.normal(0, 0.3, 80)
    rho = spearmanr(x, y).statistic
    low, high = bootstrap_ci((x, y), lambda a, b: spearmanr(a, b).statistic, n_resamples=300, seed=1)
    assert low <= rho <= high < 1.0


def test_stratified_bootstrap_mean_of_means_and_one_item_groups():
    rng = np.random.default_rng(4)
    a, b = rng.random(40), rng.random(60) * 0.5
    point = (a.mean() + b.mean()) / 2
    low, high = bootstrap_stratified([a, b], n_resamples=500, seed=0)
    assert low <= point <= high
    # a one-item group is a constant in every resample: the interval shifts by its share and keeps its width
    low1, high1 = bootstrap_stratified([a, np.array([1.0])], n_resamples=500, seed=0)
    low_a, high_a = bootstrap_stratified([a], n_resamples=500, seed=0)
    assert low1 == pytest.approx((low_a + 1.0) / 2) and high1 == pytest.approx((high_a + 1.0) / 2)
    assert bootstrap_stratified([np.array([1.0])], n_resamples=100) is None
