"""Frozen descriptions of metrics and runs (no I/O here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

#: A metric runner, built once per run: ``runner(ref, dist, ref_index) -> (P,)``.
#: ``ref`` holds each distinct reference image once ``(R, C, H, W)``; ``dist`` holds ``(P, C, H, W)``
#: and ``ref_index`` ``(P,)`` says which reference each distorted image is compared with (None when
#: ``ref[p]`` pairs with ``dist[p]``), so that metrics with reusable reference features (LPIPS) compute
#: them once per reference.
Runner = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class MetricSpec:
    """What the registry knows about one metric; the key is also the CLI name and the column name.

    Attributes:
        key: registry key, CLI choice and output column.
        fn: pure batched function ``fn(ref, dist, **params) -> (N,)`` on float ``[0, 1]`` inputs.
        measures: one line: what the metric measures.
        value_range: the range of its values, as text.
        higher_is_better: direction of "better".
        min_side: smallest image side it accepts, in pixels.
        needs_weights: whether it needs downloaded weight files.
        params: keyword settings passed to ``fn`` (pinned defaults; CLI options may override them).
        conventions: descriptive settings that are fixed (window, colour handling...); recorded with
            ``params`` in every output's provenance.
        build: optional ``build(device, params) -> Runner`` for metrics that keep a module or
            reference features (LPIPS); otherwise the engine calls ``fn`` directly.
        differentiable: whether gradients flow through ``fn`` (usable as a training loss).
        cost: rough cost per pair, as text, for the documentation.
        map_fn: optional ``map_fn(ref, dist, **params) -> (scores (N,), maps (N, 1, h, w))`` for heatmaps.
        input_dtype: ``"float32"`` or ``"float64"``: the precision the engine converts decoded pixels to
            for this metric (pixel metrics need float64 to match scikit-image to 1e-6 on 16-bit files).
    """

    key: str
    fn: Callable[..., Tensor]
    measures: str
    value_range: str
    higher_is_better: bool
    min_side: int
    needs_weights: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    conventions: Mapping[str, Any] = field(default_factory=dict)
    build: Callable[..., Runner] | None = None
    differentiable: bool = True
    cost: str = ""
    input_dtype: str = "float32"
    map_fn: Callable[..., tuple[Tensor, Tensor]] | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything a `compare` run needs, parsed and validated by the CLI."""

    ref: Path
    dists: tuple[Path, ...]
    metrics: tuple[str, ...]
    metric_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    workers: int | None = None
    batch_size: int = 16
    max_batch_pixels: int | None = None
    alpha: str = "drop"
    resize: str = "none"
    allow_unmatched: bool = False
    on_error: str = "fail"
    allow_unverified_weights: bool = False
    #: decompression-bomb guard (pixels per image); None disables it
    max_pixels: int | None = 16384 * 16384
    #: heatmaps: output folder (None = off) and the writer's options
    heatmaps: Path | None = None
    heatmap_format: str = "png"
    heatmap_panel: bool = False
    heatmap_scale: str = "fixed"
    heatmap_worst: int | None = None
    heatmap_legend: bool = False
    heatmap_every: int = 1
    #: video: frame selection and alignment (None = not a video run)
    video: VideoOptions | None = None


@dataclass(frozen=True)
class VideoOptions:
    """Frame selection and alignment for video inputs and frame folders."""

    start: int = 0
    max_frames: int | None = None
    step: int = 1
    offset: int = 0
    frames: str = "equal"
    heatmap_video: Path | None = None
