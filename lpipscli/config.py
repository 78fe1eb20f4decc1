"""Frozen descriptions of metrics and runs (no I/O here)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

#: A metric runner, built once per run: ``runner(ref, dist, ref_index) -> (P,)``.
#: ``ref`` holds each distinct reference image once ``(R, C, H, W)``; ``dist`` holds ``(P, C, H, W)``
#: and ``ref_index`` ``(P,)`` says which reference each distorted image is compared with (None when
#: ``ref[p]`` pairs with ``dist[p]``), so that metrics with reusable reference features (LPIPS) compute
#: them once per reference.
Runner = Callable[["Tensor", "Tensor", "Tensor"], "Tensor"]


class Lazy:
    """A callable named ``"module:attribute"``, imported on first use (keeps the registry torch-free).

    Keyword arguments are bound as with :func:`functools.partial`.
    """

    def __init__(self, target: str, **kwargs: Any):
        self.target = target
        self.kwargs = kwargs
        self._obj: Any = None

    def load(self) -> Any:
        if self._obj is None:
            module, _, attr = self.target.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._obj = functools.partial(obj, **self.kwargs) if self.kwargs else obj
        return self._obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r}{', ' if self.kwargs else ''}{self.kwargs or ''})"


class LazyMapping(Mapping):
    """A mapping named ``"module:attribute"``, imported on first access."""

    def __init__(self, target: str):
        self._lazy = Lazy(target)

    def _data(self) -> Mapping:
        return self._lazy.load()

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self):
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


@dataclass(frozen=True)
class MapSpec:
    """How the per-pixel map of one metric is shown (heatmaps, map videos, reports).

    Attributes:
        key: the metric key (registry key, CLI name, output column).
        lo: low end of the fixed scale, in map units (``lo < hi``).
        hi: high end of the fixed scale; values outside ``[lo, hi]`` are clipped to the end colours.
        higher_is_worse: ``True`` when a higher map value means a larger difference (drawn brighter);
            ``False`` for similarity maps (SSIM), which are drawn inverted so that bright = worse.
        units: what one map value is, in words.
        description: the scale in one line (stored in every PNG).
        relation: how the map relates to the row's score.
        border: how many pixels the metric's map is smaller than the image on every side (SSIM's valid
            region: 5); the writer pads such maps with NaN back to the image size.
    """

    key: str
    lo: float
    hi: float
    higher_is_worse: bool
    units: str
    description: str
    relation: str
    border: int = 0

    @property
    def direction(self) -> str:
        side = "higher" if self.higher_is_worse else "lower"
        return f"bright = worse ({side} {self.units} is brighter)"


@dataclass(frozen=True)
class MetricSpec:
    """What the registry knows about one metric; the key is also the CLI name and the column name.

    The registry holds metadata only: implementations are :class:`Lazy` references imported when a run
    needs them, so that ``lpips metrics``, ``summary`` and ``diff`` never import torch.

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
        build: optional ``build(device, params) -> (Runner, weight records)`` for metrics that keep a module
            or reference features (LPIPS); otherwise the engine calls ``fn`` directly.
        differentiable: whether gradients flow through ``fn`` (usable as a training loss).
        cost: rough cost per pair, as text, for the documentation and ``lpips metrics``.
        map_fn: optional ``map_fn(ref, dist, **params) -> (scores (N,), maps (N, 1, h, w))`` for heatmaps.
        map: how that map is drawn (scale, direction), or None when the metric has no map.
        input_dtype: ``"float32"`` or ``"float64"``: the precision the engine converts decoded pixels to
            for this metric (pixel metrics need float64 to match scikit-image to 1e-6 on 16-bit files).
        options: CLI options that set ``params`` (``--option`` -> param name), for the help and provenance.
        input: ``"pixels"`` (``fn`` takes ``(N, C, H, W)`` float tensors) or ``"planes"`` (``fn`` takes the
            decoded YUV planes of video frames, ``fn(ref_frames, dist_frames, bit_depth=...)`` with one tuple
            of ``(h, w)`` integer NumPy planes per pair in each list, and returns ``{column: (N,)}``); plane
            metrics only run on video sources; or
            ``"sequence"``: ``fn(**params)`` builds a stateful scorer of the planes in stream order (VMAF,
            whose frame scores depend on the next frame): ``push(stream, ref_planes, dist_planes, bit_depth)
            -> ticket``, ``collect() -> [(ticket, score or error message)]`` of the scores ready, ``finish()``
            at the end of the run.
        columns: the output columns of a metric that gives several (the key itself among them, holding
            the value that gates and summaries use); empty: one column named by the key.
        samples_fn: optional ``samples_fn(ref, dist, ref_index, *, scale, **params) -> (N,)``, ``fn`` on the
            decoded integer samples ``k`` standing for ``k / scale`` (CPU tensors; ``ref`` holds each distinct
            reference once, ``ref_index`` picks one per distorted image): the engine calls it instead of
            ``fn`` when a batch holds integer samples, so that the batch needs no float copy.
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
    map: MapSpec | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    input: str = "pixels"
    columns: tuple[str, ...] = ()
    samples_fn: Callable[..., Tensor] | None = None

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The row columns this metric fills."""
        return self.columns or (self.key,)

    @property
    def has_map(self) -> bool:
        return self.map is not None and (self.map_fn is not None or self.build is not None)


@dataclass(frozen=True)
class RunConfig:
    """Everything a `compare` run needs, parsed and validated by the CLI."""

    ref: Path | None
    dists: tuple[Path, ...]
    metrics: tuple[str, ...]
    metric_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    workers: int | None = None
    batch_size: int = 16
    max_batch_pixels: int | None = None
    alpha: str = "drop"
    #: background of --alpha white/black/composite-both/mask, RGB in [0, 1]
    alpha_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
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
    #: a pair list (CSV/Parquet/JSONL with ref,dist[,group]) instead of ref/dists inputs
    pairs: Path | None = None
    #: allow TF32 matrix multiplies and convolutions on CUDA (off: float32 parity with the references)
    tf32: bool = False
    #: ``--shard I/N``: score only that share of the work (a :class:`lpipscli.shard.Shard`; None = all)
    shard: Any = None


@dataclass(frozen=True)
class VideoOptions:
    """Frame selection and alignment for video inputs and frame folders."""

    start: int = 0
    max_frames: int | None = None
    step: int = 1
    offset: int = 0
    frames: str = "equal"
    heatmap_video: Path | None = None
    #: ``index`` (with ``offset``) or ``time`` (presentation time)
    pair_by: str = "index"
    #: ``none`` or ``auto`` (content alignment)
    align: str = "none"
    #: YUV->RGB overrides (None: the stream's metadata)
    colorspace: str | None = None
    color_range: str | None = None
    #: raw .yuv input: "WxH", pixel format, frame rate (None: not given)
    raw_size: str | None = None
    raw_format: str | None = None
    raw_fps: str | None = None
