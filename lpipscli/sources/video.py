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
    return {"path": str(info.path), "kind": info.kind, "size": info.size, "fps": info.fps,
            "frame_count": info.frame_count, "codec": info.codec}


class VideoSource:
    """A reference video (or frame folder) and one or more distorted ones."""

    kind = "video"

    def __init__(self, config):
        self.config = config

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        from lpipscli.io.video import plan_video

        cfg, opts = self.config, self.config.video
        if ctx.alpha in ("composite-both", "mask"):
            raise UsageError(f"--alpha {ctx.alpha} applies to image pairs, not to video or frame folders "
                             "(use drop, white or black)")
        plan = plan_video(cfg.ref, list(cfg.dists), start=opts.start, max_frames=opts.max_frames, step=opts.step,
                          offset=opts.offset, frames=opts.frames, resize=ctx.resize)
        grid = (plan.ref_indices.start, plan.ref_indices.step)  # of the whole run (--heatmap-every counts on it)
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
        dataset = VideoDataset(plan, labels, done=done_frames, alpha=ctx.alpha, max_pixels=ctx.max_pixels)
        warnings = list(plan.warnings)
        if cfg.workers is not None and cfg.workers > 1:
            warnings.append(f"--workers {cfg.workers}: video streams are decoded sequentially by one worker "
                            "process (each source in its own thread); more workers cannot speed them up")
        video = {
            "start": opts.start, "max_frames": opts.max_frames, "step": opts.step, "offset": opts.offset,
            "frames": opts.frames, "ref": _source_record(plan.ref),
            "dists": [_source_record(d.source) for d in plan.dists], "frames_scored": plan.n_groups,
            "warnings": list(plan.warnings),
        }
        n_pairs = plan.n_pairs - len(done_frames)
        return SourcePlan(
            columns=VIDEO_COLUMNS, n_pairs=max(0, n_pairs), dataset=dataset, metric_problems=problems,
            warnings=warnings, inputs={"ref": str(cfg.ref), "dists": labels}, workers=1,
            frame_grid=grid, fps=plan.ref.fps, video=video, shard=shard,
        )
