"""Folders and single files: pairs by relative path without extension (see ``io.pairing``)."""

from __future__ import annotations

from lpipscli.io.dataset import PairDataset, plan_work
from lpipscli.io.pairing import PairPlan, RefGroup, pair_inputs
from lpipscli.shard import shard_groups
from lpipscli.sources.base import IMAGE_COLUMNS, PlanContext, SourcePlan, row_key


def drop_done(pairing: PairPlan, done: set) -> int:
    """Remove pairs that already have a row (keys from :func:`row_key`); returns how many were removed."""
    removed = 0
    groups = []
    for group in pairing.groups:
        pairs = tuple(p for p in group.pairs if (p.dist_root, str(p.ref_path), str(p.dist_path), -1) not in done)
        removed += len(group.pairs) - len(pairs)
        if pairs:
            groups.append(RefGroup(group.key, group.ref_path, pairs))
    pairing.groups = groups
    return removed


def plan_groups(pairing: PairPlan, ctx: PlanContext, inputs: dict, *, done: set | None = None) -> SourcePlan:
    """The plan of any image source once it has paired its inputs into reference groups."""
    pairing.groups, shard = shard_groups(pairing.groups, ctx.shard)
    if done:
        drop_done(pairing, done)
    work = plan_work(pairing.groups, resize=ctx.resize, min_sides=dict(ctx.min_sides), batch_size=ctx.batch_size,
                     max_batch_pixels=ctx.max_batch_pixels, max_pixels=ctx.max_pixels, alpha=ctx.alpha,
                     alpha_color=ctx.alpha_color)
    dataset = PairDataset(work.chunks, alpha=ctx.alpha, max_pixels=ctx.max_pixels, alpha_color=ctx.alpha_color)
    return SourcePlan(columns=IMAGE_COLUMNS, n_pairs=work.n_pairs, dataset=dataset, failed=work.failed,
                      metric_problems=work.metric_problems, inputs=inputs, unmatched=pairing.unmatched_summary(),
                      warnings=work.warnings, shard=shard)


class FolderSource:
    """A reference folder (or file) and one or more distorted folders (or files)."""

    kind = "folders"

    def __init__(self, config):
        self.config = config

    def pair(self) -> PairPlan:
        return pair_inputs(self.config.ref, self.config.dists, allow_unmatched=self.config.allow_unmatched)

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        inputs = {"ref": str(self.config.ref), "dists": [str(d) for d in self.config.dists]}
        return plan_groups(self.pair(), ctx, inputs, done=done)


__all__ = ["FolderSource", "drop_done", "plan_groups", "row_key"]
