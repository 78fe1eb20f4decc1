"""Run summaries: statistics per metric and distorted input, and their table on stderr."""

from __future__ import annotations

from typing import Any

from lpipscli.engine import RunResult
from lpipscli.metrics import REGISTRY


def per_root_summary(groups: dict[str, dict[str, Any]], failed: dict[str, int], keys: dict[str, list[str]],
                     direction: dict[str, bool], worst_k: int) -> dict[str, Any]:
    """``{dist_root: {"failed": n, "metrics": {metric: statistics + "worst"}}}`` for groups of values.

    Statistics are those of :func:`lpipscli.results.summarize_groups` (NaN rows, i.e. failed pairs, are
    counted in ``n_nan`` and never enter a statistic); ``worst`` lists the ``worst_k`` worst rows by name.
    """
    from lpipscli.ci import worst_rows
    from lpipscli.results import summarize_groups

    per_root = summarize_groups(groups, failed, direction)
    worst = worst_rows(groups, keys, direction, worst_k)
    for root, block in per_root.items():
        for metric, stats in block["metrics"].items():
            stats["worst"] = worst[root][metric]
    return per_root


def build_summary(result: RunResult, metrics: tuple[str, ...], dist_roots: list[str],
                  unmatched: dict | None = None, worst_k: int = 5) -> dict[str, Any]:
    """The summary of a compare run: counts, and per distorted input and metric the statistics and worst pairs."""
    direction = {key: REGISTRY[key].higher_is_better for key in metrics}
    per_root = per_root_summary(result.groups(metrics, dist_roots), result.failed_per_root, result.names,
                                direction, worst_k)
    return {
        "pairs": result.n_pairs,
        "scored": result.n_scored,
        "failed": result.n_failed,
        "interrupted": result.interrupted,
        "first_error": result.first_error,
        "unmatched": unmatched or {},
        "per_dist_root": per_root,
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
    """A rich table with one row per distorted input and metric (failed pairs counted apart)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for name, justify in (("dist_root", "left"), ("metric", "left"), ("count", "right"), ("mean", "right"),
                          ("median", "right"), ("p5", "right"), ("p95", "right"), ("min", "right"),
                          ("max", "right"), ("failed", "right")):
        table.add_column(name, justify=justify)
    for root, block in per_root.items():
        for key, stats in block["metrics"].items():
            direction = stats.get("higher_is_better")
            arrow = {True: " ↑", False: " ↓"}.get(direction, "")
            table.add_row(escape(root), f"{key}{arrow}", str(stats["count"] - stats["n_nan"]), _fmt(stats["mean"]),
                          _fmt(stats["median"]), _fmt(stats["p5"]), _fmt(stats["p95"]), _fmt(stats["min"]),
                          _fmt(stats["max"]), str(block["failed"]))
    console.print(table)


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
