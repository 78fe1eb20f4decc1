"""One row-status vocabulary for every results file, and one grouping of rows for summaries and gates.

Statuses of ``lpips compare`` rows (columns ``..., <metrics>, ..., status, error``):

- ``ok``: every metric scored the pair; ``error`` is empty.
- ``partial``: some metrics scored it, others could not; their cells are empty (NaN) and ``error`` holds
  one ``metric: message`` entry per failed metric, joined by ``"; "`` (:func:`format_errors`).
- ``failed``: no metric scored it (decode error, missing file, every metric refused); ``error`` says why.
  Files written by older versions say ``error`` for this: :func:`normalize` reads it as ``failed``.

Statuses of ``lpips diff`` rows:

- ``ok``: the pair is in both runs and both scored every shared metric;
- ``failed``: either side is ``partial`` or ``failed`` (``error`` says which side and why), or a shared metric
  has no value on one side;
- ``missing_in_new``: the pair is only in BASE (it vanished from the new run);
- ``extra_in_new``: the pair is only in NEW (there is nothing to compare it with).

Failures (:func:`is_failure`): ``failed``, ``partial`` and ``missing_in_new`` are failures: a quality gate over
a group that holds one fails unless failures are allowed (``--allow-failed``), so a pair that broke or
vanished never passes silently. ``extra_in_new`` is reported (counted, listed) but is not a failure: a pair
the new run added cannot make an existing result worse, and it has no delta to gate. An unknown status is a
failure too.

:func:`group_rows` is the one grouping used by the compare summary, ``lpips summary`` and ``lpips diff``:
per distorted input (``dist_root``) the values of each column, the row names, the rows per status, the
failures per metric and per reason, and the missing rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COMPARE_STATUSES",
    "DIFF_STATUSES",
    "EXTRA_IN_NEW",
    "FAILED",
    "FAILURES",
    "LEGACY_FAILED",
    "MISSING_IN_NEW",
    "OK",
    "PARTIAL",
    "Group",
    "format_errors",
    "gate_inputs",
    "group_rows",
    "is_failure",
    "metric_errors",
    "normalize",
    "reason_of",
    "row_status",
    "totals",
]

OK = "ok"
PARTIAL = "partial"
FAILED = "failed"
MISSING_IN_NEW = "missing_in_new"
EXTRA_IN_NEW = "extra_in_new"
#: What files of older versions wrote for a pair that failed (read as :data:`FAILED`).
LEGACY_FAILED = "error"

#: Statuses of compare rows, in report order.
COMPARE_STATUSES = (OK, PARTIAL, FAILED)
#: Statuses of diff rows, in report order.
DIFF_STATUSES = (OK, FAILED, MISSING_IN_NEW, EXTRA_IN_NEW)
#: Statuses that fail a gate unless failures are allowed.
FAILURES = frozenset({FAILED, PARTIAL, MISSING_IN_NEW})

_KNOWN = frozenset(COMPARE_STATUSES + DIFF_STATUSES)
#: Separates the ``metric: message`` entries of a partial row's ``error``.
SEPARATOR = "; "


def normalize(status: Any) -> str:
    """The status in today's vocabulary: ``error`` (older files) becomes ``failed``; ``None`` or ``""`` (a file
    without a status column) is ``ok``; surrounding blanks and case are ignored; anything else is returned as
    given (stripped) and counts as a failure."""
    text = "" if status is None else str(status).strip()
    low = text.lower()
    if low == "":
        return OK
    if low == LEGACY_FAILED:
        return FAILED
    return low if low in _KNOWN else text


def is_failure(status: Any) -> bool:
    """Whether a row with this status fails gates: ``failed``, ``partial``, ``missing_in_new`` (also the older
    ``error``) and any unknown status; ``ok`` and ``extra_in_new`` are not failures."""
    s = normalize(status)
    return s in FAILURES or s not in _KNOWN


def format_errors(errors: Mapping[str, str]) -> str:
    """``{"ms_ssim": "too small", "lasi": "x"}`` -> ``"ms_ssim: too small; lasi: x"`` (the ``error`` of a
    ``partial`` row)."""
    return SEPARATOR.join(f"{metric}: {' '.join(str(message).split())}" for metric, message in errors.items())


def row_status(metrics: Iterable[str], errors: Mapping[str, str], fatal: str | None = None) -> tuple[str, str]:
    """``(status, error)`` of a compare row.

    Args:
        metrics: the run's metric keys.
        errors: ``{metric: message}`` for each metric that could not score the pair.
        fatal: a message when nothing could be scored (decode error, missing file).

    Returns:
        ``("ok", "")``; ``("partial", "m: msg; ...")`` when some metrics failed; ``("failed", fatal)`` with
        ``fatal``; ``("failed", "m: msg; ...")`` when every metric failed.
    """
    metrics = list(metrics)
    if fatal:
        return FAILED, " ".join(str(fatal).split())
    failed = {m: errors[m] for m in metrics if m in errors}
    if not failed:
        return OK, ""
    return (FAILED if len(failed) == len(metrics) else PARTIAL), format_errors(failed)


def metric_errors(error: str, metrics: Iterable[str]) -> dict[str, str]:
    """Parses an ``error`` cell made by :func:`format_errors` back into ``{metric: message}``.

    An entry is a known metric, ``": "`` and a message; text that does not start with a known metric belongs
    to the entry before it (messages may contain ``"; "``). Text before the first entry is ignored (it is a
    whole-row reason, not a metric's).

    Args:
        error: the cell.
        metrics: the metric keys that may appear (the file's metric columns).

    Returns:
        ``{metric: message}`` in the cell's order (empty when no entry names a metric).
    """
    known = set(metrics)
    out: dict[str, str] = {}
    current = None
    for part in str(error or "").split(SEPARATOR):
        head, sep, rest = part.partition(": ")
        if sep and head.strip() in known:
            current = head.strip()
            out[current] = rest
        elif current is not None:
            out[current] += SEPARATOR + part
    return out


def reason_of(message: str, names: Iterable[str] = ()) -> str:
    """A failure message without the file name it starts with, so that equal causes count together
    (``"out/a.png: cannot decode"`` -> ``"cannot decode"``). ``names``: the row's paths."""
    text = " ".join(str(message or "").split())
    for name in names:
        name = str(name or "")
        if name and text.startswith(name + ": "):
            return text[len(name) + 2:]
    return text or "(no reason given)"


@dataclass
class Group:
    """The rows of one distorted input (one ``dist_root``), as summaries and gates need them.

    Attributes:
        name: the ``dist_root`` (``""`` when the file has no such column).
        values: ``{column: float64 array}``, one value per row, NaN where a row has none.
        keys: a name per row (aligned with the arrays), for worst-pair lists and gate messages.
        statuses: rows per (normalised) status, every status seen.
        failed: rows whose status is a failure (:func:`is_failure`): what gates count.
        failed_per_metric: per column, the failure rows without a value in it.
        reasons: ``{reason: rows}`` over failure rows: the row's error without its file name, one entry per
            failed metric for ``partial`` rows (``"metric: reason"``).
        missing: ``missing_in_new`` rows.
        extra: ``extra_in_new`` rows.
    """

    name: str
    values: dict[str, np.ndarray] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    failed_per_metric: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    extra: int = 0

    @property
    def rows(self) -> int:
        """How many rows the group holds."""
        return len(self.keys)

    def counts(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict (the ``per_dist_root`` block's keys besides ``metrics``)."""
        return {"rows": self.rows, "failed": self.failed, "statuses": dict(self.statuses),
                "failed_per_metric": dict(self.failed_per_metric), "failure_reasons": dict(self.reasons),
                "missing": self.missing, "extra": self.extra}


def _float(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _default_name(row: Mapping[str, Any]) -> str:
    name = row.get("dist") or row.get("ref") or ""
    frame = row.get("frame")
    return f"{name}#{frame}" if frame is not None and frame != "" else str(name)


def group_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Iterable[str],
    *,
    metric_of: Callable[[str], str] | None = None,
    name_of: Callable[[Mapping[str, Any]], str] | None = None,
    roots: Iterable[str] | None = None,
) -> dict[str, Group]:
    """Groups rows by ``dist_root`` for summaries and gates (the one grouping of compare, summary and diff).

    Args:
        rows: result rows (compare or diff), each with ``status`` and ``error`` (absent: ``ok``).
        columns: the value columns to collect (metric columns; for a diff ``delta_<m>``, ``<m>_base``,
            ``<m>_new``).
        metric_of: the metric a column belongs to, to match a ``partial`` row's ``error`` entries (default:
            the column itself).
        name_of: how a row is named (default: its ``dist``, else ``ref``, ``#frame`` for video rows).
        roots: the groups to return first, in this order, even when they have no rows (e.g. every
            distorted input of a run); groups of other roots follow in order of first appearance.

    Returns:
        ``{dist_root: Group}``.
    """
    columns = list(columns)
    metric_of = metric_of or (lambda c: c)
    name_of = name_of or _default_name
    metric_names = {metric_of(c) for c in columns}
    cells: dict[str, dict[str, list[float]]] = {}
    groups: dict[str, Group] = {}
    for root in roots or ():
        groups[str(root)] = Group(str(root))
        cells[str(root)] = {c: [] for c in columns}
    for row in rows:
        root = str(row.get("dist_root", "") or "")
        if root not in groups:
            groups[root] = Group(root)
            cells[root] = {c: [] for c in columns}
        g = groups[root]
        status = normalize(row.get("status"))
        g.statuses[status] = g.statuses.get(status, 0) + 1
        g.keys.append(name_of(row))
        values = {c: _float(row.get(c)) for c in columns}
        for c, v in values.items():
            cells[root][c].append(v)
        if status == MISSING_IN_NEW:
            g.missing += 1
        elif status == EXTRA_IN_NEW:
            g.extra += 1
        if not is_failure(status):
            continue
        g.failed += 1
        for c, v in values.items():
            if math.isnan(v):
                g.failed_per_metric[c] = g.failed_per_metric.get(c, 0) + 1
        error = str(row.get("error") or "")
        per_metric = metric_errors(error, metric_names) if status == PARTIAL else {}
        paths = [row.get("dist"), row.get("ref")]
        if per_metric:
            for metric, message in per_metric.items():
                reason = f"{metric}: {reason_of(message, paths)}"
                g.reasons[reason] = g.reasons.get(reason, 0) + 1
        else:
            reason = MISSING_IN_NEW if status == MISSING_IN_NEW and not error else reason_of(error, paths)
            g.reasons[reason] = g.reasons.get(reason, 0) + 1
    for root, g in groups.items():
        g.values = {c: np.asarray(v, dtype=np.float64) for c, v in cells[root].items()}
        for c in columns:
            g.failed_per_metric.setdefault(c, 0)
    return groups


def totals(groups: Mapping[str, Group]) -> dict[str, Any]:
    """Counts over every group: rows, failed, per status, per metric, per reason, missing, extra."""
    statuses: Counter = Counter()
    per_metric: Counter = Counter()
    reasons: Counter = Counter()
    for g in groups.values():
        statuses.update(g.statuses)
        per_metric.update(g.failed_per_metric)
        reasons.update(g.reasons)
    return {"rows": sum(g.rows for g in groups.values()), "failed": sum(g.failed for g in groups.values()),
            "statuses": dict(statuses), "failed_per_metric": dict(per_metric), "failure_reasons": dict(reasons),
            "missing": sum(g.missing for g in groups.values()), "extra": sum(g.extra for g in groups.values())}


def gate_inputs(groups: Mapping[str, Group]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int],
                                                      dict[str, list[str]]]:
    """``(values, failed, keys)`` per group, the arguments :func:`lpipscli.gates.evaluate_gates` takes."""
    return ({n: g.values for n, g in groups.items()}, {n: g.failed for n, g in groups.items()},
            {n: g.keys for n, g in groups.items()})
