"""The `lpips` command line (Typer). Thin: parse, build a RunConfig, run the engine, map errors to exits."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lpipscli.commands.choices import Format, LpipsVersion
from lpipscli.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, LpipsCliError, UsageError

app = typer.Typer(
    name="lpips",
    help="Compare images and video against their references: LPIPS, SSIM, PSNR and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="List or download the weight files the LPIPS metrics need.", invoke_without_command=True)
app.add_typer(weights_app, name="weights")

from lpipscli.commands.eval import eval_app  # noqa: E402  (torch-free; commands import their work lazily)

app.add_typer(eval_app, name="eval")


class Alpha(str, Enum):
    drop = "drop"
    white = "white"
    black = "black"
    error = "error"
    composite_both = "composite-both"
    mask = "mask"


class Precision(str, Enum):
    float32 = "float32"
    bf16 = "bf16"


class Resize(str, Enum):
    none = "none"
    dist_to_ref = "dist-to-ref"


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class MmdNormalize(str, Enum):
    none = "none"
    channel_mean = "channel_mean"


class PairBy(str, Enum):
    path = "path"
    index = "index"
    time = "time"


class Align(str, Enum):
    none = "none"
    auto = "auto"


class Colorspace(str, Enum):
    auto = "auto"
    bt601 = "bt601"
    bt709 = "bt709"
    bt2020 = "bt2020"


class ColorRange(str, Enum):
    auto = "auto"
    limited = "limited"
    full = "full"


class FramesPolicy(str, Enum):
    equal = "equal"
    shortest = "shortest"


class HeatmapFormat(str, Enum):
    png = "png"
    png16 = "png16"
    npy = "npy"


class HeatmapScale(str, Enum):
    fixed = "fixed"
    auto = "auto"


def _print_version(value: bool) -> None:
    if value:
        from lpipscli import __version__

        typer.echo(f"lpipscli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool | None, typer.Option(
        "--version", help="Print the version (lpipscli X.Y.Z) and exit.", callback=_print_version,
        is_eager=True)] = None,
) -> None:
    pass


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"lpips: error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def _parse_metrics(metric: list[str] | None, net: list[str] | None, defined: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The run's metric keys: ``--metric``/``--net`` keys, then named definitions; the default set when none."""
    from lpipscli.metrics import DEFAULT_METRICS, REGISTRY

    keys: list[str] = []
    for item in metric or []:
        keys.extend(k.strip() for k in item.split(",") if k.strip())
    for item in net or []:
        keys.extend(f"lpips_{n.strip()}" for n in item.split(",") if n.strip())
    keys.extend(defined)
    if not keys:
        keys = list(DEFAULT_METRICS)
    if "vmaf" in keys:
        from lpipscli.metrics.vmaf import require_vmaf

        require_vmaf()  # names what to install where libvmaf is missing, before any input is read
    unknown = [k for k in keys if k not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown metric {', '.join(unknown)}; known: {', '.join(REGISTRY)} (see `lpips metrics`)")
    return tuple(dict.fromkeys(keys))


@app.command()
def compare(
    ref: Annotated[Path | None, typer.Argument(
        help="Reference folder, image file, video file or frame folder.", show_default=False)] = None,
    dists: Annotated[list[Path] | None, typer.Argument(
        help="One or more distorted folders, image files, videos or frame folders.", show_default=False)] = None,
    pairs: Annotated[Path | None, typer.Option(
        "--pairs", help="A pair list instead of REF DISTS: CSV, Parquet or JSON Lines with columns ref,dist and "
        "optionally group (the rows' dist_root); relative paths resolve against the list's folder.",
        rich_help_panel="Inputs")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Metric keys, comma-separated or repeated (see `lpips metrics`). "
        "Default: lpips_alex,ssim,psnr.", rich_help_panel="Metrics")] = None,
    define: Annotated[list[str] | None, typer.Option(
        "--define", help="A named deep-feature metric, repeatable: NAME=key=value,... (e.g. "
        "'vgg_h10=net=vgg16,layers=relu2_2+relu4_2,select=H-10'); NAME is its column and gate name. With "
        "--define or --metrics-file and no --metric, only the definitions run.", rich_help_panel="Metrics")] = None,
    metrics_file: Annotated[Path | None, typer.Option(
        "--metrics-file", help="A TOML file of named definitions ([metrics.NAME] tables); see the README.",
        rich_help_panel="Metrics")] = None,
    net: Annotated[list[str] | None, typer.Option(
        "--net", help="Shorthand for --metric lpips_NET (alex, vgg, squeeze).", rich_help_panel="Metrics")] = None,
    lpips_version: Annotated[LpipsVersion, typer.Option("--lpips-version", help="LPIPS heads version.",
        rich_help_panel="Metrics")] = (
        LpipsVersion.v01),
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Output file (.csv, .parquet, .jsonl); '-' writes CSV to stdout; a folder/ "
        "writes a Parquet dataset (hive-partitioned by dist_root, one file per shard).",
        rich_help_panel="Output")] = "-",
    fmt: Annotated[Format | None, typer.Option("--format", help="Output format (default: from the extension).",
        rich_help_panel="Output")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (auto = CUDA when available).",
        rich_help_panel="Engine")] = "auto",
    workers: Annotated[int | None, typer.Option(
        help="Decoding worker processes (default: CPU cores - 1, at most 8; 0 = decode in the main process).",
        min=0, rich_help_panel="Engine")] = None,
    batch_size: Annotated[int, typer.Option(help="Most pairs per batch.", min=1, rich_help_panel="Engine")] = 16,
    precision: Annotated[Precision, typer.Option(
        help="LPIPS backbones: float32, or bf16 (bfloat16 autocast for the convolutions; normalisation, distances "
        "and heads in float32). bf16 pays on GPUs and CPUs with AMX; it differs from float32 by up to ~5e-4 "
        "(see the README). Recorded in the settings.", rich_help_panel="Engine")] = Precision.float32,
    tf32: Annotated[bool, typer.Option(
        help="Allow TF32 matrix multiplies and convolutions on CUDA (faster on Ampere and newer; LPIPS then "
        "differs from the float32 reference by ~1e-3). Recorded in the settings.", rich_help_panel="Engine")] = False,
    max_batch_pixels: Annotated[int | None, typer.Option(
        help="Most pixels per batch, references included (default: 4 Mpx on CPU, 32 Mpx on CUDA).", min=1,
        rich_help_panel="Engine")] = None,
    alpha: Annotated[Alpha, typer.Option(
        help="Alpha channel: drop (keep colour, as the official LPIPS loader), white/black (composite each side "
        "over it), error, composite-both (both sides over --alpha-color; a side without alpha borrows the "
        "reference's), mask (composite-both, and psnr/mse over pixels opaque on both sides only).",
        rich_help_panel="Inputs")] = Alpha.drop,
    alpha_color: Annotated[str, typer.Option(
        help="Background of --alpha composite-both and mask: white, black, gray or #RRGGBB.",
        rich_help_panel="Inputs")] = "white",
    resize: Annotated[Resize, typer.Option(
        help="none: a size mismatch is an error; dist-to-ref: resample the distorted image (bicubic, "
        "antialiased).", rich_help_panel="Inputs")] = Resize.none,
    allow_unmatched: Annotated[bool, typer.Option(
        help="Score the pairs that match and report the files without a partner instead of failing.",
        rich_help_panel="Inputs")] = False,
    on_error: Annotated[OnError, typer.Option(
        help="fail: stop at the first bad pair (rows computed so far are kept); skip: record it with "
        "status=error and go on.", rich_help_panel="Robustness")] = OnError.fail,
    allow_unverified_weights: Annotated[bool, typer.Option(
        help="Use weight files whose sha256 does not match (custom backbones); recorded in the provenance. "
        "Also LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS=1.", rich_help_panel="Robustness")] = False,
    max_pixels: Annotated[int | None, typer.Option(
        help="Refuse images with more pixels than this (decompression-bomb guard; 0 disables). "
        "Default: 256 Mpx.", min=0, rich_help_panel="Inputs")] = None,
    fail_if: Annotated[list[str] | None, typer.Option(
        "--fail-if", help="Quality gate, repeatable: the run fails (exit 1) when the expression is true. "
        "'STAT(METRIC) OP NUMBER' (STAT: mean, median, min, max, std, hmean, count, pN) or 'any(METRIC OP NUMBER)' "
        "/ 'all(...)'; evaluated per distorted input, or over all of them with the prefix 'all:'.",
        rich_help_panel="Quality gates")] = None,
    allow_failed: Annotated[bool, typer.Option(
        help="Let gates pass although some pairs failed (by default failed pairs fail every gate).",
        rich_help_panel="Quality gates")] = False,
    summary_json: Annotated[Path | None, typer.Option(
        help="Write the summary (statistics, worst pairs, gates, provenance) as JSON.",
        rich_help_panel="Quality gates")] = None,
    worst: Annotated[int, typer.Option(help="How many worst pairs the JSON summary lists per metric.", min=0,
        rich_help_panel="Quality gates")] = 5,
    junit: Annotated[Path | None, typer.Option(help="Write gate results as JUnit XML.",
        rich_help_panel="Quality gates")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Write a self-contained HTML report (distributions, worst pairs with their heatmaps, per-frame "
        "curves, gates) after the run; needs -o FILE and the 'report' extra.", rich_help_panel="Output")] = None,
    junit_per_pair: Annotated[bool, typer.Option(help="Also one JUnit test case per pair.",
        rich_help_panel="Quality gates")] = False,
    mmd_sigma: Annotated[float | None, typer.Option(
        help="RBF bandwidth of mmd and mmd_rff on [-1,1] 3x3 patch vectors (default 0.5).", min=0.0,
        rich_help_panel="Metrics")] = None,
    mmd_normalize: Annotated[MmdNormalize | None, typer.Option(
        help="Patch normalisation of mmd and mmd_rff: none or channel_mean (DC removal) (default none).",
        rich_help_panel="Metrics")] = None,
    mmd_features: Annotated[int | None, typer.Option(
        help="Random Fourier features of mmd_rff (default 1024) and mmd_pp (default 512).", min=1,
        rich_help_panel="Metrics")] = None,
    mmd_seed: Annotated[int | None, typer.Option(help="Seed of the random features of mmd_rff and mmd_pp "
                                                     "(default 0).", rich_help_panel="Metrics")] = None,
    lasi_k: Annotated[int | None, typer.Option(help="LASI neighbourhood size (default 10).", min=1,
        rich_help_panel="Metrics")] = None,
    vmaf_model: Annotated[str | None, typer.Option(
        help="VMAF model built into libvmaf (default vmaf_v0.6.1, FFmpeg's default; vmaf_v0.6.1neg: the "
        "no-enhancement-gain variant).", rich_help_panel="Metrics")] = None,
    heatmaps: Annotated[Path | None, typer.Option(
        help="Write a map of where each pair differs, per metric that has one (lpips_*, ssim, ssim_y, psnr, "
        "psnr_y, mse), to DIR/<dist_root name>/<relative path>.<metric>.png; the table gets <metric>_map "
        "columns.", rich_help_panel="Heatmaps")] = None,
    heatmap_format: Annotated[HeatmapFormat, typer.Option(
        help="png: colour (magma, fixed scale per metric, scale in the PNG metadata); png16: 16-bit raw values "
        "over the fixed scale; npy: float32 raw maps.", rich_help_panel="Heatmaps")] = HeatmapFormat.png,
    heatmap_panel: Annotated[bool, typer.Option(help="PNG panels: ref | dist | heatmap side by side.",
        rich_help_panel="Heatmaps")] = False,
    heatmap_scale: Annotated[HeatmapScale, typer.Option(
        help="fixed: the metric's documented scale (comparable across runs); auto: stretch each map.",
        rich_help_panel="Heatmaps")] = HeatmapScale.fixed,
    heatmap_worst: Annotated[int | None, typer.Option(
        help="Keep only the K worst maps per metric (held in memory, written at the end).", min=1,
        rich_help_panel="Heatmaps")] = None,
    heatmap_legend: Annotated[bool, typer.Option(help="Add a colour-scale legend under each PNG map.",
        rich_help_panel="Heatmaps")] = False,
    pair_by: Annotated[PairBy, typer.Option(
        help="path: pair files by relative path; index: pair two frame folders (%05d.png...) by sorted order "
        "(refused for anything that is not a frame sequence); time: pair video frames by presentation time "
        "(variable frame rate).", rich_help_panel="Inputs")] = PairBy.path,
    align: Annotated[Align, typer.Option(
        help="Video: auto: pair each reference frame with its best-matching distorted frame by content "
        "(dropped, repeated and shifted frames are listed in the summary).", rich_help_panel="Video")] = Align.none,
    colorspace: Annotated[Colorspace, typer.Option(
        help="Video: YUV->RGB matrix; auto: the stream's metadata (BT.709 for HD, BT.601 below when missing).",
        rich_help_panel="Video")] = Colorspace.auto,
    color_range: Annotated[ColorRange, typer.Option(
        help="Video: YUV range; auto: the stream's metadata (limited when missing).",
        rich_help_panel="Video")] = ColorRange.auto,
    raw_size: Annotated[str | None, typer.Option(
        help="Raw .yuv input: frame size WxH (raw files have no header; .y4m carries its own).",
        rich_help_panel="Video", show_default=False)] = None,
    raw_format: Annotated[str | None, typer.Option(
        help="Raw .yuv input: FFmpeg pixel format (yuv420p, yuv420p10le, yuv444p...). Default: yuv420p.",
        rich_help_panel="Video", show_default=False)] = None,
    raw_fps: Annotated[str | None, typer.Option(
        help="Raw .yuv input: frame rate (25, 30000/1001...). Default: 25.", rich_help_panel="Video",
        show_default=False)] = None,
    start: Annotated[int, typer.Option(help="Video: first reference frame to score.", min=0,
        rich_help_panel="Video")] = 0,
    max_frames: Annotated[int | None, typer.Option(help="Video: score at most this many frames.", min=1,
        rich_help_panel="Video")] = None,
    step: Annotated[int, typer.Option(help="Video: score every STEP-th frame.", min=1, rich_help_panel="Video")] = 1,
    offset: Annotated[int, typer.Option(
        help="Video: compare distorted frame i+OFFSET with reference frame i (may be negative).",
        rich_help_panel="Video")] = 0,
    frames: Annotated[FramesPolicy, typer.Option(
        help="Video: equal: differing frame counts are an error; shortest: score the overlap.",
        rich_help_panel="Video")] = FramesPolicy.equal,
    heatmap_every: Annotated[int, typer.Option(help="Video: write heatmaps for every N-th frame.", min=1,
        rich_help_panel="Video")] = 1,
    heatmap_video: Annotated[Path | None, typer.Option(
        help="Video: write the first distorted input's map of the first metric with a map (or panels with "
        "--heatmap-panel) as a video (.mp4, .mov, .avi, .mkv).", rich_help_panel="Video")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue an interrupted run: skip pairs already in the output file and append the rest "
        "(refused when the file was made with other settings).", rich_help_panel="Output")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table.",
                                        rich_help_panel="Output")] = False,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="Score only share I of N (0-based, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT): "
        "references chosen by a hash of their name, video by frame range; join the shards with `lpips merge`.",
        rich_help_panel="Scaling out")] = None,
) -> None:
    """Score distorted images against their references, one row per pair.

    Folders are walked recursively and files pair by relative path without extension
    (ref/a/b.png with out/a/b.jpg); several distorted folders can share one reference folder.
    """
    from contextlib import ExitStack

    from lpipscli.config import RunConfig
    from lpipscli.io.decoding import DEFAULT_MAX_PIXELS

    run_scoped = ExitStack()
    try:
        defined = _definitions(run_scoped, define, metrics_file)
        if pairs is not None and (ref is not None or dists):
            raise UsageError("--pairs replaces REF DISTS: give one or the other")
        if pairs is None and (ref is None or not dists):
            raise UsageError("give a reference and at least one distorted input (or --pairs LIST)")
        from lpipscli.shard import parse_shard

        config = RunConfig(
            ref=ref, dists=tuple(dists or ()), pairs=pairs, tf32=tf32, metrics=_parse_metrics(metric, net, defined),
            shard=parse_shard(shard),
            metric_params={},
            device=device, workers=workers, batch_size=batch_size, max_batch_pixels=max_batch_pixels,
            alpha=alpha.value, alpha_color=_alpha_color(alpha_color), resize=resize.value,
            allow_unmatched=allow_unmatched, on_error=on_error.value,
            allow_unverified_weights=allow_unverified_weights,
            max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else (max_pixels or None),
            heatmaps=heatmaps, heatmap_format=heatmap_format.value,
            heatmap_panel=heatmap_panel, heatmap_scale=heatmap_scale.value,
            heatmap_worst=heatmap_worst, heatmap_legend=heatmap_legend, heatmap_every=heatmap_every,
            video=_video_options(ref, dists or [], pair_by, start, max_frames, step, offset, frames, heatmap_video,
                                 heatmap_every, decode=_video_decode(align, colorspace, color_range, raw_size,
                                                                     raw_format, raw_fps))
            if pairs is None else _no_video_options(
                start, max_frames, step, offset, frames, heatmap_video, heatmap_every, "--pairs",
                decode=_video_decode(align, colorspace, color_range, raw_size, raw_format, raw_fps)),
        )
        config = _with_lpips_version(config, lpips_version.value, precision.value)
        config = _with_metric_options(config, {
            "mmd": {"sigma": mmd_sigma, "normalize": mmd_normalize.value if mmd_normalize else None},
            "mmd_rff": {"sigma": mmd_sigma, "normalize": mmd_normalize.value if mmd_normalize else None,
                        "features": mmd_features, "seed": mmd_seed},
            "mmd_pp": {"features": mmd_features, "seed": mmd_seed},
            "lasi": {"k": lasi_k},
            "vmaf": {"model": vmaf_model},
        })
        from lpipscli.run import Reports, run_compare

        reports = Reports(fail_if or [], allow_failed, summary_json, worst, junit, junit_per_pair, report)
        code = run_compare(config, output, fmt.value if fmt else None, quiet, reports, resume)
    except LpipsCliError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    finally:
        run_scoped.close()
    raise typer.Exit(code)


