"""Shards: a deterministic 1/N of a run's work, so that N processes (a job array, torchrun) share it.

``--shard I/N`` (``0 <= I < N``) keeps:

- **Images and pair lists**: the reference groups (one reference with all its distorted versions, so the
  reference is still decoded and featurised once) whose key hashes to ``I``: ``sha1(key) mod N``, where
  the key is the reference's pairing key (its path relative to the reference folder, or to the pair
  list's folder, without extension). The key does not depend on where the folders are mounted, so shards
  on different machines agree; a group keeps its shard when files are added or removed elsewhere, and a
  hash spreads groups evenly (in expectation ``1/N`` each).
- **Video**: a contiguous range of the selected reference frames, ``ceil``-balanced
  (``len * I // N .. len * (I + 1) // N``), so that each shard reads only its stretch of the streams. The
  alignment checks (frame counts, sizes, rates) are made on the whole sources, in every shard, before
  the range is cut.

Every shard records ``{"index", "count", "pairs", "pairs_total", "key"}`` in its provenance (not in the
settings record, so the shards of one run share a settings hash); ``lpips merge`` uses it to find a
missing or duplicated shard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from lpipscli.errors import UsageError

IMAGE_KEY = "sha1(reference pairing key) mod N"
VIDEO_KEY = "contiguous reference-frame ranges"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def label(self) -> str:
        """A file-name-safe form: ``00001-of-00004``."""
        return f"{self.index:05d}-of-{self.count:05d}"


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` -> :class:`Shard` (``None`` stays ``None``).

    Raises:
        UsageError: not two integers with ``0 <= I < N``.
    """
    if text is None:
        return None
    index, sep, count = str(text).partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not sep or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UsageError(f"--shard {text!r}: expected I/N with 0 <= I < N (e.g. 0/4, the first of 4 shards; "
                         "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-3)")
    return shard


def refuse_unshardable(config) -> None:
    """Options whose output cannot be split between shards.

    Raises:
        UsageError: ``--heatmap-video`` (one video of the whole run) with a shard.
    """
    if config.shard is not None and config.video is not None and config.video.heatmap_video is not None:
        raise UsageError("--heatmap-video draws one video of the whole run: it cannot be split into shards "
                         "(--shard, torchrun); write --heatmaps per shard instead")


def shard_of(key: str, count: int) -> int:
    """The shard (``0 .. count - 1``) of a work item key: the first 8 bytes of its sha1, mod ``count``."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % count


def record(shard: Shard, pairs: int, pairs_total: int, key: str) -> dict:
    """What the provenance says about a shard."""
    return {"index": shard.index, "count": shard.count, "pairs": pairs, "pairs_total": pairs_total, "key": key}


def shard_groups(groups: list, shard: Shard | None) -> tuple[list, dict | None]:
    """Keep the reference groups (:class:`lpipscli.io.pairing.RefGroup`) of one shard.

    Returns:
        ``(groups, record)``; ``record`` is ``None`` without a shard. Counts are pairs (rows), over every
        pair of the groups, including those that fail while planning (they are rows too).
    """
    if shard is None:
        return groups, None
    total = sum(len(g.pairs) for g in groups)
    kept = [g for g in groups if shard_of(g.key, shard.count) == shard.index]
    return kept, record(shard, sum(len(g.pairs) for g in kept), total, IMAGE_KEY)


def frame_range(n: int, shard: Shard) -> tuple[int, int]:
    """Positions ``[a, b)`` of shard ``shard`` among ``n`` frames (contiguous, sizes differ by at most one)."""
    return n * shard.index // shard.count, n * (shard.index + 1) // shard.count


def shard_video_plan(plan, shard: Shard | None):
    """Cut a checked :class:`lpipscli.io.video.VideoPlan` to the shard's contiguous reference frames.

    Returns:
        ``(plan, record)``: the plan itself and ``None`` without a shard.
    """
    if shard is None:
        return plan, None
    a, b = frame_range(len(plan.ref_indices), shard)
    part = plan.ref_indices[a:b]
    dists = [replace(d, ref_indices=_intersect(d.ref_indices, part)) for d in plan.dists]
    cut = replace(plan, ref_indices=part, dists=dists, warnings=list(plan.warnings))
    rec = record(shard, cut.n_pairs, plan.n_pairs, VIDEO_KEY)
    rec["frames"] = [part.start, part.stop, part.step] if len(part) else []
    return cut, rec


def _intersect(r: range, part: range) -> range:
    """The frames of ``r`` inside ``part`` (both on the same grid: same step, starts a multiple apart)."""
    if not len(part) or not len(r):
        return range(part.start, part.start, part.step)
    start = max(r.start, part.start)
    stop = min(r.stop, part.stop)
    return range(start, max(start, stop), part.step)
