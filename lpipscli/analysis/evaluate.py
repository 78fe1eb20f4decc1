"""Agreement of a metric with human judgments: 2AFC, JND average precision, MOS correlations, bootstrap.

Pure NumPy/SciPy functions on score arrays (no I/O, no torch); the rules are those of METRICS.md section 11
and of the official LPIPS code (``lpips/trainer.py`` ``score_2afc_dataset`` / ``score_jnd_dataset``,
``lpips/__init__.py`` ``voc_ap``).

Direction: every function takes ``higher_is_better`` (the metric's registry flag). A distance (lower is
better, LPIPS, MSE) is used as is; a similarity (higher is better, SSIM, PSNR) is negated first, so that
"smaller means closer to the reference" holds everywhere. ``+inf`` (PSNR of identical images) is a real
value and compares as usual; ``NaN`` (a pair that could not be scored) never counts as agreement or
disagreement: it propagates to the per-item credit, and aggregates leave such items out and count them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "LOGISTIC_4PL",
    "bootstrap_ci",
    "bootstrap_stratified",
    "ensemble_2afc",
    "jnd_map",
    "logistic_4pl",
    "mos_correlations",
    "score_2afc",
    "voc_ap",
]

#: The name of the monotonic fit used before PLCC/RMSE (recorded in every summary).
LOGISTIC_4PL = "VQEG FR-TV Phase II 4-parameter logistic: b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|))"


def _as_1d(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Distances: as they are; similarities: negated (so smaller is always closer)."""
    return -values if higher_is_better else values


def score_2afc(d0: Any, d1: Any, judge: Any, higher_is_better: bool) -> np.ndarray:
    """Per-triplet 2AFC credit, as the LPIPS paper defines it.

    ``credit = (d0 < d1)·(1 − judge) + (d1 < d0)·judge + (d0 == d1)·0.5`` with ``d0 = d(ref, p0)``,
    ``d1 = d(ref, p1)`` and ``judge`` the fraction of people who preferred p1. For a similarity the
    comparisons flip. The 2AFC score of a set is the mean credit.

    Args:
        d0: metric values of (ref, p0), ``(N,)``.
        d1: metric values of (ref, p1), ``(N,)``.
        judge: fraction of people who preferred p1, ``(N,)`` in ``[0, 1]``.
        higher_is_better: True for similarities (SSIM, PSNR), False for distances.

    Returns:
        ``(N,)`` float64 credits in ``[0, 1]``; NaN where ``d0`` or ``d1`` is NaN.

    Raises:
        ValueError: shapes differ, or a judge value lies outside ``[0, 1]``.
    """
    d0, d1, judge = _as_1d("d0", d0), _as_1d("d1", d1), _as_1d("judge", judge)
    if not d0.shape == d1.shape == judge.shape:
        raise ValueError(f"d0, d1 and judge must have the same shape, got {d0.shape}, {d1.shape}, {judge.shape}")
    if np.any(~np.isfinite(judge)) or np.any((judge < 0) | (judge > 1)):
        raise ValueError("judge values must lie in [0, 1]")
    a, b = _oriented(d0, higher_is_better), _oriented(d1, higher_is_better)
    credit = (a < b) * (1.0 - judge) + (b < a) * judge + (a == b) * 0.5
    credit[np.isnan(a) | np.isnan(b)] = np.nan
    return credit