def _definitions(stack, define: list[str] | None, metrics_file: Path | None) -> tuple[str, ...]:
    """Register the run's named definitions (``--define``, ``--metrics-file``) until ``stack`` closes."""
    if not define and metrics_file is None:
        return ()
    from lpipscli.features.definitions import definition_specs
    from lpipscli.metrics import registered

    specs = definition_specs(define, metrics_file)
    stack.enter_context(registered(specs))
    return tuple(s.key for s in specs)


def _video_decode(align, colorspace, color_range, raw_size, raw_format, raw_fps) -> dict:
    """The video decoding and alignment options as VideoOptions fields (None/"none": not given)."""
    return {"align": align.value, "colorspace": None if colorspace == Colorspace.auto else colorspace.value,
            "color_range": None if color_range == ColorRange.auto else color_range.value,
            "raw_size": raw_size, "raw_format": raw_format, "raw_fps": raw_fps}


def _video_options(ref, dists, pair_by, start, max_frames, step, offset, frames, heatmap_video, heatmap_every=1,
                   decode: dict | None = None):
    """VideoOptions when an input is a video file or --pair-by index/time is given, else None (image mode)."""
    from lpipscli.config import VideoOptions
    from lpipscli.io.video import is_video

    decode = decode or {}
    video = pair_by in (PairBy.index, PairBy.time) or any(is_video(p) and not p.is_dir() for p in (ref, *dists))
    if not video:
        return _no_video_options(start, max_frames, step, offset, frames, heatmap_video, heatmap_every,
                                 "image inputs", decode=decode)
    return VideoOptions(start=start, max_frames=max_frames, step=step, offset=offset,
                        frames=frames.value, heatmap_video=heatmap_video,
                        pair_by="time" if pair_by == PairBy.time else "index", **decode)


