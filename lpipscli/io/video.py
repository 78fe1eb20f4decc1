"""Video input: video files and frame folders as frame sources, an alignment plan, concurrent decoding.

Three stages, each usable on its own:

1. :func:`probe_source` describes a source without decoding more than its first frame: a video file
   (PyAV, see :mod:`lpipscli.io.av_video`; raw ``.yuv`` with a :class:`~lpipscli.io.av_video.RawSpec`,
   ``.y4m`` by its header) or a frame folder (a *frame sequence*, see :func:`frame_sequence_files`).
2. :func:`plan_video` checks that a reference and its distorted versions can be compared frame by frame
   (frame counts, resolutions, frame rates) and decides which ``(ref_index, dist_index)`` pairs are
   scored, before any frame is decoded. The plan stores ``range`` objects, so it is a few hundred bytes
   whatever the length of the video.
3. :func:`iter_frame_groups` decodes the reference and every distorted source concurrently, one
   background thread per source with a bounded queue, and yields one :class:`FrameGroup` per reference
   frame, in reference order.

Decisions (documented here because they change results):

- **Alignment.** ``offset = N`` compares distorted frame ``i + N`` with reference frame ``i`` (``N`` may be
  negative). The distorted source therefore covers reference frames ``-N .. D - N - 1``. Frame counts
  "match" when ``D - N == R`` (the offset explains the start, and both ends line up). A mismatch is an
  error naming both counts, unless ``frames="shortest"``, which scores each distorted source over its
  own overlap with the reference.
- **Selection.** ``start``, ``step`` and ``max_frames`` select *reference* frames:
  ``start, start + step, ...``, at most ``max_frames`` of them, below the reference's frame count.
  This selection does not depend on the distorted sources; a selected reference frame that the offset
  leaves without a partner is not scored for that source.
- **Frame folders** are ordered by natural sort (``2.png`` before ``10.png``). A frame's index is its
  position in that order, not the number in its name (``ffmpeg -i x.mp4 %04d.png`` starts at
  ``0001.png``, which is frame 0).
- **Pixels.** Video frames are decoded by PyAV at the stream's precision and converted to RGB by
  :func:`lpipscli.io.av_video.yuv_to_rgb` with the stream's matrix and range (or the ``colorspace`` /
  ``color_range`` overrides): uint8 for 8-bit streams, uint16 holding the stream's own values above
  (``0..1023`` for 10-bit: the data range is ``2^bits - 1``, :attr:`SourceInfo.max_value`, never 65535;
  the engine divides by it on the device, so a lossless 10-bit copy scores PSNR inf and one changed
  low bit scores ``20 log10(1023)``). With ``planes=True`` each frame also carries its YUV planes as
  decoded (for ``psnr_yuv`` / ``ssim_ffmpeg``). Frame folders are decoded
  by :func:`lpipscli.io.decoding.decode_image`: 8-bit and 16-bit kept, gray stays 1 channel, alpha by
  the ``alpha`` policy (``"white"``/``"black"`` give float32 in ``[0, 1]``). Nothing is resized here.
- **Seeking.** Frames the plan skips (``start``, ``step``, frames a resumed run already has) are not
  decoded where the container allows it: jumps of :data:`SEEK_MIN_GAP` frames or more seek by
  timestamp to the previous keyframe (raw ``.yuv`` and ``.y4m``: a byte offset). A stream that cannot be
  sought (variable frame rate, no timestamps, a seek that lands elsewhere) is decoded sequentially and a
  warning says so (:meth:`lpipscli.io.av_video.AVVideoReader.seek_to`).
- **Pairing.** By default distorted frame ``i + offset`` pairs with reference frame ``i``. ``pair_by="time"``
  pairs each reference frame with the distorted frame whose presentation time is nearest (within half a
  reference frame interval; variable frame rate allowed), and ``align="auto"`` pairs by content
  (:func:`lpipscli.io.alignment.align_auto` on 32x18 luma signatures; one decoding pass over every source
  at planning time). Both give each distorted source an explicit ``index_map`` (reference frame ->
  distorted frame, both increasing); a reference frame without a partner is not scored for that source.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpipscli.errors import DecodeError, PairingError, UsageError
from lpipscli.io import av_video
from lpipscli.io.decoding import ALPHA_POLICIES, SUPPORTED_EXTENSIONS, decode_image, probe_image

__all__ = [
    "FRAMES_POLICIES",
    "RESIZE_POLICIES",
    "SEEK_MIN_GAP",
    "VIDEO_EXTENSIONS",
    "DistPlan",
    "FrameGroup",
    "FrameGroupStream",
    "SourceInfo",
    "VideoPlan",
    "frame_sequence_files",
    "is_frame_sequence",
    "is_video",
    "iter_frame_groups",
    "natural_sort_key",
    "plan_video",
    "probe_source",
]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts", ".yuv")
"""File name extensions treated as video, lower case (matched case-insensitively)."""

FRAMES_POLICIES = ("equal", "shortest")
RESIZE_POLICIES = ("none", "dist-to-ref")

SEEK_MIN_GAP = av_video.SEEK_MIN_GAP
"""Jump this many frames or more with a timestamp seek instead of decoding through them."""

PAIR_BY = ("index", "time")
ALIGN_POLICIES = ("none", "auto")

_JOIN_TIMEOUT_S = 10.0
_POLL_S = 0.1
_SHOW = 3  # how many names a message lists
_DIGITS = re.compile(r"(\d+)")


# --------------------------------------------------------------------------------------------------
# Names and frame sequences


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends with one of :data:`VIDEO_EXTENSIONS`, ignoring case (the file is not opened)."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``frame2.png`` before ``frame10.png``.

    Text parts compare case-insensitively; the name itself breaks ties, so the order is total.
    """
    parts = _DIGITS.split(name)
    return (tuple(int(p) if k % 2 else p.lower() for k, p in enumerate(parts)), name)


