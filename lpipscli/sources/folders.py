"""Folders and single files: pairs by relative path without extension (see ``io.pairing``)."""

from __future__ import annotations

from lpipscli.io.dataset import PairDataset, plan_work
from lpipscli.io.pairing import PairPlan, RefGroup, pair_inputs
from lpipscli.shard import shard_groups
from lpipscli.sources.base import IMAGE_COLUMNS, PlanContext, SourcePlan, pair_key, row_key


def drop_done(groups: list[RefGroup], done: set) -> list[RefGroup]:
    """The reference groups without the pairs that already have a row (keys from :func:`row_key`)."""
    kept = []
    for group in groups:
        pairs = tuple(p for p in group.pairs if pair_key(p) not in done)
        if pairs:
            kept.append(RefGroup(group.key, group.ref_path, pairs))
    return kept


def plan_groups(pairing: PairPlan, ctx: PlanContext, inputs: dict, *, done: set | None = None) -> SourcePlan:
    """The plan of any image source once it has paired its inputs into reference groups (``pairing`` is
    left as it is)."""
    groups, shard = shard_groups(pairing.groups, ctx.shard)
    if done:
        groups = drop_done(groups, done)
    work = plan_work(groups, resize=ctx.resize, min_sides=dict(ctx.min_sides), batch_size=ctx.batch_size,
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
        self._pairing: PairPlan | None = None

    def pair(self) -> PairPlan:
        """Pair the inputs (walks the folders once per run; later calls return the same pairing)."""
        if self._pairing is None:
            self._pairing = pair_inputs(self.config.ref, self.config.dists,
                                        allow_unmatched=self.config.allow_unmatched)
        return self._pairing

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        inputs = {"ref": str(self.config.ref), "dists": [str(d) for d in self.config.dists]}
        return plan_groups(self.pair(), ctx, inputs, done=done)


__all__ = ["FolderSource", "drop_done", "plan_groups", "row_key"]