def _alpha_color(text: str) -> tuple[float, float, float]:
    from lpipscli.io.decoding import parse_alpha_color

    return parse_alpha_color(text)


def _no_video_options(start, max_frames, step, offset, frames, heatmap_video, heatmap_every, what: str,
                      decode: dict | None = None) -> None:
    """Refuse video options on inputs that are not videos."""
    decode = decode or {}
    given = [name for name, value, default in (
        ("--start", start, 0), ("--max-frames", max_frames, None), ("--step", step, 1),
        ("--offset", offset, 0), ("--frames", frames, FramesPolicy.equal), ("--heatmap-video", heatmap_video, None),
        ("--heatmap-every", heatmap_every, 1), ("--align", decode.get("align", "none"), "none"),
        ("--colorspace", decode.get("colorspace"), None), ("--color-range", decode.get("color_range"), None),
        ("--raw-size", decode.get("raw_size"), None), ("--raw-format", decode.get("raw_format"), None),
        ("--raw-fps", decode.get("raw_fps"), None),
    ) if value != default]
    if given:
        raise UsageError(f"{', '.join(given)} apply to video inputs (or frame folders with --pair-by index), "
                         f"not to {what}")
    return None


def _with_metric_options(config, options: dict[str, dict]):
    """Put the metric options the user gave into the config (for the metrics selected)."""
    from dataclasses import replace

    params = {k: dict(v) for k, v in config.metric_params.items()}
    for key, values in options.items():
        given = {name: value for name, value in values.items() if value is not None}
        if key in config.metrics and given:
            params.setdefault(key, {}).update(given)
    return replace(config, metric_params=params)