def ensemble_2afc(d0: Any, d1: Any, judge: Any, higher_is_better: bool | Sequence[bool]) -> dict[str, np.ndarray]:
    """2AFC credit of an ensemble of M metrics (e.g. random networks), decided two ways.

    * ``"vote"`` (Amir & Weiss): each member prefers p0 or p1 by its own values (a member's tie gives half
      a vote to each side); the side with more votes is the ensemble's choice and is credited like a single
      metric's (``judge`` for p1, ``1 − judge`` for p0); equal votes give 0.5.
    * ``"mean"``: the members' values are averaged per image and the average is scored with
      :func:`score_2afc` (only when every member has the same direction).

    Args:
        d0: ``(M, N)`` member values of (ref, p0).
        d1: ``(M, N)`` member values of (ref, p1).
        judge: ``(N,)`` fraction of people who preferred p1.
        higher_is_better: one flag for all members, or one per member.

    Returns:
        ``{"vote": (N,), "mean": (N,)}`` credits (``"mean"`` is absent when the directions differ). A
        triplet with a NaN member value gets NaN.
    """
    d0 = np.asarray(d0, dtype=np.float64)
    d1 = np.asarray(d1, dtype=np.float64)
    if d0.ndim != 2 or d0.shape != d1.shape:
        raise ValueError(f"d0 and d1 must both be (M, N) arrays, got {d0.shape} and {d1.shape}")
    m, n = d0.shape
    judge = _as_1d("judge", judge)
    if judge.shape != (n,):
        raise ValueError(f"judge must have shape ({n},), got {judge.shape}")
    flags = [bool(higher_is_better)] * m if isinstance(higher_is_better, (bool, np.bool_)) else list(higher_is_better)
    if len(flags) != m:
        raise ValueError(f"higher_is_better: {len(flags)} flag(s) for {m} member(s)")
    ones = np.ones(n)
    # a member's preference for p1 (1, 0 or 0.5 on a tie) is its 2AFC credit against a unanimous judge
    prefers_p1 = np.stack([score_2afc(d0[i], d1[i], ones, flags[i]) for i in range(m)])
    votes_p1 = prefers_p1.sum(axis=0)
    vote = np.where(votes_p1 > m / 2, judge, np.where(votes_p1 < m / 2, 1.0 - judge, 0.5))
    vote[np.isnan(votes_p1)] = np.nan
    out = {"vote": vote}
    if len(set(flags)) == 1:
        out["mean"] = score_2afc(d0.mean(axis=0), d1.mean(axis=0), judge, flags[0])
    return out


