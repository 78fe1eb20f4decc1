"""The report page: one self-contained HTML file (inline CSS, inline SVG plots, ``data:`` thumbnails, no JS).

Machine-readable hooks (used by the tests, stable for other tools): summary cells carry ``data-root``,
``data-metric`` (on the row) and ``data-stat``; each histogram ``<figure class="hist">`` carries its
``data-edges`` and ``data-counts`` (JSON); gallery cards ``<article class="card">`` carry ``data-row`` (the
row's position in the input file) and their ranks; gate rows carry ``data-gate``, ``data-scope`` and
``data-passed``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpipscli.errors import LpipsCliError, UsageError
from lpipscli.gates import Gate, GateOutcome, evaluate_gates, parse_gates
from lpipscli.report import media, model, plots

#: Most histograms drawn (distorted inputs x metrics); the summary table still lists every group.
MAX_HISTOGRAMS = 60
#: Most failed pairs listed with their error.
MAX_FAILED_LISTED = 50
#: Most regressions listed per metric in a diff report's table.
MAX_REGRESSION_ROWS = 25
#: Most bytes of inlined thumbnails (base64) in one page; later thumbnails become placeholders.
IMAGE_BUDGET = 5_000_000
_STAT_COLUMNS = ("count", "n_nan", "mean", "std", "median", "p5", "p95", "min", "max")
_STAT_HEAD = ("values", "no value", "mean", "std", "median", "p5", "p95", "min", "max")
_MARKED_STATS = ("mean", "median", "min", "max", "hmean", "any", "all")  # gates whose threshold is a value


@dataclass
class Report:
    """A rendered report: the page, the gate verdicts (empty without gates), what it was made from."""

    html: str
    outcomes: list[GateOutcome] = field(default_factory=list)
    source: model.ReportInput | None = None


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(x: Any, digits: int = 6) -> str:
    """A number as shown in the page: ``digits`` significant digits, ``inf``/``nan`` spelled out, ``–``
    for ``None``."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _better(column: str) -> str | None:
    d = model.direction_of(column)
    if d is None:
        return None
    if column.startswith("delta_"):
        return "positive = better" if d else "negative = better"
    return "higher is better" if d else "lower is better"


def _arrow(column: str) -> str:
    d = model.direction_of(column)
    return {True: " ↑", False: " ↓"}.get(d, "")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "x"


# -------------------------------------------------------------------------------------------- building


