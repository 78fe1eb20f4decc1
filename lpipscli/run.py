"""The `compare` run as the CLI drives it: check everything, plan, score, hand batches to sinks, gate.

Stages and their owners: the source (``lpipscli.sources``) pairs inputs and plans work items; the engine
(``lpipscli.engine``) decodes them in DataLoader workers, batches them (``io.dataset.Batcher``) and scores
them; this module hands each scored batch to the sinks (``lpipscli.sinks``: heatmaps, map video, the
table) and then summarises and gates (``summary``, ``ci``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lpipscli.config import RunConfig
from lpipscli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PAIRS_FAILED, LpipsCliError, UsageError


@dataclass(frozen=True)
class Reports:
    """The CI outputs a compare run writes besides its rows."""

    fail_if: list[str]
    allow_failed: bool
    summary_json: Path | None
    worst: int
    junit: Path | None
    junit_per_pair: bool
    #: an HTML report written after the run (needs -o FILE)
    report: Path | None = None


def refuse_unscorable(plan) -> None:
    """``--on-error fail``: stop before compute when some pairs or metrics cannot be scored (per metric)."""
    parts = []
    if plan.failed:
        n = len(plan.failed)
        parts.append(f"{plan.failed[0][3]}" + (f" (and {n - 1} more pair(s) that cannot be scored)" if n > 1 else ""))
    for key, (count, first) in plan.metric_problems.items():
        parts.append(f"{key} cannot score {count} pair(s) (first: {first})")
    if parts:
        raise LpipsCliError("; ".join(parts) + "; nothing was computed (--on-error skip scores the rest)")


def run_compare(config: RunConfig, output: str, fmt: str | None, quiet: bool, reports: Reports, resume: bool) -> int:
    """A whole `lpips compare` run: checks before compute, scoring, sinks, summary, gates; returns the exit code.

    Everything that can be refused (output paths, gates, pairing, sizes, weights) is checked before the
    first pair is decoded; rows already written are kept whatever happens after.
    """
    if config.shard is None:
        from lpipscli.distributed import run_distributed, torchrun_env

        if torchrun_env() is not None:  # torchrun: this process is one rank; rank 0 merges (distributed.py)
            return run_distributed(config, output, fmt, quiet, reports, resume)
    else:
        from lpipscli.shard import refuse_unshardable

        refuse_unshardable(config)
    from rich.console import Console
    from rich.markup import escape

    from lpipscli.ci import check_output_path
    from lpipscli.engine import Engine, done_keys, drive
    from lpipscli.gates import parse_gates
    from lpipscli.sinks import check_writable, format_for, open_sink
    from lpipscli.sinks.batch import HeatmapSink, MapVideoSink, TableSink
    from lpipscli.sinks.dataset import check_dataset_root
    from lpipscli.summary import build_summary, print_summary

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    show_progress = not quiet and sys.stderr.isatty()
    fmt = format_for(output, fmt)
    check_dataset_root(output) if fmt == "dataset" else check_writable(output)
    gates = parse_gates(reports.fail_if, config.metrics)
    check_output_path(reports.summary_json, "--summary-json")
    check_output_path(reports.junit, "--junit")
    if reports.report is not None:
        from lpipscli.report.plots import require_matplotlib

        if output == "-":
            raise UsageError("--report reads the results file: give -o FILE (not stdout)")
        check_output_path(reports.report, "--report")
        require_matplotlib()
    engine = Engine(config)
    if config.heatmaps is None and config.video is not None and config.video.heatmap_video is not None:
        raise UsageError("--heatmap-video needs --heatmaps DIR too (the maps it draws are the heatmaps')")
    map_keys: tuple[str, ...] = ()
    if config.heatmaps is not None:
        from lpipscli.metrics import map_metrics
        from lpipscli.sinks.heatmap import check_maps_root

        check_maps_root(config.heatmaps)
        map_keys = engine.map_metrics()
        if not map_keys:
            raise UsageError(f"--heatmaps: none of the metrics {', '.join(config.metrics)} has a map "
                             f"(maps exist for {', '.join(map_metrics())})")
    if config.pairs is None and config.video is None:
        engine.pair()  # pairing errors come before loading weights
    engine.build()
    for record in engine.weight_records:
        if not record["verified"]:
            console.print(f"[yellow]lpips: warning:[/] using unverified weights {escape(record['path'])} "
                          f"(sha256 {record['sha256'][:16]}..., expected {record['expected_sha256'][:16]}...)",
                          highlight=False, soft_wrap=True)
    previous: list[dict] = []
    if resume:
        from lpipscli.resume import previous_rows

        settings = engine.settings()
        shard = {"index": config.shard.index, "count": config.shard.count} if config.shard else None
        previous = previous_rows(output, fmt, settings.hash, None, settings=settings.to_dict(), shard=shard)
    plan = engine.plan(done=done_keys(previous) if previous else None)
    columns = engine.columns(plan, map_keys)
    if resume and previous:
        from lpipscli.resume import check_columns

        check_columns(output, previous, columns)
        if not quiet:
            console.print(f"resuming: {len(previous)} row(s) already in {escape(output)}, "
                          f"{len(previous)} pair(s) skipped", highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]lpips: warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if config.on_error == "fail":
        refuse_unscorable(plan)
    roots = list(dict.fromkeys(plan.inputs.get("dists") or plan.inputs.get("groups") or []))
    sinks: list = []
    heatmap_sink = map_video_sink = None
    if config.heatmaps is not None:
        from lpipscli.sinks.heatmap import HeatmapWriter

        writer = HeatmapWriter(
            config.heatmaps, fmt=config.heatmap_format, panel=config.heatmap_panel, scale=config.heatmap_scale,
            worst=config.heatmap_worst, legend=config.heatmap_legend, dist_roots=roots,
            higher_is_better={k: _higher_is_better(k) for k in config.metrics},
        )
        heatmap_sink = HeatmapSink(writer, map_keys, every=config.heatmap_every, frame_grid=plan.frame_grid)
        sinks.append(heatmap_sink)
        if config.video is not None and config.video.heatmap_video is not None:
            from lpipscli.sinks.map_video import MapVideo

            map_video_sink = MapVideoSink(MapVideo(
                config.video.heatmap_video, metric=map_keys[0], dist_root=roots[0], fps=plan.fps or 25.0,
                panel=config.heatmap_panel, scale=config.heatmap_scale,
            ))
            sinks.append(map_video_sink)
    provenance = engine.provenance(plan)
    if heatmap_sink is not None:
        provenance["heatmaps"] = heatmap_sink.writer.provenance(list(map_keys))
    table = open_sink(output, fmt, columns, provenance, previous_rows=previous if resume else None)
    sinks.append(TableSink(table))
    want_images = config.heatmap_panel or map_video_sink is not None
    summary = None
    complete = False
    result = None
    try:
        kwargs = {"previous_rows": previous, "maps": map_keys, "images": want_images}
        writers = [s.write for s in sinks]
        if show_progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            progress_columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]} pairs/s"), TimeElapsedColumn(), TextColumn("eta"),
                                TimeRemainingColumn())
            with Progress(*progress_columns, console=console, transient=True) as progress:
                task = progress.add_task("scoring", total=plan.n_pairs + len(plan.failed), rate="-")

                def advance(n: int) -> None:
                    progress.advance(task, n)
                    speed = progress.tasks[0].speed
                    progress.update(task, rate=f"{speed:.1f}" if speed else "-")

                result = drive(engine, plan, writers, on_progress=advance, **kwargs)
        else:
            result = drive(engine, plan, writers, **kwargs)
        unmatched = plan.unmatched or {}
        summary = build_summary(result, config.metrics, roots, unmatched, reports.worst)
        if config.video is not None:
            from lpipscli.sources.video import break_notes

            for note in break_notes(config, result):
                result.warnings.append(note)
                console.print(f"[yellow]lpips: warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
        if result.warnings:
            summary["warnings"] = result.warnings
        complete = not result.interrupted and not (result.first_error and config.on_error == "fail")
    finally:
        table.close(summary, complete=complete)
        if map_video_sink is not None:
            map_video_sink.close()
        if heatmap_sink is not None:
            written = heatmap_sink.close()
            if written and summary is not None:
                summary["heatmaps_written"] = [
                    {"metric": m, "dist_root": r, "key": k, "path": p} for (m, r, k), p in written.items()
                ]
    if not quiet:
        print_summary(summary, console)
    if result.interrupted:
        sys.stderr.write("lpips: interrupted: rows computed so far were written\n")
        return EXIT_INTERRUPTED
    if result.first_error and config.on_error == "fail":
        raise LpipsCliError(f"{result.first_error}; rows computed before it were written (--on-error skip goes on)")
    return conclude(result, summary, provenance, metrics=config.metrics, roots=roots, gates=gates, reports=reports,
                    console=console, quiet=quiet, output=output)


def conclude(result, summary: dict, provenance: dict, *, metrics: tuple[str, ...], roots: list[str], gates: list,
             reports: Reports, console, quiet: bool, output: str | None = None) -> int:
    """The end of a run, shared by `compare` and `merge`: the failed-pairs warning, the summary JSON, JUnit,
    the gates and the exit code (4 when pairs were not fully scored and ``--allow-failed`` is not given).

    Args:
        result: the :class:`lpipscli.engine.RunResult` of the rows.
        summary: from :func:`lpipscli.summary.build_summary` (the provenance and gates are added to it).
    """
    from rich.markup import escape

    from lpipscli.ci import finish

    n_bad = result.n_failed + result.n_partial
    if n_bad:
        console.print(f"[yellow]lpips: warning:[/] {result.n_failed} pair(s) failed and {result.n_partial} "
                      f"scored only in part (see the status and error columns); first: {escape(result.first_error)}",
                      highlight=False, soft_wrap=True)
    summary["provenance"] = provenance
    code, _ = finish(
        summary=summary, gates=gates, groups=result.groups(metrics, roots), failed=result.failed_per_root,
        keys=result.names, allow_failed=reports.allow_failed, summary_json=reports.summary_json,
        junit=reports.junit, per_pair=result.statuses if reports.junit_per_pair else None, console=console,
        quiet=quiet,
    )
    if reports.report is not None and output not in (None, "-"):
        from lpipscli.report import write_report

        write_report(Path(output), reports.report, worst=max(reports.worst, 8), gates=reports.fail_if,
                     allow_failed=reports.allow_failed)
        if not quiet:
            console.print(f"report: {escape(str(reports.report))}", highlight=False)
    if code == EXIT_OK and n_bad and not reports.allow_failed:
        console.print(f"lpips: exit {EXIT_PAIRS_FAILED}: {n_bad} pair(s) not fully scored (--allow-failed accepts "
                      "them)", highlight=False, soft_wrap=True)
        return EXIT_PAIRS_FAILED
    return code


def _higher_is_better(key: str) -> bool:
    from lpipscli.metrics import REGISTRY

    return REGISTRY[key].higher_is_better
