"""Run summaries: statistics per metric and distorted input, and their table on stderr."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lpipscli.stats import summarize
from lpipscli.status import Group, group_rows, totals

if TYPE_CHECKING:  # the engine imports torch; summary and diff must not
    from lpipscli.engine import RunResult

__all__ = ["build_summary", "groups_from_values", "per_root", "per_root_summary", "print_group_table",
           "print_summary", "table_summary"]


def per_root(groups: Mapping[str, Group], direction: Mapping[str, bool | None] | None = None,
             worst_k: int = 0) -> dict[str, Any]:
    """The ``per_dist_root`` block of every summary (compare, ``lpips summary``, ``lpips diff``).

    Args:
        groups: from :func:`lpipscli.status.group_rows`.
        direction: ``{column: higher_is_better}`` recorded with each column's statistics (unknown: ``None``).
        worst_k: how many worst rows to list per column (0: none, and no ``worst`` key).

    Returns:
        ``{dist_root: {"rows", "failed", "statuses", "failed_per_metric", "failure_reasons", "missing",
        "extra", "metrics": {column: stats.summarize(...) [+ "worst"]}}}``. Statistics leave NaN rows out
        (failed pairs have no value) and count them in ``n_nan``.
    """
    from lpipscli.ci import worst_rows

    direction = direction or {}
    out: dict[str, Any] = {}
    for name, g in groups.items():
        block = g.counts()
        block["metrics"] = {c: summarize(v, higher_is_better=direction.get(c)) for c, v in g.values.items()}
        out[name] = block
    if worst_k:
        worst = worst_rows({n: g.values for n, g in groups.items()}, {n: g.keys for n, g in groups.items()},
                           {c: bool(d) for c, d in direction.items()}, worst_k)
        for name, block in out.items():
            for column, stats in block["metrics"].items():
                stats["worst"] = worst[name][column]
    return out


def groups_from_values(values: Mapping[str, Mapping[str, Sequence[float]]], failed: Mapping[str, int],
                       keys: Mapping[str, Sequence[str]]) -> dict[str, Group]:
    """Groups for callers that hold values, failed counts and row names rather than rows (older run
    results): a metric counts a failure per NaN value, up to the group's failed rows."""
    import numpy as np

    out: dict[str, Group] = {}
    for name, cols in values.items():
        arrays = {c: np.asarray(v, dtype=np.float64) for c, v in cols.items()}
        n_failed = int(failed.get(name, 0))
        n_rows = max((a.size for a in arrays.values()), default=len(keys.get(name, [])))
        out[name] = Group(
            name, values=arrays, keys=list(keys.get(name, [])), failed=n_failed,
            statuses={k: v for k, v in (("ok", n_rows - n_failed), ("failed", n_failed)) if v},
            failed_per_metric={c: min(n_failed, int(np.isnan(a).sum())) for c, a in arrays.items()},
        )
    return out


def per_root_summary(groups, failed: Mapping[str, int] | None = None, keys: Mapping[str, Sequence[str]] | None = None,
                     direction: Mapping[str, bool | None] | None = None, worst_k: int = 0) -> dict[str, Any]:
    """:func:`per_root` for ``{dist_root: Group}``, or (older signature) for
    ``({dist_root: {metric: values}}, failed, keys, direction, worst_k)``."""
    if groups and not all(isinstance(g, Group) for g in groups.values()):
        groups = groups_from_values(groups, failed or {}, keys or {})
    return per_root(groups, direction, worst_k)


def table_summary(rows, columns: Sequence[str], *, direction: Mapping[str, bool | None] | None = None,
                  worst_k: int = 0, roots: Sequence[str] | None = None, metric_of=None,
                  name_of=None) -> tuple[dict[str, Group], dict[str, Any]]:
    """Group rows (:func:`lpipscli.status.group_rows`) and summarise them: ``(groups, summary)`` where the
    summary holds the totals (``rows``, ``failed``, ``statuses``, ``failed_per_metric``,
    ``failure_reasons``, ``missing``, ``extra``) and ``per_dist_root``."""
    groups = group_rows(rows, columns, metric_of=metric_of, name_of=name_of, roots=roots)
    return groups, {**totals(groups), "per_dist_root": per_root(groups, direction, worst_k)}