class _Builder:
    def __init__(self, inp: model.ReportInput, *, out_dir: Path, worst: int, gates: Sequence[str],
                 title: str | None, allow_failed: bool):
        self.inp = inp
        self.out_dir = out_dir
        self.worst = worst
        self.title = title or f"lpips report: {inp.path.name}"
        self.allow_failed = allow_failed
        self.bases = [inp.path.parent]
        self.thumbs: dict[tuple, media.Thumb | str] = {}
        self.image_bytes = 0
        self.parts: list[str] = []
        self.nav: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.gates: list[Gate] = []
        self.outcomes: list[GateOutcome] = []
        if gates:
            if inp.table is None:
                raise UsageError(f"{inp.path}: --fail-if applies to results files of compare or diff, "
                                 f"not to an evaluation table")
            self.gates = parse_gates(gates, inp.gate_columns())
        heat = (inp.provenance or {}).get("heatmaps") if inp.kind != "diff" else None
        self.panel_maps = bool(isinstance(heat, Mapping) and heat.get("panel"))

    # ---- helpers

    def section(self, anchor: str, heading: str, body: str) -> None:
        self.nav.append((anchor, heading))
        self.parts.append(f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n{body}\n</section>')

    def thumb(self, kind: str, path_text: str, frame: int | None = None, metric: str = "") -> media.Thumb | str:
        """A cached thumbnail, or the reason there is none (a string)."""
        key = (kind, path_text, frame, metric)
        if key in self.thumbs:
            return self.thumbs[key]
        path = media.resolve(path_text, self.bases)
        result: media.Thumb | str
        if path is None:
            result = f"not found: {path_text}" if path_text else "none"
        else:
            try:
                if kind == "map":
                    result = media.heatmap_thumb(path, metric)
                elif frame is not None:
                    result = media.video_frame_thumb(path, frame)
                else:
                    result = media.image_thumb(path)
            except (LpipsCliError, OSError, ValueError) as exc:
                result = f"cannot read {path_text}: {exc}"
        if isinstance(result, media.Thumb):
            if self.image_bytes + len(result.uri) > IMAGE_BUDGET:
                result = f"not embedded: the page holds {IMAGE_BUDGET / 1e6:g} MB of images already"
                if "image budget" not in " ".join(self.notes):
                    self.notes.append(f"image budget of {IMAGE_BUDGET / 1e6:g} MB reached: later gallery images "
                                      f"are not embedded (lower --worst)")
            else:
                self.image_bytes += len(result.uri)
        self.thumbs[key] = result
        return result

    def img(self, label: str, thumb: media.Thumb | str, link: str | None = None) -> str:
        if isinstance(thumb, str):
            return (f'<figure class="im missing"><div class="ph">{_e(thumb)}</div>'
                    f'<figcaption>{_e(label)}</figcaption></figure>')
        note = " (JPEG thumbnail)" if thumb.fmt == "jpeg" else ""
        tag = (f'<img src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" alt="{_e(label)}" '
               f'title="{_e(thumb.source)}{note}">')
        if link:
            tag = f'<a href="{_e(link)}">{tag}</a>'
        return f'<figure class="im">{tag}<figcaption>{_e(label)}</figcaption></figure>'

    def map_link(self, path_text: str) -> str | None:
        path = media.resolve(path_text, self.bases)
        return media.relative_link(path, self.out_dir) if path is not None else None

    # ---- sections

    def header(self) -> str:
        inp, prov = self.inp, self.inp.provenance or {}
        what = {"compare": "image pairs (lpips compare)", "video": "video frames (lpips compare)",
                "diff": "per-pair deltas, new - base (lpips diff)", "eval": "evaluation table"}[inp.kind]
        facts = [("source", str(inp.path)), ("contents", what)]
        if inp.table is not None:
            facts.append(("rows", str(len(inp.table.rows))))
            roots = inp.roots
            facts.append(("distorted inputs", ", ".join(roots[:6]) + (f" … ({len(roots)} in all)" if len(roots) > 6
                                                                      else "")))
            facts.append(("metrics", ", ".join(f"{m}{_arrow(m)}" for m in inp.metrics)))
            if inp.table.complete is False:
                facts.append(("complete", "NO: the run was interrupted"))
        if prov.get("created"):
            facts.append(("scored", str(prov["created"])))
        if prov.get("device"):
            facts.append(("device", f"{prov['device']} {prov.get('device_name') or ''}".strip()))
        if self.outcomes:
            failed = sum(1 for o in self.outcomes if not o.passed)
            verdict = (f'<span class="fail">FAILED: {failed} of {len(self.outcomes)} gate verdicts</span>' if failed
                       else f'<span class="pass">PASSED: all {len(self.outcomes)} gate verdicts</span>')
            facts.append(("gates", verdict))
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{v if k == 'gates' else _e(v)}</td></tr>" for k, v in facts)
        return f'<header><h1>{_e(self.title)}</h1><table class="facts">{rows}</table></header>'

    def warnings(self) -> None:
        items = list(self.inp.warnings) + self.notes
        if items:
            lis = "".join(f"<li>{_e(w)}</li>" for w in items)
            self.parts.insert(0, f'<section id="warnings" class="warn"><h2>Warnings</h2><ul>{lis}</ul></section>')

    def evaluate_gates(self) -> None:
        if not self.gates:
            return
        columns = list(dict.fromkeys(g.metric for g in self.gates))
        groups, failed, keys = self.inp.groups(columns)
        self.outcomes = evaluate_gates(self.gates, groups, failed=failed, allow_failed=self.allow_failed, keys=keys)

    def gates_section(self) -> None:
        if not self.outcomes:
            return
        rows = []
        for o in self.outcomes:
            cls = "pass" if o.passed else "fail"
            rows.append(f'<tr class="gate gate-{cls}" data-gate="{_e(o.gate_text)}" data-scope="{_e(o.scope)}" '
                        f'data-passed="{str(o.passed).lower()}"><td class="{cls}">{"PASS" if o.passed else "FAIL"}'
                        f'</td><td><code>{_e(o.gate_text)}</code></td><td>{_e(o.scope)}</td>'
                        f'<td class="num" data-observed="{_e(fmt(o.observed, 17))}">{_e(fmt(o.observed))}</td>'
                        f'<td>{_e(o.reason)}</td></tr>')
        body = ('<p class="hint">A gate is a failure condition: it FAILS when its expression is true.</p>'
                '<table class="data"><thead><tr><th>verdict</th><th>gate</th><th>scope</th><th>observed</th>'
                f'<th>reason</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
        self.section("gates", "Gates", body)

    def summary_section(self, columns: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        stats = model.summaries(self.inp, columns)
        _, failed, _ = self.inp.groups(columns[:1])
        rows = []
        for root, cols in stats.items():
            for c, s in cols.items():
                cells = "".join(
                    f'<td class="num" data-stat="{k}" data-value="{_e(fmt(s[k], 17))}">{_e(fmt(s[k]))}</td>'
                    for k in _STAT_COLUMNS)
                nonfinite = s["n_posinf"] + s["n_neginf"]
                rows.append(f'<tr data-root="{_e(root)}" data-metric="{_e(c)}"><td>{_e(root)}</td>'
                            f'<td>{_e(c)}{_arrow(c)}</td>{cells}<td class="num">{nonfinite}</td>'
                            f'<td class="num">{failed.get(root, 0)}</td></tr>')
        head = "".join(f"<th>{h}</th>" for h in ("distorted input", "metric", *_STAT_HEAD, "±inf", "failed"))
        body = ('<p class="hint">Statistics as <code>lpips summary</code> computes them: rows without a value '
                '(failed pairs) are left out; mean and std use finite values only; min, max, median and '
                'percentiles keep infinities.</p>'
                f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
                '</tbody></table></div>')
        self.section("summary", "Summary", body)
        return stats

    def distributions(self, columns: Sequence[str], stats, *, heading: str, anchor: str, zero_line: bool) -> None:
        groups, _, _ = self.inp.groups(columns)
        blocks = []
        drawn = 0
        for c in columns:
            figs = []
            for root, cols in groups.items():
                if drawn >= MAX_HISTOGRAMS:
                    break
                values = cols[c]
                hist = model.histogram(values)
                marks = [(str(g), g.threshold) for g in self.gates
                         if g.metric == c and (g.stat in _MARKED_STATS or g.q is not None)]
                s = stats[root][c]
                svg = plots.histogram_svg(hist, s, title=f"{root or '(one input)'}", xlabel=c, gates=marks,
                                          zero_line=zero_line, better=_better(c))
                caption = (f"{s['count'] - s['n_nan']} values; mean {fmt(s['mean'], 4)}, median "
                           f"{fmt(s['median'], 4)}, p5 {fmt(s['p5'], 4)}, p95 {fmt(s['p95'], 4)}")
                figs.append(f'<figure class="hist plotbox" data-root="{_e(root)}" data-metric="{_e(c)}" '
                            f'data-edges="{_e(json.dumps(hist["edges"]))}" '
                            f'data-counts="{_e(json.dumps(hist["counts"]))}">{svg}'
                            f'<figcaption>{_e(caption)}</figcaption></figure>')
                drawn += 1
            if figs:
                blocks.append(f'<h3>{_e(c)}{_arrow(c)}</h3><div class="grid">{"".join(figs)}</div>')
        n_groups = len(columns) * len(groups)
        if n_groups > drawn:
            self.notes.append(f"{heading}: {drawn} of {n_groups} histograms drawn (at most {MAX_HISTOGRAMS}); "
                              f"the summary table lists every one")
        legend = ('<p class="hint">Bars: pairs per bin (equal widths over the finite values). Lines: mean '
                  '(solid), median (dashed), p5 and p95 (dotted)' + (", no change (green)" if zero_line else "")
                  + '; red dashed: gate thresholds.</p>')
        self.section(anchor, heading, legend + "".join(blocks))

    # ---- gallery of compare / video results

    def gallery_rows(self) -> list[tuple[int, list[tuple[str, int]]]]:
        """``[(row index, [(metric, rank), ...])]``: each metric's ``worst`` worst rows, deduplicated."""
        table = self.inp.table
        picked: dict[int, list[tuple[str, int]]] = {}
        skipped = []
        for c in self.inp.metrics:
            d = model.direction_of(c)
            if d is None:
                skipped.append(c)
                continue
            for rank, i in enumerate(model.worst_indices(table.values(c), self.worst, d), 1):
                if i not in picked and len(picked) >= model.MAX_CARDS:
                    continue
                picked.setdefault(i, []).append((c, rank))
        if skipped:
            self.notes.append(f"no direction known for {', '.join(skipped)}: not ranked in the gallery")
        total = sum(1 for _ in picked)
        if total >= model.MAX_CARDS:
            self.notes.append(f"gallery capped at {model.MAX_CARDS} pairs")
        return list(picked.items())

    def card(self, i: int, ranks: list[tuple[str, int]]) -> str:
        row = self.inp.table.rows[i]
        video = self.inp.kind == "video"
        frame = row.get("frame") if video else None
        dist_frame = row.get("dist_frame") if video and row.get("dist_frame") is not None else frame
        images = []
        map_metrics = [m for m, _ in ranks if f"{m}_map" in row and row.get(f"{m}_map")]
        if self.panel_maps and map_metrics:
            for m in map_metrics:
                images.append(self.img(f"ref | dist | {m} map", self.thumb("map", row[f"{m}_map"], metric=m),
                                       self.map_link(row[f"{m}_map"])))
        else:
            images.append(self.img("reference", self.thumb("img", row.get("ref", ""), frame)))
            images.append(self.img("distorted", self.thumb("img", row.get("dist", ""), dist_frame)))
            for m in map_metrics:
                images.append(self.img(f"{m} map", self.thumb("map", row[f"{m}_map"], metric=m),
                                       self.map_link(row[f"{m}_map"])))
            if not map_metrics:
                has_maps = [m for m, _ in ranks if f"{m}_map" in row]
                why = "no heatmap for this frame" if has_maps else "no heatmap (run compare with --heatmaps)"
                images.append(self.img("heatmap", why))
        scores = "".join(f'<div><dt>{_e(m)}{_arrow(m)}</dt><dd data-metric="{_e(m)}" '
                         f'data-value="{_e(fmt(row[m], 17))}">{_e(fmt(row[m]))}</dd></div>' for m in self.inp.metrics)
        badges = " ".join(f'<span class="badge" data-rank-metric="{_e(m)}" data-rank="{r}">#{r} worst {_e(m)}</span>'
                          for m, r in ranks)
        name = model.row_label(row)
        return (f'<article class="card" id="card-{i}" data-row="{i}"><h4>{badges}</h4>'
                f'<p class="name" title="{_e(name)}">{_e(name)}</p>'
                f'<div class="imgs">{"".join(images)}</div><dl class="scores">{scores}</dl></article>')

    def gallery(self, picked) -> None:
        if not picked:
            return
        cards = "".join(self.card(i, ranks) for i, ranks in picked)
        what = "frames" if self.inp.kind == "video" else "pairs"
        body = (f'<p class="hint">The {self.worst} worst {what} of each metric over all distorted inputs '
                f'(thumbnails; click a heatmap for the full-size file).</p><div class="cards">{cards}</div>')
        self.section("gallery", f"Worst {what}", body)

    # ---- video

    def curves(self, picked) -> None:
        table = self.inp.table
        marks_of: dict[tuple[str, str], list[int]] = {}
        for i, ranks in picked:
            for m, _ in ranks:
                marks_of.setdefault((m, str(table.rows[i].get("dist_root", ""))), []).append(i)
        frames_all = np.asarray([r["frame"] if r["frame"] is not None else -1 for r in table.rows], dtype=np.int64)
        roots = np.asarray([str(r.get("dist_root", "")) for r in table.rows], dtype=object)
        figs = []
        for c in self.inp.metrics:
            values_all = table.values(c)
            series = []
            for root in self.inp.roots:
                idx = np.flatnonzero(roots == root)
                idx = idx[np.argsort(frames_all[idx], kind="stable")]
                x, y = frames_all[idx], values_all[idx]
                keep = model.decimate(y)
                marks = [(int(table.rows[i]["frame"]), float(values_all[i]), f"#card-{i}")
                         for i in marks_of.get((c, root), [])]
                series.append({"label": root, "x": x[keep].tolist(), "y": y[keep].tolist(), "marks": marks,
                               "n_inf": int(np.isinf(y).sum()), "n": int(y.size), "drawn": int(keep.size)})
            svg = plots.curve_svg(series, title=c, ylabel=c, better=_better(c))
            info = "; ".join(f"{s['label']}: {s['n']} frames" + (f" ({s['drawn']} points drawn: minimum and maximum "
                                                                  f"of each bucket)" if s["drawn"] < s["n"] else "")
                             for s in series)
            figs.append(f'<figure class="curve plotbox" data-metric="{_e(c)}" '
                        f'data-points="{sum(s["drawn"] for s in series)}">{svg}'
                        f'<figcaption>{_e(info)}. Markers: the worst frames, linked to their gallery cards.'
                        f'</figcaption></figure>')
        self.section("curves", "Per-frame curves", "".join(figs))

    # ---- diff

    def _side_tables(self):
        prov = self.inp.provenance or {}
        out = {}
        for side in ("base", "new"):
            block = prov.get(side) if isinstance(prov.get(side), Mapping) else {}
            path = media.resolve(str(block.get("path") or ""), self.bases)
            if path is None:
                out[side] = None
                continue
            try:
                from lpipscli.results import read_results

                t = read_results(path)
            except LpipsCliError:
                out[side] = None
                continue
            index = {}
            for row in t.rows:
                index.setdefault((str(row.get("ref", "")), row.get("frame")), []).append(row)
            out[side] = index
        return out

    def regressions(self) -> None:
        table = self.inp.table
        sides = self._side_tables()
        if not any(sides.values()):
            self.notes.append("the BASE and NEW result files named in the diff's provenance were not found: "
                              "regressions are shown without images")
        blocks = []
        for c in self.inp.metrics:
            d = model.direction_of(c)
            if d is None:
                continue
            m = model.base_metric(c)
            values = table.values(c)
            order = [i for i in model.worst_indices(values, MAX_REGRESSION_ROWS, d) if (values[i] < 0) == d
                     and values[i] != 0]
            if not order:
                blocks.append(f"<h3>{_e(m)}</h3><p>No pair got worse.</p>")
                continue
            rows = "".join(
                f'<tr data-row="{i}"><td>{k}</td><td>{_e(model.row_label(table.rows[i]))}</td>'
                f'<td>{_e(table.rows[i].get("dist_root", ""))}</td>'
                f'<td class="num">{_e(fmt(table.rows[i].get(f"{m}_base")))}</td>'
                f'<td class="num">{_e(fmt(table.rows[i].get(f"{m}_new")))}</td>'
                f'<td class="num" data-value="{_e(fmt(values[i], 17))}">{_e(fmt(values[i]))}</td></tr>'
                for k, i in enumerate(order, 1))
            cards = "".join(self.diff_card(i, m, k, sides) for k, i in enumerate(order[: self.worst], 1))
            blocks.append(f'<h3>{_e(m)}{_arrow(m)}</h3><div class="scroll"><table class="data"><thead><tr><th>#</th>'
                          f'<th>pair</th><th>distorted input</th><th>base</th><th>new</th><th>{_e(c)}</th></tr></thead>'
                          f'<tbody>{rows}</tbody></table></div><div class="cards">{cards}</div>')
        body = ('<p class="hint">The pairs whose score got worse the most (up to '
                f'{MAX_REGRESSION_ROWS} listed, {self.worst} shown with BASE and NEW side by side).</p>'
                + "".join(blocks))
        self.section("regressions", "Largest regressions", body)

    def diff_card(self, i: int, metric: str, rank: int, sides) -> str:
        row = self.inp.table.rows[i]
        key = (str(row.get("ref", "")), row.get("frame"))
        video = row.get("frame") is not None
        images = []
        for side in ("base", "new"):
            found = (sides.get(side) or {}).get(key, [])
            match = next((r for r in found if r.get("dist_root") == row.get("dist_root")), found[0] if found else None)
            if match is None:
                images.append(self.img(f"{side.upper()} distorted", f"{side.upper()} row not found"))
                continue
            if side == "base":
                images.insert(0, self.img("reference", self.thumb("img", match.get("ref", ""), row.get("frame"))))
            frame = match.get("dist_frame", row.get("frame")) if video else None
            images.append(self.img(f"{side.upper()} distorted", self.thumb("img", match.get("dist", ""), frame)))
            if match.get(f"{metric}_map"):
                images.append(self.img(f"{side.upper()} {metric} map",
                                       self.thumb("map", match[f"{metric}_map"], metric=metric),
                                       self.map_link(match[f"{metric}_map"])))
        scores = "".join(f'<div><dt>{label}</dt><dd>{_e(fmt(row.get(col)))}</dd></div>' for label, col in
                         (("base", f"{metric}_base"), ("new", f"{metric}_new"), ("delta", f"delta_{metric}")))
        return (f'<article class="card" id="reg-{_slug(metric)}-{i}" data-row="{i}"><h4><span class="badge">'
                f'#{rank} regression {_e(metric)}</span></h4><p class="name">{_e(model.row_label(row))}</p>'
                f'<div class="imgs">{"".join(images)}</div><dl class="scores">{scores}</dl></article>')

    def diff_counts(self) -> None:
        from lpipscli.diff import STATUSES

        counts = dict.fromkeys(STATUSES, 0)
        for row in self.inp.table.rows:
            counts[row.get("status", "ok")] = counts.get(row.get("status", "ok"), 0) + 1
        cells = "".join(f'<tr data-status="{_e(k)}"><th>{_e(k)}</th><td class="num">{v}</td></tr>'
                        for k, v in counts.items())
        prov = self.inp.provenance or {}
        extra = []
        for side in ("base", "new"):
            block = prov.get(side) if isinstance(prov.get(side), Mapping) else {}
            if block.get("path"):
                extra.append(f"<tr><th>{side.upper()}</th><td>{_e(block['path'])}</td></tr>")
        self.section("pairs", "Pairs", f'<table class="facts">{"".join(extra)}{cells}</table>')

    # ---- failures and provenance

    def failures(self) -> None:
        rows = [r for r in self.inp.table.rows if r.get("status") in ("error", "failed", "missing_in_new")]
        if not rows:
            return
        items = "".join(f"<tr><td>{_e(model.row_label(r))}</td><td>{_e(r.get('status'))}</td>"
                        f"<td>{_e(r.get('error', ''))}</td></tr>" for r in rows[:MAX_FAILED_LISTED])
        more = f"<p>… and {len(rows) - MAX_FAILED_LISTED} more.</p>" if len(rows) > MAX_FAILED_LISTED else ""
        self.section("failed", f"Failed pairs ({len(rows)})",
                     f'<table class="data"><thead><tr><th>pair</th><th>status</th><th>error</th></tr></thead>'
                     f"<tbody>{items}</tbody></table>{more}")

    def provenance(self) -> None:
        prov = self.inp.provenance
        if prov is None:
            text = "This file has no provenance (no settings record)."
        else:
            text = json.dumps(prov, indent=2, default=str, ensure_ascii=False)
        extra = ""
        if self.inp.eval_extra:
            extra = f"<pre>{_e(json.dumps(self.inp.eval_extra, indent=2, default=str, ensure_ascii=False))}</pre>"
        self.section("provenance", "Provenance",
                     f'<details><summary>How these scores were made (settings, versions, inputs)</summary>'
                     f'<pre>{_e(text)}</pre>{extra}</details>')

    # ---- eval

    def eval_section(self) -> None:
        rows = self.inp.eval_rows
        extra_keys = list(dict.fromkeys(k for r in rows for k in r.extra))
        head = "".join(f"<th>{_e(h)}</th>" for h in ("metric", "score", "CI low", "CI high", *extra_keys))
        body_rows = "".join(
            f'<tr data-metric="{_e(r.metric)}"><td>{_e(r.metric)}</td>'
            + "".join(f'<td class="num" data-stat="{k}" data-value="{_e(fmt(v, 17))}">{_e(fmt(v))}</td>'
                      for k, v in (("score", r.score), ("ci_low", r.ci_low), ("ci_high", r.ci_high)))
            + "".join(f"<td>{_e(fmt(r.extra[k]) if isinstance(r.extra.get(k), float) else r.extra.get(k, ''))}</td>"
                      for k in extra_keys)
            + "</tr>" for r in rows)
        svg = plots.forest_svg([r.metric for r in rows], [r.score for r in rows], [r.ci_low for r in rows],
                               [r.ci_high for r in rows], title="scores and confidence intervals")
        self.section("eval", "Evaluation", f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body_rows}'
                     f'</tbody></table><figure class="forest plotbox">{svg}</figure>')

    # ---- the page

    def build(self) -> str:
        kind = self.inp.kind
        if kind == "eval":
            self.eval_section()
        else:
            self.evaluate_gates()
            self.gates_section()
            if kind == "diff":
                self.diff_counts()
                stats = self.summary_section(self.inp.metrics)
                self.distributions(self.inp.metrics, stats, heading="Distributions of the deltas (new - base)",
                                   anchor="distributions", zero_line=True)
                self.regressions()
            else:
                stats = self.summary_section(self.inp.metrics)
                picked = self.gallery_rows()
                if kind == "video":
                    self.curves(picked)
                self.distributions(self.inp.metrics, stats, heading="Distributions", anchor="distributions",
                                   zero_line=False)
                self.gallery(picked)
            self.failures()
        self.provenance()
        self.warnings()
        nav = "".join(f'<a href="#{a}">{_e(h)}</a>' for a, h in self.nav)
        from lpipscli import __version__

        made = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="color-scheme" content="light dark"><meta name="generator" content="lpipscli {__version__}">'
            f"<title>{_e(self.title)}</title><style>{CSS}</style></head>\n<body><main>"
            f"{self.header()}<nav>{nav}</nav>\n{''.join(self.parts)}\n"
            f'<footer>Made by lpipscli {_e(__version__)} on {made}. Self-contained: no scripts, nothing fetched.'
            f"</footer></main></body></html>\n"
        )


CSS = """
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1f2328;--muted:#59636e;--card:#f6f8fa;--border:#d1d9e0;
--pass:#1a7f37;--fail:#cf222e;--accent:#0969da;--warn:#fff8c5}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--card:#161b22;
--border:#3d444d;--pass:#3fb950;--fail:#f85149;--accent:#4493f8;--warn:#3b2e0a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1280px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--border);
padding-bottom:4px}h3{font-size:15px;margin:18px 0 8px}h4{margin:0 0 4px;font-size:13px}
a{color:var(--accent)}code{font-size:13px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 4px}
table{border-collapse:collapse}
table.facts th{text-align:left;padding:2px 16px 2px 0;color:var(--muted);font-weight:500;vertical-align:top}
table.facts td{padding:2px 0}
table.data{font-size:13px;width:100%}
table.data th,table.data td{border-bottom:1px solid var(--border);padding:4px 8px;text-align:left}
table.data th{background:var(--card);position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
.pass{color:var(--pass);font-weight:600}.fail{color:var(--fail);font-weight:600}
.hint{color:var(--muted);margin:4px 0 10px}
.warn{background:var(--warn);border:1px solid var(--border);border-radius:8px;padding:4px 16px;margin-top:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
.plotbox{margin:0 0 12px;background:var(--card);border:1px solid var(--border);border-radius:8px;padding:8px}
.plotbox figcaption{color:var(--muted);font-size:12px;margin-top:4px}
svg.plot{width:100%;height:auto;display:block;color:var(--fg)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:8px 10px}
.card:target{outline:3px solid var(--accent)}
.card .name{margin:0 0 6px;font-size:12px;color:var(--muted);overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
.imgs{display:flex;gap:6px}
.im{margin:0;flex:0 1 calc(25% - 5px);min-width:0}
.im img{width:100%;height:auto;display:block;border-radius:3px}
.im figcaption{font-size:11px;color:var(--muted);text-align:center}
.ph{aspect-ratio:4/3;display:flex;align-items:center;justify-content:center;text-align:center;font-size:11px;
color:var(--muted);border:1px dashed var(--border);border-radius:3px;padding:4px;overflow:hidden}
.badge{display:inline-block;background:var(--accent);color:#fff;border-radius:10px;padding:0 8px;font-size:11px;
margin:0 4px 2px 0}
dl.scores{display:grid;grid-template-columns:repeat(auto-fill,minmax(120px,1fr));gap:2px 12px;margin:6px 0 0;
font-size:12px}
dl.scores dt{color:var(--muted)}dl.scores dd{margin:0 0 4px;font-variant-numeric:tabular-nums}
details pre{background:var(--card);border:1px solid var(--border);border-radius:8px;padding:8px;overflow-x:auto;
font-size:12px}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"""


def build_report(results_path: str | Path, *, out_dir: str | Path = ".", worst: int = 8,
                 gates: Sequence[str] | None = None, title: str | None = None,
                 allow_failed: bool = False) -> Report:
    """Reads a results file (or an evaluation JSON) and renders the report page.

    Args:
        results_path: a results file of ``lpips compare`` or ``lpips diff`` (.csv, .parquet, .jsonl), or an
            evaluation table (.json).
        out_dir: the folder the page will be written to (links to full-size heatmaps are relative to it).
        worst: how many worst pairs (frames, regressions) per metric the gallery shows (>= 0).
        gates: ``--fail-if`` expressions, evaluated as ``lpips summary`` evaluates them.
        title: the page title (default: ``lpips report: <file name>``).
        allow_failed: let gates pass although pairs failed.

    Returns:
        A :class:`Report` with the page and the gate verdicts.

    Raises:
        UsageError: unreadable input, a bad gate, matplotlib missing (the message names the extra).
    """
    if worst < 0:
        raise UsageError(f"--worst must be at least 0, got {worst}")
    plots.require_matplotlib()
    inp = model.load_input(results_path)
    builder = _Builder(inp, out_dir=Path(out_dir), worst=worst, gates=list(gates or []), title=title,
                       allow_failed=allow_failed)
    page = builder.build()
    return Report(html=page, outcomes=builder.outcomes, source=inp)
