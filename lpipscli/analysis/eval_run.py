"""`lpips eval 2afc|jnd|mos` runs: read a judgment set, score it through the engine, summarise, write.

Order of work: read and check the set (no decoding), check output paths, score every pair (each
reference decoded once), then per-item rows (``-o``), the summary table (stderr) and ``--summary-json``.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpipscli.analysis import evaluate as ev
from lpipscli.analysis.scoring import WorkItem, score_items
from lpipscli.errors import UsageError


@dataclass(frozen=True)
class EvalOptions:
    """What every eval command shares: engine settings, bootstrap, outputs."""

    metrics: tuple[str, ...]
    device: str = "auto"
    workers: int | None = None
    batch_size: int = 16
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_unverified_weights: bool = False
    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95
    output: str | None = None
    fmt: str | None = None
    summary_json: Path | None = None
    quiet: bool = False
    #: 2AFC only: ensemble name -> member metric keys (members are scored like any metric)
    ensembles: dict[str, tuple[str, ...]] = field(default_factory=dict)


def parse_ensembles(specs: list[str] | None) -> dict[str, tuple[str, ...]]:
    """``["NAME=KEY,KEY,..."]`` -> ``{NAME: (KEY, ...)}``; members must be registry keys (checked by the engine).

    Raises:
        UsageError: malformed spec, fewer than two members, a name used twice.
    """
    out: dict[str, tuple[str, ...]] = {}
    for spec in specs or []:
        name, sep, members = spec.partition("=")
        keys = tuple(dict.fromkeys(k.strip() for k in members.split(",") if k.strip()))
        if not sep or not name.strip() or len(keys) < 2:
            raise UsageError(f"--ensemble {spec!r}: expected NAME=METRIC,METRIC[,...] with at least two members")
        if name.strip() in out:
            raise UsageError(f"--ensemble: name {name.strip()!r} given twice")
        out[name.strip()] = keys
    return out


def _bootstrap_record(opts: EvalOptions) -> dict[str, Any]:
    return {"method": "percentile", "resamples": opts.bootstrap, "seed": opts.seed, "level": opts.level,
            "implementation": "scipy.stats.bootstrap; categories resampled separately for means over categories"}


def _check_outputs(opts: EvalOptions) -> str | None:
    from lpipscli.ci import check_output_path
    from lpipscli.sinks import check_writable, format_for

    fmt = None
    if opts.output is not None:
        fmt = format_for(opts.output, opts.fmt)
        check_writable(opts.output)
        if fmt == "parquet" and opts.output == "-":
            raise UsageError("Parquet cannot be written to stdout; give a file name")
    check_output_path(opts.summary_json, "--summary-json")
    return fmt


def _console():
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _score(items: list[WorkItem], metrics: tuple[str, ...], opts: EvalOptions, provenance: dict
           ) -> dict[str, np.ndarray]:
    """Score through the engine, with a progress bar on a terminal and a warning for unverified weights."""
    console = _console()
    from rich.markup import escape

    total = sum(len(i.dists) for i in items)
    kwargs = dict(device=opts.device, workers=opts.workers, batch_size=opts.batch_size,
                  metric_params=opts.metric_params, allow_unverified_weights=opts.allow_unverified_weights,
                  provenance=provenance)
    if opts.quiet or not sys.stderr.isatty():
        values = score_items(items, metrics, **kwargs)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("scoring", total=total)
            values = score_items(items, metrics, on_progress=lambda n: progress.advance(task, n), **kwargs)
    for record in provenance.get("weights", []):
        if not record.get("verified", True):
            console.print(f"[yellow]lpips: warning:[/] used unverified weights {escape(record['path'])}",
                          highlight=False, soft_wrap=True)
    return values


def _write_rows(opts: EvalOptions, fmt: str | None, columns: tuple[str, ...], rows: list[dict], provenance: dict,
                summary: dict) -> None:
    if opts.output is None:
        return
    if fmt == "parquet":
        # the compare sink's schema knows only compare's text columns (category, p0, p1 are text here)
        import json
        import os

        import pyarrow as pa
        import pyarrow.parquet as pq

        from lpipscli.sinks import json_safe
        from lpipscli.sinks.parquet import METADATA_KEY

        table = pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows])
        meta = {METADATA_KEY: json.dumps(json_safe({**provenance, "summary": summary})).encode()}
        target = Path(opts.output)
        tmp = target.with_name(f".{target.name}.partial")
        pq.write_table(table.replace_schema_metadata(meta), tmp)
        os.replace(tmp, target)
        return
    from lpipscli.sinks import open_sink

    sink = open_sink(opts.output, fmt, columns, provenance)
    try:
        sink.write(rows)
    finally:
        sink.close(summary, complete=True)


def _finish(opts: EvalOptions, summary: dict) -> None:
    if opts.summary_json is not None:
        from lpipscli.sinks import json_safe, write_json_atomic

        write_json_atomic(opts.summary_json, json_safe(summary))


def _score_block(values: np.ndarray, opts: EvalOptions) -> dict[str, Any]:
    """Mean credit of some items, their count, NaN count and percentile interval."""
    finite = values[~np.isnan(values)]
    score = float(finite.mean()) if finite.size else float("nan")
    ci = ev.bootstrap_ci(values, n_resamples=opts.bootstrap, seed=opts.seed, level=opts.level)
    return {"score": score, "n": int(finite.size), "n_nan": int(values.size - finite.size),
            "ci": list(ci) if ci else None}


def _direction(metrics: tuple[str, ...]) -> dict[str, bool]:
    from lpipscli.metrics import REGISTRY

    unknown = [k for k in metrics if k not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown metric {', '.join(unknown)}; known: {', '.join(REGISTRY)} (see `lpips metrics`)")
    return {k: REGISTRY[k].higher_is_better for k in metrics}


def run_2afc(root: Path, opts: EvalOptions) -> dict[str, Any]:
    """2AFC agreement per metric (and ensemble) and category; returns the summary (also written/printed)."""
    from lpipscli.sources.bapps import read_2afc

    members = tuple(k for keys in opts.ensembles.values() for k in keys)
    metrics = tuple(dict.fromkeys((*opts.metrics, *members)))
    direction = _direction(metrics)
    for name in opts.ensembles:
        if name in metrics:
            raise UsageError(f"--ensemble {name}: the name is a metric key; choose another")
    fmt = _check_outputs(opts)
    triplets = read_2afc(root)
    items = [WorkItem(f"{t.category}/{t.key}", t.ref, (t.p0, t.p1)) for t in triplets]
    provenance: dict = {}
    values = _score(items, metrics, opts, provenance)
    judge = np.array([t.judge for t in triplets])
    cats = np.array([t.category for t in triplets])
    categories = list(dict.fromkeys(cats.tolist()))
    credits: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    d0 = {k: values[k][0::2] for k in metrics}
    d1 = {k: values[k][1::2] for k in metrics}
    for k in opts.metrics:
        credits[k] = ev.score_2afc(d0[k], d1[k], judge, direction[k])
        kinds[k] = "metric"
    for name, keys in opts.ensembles.items():
        out = ev.ensemble_2afc(np.stack([d0[k] for k in keys]), np.stack([d1[k] for k in keys]), judge,
                               [direction[k] for k in keys])
        credits[f"{name}_vote"] = out["vote"]
        kinds[f"{name}_vote"] = f"ensemble of {len(keys)}, majority vote of members"
        if "mean" in out:
            credits[f"{name}_mean"] = out["mean"]
            kinds[f"{name}_mean"] = f"ensemble of {len(keys)}, mean of member values"
    scores: dict[str, Any] = {}
    for name, credit in credits.items():
        per_cat = {c: _score_block(credit[cats == c], opts) for c in categories}
        cat_means = [per_cat[c]["score"] for c in categories]
        ci = ev.bootstrap_stratified([credit[cats == c] for c in categories], n_resamples=opts.bootstrap,
                                     seed=opts.seed, level=opts.level)
        scores[name] = {
            "kind": kinds[name],
            "per_category": per_cat,
            "mean_over_categories": {"score": float(np.mean(cat_means)), "ci": list(ci) if ci else None},
            "all_triplets": _score_block(credit, opts),
        }
    summary = {
        "task": "2afc", "root": str(root), "triplets": len(triplets),
        "categories": {c: int((cats == c).sum()) for c in categories},
        "rule": "credit = (d0<d1)(1-judge) + (d1<d0) judge + (d0==d1)/2, similarities flipped; score = mean",
        "bootstrap": _bootstrap_record(opts),
        "ensembles": {k: list(v) for k, v in opts.ensembles.items()},
        "scores": scores,
        "provenance": provenance,
    }
    columns = ("category", "key", "ref", "p0", "p1", "judge",
               *(f"{k}_{s}" for k in metrics for s in ("d0", "d1")), *(f"{n}_credit" for n in credits))
    rows = []
    for i, t in enumerate(triplets):
        row = {"category": t.category, "key": t.key, "ref": str(t.ref), "p0": str(t.p0), "p1": str(t.p1),
               "judge": t.judge}
        for k in metrics:
            row[f"{k}_d0"], row[f"{k}_d1"] = float(d0[k][i]), float(d1[k][i])
        for n, credit in credits.items():
            row[f"{n}_credit"] = float(credit[i])
        rows.append(row)
    _write_rows(opts, fmt, columns, rows, provenance, {k: v for k, v in summary.items() if k != "provenance"})
    if not opts.quiet:
        _print_table(f"lpips eval 2afc: {root} (2AFC agreement, %)", categories, scores, 100.0)
    _finish(opts, summary)
    return summary


def run_jnd(root: Path, opts: EvalOptions) -> dict[str, Any]:
    """JND mean average precision per metric and category; returns the summary."""
    from lpipscli.sources.bapps import read_jnd

    metrics = opts.metrics
    direction = _direction(metrics)
    fmt = _check_outputs(opts)
    pairs = read_jnd(root)
    items = [WorkItem(f"{p.category}/{p.key}", p.p0, (p.p1,)) for p in pairs]
    provenance: dict = {}
    values = _score(items, metrics, opts, provenance)
    same = np.array([p.same for p in pairs])
    cats = np.array([p.category for p in pairs])
    categories = list(dict.fromkeys(cats.tolist()))
    scores: dict[str, Any] = {}
    for k in metrics:
        def ap(d, s, _hib=direction[k]):
            return ev.jnd_map(d, s, _hib)

        per_cat = {}
        for c in categories:
            sel = cats == c
            ci = ev.bootstrap_ci((values[k][sel], same[sel]), ap, n_resamples=opts.bootstrap, seed=opts.seed,
                                 level=opts.level)
            per_cat[c] = {"score": ap(values[k][sel], same[sel]), "n": int((~np.isnan(values[k][sel])).sum()),
                          "n_nan": int(np.isnan(values[k][sel]).sum()), "ci": list(ci) if ci else None}
        ci = ev.bootstrap_stratified([(values[k][cats == c], same[cats == c]) for c in categories], ap,
                                     n_resamples=opts.bootstrap, seed=opts.seed, level=opts.level)
        scores[k] = {"kind": "metric", "per_category": per_cat,
                     "mean_over_categories": {"score": float(np.mean([per_cat[c]["score"] for c in categories])),
                                              "ci": list(ci) if ci else None}}
    summary = {
        "task": "jnd", "root": str(root), "pairs": len(pairs),
        "categories": {c: int((cats == c).sum()) for c in categories},
        "rule": "VOC average precision (2010+, all points) of 'same' over pairs sorted by distance ascending",
        "bootstrap": _bootstrap_record(opts),
        "scores": scores,
        "provenance": provenance,
    }
    columns = ("category", "key", "p0", "p1", "same", *metrics)
    rows = [{"category": p.category, "key": p.key, "p0": str(p.p0), "p1": str(p.p1), "same": p.same,
             **{k: float(values[k][i]) for k in metrics}} for i, p in enumerate(pairs)]
    _write_rows(opts, fmt, columns, rows, provenance, {k: v for k, v in summary.items() if k != "provenance"})
    if not opts.quiet:
        _print_table(f"lpips eval jnd: {root} (JND mAP, %)", categories, scores, 100.0)
    _finish(opts, summary)
    return summary


def run_mos(path: Path, opts: EvalOptions, *, ref_col: str, dist_col: str, score_col: str,
            mos_higher_is_better: bool = True) -> dict[str, Any]:
    """SROCC, KROCC, PLCC, RMSE per metric against a MOS/DMOS list; returns the summary."""
    from lpipscli.sources.bapps import read_mos_list

    metrics = opts.metrics
    direction = _direction(metrics)
    fmt = _check_outputs(opts)
    rows_in = read_mos_list(path, ref_col=ref_col, dist_col=dist_col, score_col=score_col)
    # one work item per reference, so each reference is decoded (and featurised) once for all its rows
    by_ref: dict[Path, list[int]] = {}
    for i, row in enumerate(rows_in):
        by_ref.setdefault(row.ref, []).append(i)
    items = [WorkItem(str(ref), ref, tuple(rows_in[i].dist for i in idx)) for ref, idx in by_ref.items()]
    order = [i for idx in by_ref.values() for i in idx]
    provenance: dict = {}
    flat = _score(items, metrics, opts, provenance)
    values = {}
    for k in metrics:
        values[k] = np.empty(len(rows_in))
        values[k][order] = flat[k]
    mos = np.array([r.score for r in rows_in])
    scores: dict[str, Any] = {}
    for k in metrics:
        result = ev.mos_correlations(values[k], mos, direction[k], mos_higher_is_better=mos_higher_is_better)
        finite = np.isfinite(values[k])
        cache: dict[bytes, dict] = {}

        def stats(x, y, _hib=direction[k], _cache=cache):
            # the four statistics of one resample share one logistic fit: computed once, looked up 4 times
            key = hashlib.blake2b(x.tobytes() + y.tobytes(), digest_size=16).digest()
            if key not in _cache:
                _cache[key] = ev.mos_correlations(x, y, _hib, mos_higher_is_better=mos_higher_is_better)
            return _cache[key]

        cis = {}
        for stat in ("srocc", "krocc", "plcc", "rmse"):
            ci = None
            if finite.sum() >= 3:
                ci = ev.bootstrap_ci((values[k][finite], mos[finite]), lambda x, y, _s=stat: stats(x, y)[_s],
                                     n_resamples=opts.bootstrap, seed=opts.seed, level=opts.level)
            cis[stat] = list(ci) if ci else None
        result["ci"] = cis
        scores[k] = result
    summary = {
        "task": "mos", "list": str(path), "rows": len(rows_in),
        "columns": {"ref": ref_col, "dist": dist_col, "score": score_col},
        "score_direction": "higher is better (MOS)" if mos_higher_is_better else "higher is worse (DMOS)",
        "rule": "SROCC/KROCC on raw values; PLCC/RMSE after the fit; distances negated so agreement is positive",
        "fit": ev.LOGISTIC_4PL,
        "bootstrap": _bootstrap_record(opts),
        "scores": scores,
        "provenance": provenance,
    }
    columns = ("key", "ref", "dist", "score", *metrics)
    rows = [{"key": r.key, "ref": str(r.ref), "dist": str(r.dist), "score": r.score,
             **{k: float(values[k][i]) for k in metrics}} for i, r in enumerate(rows_in)]
    _write_rows(opts, fmt, columns, rows, provenance, {k: v for k, v in summary.items() if k != "provenance"})
    if not opts.quiet:
        _print_mos_table(f"lpips eval mos: {path}", scores)
    _finish(opts, summary)
    return summary


def _fmt_ci(block: dict, scale: float) -> str:
    score = block["score"]
    if score is None or score != score:
        return "-"
    text = f"{score * scale:.1f}" if scale != 1.0 else f"{score:.4f}"
    if block.get("ci"):
        lo, hi = block["ci"]
        text += f" [{lo * scale:.1f}, {hi * scale:.1f}]" if scale != 1.0 else f" [{lo:.4f}, {hi:.4f}]"
    return text


def _print_table(title: str, categories: list[str], scores: dict[str, Any], scale: float) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    table.add_column("metric")
    for c in categories:
        table.add_column(escape(c), justify="right")
    table.add_column("mean [95% CI]" if len(categories) > 1 else "score [95% CI]", justify="right")
    for name, block in scores.items():
        cells = [f"{block['per_category'][c]['score'] * scale:.1f}" if block["per_category"][c]["score"]
                 == block["per_category"][c]["score"] else "-" for c in categories]
        table.add_row(escape(name), *cells, _fmt_ci(block["mean_over_categories"], scale))
    _console().print(table)


def _print_mos_table(title: str, scores: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for col in ("metric", "n", "SROCC", "KROCC", "PLCC", "RMSE"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for name, block in scores.items():
        cells = [_fmt_ci({"score": block[s], "ci": block["ci"][s]}, 1.0) for s in ("srocc", "krocc", "plcc", "rmse")]
        table.add_row(escape(name), str(block["n"]), *cells)
    _console().print(table)
