"""What a report shows, as numbers: no HTML, no plotting, no torch.

A report is built from one input file:

- a results file of ``lpips compare`` (images, or video when rows have a ``frame`` column);
- a results file of ``lpips diff`` (columns ``<m>_base``, ``<m>_new``, ``delta_<m>``; provenance ``kind: diff``);
- an evaluation table as JSON (``.json``): rows of ``metric``, ``score``, ``ci_low``, ``ci_high`` (see
  :func:`read_eval`).

Sizes are bounded whatever the number of rows: histograms have at most :data:`MAX_BINS` bins, per-frame
curves at most :data:`MAX_CURVE_POINTS` points (:func:`decimate` keeps each bucket's minimum and maximum, so
spikes survive), and the gallery at most :data:`MAX_CARDS` pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.metrics import REGISTRY
from lpipscli.results import ResultTable, groups_for_gates, metric_columns, read_results, row_name
from lpipscli.stats import summarize

__all__ = [
    "HIGHER_IS_BETTER",
    "MAX_BINS",
    "MAX_CARDS",
    "MAX_CURVE_POINTS",
    "EvalRow",
    "ReportInput",
    "base_metric",
    "decimate",
    "direction_of",
    "histogram",
    "load_input",
    "read_eval",
    "worst_indices",
]

#: Most bins of one histogram.
MAX_BINS = 50
#: Most points of one per-frame curve (pairs of bucket minimum and maximum beyond that).
MAX_CURVE_POINTS = 2000
#: Most pairs in the gallery, whatever ``--worst`` and the number of metrics.
MAX_CARDS = 48

#: ``higher_is_better`` of every registered metric, kept here so that ``lpips report`` never imports torch
#: (``lpipscli.metrics`` does); ``tests/test_report.py`` checks it against ``lpipscli.metrics.REGISTRY``.
HIGHER_IS_BETTER: dict[str, bool] = {k: s.higher_is_better for k, s in REGISTRY.items()}


def base_metric(column: str) -> str:
    """The metric a column belongs to: ``delta_psnr``, ``psnr_base``, ``psnr_new`` -> ``psnr``."""
    if column.startswith("delta_"):
        return column[len("delta_"):]
    for suffix in ("_base", "_new"):
        if column.endswith(suffix) and column[: -len(suffix)]:
            return column[: -len(suffix)]
    return column


def direction_of(column: str) -> bool | None:
    """``higher_is_better`` of the column's metric (a delta column: a positive delta is better when the
    metric's higher values are); ``None`` for an unknown metric."""
    return HIGHER_IS_BETTER.get(column, HIGHER_IS_BETTER.get(base_metric(column)))


# ------------------------------------------------------------------------------------------------ numbers


def histogram(values: np.ndarray, max_bins: int = MAX_BINS) -> dict[str, Any]:
    """Equal-width bins over the finite values (numpy's ``auto`` rule, at most ``max_bins``).

    Bins are closed on the left and open on the right, except the last one (closed), as in
    ``numpy.histogram``. Infinite values and NaN are not binned: they are counted apart.

    Returns:
        ``{"edges": [...], "counts": [...], "n_posinf", "n_neginf", "n_nan"}`` (Python numbers; ``edges``
        has one more entry than ``counts``; both empty when there is no finite value).
    """
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    out: dict[str, Any] = {"n_posinf": int(np.isposinf(arr).sum()), "n_neginf": int(np.isneginf(arr).sum()),
                           "n_nan": int(np.isnan(arr).sum())}
    if finite.size == 0:
        return {"edges": [], "counts": [], **out}
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        pad = 0.5 * abs(lo) * 1e-3 or 0.5
        lo, hi = lo - pad, hi + pad
    edges = np.histogram_bin_edges(finite, bins="auto", range=(lo, hi))
    if edges.size - 1 > max_bins:
        edges = np.linspace(lo, hi, max_bins + 1)
    counts, edges = np.histogram(finite, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], **out}


