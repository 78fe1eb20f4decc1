"""Video files and frame folders: frames aligned by index (see ``io.video``), decoded as a stream.

Video streams are read sequentially, so one DataLoader worker process decodes all sources of a run (each
in its own reading thread); with ``--workers 0`` that happens in the main process. More workers cannot
help a single sequential stream, so ``--workers N`` above 1 is noted and treated as 1.
"""

from __future__ import annotations

from lpipscli.errors import UsageError
from lpipscli.io.dataset import VideoDataset, size_problems
from lpipscli.shard import shard_video_plan
from lpipscli.sources.base import VIDEO_COLUMNS, PlanContext, SourcePlan


def _source_record(info) -> dict:
    record = {"path": str(info.path), "kind": info.kind, "size": info.size, "fps": info.fps,
              "frame_count": info.frame_count, "codec": info.codec, "bit_depth": info.bit_depth}
    if info.kind == "video":
        # the colour values actually used for RGB (metadata, override or assumption) and the stream's tags
        record.update(pix_fmt=info.pix_fmt, colorspace=info.colorspace, color_range=info.color_range,
                      tags=dict(info.tags), vfr=info.vfr)
        if info.raw is not None:
            record["raw"] = {"size": f"{info.raw.width}x{info.raw.height}", "pix_fmt": info.raw.pix_fmt,
                             "fps": info.raw.fps}
    return record


def skip_done(plan, labels: list[str], done: set) -> None:
    """Drop the leading frames a resumed run already has from the plan, so that they are not decoded.

    Each distorted source loses the reference frames at the start of its list that are done for it; the
    reference starts at the first frame some source still needs. The readers then seek straight there
    (where the container allows it; a warning says when it does not).
    """
    firsts = []
    for label, dist in zip(labels, plan.dists, strict=True):
        k = 0
        while k < len(dist.ref_indices) and (label, dist.ref_indices[k]) in done:
            k += 1
        dist.ref_indices = dist.ref_indices[k:]
        if len(dist.ref_indices):
            firsts.append(dist.ref_indices[0])
    first = min(firsts) if firsts else None
    ref = plan.ref_indices
    k = 0
    while k < len(ref) and (first is None or ref[k] < first):
        k += 1
    plan.ref_indices = ref[k:]


def raw_spec(opts):
    """The RawSpec of ``--raw-size/--raw-format/--raw-fps`` (None when none is given)."""
    if opts.raw_size is None and opts.raw_format is None and opts.raw_fps is None:
        return None
    from lpipscli.io.av_video import RawSpec

    if opts.raw_size is None:
        raise UsageError("--raw-format/--raw-fps need --raw-size WxH too (raw .yuv files have no header)")
    return RawSpec.parse(opts.raw_size, opts.raw_format or "yuv420p", opts.raw_fps or "25")