def frame_sequence_files(folder: str | os.PathLike) -> list[Path]:
    """The frames of a frame-sequence folder, in natural sort order, or a PairingError saying why not.

    A frame sequence is a folder whose image files (:data:`lpipscli.io.decoding.SUPPORTED_EXTENSIONS`,
    any case) all sit at its top level, each with a number in its name, all with the same extension
    (``00001.png``, ``frame_2.png``...). Hidden entries (names starting with ``.``) and non-image files
    are ignored; subfolders are allowed only if they hold no images.

    Args:
        folder: the folder.

    Returns:
        The frame files, sorted by :func:`natural_sort_key` of their names (frame 0 first).

    Raises:
        PairingError: the folder is missing or unreadable, holds no images at its top level, has a
            subfolder with images, has an image name without a number, mixes extensions, or has two
            names with the same numbers (``1.png`` and ``01.png``: the order would be ambiguous).
    """
    root = Path(folder)
    if not root.exists():
        raise PairingError(f"{root}: no such folder")
    if not root.is_dir():
        raise PairingError(f"{root}: not a folder, so not a frame sequence")
    images: list[str] = []
    subdirs: list[Path] = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
                elif entry.name.lower().endswith(SUPPORTED_EXTENSIONS):
                    images.append(entry.name)
    except OSError as exc:
        raise PairingError(f"{root}: cannot list folder: {exc.strerror or exc}") from None
    for sub in sorted(subdirs):
        found = _first_image_under(sub)
        if found is not None:
            raise PairingError(
                f"{root}: not a frame sequence: subfolder {sub.name}/ holds images ({found}); "
                "a frame sequence keeps all its frames at the top level of one folder"
            )
    if not images:
        raise PairingError(
            f"{root}: not a frame sequence: no image files at its top level "
            f"(accepted extensions: {', '.join(SUPPORTED_EXTENSIONS)}, any case)"
        )
    no_number = sorted(n for n in images if not _DIGITS.search(os.path.splitext(n)[0]))
    if no_number:
        raise PairingError(
            f"{root}: not a frame sequence: {len(no_number)} file name(s) contain no frame number "
            f"({_names(no_number)}); name frames like 00001.png or frame_0001.png"
        )
    extensions: dict[str, int] = {}
    for name in images:
        ext = os.path.splitext(name)[1].lower()
        extensions[ext] = extensions.get(ext, 0) + 1
    if len(extensions) > 1:
        counts = ", ".join(f"{ext}: {n}" for ext, n in sorted(extensions.items()))
        raise PairingError(
            f"{root}: not a frame sequence: frames have mixed extensions ({counts}); use one extension"
        )
    images.sort(key=natural_sort_key)
    for a, b in zip(images, images[1:], strict=False):
        if natural_sort_key(a)[0] == natural_sort_key(b)[0]:
            raise PairingError(
                f"{root}: not a frame sequence: {a} and {b} carry the same frame number, so their order "
                "is ambiguous; rename one of them"
            )
    return [root / name for name in images]


def is_frame_sequence(folder: str | os.PathLike) -> bool:
    """Whether :func:`frame_sequence_files` accepts ``folder`` (it says why not when it refuses)."""
    try:
        frame_sequence_files(folder)
    except PairingError:
        return False
    return True


def _first_image_under(folder: Path) -> str | None:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(SUPPORTED_EXTENSIONS):
                return os.path.relpath(os.path.join(dirpath, name), folder.parent)
    return None


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class SourceInfo(av_video.SampleGeometry):
    """What a frame source is, from its header and its first frame.

    Attributes:
        path: the source as given.
        kind: ``"video"`` (a video file, raw ``.yuv`` and ``.y4m`` included) or ``"frames"`` (a
            frame-sequence folder).
        width: frame width in pixels (of the first decoded frame).
        height: frame height in pixels.
        fps: frames per second from the container (``None`` for frame folders and for videos that
            report none).
        frame_count: number of frames. For frame folders, the number of files (exact). For video, the
            container's count, which may be approximate (it can come from duration x fps); when the
            container reports none, or with ``probe_source(..., exact_count=True)``, the packets are
            counted (demuxing only). The reader does not trust the count: a source ends where decoding
            first fails, and :func:`iter_frame_groups` reports a source that ends early (and notes one
            that has more frames than reported).
        codec: the codec name (``"h264"``, ``"ffv1"``, ``"rawvideo"``...) or, for frame folders, the image
            format (``"PNG"``...).
        channels: channels of the decoded frames: 3 for video; 1 or 3 for frame folders (first frame).
        bit_depth: bits per sample of the stream (8, 10, 12, 16) or of the first frame-folder image.
        frame_count_exact: whether ``frame_count`` was counted rather than taken from the container.
        files: the frame files of a frame folder in frame order (empty for video).
        pix_fmt: video: the decoded pixel format (``yuv420p10le``...); planes are given in ``planar_fmt``.
        family: video: ``"yuv"``, ``"rgb"`` or ``"gray"``.
        colorspace, color_range: video: the matrix and range used for RGB (stream metadata, override or
            assumption: see ``notes``).
        tags: video: the stream's own colour tags (``None`` where missing).
        vfr: video: the container's frame rate looks variable.
        raw: the :class:`~lpipscli.io.av_video.RawSpec` a raw ``.yuv`` file was read with.
        notes: assumptions made while probing (missing colour metadata), for the summary.
    """

    path: Path
    kind: str
    width: int
    height: int
    fps: float | None
    frame_count: int
    codec: str | None
    channels: int = 3
    bit_depth: int = 8
    frame_count_exact: bool = False
    files: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    pix_fmt: str | None = None
    planar_fmt: str | None = None
    family: str | None = None
    colorspace: str | None = None
    color_range: str | None = None
    tags: dict = field(default_factory=dict, compare=False)
    vfr: bool = False
    raw: av_video.RawSpec | None = None
    notes: tuple[str, ...] = ()
    #: decoding overrides the source was probed with (kept for the reader)
    overrides: tuple[str | None, str | None] = (None, None)


