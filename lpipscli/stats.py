"""Summary statistics for one metric over one group of pairs, with fixed rules for non-finite values.

A group's values are a 1-D sequence of floats, one per pair, in which ``NaN`` means *no value*
(the pair failed to decode or was not scored). Infinite values are real results (PSNR of identical
images is ``+inf``), so they are kept wherever an order statistic can hold them.

Rules (STYLE.md rule 9; the same in :func:`summarize`, :func:`percentile`, :func:`worst` and the gates):

1. ``NaN`` rows are excluded from every statistic and counted (``n_nan``).
2. ``+inf`` / ``-inf`` are kept in the order statistics: ``min``, ``max``, ``median`` and the percentiles
   are computed over all non-NaN values, so the median of mostly-identical PSNR pairs is ``inf``.
3. ``mean`` and ``std`` (population, ``ddof=0``) are over the *finite* values only when there is at
   least one, and ``excluded_from_mean`` says how many rows they left out (NaN and infinite). When there
   is no finite value and every non-NaN value is the same infinity (a lossless encode: every PSNR is
   ``+inf``), ``mean`` is that infinity and ``std`` is ``0`` (all values are equal), so
   ``mean(psnr) < 40`` passes on identical images. ``+inf`` mixed with ``-inf`` and nothing finite, or no
   non-NaN value at all, gives ``None``.
4. ``hmean`` (harmonic mean ``n / sum(1/x)`` over the non-NaN values) is defined only when there is at
   least one non-NaN value and all of them are ``> 0``; ``+inf`` contributes ``1/inf = 0`` (so all-``inf``
   gives ``inf``). Otherwise it is ``None``.
5. Percentiles use numpy's default ``method="linear"`` (Hyndman & Fan type 7): with the ``n`` non-NaN
   values sorted as ``x[0..n-1]``, the position is ``h = (q/100)·(n-1)``, ``i = floor(h)``, ``g = h - i``
   and the result is ``x[i] + g·(x[i+1] - x[i])``, evaluated exactly as numpy does for finite neighbours.
   numpy itself returns NaN as soon as an infinite value is involved (``inf - inf`` inside its
   interpolation, even at ``q = 0``); here the limit is taken instead: ``g = 0`` or equal neighbours give
   ``x[i]``, a finite/infinite pair gives the infinity, and ``-inf`` next to ``+inf`` with ``0 < g < 1`` is
   undefined (``None``).
6. Non-finite values are never turned into ``0``; an undefined statistic is ``None``, never ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["SUMMARY_PERCENTILES", "mean_std", "percentile", "summarize", "to_array", "worst"]

#: The percentiles :func:`summarize` reports, as ``key -> q``.
SUMMARY_PERCENTILES: dict[str, float] = {"p1": 1.0, "p5": 5.0, "p95": 95.0, "p99": 99.0}


def to_array(values: Any) -> np.ndarray:
    """Converts a 1-D sequence of floats (``None`` counts as NaN) to a float64 numpy array.

    Args:
        values: a list, tuple, numpy array or anything ``numpy.asarray`` accepts, 1-D.

    Returns:
        A 1-D ``float64`` array (a copy only when a conversion is needed).

    Raises:
        ValueError: when the values are not one-dimensional or not numbers.
    """
    if isinstance(values, np.ndarray):
        arr = values.astype(np.float64, copy=False)
    else:
        seq = list(values)
        arr = np.asarray([math.nan if v is None else v for v in seq], dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of values, got shape {tuple(arr.shape)}")
    return arr


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 100.0:  # also rejects NaN
        raise ValueError(f"percentile must be in [0, 100], got {q!r}")
    return q


def _percentile_sorted(x: np.ndarray, q: float) -> float | None:
    """Rule 5 on ``x``, the non-NaN values sorted ascending."""
    n = x.size
    if n == 0:
        return None
    h = (q / 100.0) * (n - 1)  # numpy: quantile (= q/100) times (n - 1)
    i = min(int(math.floor(h)), n - 1)
    j = min(i + 1, n - 1)
    g = h - i
    a, b = float(x[i]), float(x[j])
    if g == 0.0 or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        if math.isinf(a) and math.isinf(b):  # -inf next to +inf: no limit
            return None
        return a if math.isinf(a) else b
    d = b - a
    # numpy's _lerp: a + d*g, and b - d*(1-g) for g >= 0.5 (monotone and exact at the ends).
    return b - d * (1.0 - g) if g >= 0.5 else a + d * g


def percentile(values: Any, q: float) -> float | None:
    """The ``q``-th percentile of the non-NaN values (module rules 1, 2, 5).

    Args:
        values: 1-D values; NaN (or ``None``) means "no value" and is skipped.
        q: percentile in ``[0, 100]``; decimals are allowed (``99.9``).

    Returns:
        The percentile as a Python float (possibly ``inf``), or ``None`` when there are no non-NaN
        values or the interpolation falls between ``-inf`` and ``+inf``.

    Raises:
        ValueError: ``q`` outside ``[0, 100]`` or NaN; values not 1-D.
    """
    q = _check_q(q)
    arr = to_array(values)
    return _percentile_sorted(np.sort(arr[~np.isnan(arr)]), q)


def mean_std(values: Any) -> tuple[float | None, float | None, int]:
    """``(mean, std, n_used)`` of 1-D values following rule 3.

    Args:
        values: 1-D values; NaN (or ``None``) means "no value".

    Returns:
        ``mean`` and population ``std`` over the finite values and their count when there is one; else,
        when every non-NaN value is the same infinity, ``(that infinity, 0.0, n)`` with ``n`` the number
        of those values; else ``(None, None, 0)``.
    """
    arr = to_array(values)
    finite = arr[np.isfinite(arr)]
    if finite.size:
        return float(np.mean(finite)), float(np.std(finite)), int(finite.size)
    present = arr[~np.isnan(arr)]
    if present.size and bool(np.all(present == present[0])):  # all +inf or all -inf
        return float(present[0]), 0.0, int(present.size)
    return None, None, 0


def _hmean(v: np.ndarray) -> float | None:
    """Rule 4 on the non-NaN values ``v``."""
    if v.size == 0 or not bool(np.all(v > 0)):
        return None
    with np.errstate(divide="ignore", over="ignore"):
        return float(v.size / np.sum(1.0 / v))


def summarize(values: Any, *, higher_is_better: bool | None = None) -> dict[str, Any]:
    """Summary statistics of one metric over one group, following the module rules.

    Args:
        values: 1-D floats, one per pair; NaN (or ``None``) means the pair has no value.
        higher_is_better: the metric's direction; only recorded in the result (``None``: unknown).

    Returns:
        A JSON-ready dict (ints and Python floats; infinities stay ``float('inf')``; undefined is
        ``None``) with the keys, in this order:

        - ``count``: all rows, NaN included; ``n_nan``, ``n_posinf``, ``n_neginf``; ``finite``: finite rows;
        - ``excluded_from_mean``: rows left out of ``mean``/``std`` (``count - finite``, or ``n_nan``
          when every value is the same infinity);
        - ``mean``, ``std`` (population): over finite values (rule 3: all the same infinity gives that
          infinity and ``0``), ``None`` when undefined;
        - ``min``, ``max``, ``median``, ``p1``, ``p5``, ``p95``, ``p99``: over non-NaN values, infinities
          included, ``None`` when every row is NaN;
        - ``hmean``: harmonic mean, ``None`` unless every non-NaN value is ``> 0``;
        - ``higher_is_better``: the argument, echoed.

    Raises:
        ValueError: values not 1-D or not numbers.
    """
    arr = to_array(values)
    nan = np.isnan(arr)
    posinf = np.isposinf(arr)
    neginf = np.isneginf(arr)
    present = np.sort(arr[~nan])
    finite = arr[np.isfinite(arr)]
    mean, std, n_used = mean_std(arr)
    out: dict[str, Any] = {
        "count": int(arr.size),
        "n_nan": int(nan.sum()),
        "n_posinf": int(posinf.sum()),
        "n_neginf": int(neginf.sum()),
        "finite": int(finite.size),
        "excluded_from_mean": int(arr.size - n_used),
        "mean": mean,
        "std": std,
        "min": float(present[0]) if present.size else None,
        "max": float(present[-1]) if present.size else None,
        "median": _percentile_sorted(present, 50.0),
    }
    for key, q in SUMMARY_PERCENTILES.items():
        out[key] = _percentile_sorted(present, q)
    out["hmean"] = _hmean(present)
    out["higher_is_better"] = higher_is_better
    return out


def worst(
    rows: Iterable[Mapping[str, Any]], metric: str, k: int, higher_is_better: bool
) -> list[dict[str, Any]]:
    """The ``k`` worst rows for ``metric``, worst first.

    "Worst" is the lowest value when ``higher_is_better`` (``-inf`` first; ``+inf`` is best) and the
    highest otherwise (``+inf`` first). Rows whose value is NaN, ``None`` or missing are excluded.
    Ties keep the input order (stable sort).

    Args:
        rows: one mapping per pair, a key per column (e.g. ``{"dist_path": ..., "psnr": 31.2}``).
        metric: the column to rank by.
        k: how many rows to return (``0`` gives ``[]``; fewer come back when fewer have a value).
        higher_is_better: the metric's direction.

    Returns:
        A list of at most ``k`` plain dicts (shallow copies of the rows).

    Raises:
        ValueError: ``k < 0``, or rows were given but none has the column ``metric``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    scored: list[tuple[float, Mapping[str, Any]]] = []
    seen_column = False
    n_rows = 0
    for row in rows:
        n_rows += 1
        if metric not in row:
            continue
        seen_column = True
        raw = row[metric]
        if raw is None:
            continue
        value = float(raw)
        if math.isnan(value):
            continue
        scored.append((value, row))
    if n_rows and not seen_column:
        raise ValueError(f"no row has the column {metric!r}")
    scored.sort(key=lambda item: item[0], reverse=not higher_is_better)  # sort is stable either way
    return [dict(row) for _, row in scored[:k]]

