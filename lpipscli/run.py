"""The `compare` run as the CLI drives it: check everything, score, write, summarise, gate."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lpipscli.config import RunConfig
from lpipscli.errors import EXIT_INTERRUPTED, LpipsCliError, UsageError


def _video_provenance(plan, options) -> dict:
    def source(info):
        return {"path": str(info.path), "kind": info.kind, "size": info.size, "fps": info.fps,
                "frame_count": info.frame_count, "codec": info.codec}

    return {
        "start": options.start, "max_frames": options.max_frames, "step": options.step, "offset": options.offset,
        "frames": options.frames, "ref": source(plan.ref), "dists": [source(d.source) for d in plan.dists],
        "frames_scored": plan.n_groups, "warnings": list(plan.warnings),
    }


@dataclass(frozen=True)
class Reports:
    """The CI outputs a compare run writes besides its rows."""

    fail_if: list[str]
    allow_failed: bool
    summary_json: Path | None
    worst: int
    junit: Path | None
    junit_per_pair: bool


def run_compare(config: RunConfig, output: str, fmt: str | None, quiet: bool, reports: Reports, resume: bool) -> int:
    """A whole `lpips compare` run: checks before compute, scoring, sinks, summary, gates; returns the exit code.

    Everything that can be refused (output paths, gates, pairing, sizes, weights) is checked before the
    first pair is decoded; rows already written are kept whatever happens after.
    """
    from rich.console import Console
    from rich.markup import escape

    from lpipscli.ci import check_output_path, finish
    from lpipscli.engine import Engine
    from lpipscli.gates import parse_gates
    from lpipscli.sinks import check_writable, format_for, open_sink
    from lpipscli.summary import build_summary, print_summary

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    show_progress = not quiet and sys.stderr.isatty()
    fmt = format_for(output, fmt)
    check_writable(output)
    gates = parse_gates(reports.fail_if, config.metrics)
    check_output_path(reports.summary_json, "--summary-json")
    check_output_path(reports.junit, "--junit")
    engine = Engine(config)
    video_plan = engine.plan_video() if config.video is not None else None
    if config.heatmaps is None and config.video is not None and config.video.heatmap_video is not None:
        raise UsageError("--heatmap-video needs --heatmaps DIR too (the maps it draws are the heatmaps')")
    if config.heatmaps is not None:
        from lpipscli.sinks.heatmap import check_maps_root

        check_maps_root(config.heatmaps)
        if not engine.map_metrics:
            raise UsageError(f"--heatmaps: none of the metrics {', '.join(config.metrics)} has a map "
                             "(maps exist for lpips_*, ssim, ssim_y, psnr, psnr_y, mse)")
    pairing = engine.pair() if video_plan is None else None
    engine.build()
    for record in engine.weight_records:
        if not record["verified"]:
            console.print(f"[yellow]lpips: warning:[/] using unverified weights {escape(record['path'])} "
                          f"(sha256 {record['sha256'][:16]}..., expected {record['expected_sha256'][:16]}...)",
                          highlight=False, soft_wrap=True)
    previous: list[dict] = []
    if resume:
        from lpipscli.resume import drop_done, previous_rows

        previous = previous_rows(output, fmt, engine.provenance()["settings_hash"], engine.columns)
        skipped = drop_done(pairing, previous) if pairing is not None else len(previous)
        if previous and not quiet:
            console.print(f"resuming: {len(previous)} row(s) already in {escape(output)}, {skipped} pair(s) skipped",
                          highlight=False)
    if video_plan is not None:
        for warning in video_plan.warnings:
            console.print(f"[yellow]lpips: warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        work = None
    else:
        work = engine.plan(pairing)
    if work is not None and work.failed and config.on_error == "fail":
        n = len(work.failed)
        raise LpipsCliError(
            f"{work.failed[0][3]}" + (f" (and {n - 1} more pair(s) that cannot be scored)" if n > 1 else "")
            + "; nothing was computed (--on-error skip scores the rest)"
        )
    if config.heatmaps is not None:
        from lpipscli.metrics import REGISTRY
        from lpipscli.sinks.heatmap import HeatmapWriter

        engine.heatmaps = HeatmapWriter(
            config.heatmaps, fmt=config.heatmap_format, panel=config.heatmap_panel, scale=config.heatmap_scale,
            worst=config.heatmap_worst, legend=config.heatmap_legend, dist_roots=[str(d) for d in config.dists],
            higher_is_better={k: REGISTRY[k].higher_is_better for k in config.metrics},
        )
        if config.video is not None and config.video.heatmap_video is not None:
            from lpipscli.sinks.map_video import MapVideo

            engine.map_video = MapVideo(
                config.video.heatmap_video, metric=engine.map_metrics[0], dist_root=str(config.dists[0]),
                fps=video_plan.ref.fps or 25.0, panel=config.heatmap_panel, scale=config.heatmap_scale,
            )
    provenance = engine.provenance(pairing)
    if video_plan is not None:
        provenance["video"] = _video_provenance(video_plan, config.video)
    sink = open_sink(output, fmt, engine.columns, provenance, previous_rows=previous if resume else None)
    summary = None
    complete = False

    def run(emit, **kwargs):
        if video_plan is not None:
            return engine.execute_video(video_plan, emit, **kwargs)
        return engine.execute(work, emit, **kwargs)

    try:
        if show_progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]} pairs/s"), TimeElapsedColumn(), TextColumn("eta"),
                       TimeRemainingColumn())
            total = video_plan.n_pairs if video_plan is not None else work.n_pairs + len(work.failed)
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("scoring", total=total, rate="-")

                def advance(n: int) -> None:
                    progress.advance(task, n)
                    speed = progress.tasks[0].speed
                    progress.update(task, rate=f"{speed:.1f}" if speed else "-")

                result = run(sink.write, on_progress=advance, previous_rows=previous)
        else:
            result = run(sink.write, previous_rows=previous)
        roots = [str(d) for d in config.dists]
        unmatched = pairing.unmatched_summary() if pairing is not None else {}
        summary = build_summary(result, config.metrics, roots, unmatched, reports.worst)
        if result.warnings:
            summary["warnings"] = result.warnings
        complete = not result.interrupted and not (result.first_error and config.on_error == "fail")
    finally:
        sink.close(summary, complete=complete)
        if engine.map_video is not None:
            engine.map_video.close()
        if engine.heatmaps is not None:
            written = engine.heatmaps.close()
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
    if result.n_failed:
        console.print(f"[yellow]lpips: warning:[/] {result.n_failed} pair(s) failed (status=error rows); "
                      f"first: {escape(result.first_error)}", highlight=False, soft_wrap=True)
    summary["provenance"] = provenance
    code, _ = finish(
        summary=summary, gates=gates, groups=result.groups(config.metrics, roots), failed=result.failed_per_root,
        keys=result.names, allow_failed=reports.allow_failed, summary_json=reports.summary_json,
        junit=reports.junit, per_pair=result.statuses if reports.junit_per_pair else None, console=console,
        quiet=quiet,
    )
    return code