def probe_source(path: str | os.PathLike, *, exact_count: bool = False, raw: av_video.RawSpec | None = None,
                 colorspace: str | None = None, color_range: str | None = None) -> SourceInfo:
    """Describe a video file or a frame-sequence folder; decodes only the first frame by default.

    Args:
        path: a video file (any container/codec PyAV's FFmpeg reads, ``.y4m``, or raw ``.yuv`` with
            ``raw``) or a frame-sequence folder (see :func:`frame_sequence_files`).
        exact_count: count a container's frames by demuxing instead of trusting its reported count.
            Worth it for MPEG program/transport streams (``.mpg``, ``.ts``), which store no count.
        raw: size, pixel format and frame rate of a raw ``.yuv`` file.
        colorspace, color_range: overrides of the stream's colour matrix and range (``None``: metadata).

    Returns:
        Its :class:`SourceInfo`.

    Raises:
        DecodeError: missing or unreadable file, empty file, an image file given as a video, a file
            that cannot be opened as a video or whose first frame cannot be decoded.
        PairingError: a folder that is not a frame sequence (the message says why).
        UsageError: a raw file without ``raw``, an unknown override.
    """
    path = Path(path)
    if path.is_dir():
        return _probe_frames(path)
    return _probe_video(path, exact_count, raw, colorspace, color_range)


def _probe_frames(folder: Path) -> SourceInfo:
    files = frame_sequence_files(folder)
    first = probe_image(files[0])
    return SourceInfo(
        path=folder, kind="frames", width=first.width, height=first.height, fps=None,
        frame_count=len(files), codec=first.format, channels=first.channels, bit_depth=first.bit_depth,
        frame_count_exact=True, files=tuple(files),
    )


def _probe_video(path: Path, exact_count: bool, raw, colorspace, color_range) -> SourceInfo:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DecodeError(path, "no such file") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    if path.name.lower().endswith(SUPPORTED_EXTENSIONS):
        raise DecodeError(path, "is an image file, not a video; give a video file or a folder of frames")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "permission denied (the file is not readable)")
    try:
        reader = _open_reader(path, raw, colorspace, color_range)
    except DecodeError as exc:
        if "no decodable" in str(exc) or "cannot open" in str(exc):
            raise
        raise DecodeError(path, f"no decodable video frame ({exc})") from None
    with reader:
        info = reader.info
        count, exact = info.frame_count, info.frame_count_exact
        if (exact_count or not count) and not exact:
            count, exact = reader._count_packets(), True  # demuxing only, no decoding
        return SourceInfo(
            path=path, kind="video", width=info.width, height=info.height, fps=info.fps, frame_count=int(count),
            codec=info.codec, channels=3, bit_depth=info.bit_depth, frame_count_exact=exact, pix_fmt=info.pix_fmt,
            planar_fmt=info.planar_fmt, family=info.family, colorspace=reader.colorspace,
            color_range=reader.color_range, vfr=info.vfr, raw=raw if info.kind == "raw" else None,
            tags={"colorspace": info.colorspace, "color_range": info.color_range,
                  "color_primaries": info.color_primaries, "color_trc": info.color_trc},
            notes=tuple(reader.warnings), overrides=(colorspace, color_range),
        )


def _open_reader(path: Path, raw, colorspace, color_range) -> av_video.VideoReader:
    """A PyAV/raw/Y4M reader; containers seek for jumps of :data:`SEEK_MIN_GAP` frames or more."""
    name = path.name.lower()
    if name.endswith(av_video.RAW_EXTENSIONS) or name.endswith(".y4m"):
        return av_video.open_video(path, raw=raw, colorspace=colorspace, color_range=color_range)
    return av_video.AVVideoReader(path, colorspace=colorspace, color_range=color_range, threads=0,
                                  seek_min_gap=SEEK_MIN_GAP)


# --------------------------------------------------------------------------------------------------
# Plan


