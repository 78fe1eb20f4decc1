"""``lpips report``: one self-contained HTML page from a results file of compare or diff, or an evaluation table.

The page holds the run's summary and provenance, a histogram per metric and distorted input (statistics and
gate thresholds marked), per-frame curves for video, a gallery of the worst pairs (reference, distorted,
heatmap), the gate verdicts, and for diff results the delta distributions and largest regressions. Plots need
matplotlib (``pip install 'lpipscli[report]'``); nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lpipscli.report.page import Report, build_report

__all__ = ["Report", "build_report", "write_report"]


def write_report(results_path: Path, out: Path, *, worst: int = 8, gates: Sequence[str] | None = None,
                 title: str | None = None, allow_failed: bool = False) -> Path:
    """Renders the report of ``results_path`` and writes it to ``out`` atomically.

    Args:
        results_path: a results file of ``lpips compare`` / ``lpips diff``, or an evaluation table (.json).
        out: the HTML file to write.
        worst: worst pairs per metric in the gallery.
        gates: ``--fail-if`` expressions whose verdicts and thresholds the page shows.
        title: the page title.
        allow_failed: let gates pass although pairs failed.

    Returns:
        ``out``.

    Raises:
        UsageError: see :func:`build_report`; OutputError: ``out`` cannot be written.
    """
    from lpipscli.sinks import check_writable, write_atomic

    out = Path(out)
    check_writable(out, "--report")
    report = build_report(results_path, out_dir=out.parent, worst=worst, gates=gates, title=title,
                          allow_failed=allow_failed)
    write_atomic(out, report.html)
    return out
