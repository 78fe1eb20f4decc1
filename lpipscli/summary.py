"""Run summaries: statistics per metric and distorted input, and their table on stderr."""

from __future__ import annotations

from typing import Any

from lpipscli.engine import RunResult
from lpipscli.metrics import REGISTRY
from lpipscli.stats import summarize


def build_summary(result: RunResult, metrics: tuple[str, ...], dist_roots: list[str],
                  unmatched: dict | None = None, worst_k: int = 5) -> dict[str, Any]:
    """Per distorted input and metric: the statistics of :func:`lpipscli.stats.summarize` and the worst pairs.

    Failed pairs carry NaN scores, so they are counted in ``n_nan`` and never enter a statistic; the
    number of failed pairs per input is reported beside them.
    """
    from lpipscli.ci import worst_rows

    direction = {key: REGISTRY[key].higher_is_better for key in metrics}
    worst = worst_rows(result.groups(metrics, dist_roots), result.names, direction, worst_k)
    per_root: dict[str, Any] = {}
    for root in dist_roots:
        per_root[root] = {
            "failed": result.failed_per_root.get(root, 0),
            "metrics": {
                key: {**summarize(result.values.get((root, key), []), higher_is_better=direction[key]),
                      "worst": worst[root][key]}
                for key in metrics
            },
        }
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
