"""lpipscli.stats: summaries with fixed NaN/inf rules, checked against numpy/scipy and the definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from lpipscli.stats import SUMMARY_PERCENTILES, percentile, summarize, worst

INF = math.inf
NAN = math.nan

# (atol, rtol) per quantity; numpy/scipy sum in a different order than a plain formula would.
TOLERANCES = {
    "mean": (0.0, 1e-12),
    "std": (1e-12, 1e-9),
    "percentile": (0.0, 1e-12),
    "hmean": (0.0, 1e-12),
}


def close(actual, expected, kind):
    atol, rtol = TOLERANCES[kind]
    assert actual is not None
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)


def type7(sorted_vals, q):
    """Hyndman & Fan type 7 from its definition, for finite data (independent of numpy)."""
    n = len(sorted_vals)
    h = (n - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_vals[lo] + (h - lo) * (sorted_vals[hi] - sorted_vals[lo])


def test_psnr_with_an_identical_pair():
    """PSNR [30, inf, 40]: inf is in the order statistics, out of mean/std, and 1/inf = 0 in hmean."""
    s = summarize([30.0, INF, 40.0], higher_is_better=True)
    assert (s["count"], s["n_nan"], s["n_posinf"], s["n_neginf"], s["finite"]) == (3, 0, 1, 0, 2)
    assert s["excluded_from_mean"] == 1
    close(s["mean"], 35.0, "mean")
    close(s["std"], np.std([30.0, 40.0]), "std")
    assert s["min"] == 30.0
    assert s["max"] == INF
    assert s["median"] == 40.0  # sorted [30, 40, inf]: the middle value
    close(s["p1"], 30.0 + 0.02 * 10.0, "percentile")  # h = 0.02, between 30 and 40
    close(s["p5"], 30.0 + 0.10 * 10.0, "percentile")
    assert s["p95"] == INF and s["p99"] == INF  # between 40 and inf
    close(s["hmean"], 3.0 / (1 / 30.0 + 1 / 40.0), "hmean")
    assert s["higher_is_better"] is True


def test_mostly_identical_pairs_have_an_infinite_median():
    s = summarize([INF, 30.0, INF, INF, INF])
    assert s["median"] == INF
    assert s["mean"] == 30.0 and s["std"] == 0.0
    close(s["hmean"], 5.0 / (1 / 30.0), "hmean")


def test_nan_rows_are_excluded_and_counted():
    vals = [NAN, 1.0, 2.0, None, 4.0]
    s = summarize(vals)
    present = np.array([1.0, 2.0, 4.0])
    assert (s["count"], s["n_nan"], s["finite"], s["excluded_from_mean"]) == (5, 2, 3, 2)
    close(s["mean"], np.mean(present), "mean")
    close(s["median"], np.median(present), "percentile")
    close(s["p95"], np.percentile(present, 95), "percentile")
    close(s["hmean"], sps.hmean(present), "hmean")


def test_nothing_to_summarize_gives_none_never_zero():
    for vals in ([], [NAN, NAN]):
        s = summarize(vals)
        assert s["count"] == len(vals) and s["n_nan"] == len(vals) and s["finite"] == 0
        for key in ("mean", "std", "min", "max", "median", *SUMMARY_PERCENTILES, "hmean"):
            assert s[key] is None, key


def test_all_infinite_keeps_infinities():
    s = summarize([INF, INF])
    assert s["mean"] == INF and s["std"] == 0.0  # every value the same infinity (rule 3)
    assert s["min"] == INF and s["median"] == INF and s["p1"] == INF
    assert s["hmean"] == INF  # n / (0 + 0)
    s = summarize([-INF, 1.0, 2.0])
    assert s["min"] == -INF and s["n_neginf"] == 1 and s["p1"] == -INF
    assert s["hmean"] is None  # not all > 0
    s = summarize([-INF, INF, NAN])
    assert s["mean"] is None and s["std"] is None  # opposite infinities: no limit


def _expected_order_stat(values: np.ndarray, q: float) -> float:
    """numpy's type 7 percentile when no infinity is involved; with infinities, 'lower' and 'higher'
    neighbours from numpy: equal neighbours give that value, a finite/infinite pair gives the infinity."""
    lo = float(np.percentile(values, q, method="lower"))
    hi = float(np.percentile(values, q, method="higher"))
    if lo == hi:
        return lo
    if math.isinf(lo) or math.isinf(hi):
        return lo if math.isinf(lo) else hi
    return float(np.percentile(values, q))


@pytest.mark.parametrize("case", ["all_finite", "mixed", "all_posinf", "all_neginf"])
def test_every_statistic_with_finite_mixed_and_infinite_inputs(case):
    """Issue 11 point 3: each statistic against numpy on all-finite, mixed and all-infinite values."""
    rng = np.random.default_rng(7)
    finite = rng.uniform(20.0, 50.0, size=9)
    values = {
        "all_finite": finite,
        "mixed": np.concatenate([finite, [INF, INF, INF]]),
        "all_posinf": np.full(5, INF),
        "all_neginf": np.full(4, -INF),
    }[case]
    with_nan = np.concatenate([values, [NAN, NAN]])
    s = summarize(with_nan)
    fin = values[np.isfinite(values)]
    if case in ("all_finite", "mixed"):  # documented rule: mean and std over the finite values only
        close(s["mean"], np.mean(fin), "mean")
        close(s["std"], np.std(fin), "std")
        assert s["excluded_from_mean"] == 2 + int(np.isinf(values).sum())
    else:  # every value the same infinity: numpy's own mean of it, spread 0
        assert s["mean"] == float(np.mean(values)) == values[0]
        assert s["std"] == 0.0
        assert s["excluded_from_mean"] == 2
    assert s["min"] == float(np.min(values)) and s["max"] == float(np.max(values))
    for key, q in {"median": 50.0, **SUMMARY_PERCENTILES}.items():
        expected = _expected_order_stat(values, q)
        if math.isinf(expected):
            assert s[key] == expected, key
        else:
            close(s[key], expected, "percentile")
    if case != "all_neginf":
        with np.errstate(divide="ignore"):
            expected_h = float(values.size / np.sum(1.0 / values))  # 1/inf = 0 in numpy too
        assert s["hmean"] == pytest.approx(expected_h, rel=TOLERANCES["hmean"][1])
    else:
        assert s["hmean"] is None


def test_opposite_infinities_do_not_interpolate():
    assert percentile([-INF, INF], 50) is None  # -inf + 0.5 * (inf - -inf) has no limit
    assert percentile([-INF, INF], 0) == -INF and percentile([-INF, INF], 100) == INF
    assert summarize([-INF, INF])["median"] is None


def test_hmean_needs_all_positive():
    assert summarize([1.0, 0.0, 2.0])["hmean"] is None
    assert summarize([1.0, -1.0])["hmean"] is None
    close(summarize([1.0, 2.0, NAN])["hmean"], sps.hmean([1.0, 2.0]), "hmean")


def test_summary_is_json_ready():
    s = summarize(np.array([30.0, INF, NAN, 40.0], dtype=np.float32), higher_is_better=False)
    for key, value in s.items():
        assert value is None or type(value) in (int, float, bool), (key, type(value))
    assert json.loads(json.dumps(s))["max"] == INF


@pytest.mark.parametrize("seed", range(6))
def test_summary_matches_numpy_on_finite_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    vals = rng.lognormal(1.0, 1.0, size=n)
    holes = vals.copy()
    holes[rng.random(n) < 0.2] = np.nan
    s = summarize(holes)
    present = holes[~np.isnan(holes)]
    assert s["n_nan"] == int(np.isnan(holes).sum())
    if present.size == 0:
        assert s["mean"] is None
        return
    close(s["mean"], np.nanmean(holes), "mean")
    close(s["std"], np.nanstd(holes), "std")
    assert s["min"] == np.nanmin(holes) and s["max"] == np.nanmax(holes)
    close(s["median"], np.nanmedian(holes), "percentile")
    for key, q in SUMMARY_PERCENTILES.items():
        close(s[key], np.nanpercentile(holes, q), "percentile")
        close(s[key], type7(sorted(present.tolist()), q), "percentile")
    close(s["hmean"], sps.hmean(present), "hmean")


finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    vals=st.lists(st.one_of(finite_floats, st.just(INF), st.just(NAN)), min_size=0, max_size=25),
    # q on a 0.001 grid: a weight g far below 1e-12 would vanish next to the stand-in M in floating point.
    q=st.one_of(st.sampled_from([0.0, 1.0, 5.0, 50.0, 95.0, 99.9, 100.0]), st.integers(0, 100_000).map(
        lambda k: k / 1000)),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_percentile_is_the_limit_of_numpy_with_large_stand_ins(vals, q, sign):
    """Rule 5: with one sign of infinity, the result equals numpy's with inf replaced by M, M -> inf."""
    vals = [v * sign for v in vals]
    got = percentile(vals, q)
    present = np.array([v for v in vals if not math.isnan(v)])
    if present.size == 0:
        assert got is None
        return
    if not np.isinf(present).any():
        close(got, np.percentile(present, q), "percentile")
        return
    results = []
    for big in (1e12, 1e15):
        stand_in = np.where(np.isinf(present), sign * big, present)
        results.append(float(np.percentile(stand_in, q)))
    if results[0] == results[1]:  # the infinities do not take part
        assert got == results[0]
    else:
        assert got == sign * INF