def _with_lpips_version(config, version: str, precision: str = "float32"):
    from dataclasses import replace

    params = {k: {"version": version, "precision": precision} for k in config.metrics if k.startswith("lpips_")}
    return replace(config, metric_params={**config.metric_params, **params})


_GATE_HELP = ("Quality gate, repeatable: fails (exit 1) when the expression is true, e.g. "
              "'mean(delta_lpips_alex) > 0.005'.")


_ALLOW_INCOMPLETE_HELP = ("Let gates pass although a results file records that its run did not finish "
                          "(interrupted, stopped at an error, killed).")


def _directions(columns, metric_of=lambda c: c) -> dict[str, bool]:
    """``{column: higher_is_better}`` from the metric registry's metadata, for columns of known metrics."""
    from lpipscli.metrics import REGISTRY

    return {c: REGISTRY[metric_of(c)].higher_is_better for c in columns if metric_of(c) in REGISTRY}


def _warn(console, text: str) -> None:
    console.print(f"[yellow]lpips: warning:[/] {escape_text(text)}", highlight=False, soft_wrap=True)


@app.command()
def diff(
    base: Annotated[Path, typer.Argument(help="Results of the baseline run (.csv, .parquet, .jsonl).",
                                         show_default=False)],
    new: Annotated[Path, typer.Argument(help="Results of the new run.", show_default=False)],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write per-pair deltas here ('-' = stdout).")] = None,
    fmt: Annotated[Format | None, typer.Option("--format", help="Output format (default: from the extension).")] = None,
    root_map: Annotated[list[str] | None, typer.Option(
        "--map", help="Join BASE's distorted root with NEW's, as BASE_ROOT=NEW_ROOT (the dist_root values), "
        "repeatable; needed when the roots differ and their last folder names do not match one to one.")] = None,
    fail_if: Annotated[list[str] | None, typer.Option("--fail-if", help=_GATE_HELP)] = None,
    allow_failed: Annotated[bool, typer.Option(
        help="Let gates pass although pairs failed or vanished from the new run.")] = False,
    allow_incomplete: Annotated[bool, typer.Option(help=_ALLOW_INCOMPLETE_HELP)] = False,
    force: Annotated[bool, typer.Option(
        help="Compare although the runs used settings that change scores (LPIPS version, weights, decoding).")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="Write the delta summary and gates as JSON.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write gate results as JUnit XML.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Per-pair deltas (new - base) between two result files, summarised and gated like compare.

    Pairs join on (dist_root, ref[, frame]); distorted roots that differ join by their last folder name
    (v1/jpeg_q30 with v2/jpeg_q30) or as given with --map, and on ref alone when each file has one distorted
    input. Pairs missing from the new run count as failed for the gates.
    """
    from rich.console import Console

    from lpipscli.ci import check_output_path, finish
    from lpipscli.diff import diff_tables, parse_root_map
    from lpipscli.gates import parse_gates
    from lpipscli.results import read_results
    from lpipscli.sinks import check_writable, format_for, open_sink
    from lpipscli.status import gate_inputs
    from lpipscli.summary import print_group_table

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    try:
        if output is not None:
            format_for(output, fmt.value if fmt else None)
            check_writable(output)
        check_output_path(summary_json, "--summary-json")
        check_output_path(junit, "--junit")
        mapping = parse_root_map(root_map or [])
        result = diff_tables(read_results(base), read_results(new), force=force, root_map=mapping)
        gates = parse_gates(fail_if or [], result.gate_columns)
        for warning in result.warnings:
            if warning.startswith("joined distorted roots"):
                console.print(escape_text(warning), highlight=False, soft_wrap=True)
            else:
                _warn(console, warning)
        summary = result.summary(_directions(result.metrics))
        summary["provenance"] = result.provenance
        if output is not None:
            sink = open_sink(output, fmt.value if fmt else None, result.columns, result.provenance)
            sink.write(result.output_rows())
            sink.close(summary)
        if not quiet:
            print_group_table(summary["per_dist_root"], console, title="lpips diff: new - base")
            counts = result.counts
            console.print(", ".join(f"{k}: {v}" for k, v in counts.items()), highlight=False)
        groups, failed, keys = gate_inputs(result.groups())
        code, _ = finish(summary=summary, gates=gates, groups=groups, failed=failed, keys=keys,
                         allow_failed=allow_failed, summary_json=summary_json, junit=junit, console=console,
                         quiet=quiet, incomplete=result.incomplete, allow_incomplete=allow_incomplete)
    except LpipsCliError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    raise typer.Exit(code)


@app.command()
def merge(
    output: Annotated[str, typer.Argument(
        help="The merged results: a file (.csv, .parquet, .jsonl) or a folder/ (Parquet dataset).",
        show_default=False)],
    shards: Annotated[list[Path], typer.Argument(
        help="The shard files, or folders holding them (a dataset folder counts as all its shards).",
        show_default=False)],
    fmt: Annotated[Format | None, typer.Option("--format", help="Output format (default: from the extension).")] = None,
    fail_if: Annotated[list[str] | None, typer.Option("--fail-if", help=_GATE_HELP)] = None,
    allow_failed: Annotated[bool, typer.Option(help="Let gates pass although some pairs failed.")] = False,
    summary_json: Annotated[Path | None, typer.Option(help="Write the summary and gates as JSON.")] = None,
    worst: Annotated[int, typer.Option(help="How many worst pairs the JSON summary lists per metric.", min=0)] = 5,
    junit: Annotated[Path | None, typer.Option(help="Write gate results as JUnit XML.")] = None,
    junit_per_pair: Annotated[bool, typer.Option(help="Also one JUnit test case per pair.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Join the shards of a run (--shard I/N) into one results file, checked: same settings, every shard there
    once, no pair missing or twice; then summarise and gate it like a single compare run."""
    from lpipscli.merge import merge_results
    from lpipscli.run import Reports

    try:
        reports = Reports(fail_if or [], allow_failed, summary_json, worst, junit, junit_per_pair)
        code = merge_results(output, list(shards), fmt.value if fmt else None, reports, quiet=quiet)
    except LpipsCliError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    raise typer.Exit(code)


@app.command()
def summary(
    results: Annotated[Path, typer.Argument(
        help="A results file written by compare (.csv, .parquet, .jsonl) or a dataset folder (-o folder/).",
        show_default=False)],
    fail_if: Annotated[list[str] | None, typer.Option("--fail-if", help=_GATE_HELP)] = None,
    allow_failed: Annotated[bool, typer.Option(help="Let gates pass although some pairs failed.")] = False,
    allow_incomplete: Annotated[bool, typer.Option(help=_ALLOW_INCOMPLETE_HELP)] = False,
    summary_json: Annotated[Path | None, typer.Option(help="Write the summary and gates as JSON.")] = None,
    worst: Annotated[int, typer.Option(help="How many worst pairs the JSON summary lists per metric.", min=0)] = 5,
    junit: Annotated[Path | None, typer.Option(help="Write gate results as JUnit XML.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Re-summarise and re-gate a results file (of compare or diff) without recomputing anything."""
    from rich.console import Console

    from lpipscli.ci import check_output_path, finish
    from lpipscli.gates import parse_gates
    from lpipscli.results import metric_columns, metric_of, read_results, table_groups
    from lpipscli.status import gate_inputs, totals
    from lpipscli.summary import per_root, print_group_table

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    try:
        check_output_path(summary_json, "--summary-json")
        check_output_path(junit, "--junit")
        table = read_results(results)
        metrics = metric_columns(table)
        gates = parse_gates(fail_if or [], metrics)
        for warning in table.warnings:
            _warn(console, warning)
        groups = table_groups(table, metrics)
        per = per_root(groups, _directions(metrics, metric_of(table)), worst)
        incomplete = [f"{results}: {table.incomplete_text()}"] if table.complete is False else []
        summary_dict = {"source": str(results), "pairs": len(table.rows), "complete": table.complete,
                        "expected_pairs": table.expected_rows, "missing_pairs": table.missing_rows,
                        "incomplete": incomplete, **totals(groups), "per_dist_root": per,
                        "provenance": table.provenance}
        if not quiet:
            print_group_table(per, console, title=f"lpips summary: {results}")
        values, failed, keys = gate_inputs(groups)
        code, _ = finish(summary=summary_dict, gates=gates, groups=values, failed=failed, keys=keys,
                         allow_failed=allow_failed, summary_json=summary_json, junit=junit, console=console,
                         quiet=quiet, incomplete=incomplete, allow_incomplete=allow_incomplete)
    except LpipsCliError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    raise typer.Exit(code)


def escape_text(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command("metrics")
def list_metrics(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every metric key: what it measures, its range, which direction is better, its needs."""
    from lpipscli.metrics import REGISTRY

    rows = [{
        "key": s.key, "measures": s.measures, "range": s.value_range,
        "better": "higher" if s.higher_is_better else "lower", "needs_weights": s.needs_weights,
        "min_side": s.min_side, "cost": s.cost,
    } for s in REGISTRY.values()]
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="metrics (key = --metric name = output column)", title_justify="left")
    for col in ("key", "measures", "range", "better", "weights", "min side", "cost"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["key"], r["measures"], r["range"], r["better"], "yes" if r["needs_weights"] else "no",
                      f"{r['min_side']} px", r["cost"] or "-")
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@weights_app.callback()
def weights_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the weight files each LPIPS net needs, where they are looked for, and whether they verify."""
    if ctx.invoked_subcommand is not None:
        return
    from lpipscli import weights

    rows = weights.status()
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"weights (backbone cache: {weights.checkpoint_dir()})", title_justify="left")
    for col in ("needed by", "file", "present", "verified", "path"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["needed_by"], r["file"], "yes" if r["present"] else "NO",
                      "yes" if r["verified"] else ("NO" if r["present"] else "-"), r["path"])
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@weights_app.command("download")
def weights_download(
    nets: Annotated[list[str] | None, typer.Argument(
        help="alex, vgg, squeeze (the LPIPS backbones, the default) or a feature backbone: vgg19, resnet50, "
        "shufflenet_v2_x1_0, googlenet.")] = None,
) -> None:
    """Download torchvision backbones into the torch hub cache, checking their sha256."""
    from lpipscli import weights

    known = [*weights.NETS, *(a for a in weights.FEATURE_BACKBONES if a not in ("alexnet", "vgg16", "squeezenet1_1"))]
    try:
        for net in nets or list(weights.NETS):
            if net not in known:
                raise UsageError(f"unknown net {net!r}; choose from {', '.join(known)}")
            path = weights.download(net, progress=sys.stderr.isatty())
            typer.echo(f"{net}: {path} (sha256 verified)")
    except LpipsCliError as exc:
        raise _fail(str(exc), exc.exit_code) from None


from lpipscli.commands.report import report as _report  # noqa: E402 - torch-free; registered after the others

app.command("report")(_report)

from lpipscli.commands.features import register as _register_feature_commands  # noqa: E402, I001 (imports no torch)
_register_feature_commands(app)


def main() -> None:
    """Console-script entry point: errors become one line on stderr and a distinct exit code."""
    # Idle OpenMP threads yield instead of spinning, so decoding workers and compute share cores well.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("lpips: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except LpipsCliError as exc:  # raised outside a command body
        sys.stderr.write(f"lpips: error: {exc}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug or a runtime failure: one line, unless debugging
        if os.environ.get("LPIPSCLI_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(f"lpips: error: {type(exc).__name__}: {first} (set LPIPSCLI_DEBUG=1 for a traceback)\n")
        sys.exit(EXIT_RUNTIME)


__all__ = ["app", "main", "EXIT_USAGE"]
