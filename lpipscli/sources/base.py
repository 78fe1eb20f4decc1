"""The source protocol: what every kind of input provides to the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: identity columns of image pairs and of video frames (the engine appends metrics, maps, status, error)
IMAGE_COLUMNS = ("ref", "dist", "dist_root", "width", "height")
VIDEO_COLUMNS = ("ref", "dist", "dist_root", "frame", "dist_frame", "time", "width", "height")


@dataclass(frozen=True)
class PlanContext:
    """What a source needs from the run to plan: sizes, budgets, decode options."""

    min_sides: Mapping[str, int]
    batch_size: int
    max_batch_pixels: int
    max_pixels: int | None
    alpha: str = "drop"
    resize: str = "none"
    alpha_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: ``--shard I/N`` (a :class:`lpipscli.shard.Shard`): plan only that share of the work items
    shard: Any = None


@dataclass
class SourcePlan:
    """A planned source: the work, what failed before any decoding, and how to decode the rest.

    Attributes:
        columns: identity columns of its rows.
        n_pairs: pairs that will be decoded and scored.
        failed: ``(pair, width, height, message)`` for pairs that cannot be scored at all.
        metric_problems: metric -> ``(number of pairs it cannot score, first reason)``; those pairs are
            still scored by the other metrics.
        warnings: notes for the summary (frame-rate differences, ignored options...).
        inputs: the inputs as recorded in the provenance.
        unmatched: what did not pair (folder sources).
        dataset: a torch ``Dataset`` or ``IterableDataset`` of work items (see ``io.dataset``).
        workers: decoding worker processes this source can use (``None``: as many as asked).
        default_workers: worker processes when ``--workers`` is not given (``None``: one per spare core).
        frame_grid: ``(first frame, step)`` for video sources (``--heatmap-every`` counts on it).
        fps: frame rate of the reference (video).
    """

    columns: tuple[str, ...]
    n_pairs: int
    dataset: Any
    failed: list = field(default_factory=list)
    metric_problems: dict[str, tuple[int, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)
    unmatched: dict = field(default_factory=dict)
    workers: int | None = None
    default_workers: int | None = None
    frame_grid: tuple[int, int] | None = None
    fps: float | None = None
    #: video: the alignment as recorded in the provenance
    video: dict | None = None
    #: ``--shard``: what the provenance records about it (see :mod:`lpipscli.shard`)
    shard: dict | None = None


class Source(Protocol):
    """One kind of input. ``plan`` probes headers and pairs inputs; nothing is decoded."""

    kind: str

    def plan(self, ctx: PlanContext, *, done: set | None = None) -> SourcePlan:
        """Plan the work; ``done`` holds the keys of rows a resumed run already has (see ``row_key``)."""
        ...


def pair_key(pair) -> tuple:
    """The :func:`row_key` of the row a pair (:class:`lpipscli.io.pairing.Pair`) will have."""
    return row_key({"dist_root": pair.dist_root, "ref": str(pair.ref_path), "dist": str(pair.dist_path),
                    **pair.row_fields()})


def row_key(row: Mapping[str, Any]) -> tuple:
    """The identity of a row across runs: ``(dist_root, ref, dist, frame)`` (frame -1 for images)."""
    frame = row.get("frame")
    try:
        frame = int(frame) if frame not in (None, "") else -1
    except (TypeError, ValueError):
        frame = -1
    return (str(row["dist_root"]), str(row["ref"]), str(row["dist"]), frame)