def build_summary(result: RunResult, metrics: tuple[str, ...], dist_roots: list[str],
                  unmatched: dict | None = None, worst_k: int = 5, *, rows=None,
                  direction: Mapping[str, bool | None] | None = None) -> dict[str, Any]:
    """The summary of a compare run: counts, and per distorted input and metric the statistics and worst pairs.

    Args:
        result: the run's result (counts; values, failed counts and names per root when ``rows`` is None).
        metrics: the run's metric keys.
        dist_roots: the distorted inputs, in report order.
        unmatched: what pairing left out (``--allow-unmatched``).
        worst_k: worst pairs listed per metric.
        rows: the run's rows (``status``/``error`` per row); when given, failures are counted per metric and
            per reason from them (:func:`lpipscli.status.group_rows`).
        direction: ``{metric: higher_is_better}``; default from the metric registry.
    """
    if direction is None:
        from lpipscli.metrics import REGISTRY

        direction = {key: REGISTRY[key].higher_is_better for key in metrics}
    if rows is not None:
        groups = group_rows(rows, metrics, roots=dist_roots)
    else:
        groups = groups_from_values(result.groups(metrics, dist_roots), result.failed_per_root, result.names)
    count = totals(groups)
    if rows is None and isinstance(getattr(result, "failed_per_metric", None), dict):
        count["failed_per_metric"] = {m: int(result.failed_per_metric.get(m, 0)) for m in metrics}
    return {
        "pairs": result.n_pairs,
        "scored": result.n_scored,
        "failed": result.n_failed,
        "statuses": count["statuses"],
        "failed_per_metric": count["failed_per_metric"],
        "failure_reasons": count["failure_reasons"],
        "interrupted": result.interrupted,
        "first_error": result.first_error,
        "unmatched": unmatched or {},
        "per_dist_root": per_root(groups, direction, worst_k),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


def print_group_table(per_root: dict[str, Any], console, title: str = "lpips compare: summary") -> None:
    """A rich table with one row per distorted input and metric; ``failed`` counts the failed rows without a
    value for that metric (per metric), then one line per input with failures and their reasons."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    # VMAF users pool frames with the harmonic mean: the column appears when a vmaf column is summarised
    hmean = any(key.startswith("vmaf") for block in per_root.values() for key in block["metrics"])
    for name, justify in (("dist_root", "left"), ("metric", "left"), ("count", "right"), ("mean", "right"),
                          *((("hmean", "right"),) if hmean else ()),
                          ("median", "right"), ("p5", "right"), ("p95", "right"), ("min", "right"),
                          ("max", "right"), ("failed", "right")):
        table.add_column(name, justify=justify)
    for root, block in per_root.items():
        for key, stats in block["metrics"].items():
            direction = stats.get("higher_is_better")
            arrow = {True: " ↑", False: " ↓"}.get(direction, "")
            table.add_row(escape(root), f"{key}{arrow}", str(stats["count"] - stats["n_nan"]), _fmt(stats["mean"]),
                          *((_fmt(stats.get("hmean")),) if hmean else ()),
                          _fmt(stats["median"]), _fmt(stats["p5"]), _fmt(stats["p95"]), _fmt(stats["min"]),
                          _fmt(stats["max"]), str(block.get("failed_per_metric", {}).get(key, block["failed"])))
    console.print(table)
    for line in failure_lines(per_root):
        console.print(escape(line), highlight=False, soft_wrap=True)


def failure_lines(per_root: Mapping[str, Any], most: int = 5) -> list[str]:
    """One line per distorted input with failures: how many rows failed or are missing, and the most common
    reasons with their counts (``most`` of them)."""
    lines = []
    for root, block in per_root.items():
        if not block.get("failed"):
            continue
        statuses = block.get("statuses", {})
        parts = [f"{n} {s}" for s, n in statuses.items() if s not in ("ok", "extra_in_new")]
        reasons = sorted(block.get("failure_reasons", {}).items(), key=lambda kv: -kv[1])
        shown = "; ".join(f"{r} (x{n})" if n > 1 else r for r, n in reasons[:most])
        more = f"; ... ({len(reasons) - most} more reasons)" if len(reasons) > most else ""
        reasons_text = f": {shown}{more}" if shown else ""
        lines.append(f"{root or '(results)'}: {block['failed']} of {block.get('rows', '?')} rows failed "
                     f"({', '.join(parts)}){reasons_text}")
    return lines


def print_summary(summary: dict[str, Any], console) -> None:
    """Render a compare summary: the table, then what was left unpaired."""
    from rich.markup import escape

    print_group_table(summary["per_dist_root"], console)
    notes = []
    for kind, counts in summary.get("unmatched", {}).items():
        if kind != "unmatched_examples" and counts:
            notes.append(f"{kind}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    if notes:
        console.print(escape("not scored (--allow-unmatched): " + "; ".join(notes)))