class VideoSource:
    """A reference video (or frame folder) and one or more distorted ones."""

    kind = "video"

    def __init__(self, config):
        self.config = config

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        from lpipscli.io.av_video import ColourNote
        from lpipscli.io.video import plan_video
        from lpipscli.metrics import REGISTRY

        cfg, opts = self.config, self.config.video
        if ctx.alpha in ("composite-both", "mask"):
            raise UsageError(f"--alpha {ctx.alpha} applies to image pairs, not to video or frame folders "
                             "(use drop, white or black)")
        plan = plan_video(cfg.ref, list(cfg.dists), start=opts.start, max_frames=opts.max_frames, step=opts.step,
                          offset=opts.offset, frames=opts.frames, resize=ctx.resize, pair_by=opts.pair_by,
                          align=opts.align, raw=raw_spec(opts), colorspace=opts.colorspace,
                          color_range=opts.color_range)
        rgb = any(REGISTRY[k].input == "pixels" for k in cfg.metrics)  # else only the decoded planes are read
        if not rgb:  # no RGB conversion: the colour matrix and range assumed for it do not matter
            plan.warnings[:] = [w for w in plan.warnings if not isinstance(w, ColourNote)]
        planes = [k for k in cfg.metrics if REGISTRY[k].input in ("planes", "sequence")]
        if planes:
            for info in (plan.ref, *(d.source for d in plan.dists)):
                if info.kind != "video" or info.family not in ("yuv", "gray"):  # gray: Y only, U/V columns empty
                    what = "a frame folder" if info.kind != "video" else f"{info.pix_fmt} (not YUV)"
                    raise UsageError(f"{', '.join(planes)} compare decoded YUV planes; {info.path} is {what}")
        # the frame grid of the whole run (--heatmap-every counts on it)
        grid = ((plan.ref_indices.start, plan.ref_indices.step) if isinstance(plan.ref_indices, range)
                else (plan.ref_indices[0] if len(plan.ref_indices) else 0, plan.step))
        if ctx.shard is not None and not isinstance(plan.ref_indices, range):
            raise UsageError("--shard with --align auto or --pair-by time is not supported: those pairings are "
                             "decided over the whole stream; score it in one run")
        plan, shard = shard_video_plan(plan, ctx.shard)  # after the alignment checks on the whole sources
        height, width = plan.ref.height, plan.ref.width
        if ctx.max_pixels is not None and width * height > ctx.max_pixels:
            raise UsageError(f"{plan.ref.path}: frames are {width}x{height} = {width * height} px, more than "
                             f"--max-pixels {ctx.max_pixels}")
        problems: dict[str, tuple[int, str]] = {}
        too_small = size_problems(width, height, dict(ctx.min_sides))
        if too_small:
            if all(min(width, height) < side for side in ctx.min_sides.values()):
                raise UsageError(f"{plan.ref.path}: frames are {width}x{height}, too small: {too_small}")
            for key, side in ctx.min_sides.items():
                if min(width, height) < side:
                    problems[key] = (plan.n_pairs, f"{plan.ref.path}: frames are {width}x{height}, {key} needs "
                                                   f"at least {side}x{side} px")
        done_frames = {(d[0], d[3]) for d in (done or set())}
        labels = [str(d) for d in cfg.dists]
        dataset = VideoDataset(plan, labels, done=done_frames, alpha=ctx.alpha, max_pixels=ctx.max_pixels,
                               planes=bool(planes), rgb=rgb)
        warnings = list(plan.warnings)
        if cfg.workers is not None and cfg.workers > 1:
            warnings.append(f"--workers {cfg.workers}: video streams are decoded sequentially, each source in its own "
                            "thread (in the main process by default, in one worker with --workers 1); more workers "
                            "cannot speed them up")
        video = {
            "start": opts.start, "max_frames": opts.max_frames, "step": opts.step, "offset": opts.offset,
            "frames": opts.frames, "pair_by": opts.pair_by, "align": opts.align, "ref": _source_record(plan.ref),
            "dists": [_source_record(d.source) for d in plan.dists], "frames_scored": plan.n_groups,
            "warnings": list(plan.warnings),
        }
        if opts.align == "auto" or opts.pair_by == "time":
            video["pairs"] = [{"dist": label, "pairs": [list(p) for p in d.pairs()]}
                              for label, d in zip(labels, plan.dists, strict=True)]
        n_pairs = plan.n_pairs - len(done_frames)
        if done_frames:
            skip_done(plan, labels, done_frames)
        return SourcePlan(
            columns=VIDEO_COLUMNS, n_pairs=max(0, n_pairs), dataset=dataset, metric_problems=problems,
            warnings=warnings, inputs={"ref": str(cfg.ref), "dists": labels}, workers=1, default_workers=0,
            frame_grid=grid, fps=plan.ref.fps, video=video, shard=shard,
        )


#: metrics in dB whose per-frame series :func:`break_notes` checks, in order of preference
_BREAK_METRICS = ("psnr_yuv", "psnr_y", "psnr")


def break_notes(config, result) -> list[str]:
    """``--frames shortest``: where per-frame PSNR falls and stays low (a dropped or repeated frame?).

    Pairing by index over the overlap hides a frame missing mid-stream: every later frame pairs with its
    neighbour and scores low. :func:`lpipscli.io.alignment.detect_breaks` finds such runs in the first
    selected dB metric; one note per break, naming the frames and pointing to ``--align auto``.
    """
    opts = config.video
    if opts is None or opts.frames != "shortest" or opts.align != "none" or opts.pair_by != "index":
        return []
    metric = next((m for m in _BREAK_METRICS if m in config.metrics), None)
    if metric is None:
        return []
    from lpipscli.io.alignment import detect_breaks

    notes = []
    for root, names in result.names.items():
        values = result.values.get((root, metric), [])
        frames = [int(n.rsplit("#", 1)[1]) for n in names]
        for brk in detect_breaks([float(v) for v in values]):
            end = f"{frames[brk.end - 1]}" if brk.end is not None else "the end"
            notes.append(f"{root}: {metric} falls from about {brk.before:.4g} to {brk.during:.4g} dB at frames "
                         f"{frames[brk.start]}-{end}: a dropped or repeated frame? --align auto pairs frames by "
                         "content")
    return notes
