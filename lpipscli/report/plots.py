"""Plots as inline SVG, drawn with matplotlib (the ``report`` extra), without pyplot or any global state.

Text and axes are drawn in ``currentColor``, so they take the page's text colour in light and dark mode; the
figure background is transparent. Text stays text (``svg.fonttype: none``): smaller pages, the page's font.
Each figure gets its own ``svg.hashsalt``, so the ids of several figures inlined in one page never collide.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lpipscli.errors import UsageError

#: A colour no plot uses, replaced by ``currentColor`` in the SVG text.
_INK = "#010203"
#: Series colours (Tableau 10): readable on white and on near-black.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
GATE_COLOUR = "#e15759"
INSTALL_HINT = "pip install 'lpipscli[report]'"

_counter = 0


def require_matplotlib():
    """The ``matplotlib`` module, or a one-line :class:`UsageError` naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"lpips report needs matplotlib: {INSTALL_HINT}") from None
    return matplotlib


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72)
    return fig


def _style(salt: str) -> dict[str, Any]:
    return {
        "svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 9, "font.family": "sans-serif",
        "text.color": _INK, "axes.edgecolor": _INK, "axes.labelcolor": _INK, "xtick.color": _INK,
        "ytick.color": _INK, "axes.titlesize": 10, "legend.fontsize": 8, "legend.frameon": False,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
        "grid.color": _INK, "figure.facecolor": "none", "axes.facecolor": "none", "savefig.transparent": True,
    }


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight", pad_inches=0.05)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = text.replace(_INK, "currentColor")
    # responsive: drop the fixed size in pt, keep the viewBox
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="plot" role="img"', text, count=1)
    return text


def _next_salt() -> str:
    global _counter
    _counter += 1
    return f"lpipscli-{_counter}"


def _plain(text: str) -> str:
    """Text shown as is: a ``$`` would start matplotlib's mathtext, a leading ``_`` hide a legend entry."""
    text = str(text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _number(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def histogram_svg(hist: Mapping[str, Any], stats: Mapping[str, Any], *, title: str, xlabel: str,
                  gates: Sequence[tuple[str, float]] = (), zero_line: bool = False,
                  better: str | None = None) -> str:
    """A histogram (from :func:`lpipscli.report.model.histogram`) with the mean, median, p5 and p95 marked
    and each gate threshold as a red dashed line labelled with the gate.

    Args:
        hist: ``edges``, ``counts`` and the non-finite counts.
        stats: :func:`lpipscli.stats.summarize` of the same values.
        title: the plot's title.
        xlabel: the x axis label.
        gates: ``(gate text, threshold)`` pairs to mark (thresholds outside the data widen the axis).
        zero_line: draw x = 0 (deltas).
        better: an arrow note such as ``"higher is better →"`` under the axis.
    """
    matplotlib = require_matplotlib()
    salt = _next_salt()
    with matplotlib.rc_context(_style(salt)):
        fig = _figure(4.6, 2.6)
        ax = fig.add_subplot()
        edges, counts = hist["edges"], hist["counts"]
        if counts:
            ax.stairs(counts, edges, fill=True, color=PALETTE[0], alpha=0.85, label=None)
            lines = [("mean", stats.get("mean"), "-", 1.6), ("median", stats.get("median"), "--", 1.3),
                     ("p5", stats.get("p5"), ":", 1.2), ("p95", stats.get("p95"), ":", 1.2)]
            for label, value, style, width in lines:
                if value is not None and math.isfinite(value):
                    ax.axvline(value, color=_INK, linestyle=style, linewidth=width,
                               label=f"{label} {_number(value)}")
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        for k, (text, threshold) in enumerate(gates):
            if math.isfinite(threshold):
                ax.axvline(threshold, color=GATE_COLOUR, linestyle=(0, (5, 2)), linewidth=1.8,
                           label=_plain(f"gate {text}") if k < 3 else None)
        if zero_line:
            ax.axvline(0.0, color=PALETTE[2], linewidth=1.2, label="no change")
        notes = []
        for key, label in (("n_posinf", "+inf"), ("n_neginf", "-inf"), ("n_nan", "no value")):
            if hist.get(key):
                notes.append(f"{label}: {hist[key]}")
        if notes:
            ax.text(0.99, 0.98, ", ".join(notes) + " (not binned)", ha="right", va="top", transform=ax.transAxes,
                    fontsize=7)
        ax.set_title(_plain(title), loc="left")
        ax.locator_params(axis="x", nbins=6)
        ax.set_xlabel(_plain(xlabel) + (f"   ({better})" if better else ""))
        ax.set_ylabel("pairs")
        ax.yaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def curve_svg(series: Sequence[Mapping[str, Any]], *, title: str, ylabel: str, better: str | None = None) -> str:
    """Per-frame curves, one line per encode, worst frames marked (each marker a link).

    Args:
        series: one mapping per encode: ``label``, ``x`` (frame numbers), ``y`` (values, already
            decimated), ``marks`` (list of ``(x, y, href)`` for the worst frames), ``n_inf`` (frames at an
            infinite value, not drawn).
        title: the plot's title.
        ylabel: the y axis label.
        better: a note such as ``"higher is better"``.
    """
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_style(_next_salt())):
        fig = _figure(9.0, 2.8)
        ax = fig.add_subplot()
        notes = []
        for k, s in enumerate(series):
            colour = PALETTE[k % len(PALETTE)]
            y = np.asarray(s["y"], dtype=np.float64)
            y = np.where(np.isfinite(y), y, np.nan)
            ax.plot(s["x"], y, color=colour, linewidth=1.0, label=_plain(s["label"]))
            marks = [m for m in s.get("marks", []) if math.isfinite(m[1])]
            if marks:
                points = ax.scatter([m[0] for m in marks], [m[1] for m in marks], s=28, color=colour,
                                    edgecolors=_INK, linewidths=0.8, zorder=3)
                points.set_urls([m[2] for m in marks])
            if s.get("n_inf"):
                notes.append(_plain(f"{s['label']}: {s['n_inf']} frame(s) at ±inf not drawn"))
        if notes:
            ax.text(0.99, 0.02, "; ".join(notes), ha="right", va="bottom", transform=ax.transAxes, fontsize=7)
        ax.set_title(_plain(title), loc="left")
        ax.set_xlabel("frame")
        ax.set_ylabel(_plain(ylabel) + (f" ({better})" if better else ""))
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def forest_svg(labels: Sequence[str], scores: Sequence[float], lows: Sequence[float | None],
               highs: Sequence[float | None], *, title: str) -> str:
    """Scores with their confidence intervals, one row per metric (an evaluation table)."""
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_style(_next_salt())):
        n = len(labels)
        fig = _figure(6.0, 0.9 + 0.32 * n)
        ax = fig.add_subplot()
        ys = np.arange(n)[::-1]
        for y, score, lo, hi in zip(ys, scores, lows, highs, strict=True):
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=PALETTE[0], linewidth=2.2, solid_capstyle="butt")
            if math.isfinite(score):
                ax.plot([score], [y], marker="o", color=_INK, markersize=4)
        ax.set_yticks(ys, [_plain(label) for label in labels])
        ax.set_title(title, loc="left")
        ax.set_xlabel("score (bar: confidence interval)")
        ax.grid(axis="y", visible=False)
        return _svg(fig)