@dataclass
class DistPlan:
    """The frames one distorted source is scored on.

    Attributes:
        source: the distorted source.
        ref_indices: the reference frames scored against it (a ``range``); reference frame ``i`` pairs
            with distorted frame ``i + offset``.
        offset: the plan's offset.
        needs_resize: the source's size differs from the reference's (allowed by
            ``resize="dist-to-ref"``; the engine resamples, this module does not).
        actual_frame_count: set by :func:`iter_frame_groups` when the source ended before its reported
            count: the number of frames it really has (``None`` until then).
        index_map: ``pair_by="time"`` / ``align="auto"``: reference frame -> distorted frame (both
            increasing; ``ref_indices`` is then the sorted list of its keys); ``None``: ``i + offset``.
    """

    source: SourceInfo
    ref_indices: range | list
    offset: int
    needs_resize: bool = False
    actual_frame_count: int | None = None
    index_map: dict[int, int] | None = None

    @property
    def dist_indices(self) -> range | list:
        """The distorted frames read, in order (``ref_indices`` shifted by ``offset``, or mapped)."""
        r = self.ref_indices
        if self.index_map is not None:
            return [self.index_map[i] for i in r]
        return range(r.start + self.offset, r.stop + self.offset, r.step)

    def dist_index(self, ref_index: int) -> int | None:
        """The distorted frame paired with reference frame ``ref_index`` (``None``: not paired)."""
        if self.index_map is not None:
            return self.index_map.get(ref_index)
        return ref_index + self.offset if ref_index in self.ref_indices else None

    def pairs(self) -> Iterator[tuple[int, int]]:
        """``(ref_index, dist_index)`` pairs, lazily."""
        if self.index_map is not None:
            return ((i, self.index_map[i]) for i in self.ref_indices)
        return ((i, i + self.offset) for i in self.ref_indices)

    def __len__(self) -> int:
        return len(self.ref_indices)


@dataclass
class VideoPlan:
    """Which frames are compared, decided before decoding (see the module doc for the rules).

    Attributes:
        ref: the reference source.
        dists: one :class:`DistPlan` per distorted source, in the order given.
        ref_indices: every reference frame that some distorted source is scored on (a ``range``): one
            :class:`FrameGroup` each.
        offset, start, step, max_frames, frames, resize: the settings the plan was made with.
        warnings: things to report that are not errors (frame-rate differences, frame-folder numbering
            gaps); :func:`iter_frame_groups` appends sources that end early or run long.
        ref_actual_frame_count: set by :func:`iter_frame_groups` when the reference ended before its
            reported count (iteration stops there).
    """

    ref: SourceInfo
    dists: list[DistPlan]
    ref_indices: range
    offset: int = 0
    start: int = 0
    step: int = 1
    max_frames: int | None = None
    frames: str = "equal"
    resize: str = "none"
    warnings: list[str] = field(default_factory=list)
    ref_actual_frame_count: int | None = None
    pair_by: str = "index"
    align: str = "none"
    #: ``align="auto"``: per distorted source, the lines describing dropped/repeated/shifted frames
    alignment_notes: list[list[str]] = field(default_factory=list)

    @property
    def n_groups(self) -> int:
        """Number of frame groups :func:`iter_frame_groups` yields when every source is complete."""
        return len(self.ref_indices)

    @property
    def n_pairs(self) -> int:
        """Number of (reference frame, distorted frame) pairs scored, over all distorted sources."""
        return sum(len(d) for d in self.dists)