def voc_ap(recall: Any, precision: Any) -> float:
    """PASCAL VOC average precision, 2010+ form (all points), as ``lpips.voc_ap(use_07_metric=False)``.

    Sentinels ``(0, …, 1)`` for recall and ``(0, …, 0)`` for precision, precision made monotone from the
    right, then the sum of ``Δrecall · precision`` where recall changes.
    """
    mrec = np.concatenate(([0.0], _as_1d("recall", recall), [1.0]))
    mpre = np.concatenate(([0.0], _as_1d("precision", precision), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def jnd_map(dists: Any, same: Any, higher_is_better: bool) -> float:
    """JND score: average precision of the metric's values at finding the pairs people called "same".

    Pairs are sorted by distance ascending (similarities descending; ties keep the input order, a stable
    sort); ``TP = cumsum(same)``, ``FP = cumsum(1 − same)``, ``FN = Σsame − TP``; precision
    ``TP/(TP+FP)`` and recall ``TP/(TP+FN)`` feed :func:`voc_ap`.

    Args:
        dists: ``(N,)`` metric values of the pairs (p0, p1).
        same: ``(N,)`` fraction of people who said the two images are the same, in ``[0, 1]``.
        higher_is_better: True for similarities.

    Returns:
        The average precision in ``[0, 1]``; NaN when no pair has a value or ``Σsame = 0``. Pairs
        with a NaN value are left out.
    """
    values, same = _as_1d("dists", dists), _as_1d("same", same)
    if values.shape != same.shape:
        raise ValueError(f"dists and same must have the same shape, got {values.shape} and {same.shape}")
    if np.any(~np.isfinite(same)) or np.any((same < 0) | (same > 1)):
        raise ValueError("same values must lie in [0, 1]")
    keep = ~np.isnan(values)
    values, same = _oriented(values[keep], higher_is_better), same[keep]
    if values.size == 0 or same.sum() == 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    s = same[order]
    tp = np.cumsum(s)
    fp = np.cumsum(1.0 - s)
    fn = s.sum() - tp
    return voc_ap(tp / (tp + fn), tp / (tp + fp))


def logistic_4pl(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The 4-parameter logistic of the VQEG FR-TV Phase II report (monotonic in ``x``): see :data:`LOGISTIC_4PL`."""
    with np.errstate(over="ignore"):
        return b2 + (b1 - b2) / (1.0 + np.exp(-(x - b3) / (abs(b4) + 1e-12)))


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Least-squares fit of :func:`logistic_4pl`; parameters in the units of ``x``, None when it fails.

    The fit runs on standardised ``x`` with bounds (asymptotes within two score ranges of the data, centre
    inside the data, scale between 0.001 and 10 standard deviations): the least-squares problem is the
    same, but nearly linear data cannot drive the parameters off to infinity (and take seconds).
    """
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    mean, std = float(x.mean()), float(x.std()) or 1.0
    z = (x - mean) / std
    span = float(np.ptp(y)) or 1.0
    low = [y.min() - 2 * span, y.min() - 2 * span, z.min(), 1e-3]
    high = [y.max() + 2 * span, y.max() + 2 * span, z.max(), 10.0]
    start = np.clip([y.max(), y.min(), np.median(z), 1.0], low, high)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic_4pl, z, y, p0=start, bounds=(low, high), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    b1, b2, b3, b4 = params
    params = np.array([b1, b2, mean + std * b3, std * abs(b4)])
    return params if np.all(np.isfinite(params)) else None


def mos_correlations(scores: Any, mos: Any, higher_is_better: bool, *, mos_higher_is_better: bool = True
                     ) -> dict[str, Any]:
    """SROCC, KROCC (raw values), PLCC and RMSE (after a 4-parameter logistic fit) against subjective scores.

    The metric's values are oriented so that larger means better (distances negated), and a DMOS (larger
    means worse, ``mos_higher_is_better=False``) is negated too, so a metric that agrees with people gets
    positive correlations. The fit maps the oriented values to the oriented subjective scores; PLCC is the
    Pearson correlation of fitted and subjective scores, negative when the fitted curve decreases (the
    metric disagrees with people); RMSE is in the subjective score's units.

    Args:
        scores: ``(N,)`` metric values of (ref, dist).
        mos: ``(N,)`` subjective scores.
        higher_is_better: the metric's direction.
        mos_higher_is_better: False for DMOS-like scores.

    Returns:
        ``{"n", "n_excluded", "srocc", "krocc", "plcc", "rmse", "fit": {"model", "params"}}``; items with a
        non-finite metric value are excluded (and counted); values are NaN when fewer than 3 items remain
        or the fit does not converge (``fit.params`` is then None).
    """
    from scipy.stats import kendalltau, pearsonr, spearmanr

    x, y = _as_1d("scores", scores), _as_1d("mos", mos)
    if x.shape != y.shape:
        raise ValueError(f"scores and mos must have the same shape, got {x.shape} and {y.shape}")
    if np.any(~np.isfinite(y)):
        raise ValueError("subjective scores must be finite numbers")
    keep = np.isfinite(x)
    x = -x[keep] if not higher_is_better else x[keep]
    y = y[keep]
    sign = 1.0 if mos_higher_is_better else -1.0
    out: dict[str, Any] = {"n": int(x.size), "n_excluded": int((~keep).sum()), "srocc": float("nan"),
                           "krocc": float("nan"), "plcc": float("nan"), "rmse": float("nan"),
                           "fit": {"model": LOGISTIC_4PL, "params": None}}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    y = sign * y
    out["srocc"] = float(spearmanr(x, y).statistic)
    out["krocc"] = float(kendalltau(x, y).statistic)
    params = _fit_logistic(x, y)
    if params is not None:
        fitted = logistic_4pl(x, *params)
        if np.ptp(fitted) > 0:
            # the fit may come out decreasing (a metric that disagrees with people): then PLCC is negative
            out["plcc"] = float(np.sign(params[0] - params[1]) * pearsonr(fitted, y).statistic)
        out["rmse"] = float(np.sqrt(np.mean((fitted - y) ** 2)))
        out["fit"]["params"] = [float(p) for p in params]
    return out


def _rng_kwargs(seed: int) -> dict[str, Any]:
    """scipy >= 1.15 takes ``rng``; older versions ``random_state`` (same generator either way)."""
    import inspect

    from scipy.stats import bootstrap

    name = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def _run_bootstrap(samples: tuple, statistic, *, level: float, seed: int, n_resamples: int, paired: bool,
                   vectorized: bool) -> tuple[float, float] | None:
    """``scipy.stats.bootstrap`` (percentile method); resamples whose statistic is undefined (NaN, e.g. a JND
    resample without any "same" pair) are left out of the percentiles (None when all are)."""
    import warnings

    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's DegenerateDataWarning when NaN resamples exist
        res = bootstrap(samples, statistic, n_resamples=n_resamples, confidence_level=level, method="percentile",
                        paired=paired, vectorized=vectorized, **_rng_kwargs(seed))
    distribution = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    if not np.isnan(distribution).any():
        return (float(res.confidence_interval.low), float(res.confidence_interval.high))
    finite = distribution[~np.isnan(distribution)]
    if finite.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(finite, [100 * alpha, 100 * (1 - alpha)])
    return (float(low), float(high))


def bootstrap_ci(
    data: Any,
    statistic: Callable[..., float] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval (``scipy.stats.bootstrap(method="percentile")``).

    Args:
        data: a 1-D array of per-item values (the statistic defaults to their mean), or a tuple of equally
            long 1-D arrays resampled together (one index draw per item, ``paired=True``), e.g. metric
            values and MOS for a correlation.
        statistic: ``statistic(*arrays) -> float`` for tuple data (required then).
        n_resamples: number of resamples (0 gives None).
        seed: seed of the NumPy generator that draws the resamples.
        level: confidence level, e.g. 0.95.

    Returns:
        ``(low, high)``, or None when there are fewer than 2 items or no resamples. NaN items are dropped
        before resampling (they never enter a statistic); resamples whose statistic is undefined (NaN) are
        left out of the percentiles.
    """
    if n_resamples <= 0:
        return None
    run = {"n_resamples": n_resamples, "seed": seed, "level": level}
    if isinstance(data, tuple):
        if statistic is None:
            raise ValueError("bootstrap_ci: a statistic is required for several arrays")
        arrays = [_as_1d("data", a) for a in data]
        keep = np.all([~np.isnan(a) for a in arrays], axis=0)
        arrays = [a[keep] for a in arrays]
        if arrays[0].size < 2:
            return None
        return _run_bootstrap(tuple(arrays), statistic, paired=True, vectorized=False, **run)
    values = _as_1d("data", data)
    values = values[~np.isnan(values)]
    if values.size < 2:
        return None
    if statistic is None:
        return _run_bootstrap((values,), np.mean, paired=False, vectorized=True, **run)
    return _run_bootstrap((values,), statistic, paired=False, vectorized=False, **run)


def bootstrap_stratified(
    groups: Sequence[Any],
    statistic: Callable[..., float] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile interval of the mean over groups of a per-group statistic (e.g. over BAPPS categories).

    Each group is resampled on its own (a stratified bootstrap: every resample keeps each category's size),
    as the published figures are unweighted means of per-category scores. A group is a 1-D array (the
    statistic defaults to its mean) or a tuple of equally long 1-D arrays resampled together, passed to
    ``statistic(*arrays)``. Items with a NaN in any array are dropped first.

    Returns:
        ``(low, high)``, or None when ``n_resamples`` is 0, a group is empty or no group has 2 items or more
        (a one-item group enters every resample with its own value).
    """
    if n_resamples <= 0 or not groups:
        return None
    prepared = []
    for g in groups:
        arrays = [_as_1d("group", a) for a in (g if isinstance(g, tuple) else (g,))]
        keep = np.all([~np.isnan(a) for a in arrays], axis=0)
        arrays = [a[keep] for a in arrays]
        if arrays[0].size == 0:
            return None
        prepared.append(arrays)
    per_group = statistic or (lambda values: float(np.mean(values)))
    # a one-item group resamples to itself: it enters every resample as a constant
    constants = [per_group(*arrays) for arrays in prepared if arrays[0].size == 1]
    prepared = [arrays for arrays in prepared if arrays[0].size > 1]
    if not prepared:
        return None
    total, n_groups = float(np.sum(constants)), len(constants) + len(prepared)
    if statistic is None:
        if any(len(a) != 1 for a in prepared):
            raise ValueError("bootstrap_stratified: a statistic is required for groups of several arrays")

        def mean_of_means(*indices, axis=-1):
            means = [arrays[0][idx].mean(axis=axis) for arrays, idx in zip(prepared, indices, strict=True)]
            return (np.sum(means, axis=0) + total) / n_groups

        stat, vectorized = mean_of_means, True
    else:

        def stat(*indices):
            values = [statistic(*(a[idx] for a in arrays)) for arrays, idx in zip(prepared, indices, strict=True)]
            return (float(np.sum(values)) + total) / n_groups

        vectorized = False
    # resample item indices: scipy draws each group's indices independently (paired=False)
    samples = tuple(np.arange(arrays[0].size) for arrays in prepared)
    return _run_bootstrap(samples, stat, n_resamples=n_resamples, seed=seed, level=level, paired=False,
                          vectorized=vectorized)