def decimate(y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of the points of a curve to draw: all of them when there are at most ``max_points``, else
    the position of the minimum and of the maximum of each of ``max_points // 2`` consecutive buckets
    (NaN ignored), in increasing order. The curve's global extremes are always kept.

    Args:
        y: the values, in drawing order (e.g. by frame).
        max_points: the most indices returned (>= 2).
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    base = np.arange(buckets) * size
    lows = np.where(np.isnan(grid), np.inf, grid).argmin(axis=1) + base
    highs = np.where(np.isnan(grid), -np.inf, grid).argmax(axis=1) + base
    keep = np.unique(np.concatenate([lows, highs]))
    return keep[keep < n]


def worst_indices(values: np.ndarray, k: int, higher_is_better: bool) -> list[int]:
    """Positions of the ``k`` worst values, worst first, as :func:`lpipscli.stats.worst` ranks them (NaN
    left out, ties in input order)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    v = np.asarray(values, dtype=np.float64)
    present = np.flatnonzero(~np.isnan(v))
    order = np.argsort(v[present] if higher_is_better else -v[present], kind="stable")
    return present[order[:k]].tolist()


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class EvalRow:
    """One row of an evaluation table: a metric's score and its confidence interval."""

    metric: str
    score: float
    ci_low: float | None
    ci_high: float | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportInput:
    """The file a report is made from, read and classified.

    Attributes:
        path: the file.
        kind: ``"compare"``, ``"video"`` (compare rows with a ``frame`` column), ``"diff"`` or ``"eval"``.
        table: the rows (``None`` for ``eval``).
        metrics: the columns plotted and ranked: compare metrics, or ``delta_<m>`` for a diff.
        eval_rows: the evaluation table (``eval`` only).
        provenance: the run's provenance (or the eval file's ``provenance``), ``None`` when absent.
        warnings: things the reader should know (no provenance, incomplete run).
    """

    path: Path
    kind: str
    table: ResultTable | None
    metrics: list[str]
    eval_rows: list[EvalRow] = field(default_factory=list)
    provenance: dict | None = None
    warnings: list[str] = field(default_factory=list)
    eval_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def roots(self) -> list[str]:
        return self.table.dist_roots if self.table is not None else []

    def groups(self, columns: Sequence[str] | None = None):
        """``(groups, failed, keys)`` as :func:`lpipscli.results.groups_for_gates`; for a diff, missing and
        failed pairs count as failed, as ``lpips diff`` counts them for its gates."""
        if self.table is None:
            raise UsageError(f"{self.path}: an evaluation table has no per-pair rows")
        groups, failed, keys = groups_for_gates(self.table, list(columns if columns is not None else self.metrics))
        if self.kind == "diff":
            failed = dict.fromkeys(groups, 0)
            for row in self.table.rows:
                if row.get("status") in ("missing_in_new", "failed"):
                    root = str(row.get("dist_root", ""))
                    failed[root] = failed.get(root, 0) + 1
        return groups, failed, keys

    def gate_columns(self) -> list[str]:
        """The columns a ``--fail-if`` gate may name."""
        if self.table is None:
            return []
        return metric_columns(self.table)


def _float_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{where}: {value!r} is not a number")
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "nan"):
        return float(value.strip().lower())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {value!r} is not a number") from None


def read_eval(path: str | Path) -> tuple[list[EvalRow], dict | None, dict[str, Any]]:
    """Reads an evaluation table from JSON.

    Accepted shapes: a list of row objects, or an object whose ``"metrics"``, ``"table"`` or ``"rows"`` key
    holds that list (other keys are kept and shown; ``"provenance"`` becomes the report's provenance). Each
    row has ``metric`` (text) and ``score`` (number), and optionally ``ci_low`` / ``ci_high`` (numbers or
    ``null``); any other keys are shown as extra columns.

    Returns:
        ``(rows, provenance, other top-level keys)``.

    Raises:
        UsageError: unreadable JSON, or rows without ``metric``/``score``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read as JSON: {exc}") from None
    extra: dict[str, Any] = {}
    provenance = None
    if isinstance(data, dict):
        key = next((k for k in ("metrics", "table", "rows") if isinstance(data.get(k), list)), None)
        if key is None:
            raise UsageError(f"{path}: no evaluation table (a list under 'metrics', 'table' or 'rows')")
        provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else None
        extra = {k: v for k, v in data.items() if k not in (key, "provenance")}
        data = data[key]
    if not isinstance(data, list) or not data:
        raise UsageError(f"{path}: the evaluation table is empty or not a list of rows")
    rows = []
    for i, obj in enumerate(data, 1):
        where = f"{path}: row {i}"
        if not isinstance(obj, dict) or "metric" not in obj or "score" not in obj:
            raise UsageError(f"{where}: needs 'metric' and 'score'")
        score = _float_or_none(obj["score"], f"{where}, score")
        rows.append(EvalRow(
            metric=str(obj["metric"]), score=math.nan if score is None else score,
            ci_low=_float_or_none(obj.get("ci_low"), f"{where}, ci_low"),
            ci_high=_float_or_none(obj.get("ci_high"), f"{where}, ci_high"),
            extra={k: v for k, v in obj.items() if k not in ("metric", "score", "ci_low", "ci_high")},
        ))
    return rows, provenance, extra


def load_input(path: str | Path) -> ReportInput:
    """Reads and classifies the file a report is made from (see the module docstring).

    Raises:
        UsageError: unreadable file, or a results file without any metric column.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        rows, provenance, extra = read_eval(path)
        return ReportInput(path=path, kind="eval", table=None, metrics=[r.metric for r in rows], eval_rows=rows,
                           provenance=provenance, eval_extra=extra)
    table = read_results(path)
    columns = metric_columns(table)
    prov = table.provenance if isinstance(table.provenance, dict) else None
    is_diff = (prov or {}).get("kind") == "diff" or any(c.startswith("delta_") for c in columns)
    if is_diff:
        metrics = [c for c in columns if c.startswith("delta_")]
        kind = "diff"
    else:
        metrics = columns
        kind = "video" if "frame" in table.columns else "compare"
    if not metrics:
        raise UsageError(f"{path}: no metric column to report (columns: {', '.join(table.columns)})")
    return ReportInput(path=path, kind=kind, table=table, metrics=metrics, provenance=prov,
                       warnings=list(table.warnings))


def summaries(inp: ReportInput, columns: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{dist_root: {column: lpipscli.stats.summarize(...)}}`` over the rows of each distorted input."""
    groups, _, _ = inp.groups(list(columns))
    return {root: {c: summarize(v, higher_is_better=direction_of(c)) for c, v in cols.items()}
            for root, cols in groups.items()}


def row_label(row: Mapping[str, Any]) -> str:
    """A row's name, as the other commands print it (:func:`lpipscli.results.row_name`)."""
    return row_name(row)