def plan_video(
    ref: SourceInfo | str | os.PathLike,
    dists: Sequence[SourceInfo | str | os.PathLike],
    *,
    start: int = 0,
    max_frames: int | None = None,
    step: int = 1,
    offset: int = 0,
    frames: str = "equal",
    resize: str = "none",
    pair_by: str = "index",
    align: str = "none",
    raw: av_video.RawSpec | None = None,
    colorspace: str | None = None,
    color_range: str | None = None,
) -> VideoPlan:
    """Check that sources can be compared frame by frame and list the pairs to score; decodes nothing.

    Reference frames ``start, start + step, ...`` (at most ``max_frames``, below the reference's frame
    count) are selected; distorted frame ``i + offset`` is compared with reference frame ``i``, for
    every selected ``i`` with ``0 <= i + offset < D`` (``D``: that source's frame count).

    Args:
        ref: the reference (a :class:`SourceInfo` or a path to probe).
        dists: the distorted sources, one or more (same types).
        start: first reference frame (0-based).
        max_frames: at most this many reference frames are selected; ``None``: up to the end.
        step: take every ``step``-th reference frame.
        offset: distorted frame ``i + offset`` pairs with reference frame ``i``; negative allowed.
        frames: ``"equal"``: frame counts must match after the offset (``D - offset == R``);
            ``"shortest"``: each distorted source is scored where it overlaps the reference.
        resize: ``"none"``: sizes must match; ``"dist-to-ref"``: they may differ (the plan marks
            ``needs_resize``; the engine resamples).
        pair_by: ``"index"`` (with ``offset``) or ``"time"`` (presentation time; see the module doc).
        align: ``"none"`` or ``"auto"`` (content alignment; see the module doc).
        raw, colorspace, color_range: decoding options of video files (see :func:`probe_source`).

    Returns:
        The :class:`VideoPlan`.

    Raises:
        UsageError: invalid settings (negative ``start``, ``step < 1``, ``max_frames < 1``, unknown
            policy, no distorted source, ``start`` past the reference's end).
        PairingError: frame counts differ (both counts named) with ``frames="equal"``; sizes differ
            (both sizes named) with ``resize="none"``; a distorted source left with no frame to compare;
            a folder that is not a frame sequence (when probing paths).
        DecodeError: a path that cannot be probed (see :func:`probe_source`).
    """
    if frames not in FRAMES_POLICIES:
        raise UsageError(f"frames must be one of {', '.join(FRAMES_POLICIES)}, got {frames!r}")
    if resize not in RESIZE_POLICIES:
        raise UsageError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {resize!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise UsageError(f"--start must be a frame index >= 0, got {start!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise UsageError(f"--step must be an integer >= 1, got {step!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):
        raise UsageError(f"--max-frames must be an integer >= 1, got {max_frames!r}")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise UsageError(f"--offset must be an integer, got {offset!r}")
    if not dists:
        raise UsageError("give at least one distorted input after the reference")
    if pair_by not in PAIR_BY:
        raise UsageError(f"pair_by must be one of {', '.join(PAIR_BY)}, got {pair_by!r}")
    if align not in ALIGN_POLICIES:
        raise UsageError(f"align must be one of {', '.join(ALIGN_POLICIES)}, got {align!r}")
    if pair_by == "time" and align == "auto":
        raise UsageError("--pair-by time and --align auto are two ways of pairing frames: give one")
    if offset and (pair_by == "time" or align == "auto"):
        other = "--pair-by time" if pair_by == "time" else "--align auto"
        raise UsageError(f"--offset applies to index pairing, not to {other}")
    explicit = pair_by == "time" or align == "auto"

    def _probe(p):
        return p if isinstance(p, SourceInfo) else probe_source(p, raw=raw, colorspace=colorspace,
                                                                color_range=color_range)

    ref_info = _probe(ref)
    dist_infos = [_probe(d) for d in dists]
    n_ref = ref_info.frame_count
    if start >= n_ref:
        raise UsageError(f"--start {start} is past the end: the reference {ref_info.path} has {n_ref} frames "
                         f"(0 to {n_ref - 1})")
    stop = n_ref if max_frames is None else min(n_ref, start + max_frames * step)
    # selected reference frames: range(start, stop, step)

    problems: list[str] = []
    warnings: list[str] = []
    for info in (ref_info, *dist_infos):
        gap = _numbering_gap(info)
        if gap:
            warnings.append(gap)
        warnings.extend(n for n in info.notes if n not in warnings)
    lo = max(0, -offset)  # first reference frame any distorted frame can pair with
    first = start if start >= lo else start + -(-(lo - start) // step) * step  # first selected frame >= lo
    plans: list[DistPlan] = []
    for info in dist_infos:
        n_dist = info.frame_count
        shifted = f" ({n_dist - offset} after --offset {offset})" if offset else ""
        if frames == "equal" and n_dist - offset != n_ref and not explicit:
            overlap = max(0, min(n_ref, n_dist - offset) - lo)
            problems.append(
                f"frame counts differ: reference {ref_info.path} has {n_ref} frames, {info.path} has "
                f"{n_dist}{shifted}; pass --frames shortest to score the {overlap} frames they share"
                + ("" if offset else ", or --offset to shift the distorted side")
            )
        needs_resize = (info.width, info.height) != (ref_info.width, ref_info.height)
        if needs_resize and resize == "none":
            problems.append(
                f"resolution differs: reference {ref_info.path} is {ref_info.size}, {info.path} is "
                f"{info.size}; pass --resize dist-to-ref to resample distorted frames to the reference size"
            )
        if (ref_info.fps and info.fps and abs(ref_info.fps - info.fps) > 1e-3 * max(ref_info.fps, info.fps)
                and pair_by != "time"):
            warnings.append(
                f"frame rates differ: reference {ref_info.path} is {ref_info.fps:g} fps, {info.path} is "
                f"{info.fps:g} fps; frames are paired by index, not by time"
            )
        indices = range(first, max(first, min(stop, n_dist - offset)), step)
        if not indices and (frames == "shortest" or n_dist - offset == n_ref) and not explicit:
            problems.append(
                f"nothing to compare for {info.path}: no selected reference frame (start {start}, step "
                f"{step}, max frames {max_frames}) has a partner among its {n_dist} frames at offset {offset}"
            )
        plans.append(DistPlan(source=info, ref_indices=indices, offset=offset, needs_resize=needs_resize))
    if problems:
        raise PairingError("; ".join(problems))
    notes: list[list[str]] = []
    if explicit:
        selected = range(start, stop, step)
        mapper = _time_maps if pair_by == "time" else _content_maps
        maps, notes = mapper(ref_info, dist_infos, selected)
        for plan, index_map in zip(plans, maps, strict=True):
            plan.index_map = index_map
            plan.ref_indices = sorted(index_map)
            if not index_map:
                problems.append(f"nothing to compare for {plan.source.path}: no selected reference frame has a "
                                f"partner by {'time' if pair_by == 'time' else 'content'}")
        for info, lines in zip(dist_infos, notes, strict=True):
            warnings.extend(f"{info.path}: {line}" for line in lines)
        if problems:
            raise PairingError("; ".join(problems))
        union = sorted(set().union(*(p.ref_indices for p in plans)))
        ref_indices: range | list = union
    else:
        union_stop = max(p.ref_indices.stop for p in plans)
        ref_indices = range(first, union_stop, step)
    return VideoPlan(
        ref=ref_info, dists=plans, ref_indices=ref_indices, offset=offset, start=start,
        step=step, max_frames=max_frames, frames=frames, resize=resize, warnings=warnings, pair_by=pair_by,
        align=align, alignment_notes=notes,
    )


def _frame_times(info: SourceInfo) -> list[float]:
    """Presentation times (s, from the first frame) of every frame of a video, by demuxing only."""
    if info.kind == "frames":
        raise UsageError(f"--pair-by time needs video files: the frame folder {info.path} has no timestamps")
    if info.raw is not None or str(info.path).lower().endswith(".y4m"):
        return [k / info.fps for k in range(info.frame_count)]
    import av

    with av.open(os.fspath(info.path)) as container:
        stream = container.streams.video[0]
        unit = float(stream.time_base)  # read while open (PyAV 19 refuses a closed container's streams)
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
    if not pts:
        raise DecodeError(info.path, "no timestamps to pair by time")
    base = pts[0]
    return [(p - base) * unit for p in pts]


def _time_maps(ref: SourceInfo, dists: list[SourceInfo], selected: range) -> tuple[list[dict], list[list[str]]]:
    """Each selected reference frame -> the distorted frame on screen at its presentation time.

    The distorted frame shown at time ``t`` is the last one whose timestamp is at or before ``t``
    (1 ms tolerance for timestamp rounding), until one median frame interval after its last frame.
    """
    import bisect

    ref_times = _frame_times(ref)
    maps, notes = [], []
    for info in dists:
        times = _frame_times(info)
        intervals = np.diff(times) if len(times) > 1 else np.array([1.0 / (info.fps or 25.0)])
        end = times[-1] + float(np.median(intervals))
        index_map = {}
        for i in selected:
            if i >= len(ref_times):
                break
            t = ref_times[i]
            j = bisect.bisect_right(times, t + 1e-3) - 1
            if j >= 0 and t < end - 1e-3:
                index_map[i] = j
        held = len(index_map) - len(set(index_map.values()))
        lines = [f"{held} distorted frame(s) are held over more than one reference frame"] if held else []
        maps.append(index_map)
        notes.append(lines)
    return maps, notes


def _signatures(info: SourceInfo) -> np.ndarray:
    """32x18 luma signatures of every frame of a video (one decoding pass)."""
    from lpipscli.io.alignment import luma_signature

    if info.kind == "frames":
        raise UsageError(f"--align auto needs video files, not the frame folder {info.path}")
    with _open_reader(Path(info.path), info.raw, *info.overrides) as reader:
        return np.stack([luma_signature(f.planes[0], f.bit_depth) for f in reader])


def _content_maps(ref: SourceInfo, dists: list[SourceInfo], selected: range) -> tuple[list[dict], list[list[str]]]:
    """Each selected reference frame -> its best-matching distorted frame (:func:`align_auto`)."""
    from lpipscli.io.alignment import align_auto

    ref_sigs = _signatures(ref)
    maps, notes = [], []
    for info in dists:
        alignment = align_auto(ref_sigs, _signatures(info))
        best: dict[int, tuple[float, int]] = {}
        for j, (r, score) in enumerate(zip(alignment.ref_index.tolist(), alignment.score.tolist(), strict=True)):
            if r in selected and (r not in best or score > best[r][0]):
                best[r] = (score, j)
        maps.append({r: j for r, (_, j) in sorted(best.items())})
        notes.append(alignment.describe())
    return maps, notes


def _numbering_gap(info: SourceInfo) -> str | None:
    """A warning when a frame folder's last numbers increase unevenly (a missing frame?)."""
    if info.kind != "frames" or len(info.files) < 3:
        return None
    numbers = [int(_DIGITS.findall(f.stem)[-1]) for f in info.files]
    steps = [b - a for a, b in zip(numbers, numbers[1:], strict=False)]
    if min(steps) <= 0 or len(set(steps)) == 1:
        return None
    usual = Counter(steps).most_common(1)[0][0]
    k = next(k for k, s in enumerate(steps) if s != usual)
    return (
        f"{info.path}: frame numbers are not evenly spaced ({info.files[k].name} is followed by "
        f"{info.files[k + 1].name}); a missing frame? Frames pair by position in sorted order"
    )


# --------------------------------------------------------------------------------------------------
# Decoding


@dataclass
class FrameGroup:
    """One reference frame and its distorted counterparts.

    Attributes:
        index: the reference frame index (0-based).
        time: seconds, from the reference's timestamps (``CAP_PROP_POS_MSEC``, or ``index / fps`` when
            the container gives none); ``None`` for a frame-folder reference.
        ref: ``(H, W, C)`` reference frame: RGB at the stream's bit depth for video (a view of
            channel-planar memory, see :attr:`lpipscli.io.av_video.Frame.rgb`); uint8/uint16 (or float32
            after alpha compositing), C = 1 or 3, for frame folders.
        dists: one entry per distorted source (plan order): its frame (own size), or ``None`` when the
            source has no frame here (not planned for this index, or ended early: see ``errors``).
        dist_indices: the distorted frame index compared (``index + offset``), ``None`` where not planned.
        errors: ``None``, or why a planned frame is missing (``"... ended after N frames ..."``).
        ref_planes, dist_planes: with ``planes=True``, the frames' planes as decoded (Y, U, V; uint8 or
            uint16 at the stream's scale); ``None`` for frame folders and when not asked.
    """

    index: int
    time: float | None
    ref: np.ndarray
    dists: list[np.ndarray | None]
    dist_indices: list[int | None]
    errors: list[str | None]
    ref_planes: tuple[np.ndarray, ...] | None = None
    dist_planes: list[tuple[np.ndarray, ...] | None] | None = None


class FrameGroupStream(Iterator[FrameGroup]):
    """The iterator :func:`iter_frame_groups` returns; also a context manager.

    Decoding threads start at the first ``next()``. ``close()`` (or leaving the ``with`` block, or
    garbage collection) stops them, joins them and releases every capture.
    """

    def __init__(self, generator: Iterator[FrameGroup]):
        self._generator = generator

    def __iter__(self) -> FrameGroupStream:
        return self

    def __next__(self) -> FrameGroup:
        return next(self._generator)

    def close(self) -> None:
        """Stop the decoding threads and release the sources (idempotent)."""
        self._generator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> FrameGroupStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def iter_frame_groups(plan: VideoPlan, *, queue_size: int = 8, alpha: str = "drop",
                      max_pixels: int | None = None, planes: bool = False, rgb: bool = True) -> FrameGroupStream:
    """Decode the planned frames, all sources concurrently, and yield them in reference frame order.

    One background thread per source (the reference and each distorted source) decodes into a queue of
    at most ``queue_size`` frames, so memory stays bounded for any length: about
    ``(queue_size + 2) x frame bytes`` per source. Nothing is loaded whole.

    A distorted source that ends before its planned frames (its container over-reported its length)
    gives ``None`` frames with an error in every remaining group (not an exception), and its
    :attr:`DistPlan.actual_frame_count` is set. The reference ending early ends the iteration and sets
    :attr:`VideoPlan.ref_actual_frame_count`. Both are also added to ``plan.warnings``, as is a source
    that turns out to have more frames than reported (checked by decoding one more frame when the plan reads
    up to its reported last frame).

    Args:
        plan: from :func:`plan_video`.
        queue_size: frames buffered per source (>= 1).
        alpha: alpha policy for frame folders (see :func:`lpipscli.io.decoding.decode_image`).
        max_pixels: decompression-bomb limit per frame-folder image (None: no limit).
        planes: also hand over each video frame's planes (``FrameGroup.ref_planes`` / ``dist_planes``).
        rgb: convert video frames to RGB; with ``rgb=False`` (a run of plane metrics only) ``FrameGroup.ref``
            and ``dists`` hold each frame's Y plane instead (no conversion, no copy), and ``planes`` is implied.

    Returns:
        A :class:`FrameGroupStream` (iterator and context manager) of :class:`FrameGroup`.

    Raises:
        ValueError: ``queue_size < 1`` or an unknown ``alpha`` (raised at once).
        DecodeError: (while iterating) a source that cannot be opened or a frame that cannot be decoded,
            or a frame whose size differs from the source's first frame; raised in the consumer, after
            which all threads are stopped.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be >= 1, got {queue_size}")
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_POLICIES)}, got {alpha!r}")
    return FrameGroupStream(_frame_groups(plan, queue_size, alpha, max_pixels, planes or not rgb, rgb))


def _frame_groups(plan: VideoPlan, queue_size: int, alpha: str, max_pixels: int | None,
                  planes: bool = False, rgb: bool = True) -> Iterator[FrameGroup]:
    stop = threading.Event()
    ref_reader = _Reader(plan.ref, plan.ref_indices, role="ref", want_time=True, alpha=alpha,
                         queue_size=queue_size, stop=stop, max_pixels=max_pixels, planes=planes, rgb=rgb)
    dist_readers = [
        _Reader(d.source, d.dist_indices, role=f"dist{j}", want_time=False, alpha=alpha,
                queue_size=queue_size, stop=stop, max_pixels=max_pixels, planes=planes, rgb=rgb)
        for j, d in enumerate(plan.dists)
    ]
    readers = [ref_reader, *dist_readers]
    try:
        for reader in readers:
            reader.start()
        ended: list[str | None] = [None] * len(plan.dists)
        n_ref = plan.ref.frame_count
        for index in plan.ref_indices:
            message = ref_reader.get()
            if message[0] == "end":
                plan.ref_actual_frame_count = message[1]
                plan.warnings.append(
                    f"reference {plan.ref.path} ended after {message[1]} frames (its container reported "
                    f"{n_ref}); frames from {index} on were not compared"
                )
                return
            _, _, time, ref, ref_planes = message
            dists: list[np.ndarray | None] = []
            dist_planes: list[tuple | None] = []
            dist_indices: list[int | None] = []
            errors: list[str | None] = []
            for j, (dist_plan, reader) in enumerate(zip(plan.dists, dist_readers, strict=True)):
                dist_index = dist_plan.dist_index(index)
                if dist_index is None:
                    dists.append(None)
                    dist_planes.append(None)
                    dist_indices.append(None)
                    errors.append(None)
                    continue
                dist_indices.append(dist_index)
                if ended[j] is None:
                    message = reader.get()
                    if message[0] == "frame":
                        dists.append(message[3])
                        dist_planes.append(message[4])
                        errors.append(None)
                        continue
                    dist_plan.actual_frame_count = message[1]
                    ended[j] = (
                        f"{dist_plan.source.path}: dist ended after {message[1]} frames (its container reported "
                        f"{dist_plan.source.frame_count}), reference has {n_ref}"
                    )
                    plan.warnings.append(ended[j])
                dists.append(None)
                dist_planes.append(None)
                errors.append(ended[j])
            yield FrameGroup(index=index, time=time, ref=ref, dists=dists, dist_indices=dist_indices,
                             errors=errors, ref_planes=ref_planes, dist_planes=dist_planes if planes else None)
        for reader, done in zip(readers, [False, *(e is not None for e in ended)], strict=True):
            if not done and reader.get()[1]:
                text = (f"{reader.source.path} has more frames than its container reported "
                        f"({reader.source.frame_count}); the extra frames were not compared")
                if text not in plan.warnings:
                    plan.warnings.append(text)
        for reader in readers:
            plan.warnings.extend(w for w in reader.notes if w not in plan.warnings)
    finally:
        stop.set()
        for reader in readers:
            reader.drain()
        for reader in readers:
            if reader.ident is not None:  # started
                reader.join(_JOIN_TIMEOUT_S)


class _Reader(threading.Thread):
    """Decodes one source's planned frames into a bounded queue.

    Messages, in order: ``("frame", index, time, array, planes)`` per planned frame, then one terminal
    message: ``("done", more)`` after the last planned frame (``more``: the source has frames past its
    reported count), ``("end", n)`` when the source ended with ``n`` frames before a planned one, or
    ``("error", DecodeError)``. ``indices`` increase; a repeated index (a frame held over several
    reference frames by time pairing) hands the same frame again. ``notes`` collects the reader's
    warnings (a stream that could not seek).
    """

    def __init__(self, source: SourceInfo, indices, *, role: str, want_time: bool, alpha: str,
                 queue_size: int, stop: threading.Event, max_pixels: int | None = None, planes: bool = False,
                 rgb: bool = True):
        super().__init__(name=f"lpipscli-video-{role}", daemon=True)
        self.rgb = rgb
        self.max_pixels = max_pixels
        self.source = source
        self.indices = indices
        self.want_time = want_time
        self.alpha = alpha
        self.stop = stop
        self.planes = planes
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.notes: list[str] = []
        self._reader: av_video.VideoReader | None = None

    # consumer side

    def get(self) -> tuple:
        """Next message; raises the thread's DecodeError."""
        while True:
            try:
                message = self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self.is_alive():
                    continue
                try:
                    message = self.queue.get_nowait()
                except queue.Empty:
                    raise DecodeError(self.source.path, "the decoding thread stopped early") from None
            if message[0] == "error":
                raise message[1]
            return message

    def drain(self) -> None:
        """Empty the queue so that a thread blocked on a full queue sees the stop event at once."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

    # thread side

    def run(self) -> None:
        try:
            if self.source.kind == "frames":
                self._run_frames()
            else:
                self._run_video()
        except DecodeError as exc:
            self._put(("error", exc))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the consumer
            cause = " ".join(str(exc).split())[:200]
            cause = f"decoding failed ({type(exc).__name__}: {cause})"
            self._put(("error", DecodeError(self.source.path, cause)))
        finally:
            self._release()

    def _put(self, message: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run_frames(self) -> None:
        files = self.source.files
        for index in self.indices:
            if self.stop.is_set():
                return
            if index >= len(files):
                self._put(("end", len(files)))
                return
            array = decode_image(files[index], alpha=self.alpha, max_pixels=self.max_pixels)
            self._check_size(array, files[index], index)
            if not self._put(("frame", index, None, array, None)):
                return
        self._put(("done", False))

    def _run_video(self) -> None:
        source = self.source
        self._reader = reader = _open_reader(Path(source.path), source.raw, *source.overrides)
        last: tuple | None = None
        try:
            for index in self.indices:
                if self.stop.is_set():
                    return
                if last is not None and last[1] == index:  # a held frame (time pairing)
                    if not self._put(last):
                        return
                    continue
                try:
                    frame = reader.read(index)
                except DecodeError as exc:
                    if "has no frame" not in str(exc):
                        raise
                    self._put(("end", getattr(reader, "_next_index", index)))
                    return
                self._check_size(frame.planes[0], source.path, index)
                pixels = frame.rgb if self.rgb else frame.planes[0]
                time = frame.pts_time if self.want_time else None
                if time is None and self.want_time and source.fps:
                    time = index / source.fps
                last = ("frame", index, time, pixels, frame.planes if self.planes else None)
                if not self._put(last):
                    return
            more = False
            if len(self.indices) and self.indices[-1] >= source.frame_count - 1:
                try:
                    next(reader)
                    more = True
                except StopIteration:
                    more = False
            self._put(("done", more))
        finally:
            self.notes.extend(w for w in reader.warnings if w not in source.notes)

    def _check_size(self, array: np.ndarray, path, index: int) -> None:
        height, width = array.shape[:2]
        if (width, height) != (self.source.width, self.source.height):
            raise DecodeError(path, (
                f"frame {index} is {width}x{height}, the source started at {self.source.size}; "
                "a resolution change inside a source is not supported"
            ))

    def _release(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")