def test_percentile_accepts_decimals_and_rejects_out_of_range():
    vals = np.arange(1000, dtype=float)
    close(percentile(vals, 99.9), np.percentile(vals, 99.9), "percentile")
    for bad in (-0.1, 100.5, NAN):
        with pytest.raises(ValueError, match="percentile"):
            percentile(vals, bad)
    with pytest.raises(ValueError, match="1-D"):
        summarize(np.zeros((2, 2)))


def _rows(values):
    return [{"dist_path": f"d/{i}.png", "psnr": v} for i, v in enumerate(values)]


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_worst_rows(higher_is_better):
    values = [30.0, NAN, 25.0, INF, 25.0, -INF, 40.0, None, 25.0]
    rows = _rows(values)
    got = worst(rows, "psnr", 4, higher_is_better)
    # Independent ranking: (badness, input index), badness = value or -value.
    scored = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    order = sorted(scored, key=lambda t: (t[1] if higher_is_better else -t[1], t[0]))
    assert [r["dist_path"] for r in got] == [f"d/{i}.png" for i, _ in order[:4]]
    assert all(isinstance(r, dict) for r in got)
    if higher_is_better:
        assert got[0]["psnr"] == -INF and [r["dist_path"] for r in got[1:4]] == ["d/2.png", "d/4.png",
                                                                                  "d/8.png"]
    else:
        assert got[0]["psnr"] == INF


def test_worst_edges():
    rows = _rows([1.0, 2.0])
    assert worst(rows, "psnr", 0, True) == []
    assert len(worst(rows, "psnr", 10, True)) == 2
    assert worst(_rows([NAN, None]), "psnr", 3, True) == []
    with pytest.raises(ValueError, match="k must be"):
        worst(rows, "psnr", -1, True)
    with pytest.raises(ValueError, match="psnrr"):
        worst(rows, "psnrr", 1, True)
    assert worst([], "psnr", 2, True) == []
