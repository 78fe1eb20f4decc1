"""Video input: video files and frame folders as frame sources, an alignment plan, concurrent decoding.

Three stages, each usable on its own:

1. :func:`probe_source` describes a source without decoding more than its first frame: a video file
   (OpenCV ``cv2.VideoCapture`` with its bundled FFmpeg) or a frame folder (a *frame sequence*, see
   :func:`frame_sequence_files`).
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
- **Pixels.** Video frames are 8-bit RGB: OpenCV's FFmpeg backend converts every pixel format to BGR24
  (10-bit and 4:4:4 video included), and this module converts BGR to RGB once. Frame folders are decoded
  by :func:`lpipscli.io.decoding.decode_image`: 8-bit and 16-bit kept, gray stays 1 channel, alpha by
  the ``alpha`` policy (``"white"``/``"black"`` give float32 in ``[0, 1]``). Nothing is resized here.
- **Seeking.** Frames are read sequentially; unwanted frames are skipped with ``grab()`` (no colour
  conversion, no copy to Python). ``CAP_PROP_POS_FRAMES`` seeks are used only to jump over
  :data:`SEEK_MIN_GAP` frames or more (a large ``start`` or ``step``), and a seek is verified: when the
  frame read after it fails or carries a timestamp other than ``index / fps``, the source is reopened
  and read sequentially from then on.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lpipscli.errors import DecodeError, PairingError, UsageError
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

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts")
"""File name extensions treated as video, lower case (matched case-insensitively)."""

FRAMES_POLICIES = ("equal", "shortest")
RESIZE_POLICIES = ("none", "dist-to-ref")

SEEK_MIN_GAP = 250
"""Skip this many frames or more with a ``CAP_PROP_POS_FRAMES`` seek instead of ``grab()`` calls.

A seek decodes from the previous keyframe (x264's default keyframe interval is 250 frames), so shorter
jumps are no faster than grabbing, and grabbing cannot land on the wrong frame.
"""

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
class SourceInfo:
    """What a frame source is, from its header and its first frame.

    Attributes:
        path: the source as given.
        kind: ``"video"`` (a video file) or ``"frames"`` (a frame-sequence folder).
        width: frame width in pixels (of the first decoded frame).
        height: frame height in pixels.
        fps: frames per second from the container (``CAP_PROP_FPS``); ``None`` for frame folders and
            for videos that report none.
        frame_count: number of frames. For frame folders, the number of files (exact). For video,
            ``CAP_PROP_FRAME_COUNT``, which containers may report approximately (it can come from the
            stream header or from duration x fps); when the container reports none, or with
            ``probe_source(..., exact_count=True)``, the frames are counted once with ``grab()``. The
            reader does not trust the count: a source ends where ``grab()``/``read()`` first fails, and
            :func:`iter_frame_groups` reports a source that ends early (and notes one that has more
            frames than reported).
        codec: the FourCC OpenCV reports (``"h264"``, ``"FFV1"``, ``"MJPG"``...; ``None`` when it gives
            none, e.g. raw video) or, for frame folders, the image format (``"PNG"``...).
        channels: channels of the decoded frames: 3 for video; 1 or 3 for frame folders (first frame).
        bit_depth: 8 for video (OpenCV decodes to 8 bits); 8 or 16 for frame folders (first frame).
        frame_count_exact: whether ``frame_count`` was counted (frame folders, ``exact_count=True``,
            videos without a reported count) rather than taken from the container.
        files: the frame files of a frame folder in frame order (empty for video).
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

    @property
    def size(self) -> str:
        """``"WIDTHxHEIGHT"``, as messages write it."""
        return f"{self.width}x{self.height}"


def probe_source(path: str | os.PathLike, *, exact_count: bool = False) -> SourceInfo:
    """Describe a video file or a frame-sequence folder; decodes only the first frame by default.

    Args:
        path: a video file (any container/codec OpenCV's FFmpeg reads, whatever its extension) or a
            frame-sequence folder (see :func:`frame_sequence_files`).
        exact_count: count a video's frames with ``grab()`` (one decoding pass, no colour conversion)
            instead of trusting ``CAP_PROP_FRAME_COUNT``. Worth it for MPEG program/transport streams
            (``.mpg``, ``.ts``), whose containers store no frame count (OpenCV estimates it from the
            duration; an ``.mpg`` of 30 frames written by OpenCV reports 22).

    Returns:
        Its :class:`SourceInfo`.

    Raises:
        DecodeError: missing or unreadable file, empty file, an image file given as a video, a file
            OpenCV cannot open as a video or whose first frame cannot be decoded, a video without a
            size; a frame folder whose first frame's header is unreadable.
        PairingError: a folder that is not a frame sequence (the message says why).
    """
    path = Path(path)
    if path.is_dir():
        return _probe_frames(path)
    return _probe_video(path, exact_count)


def _probe_frames(folder: Path) -> SourceInfo:
    files = frame_sequence_files(folder)
    first = probe_image(files[0])
    return SourceInfo(
        path=folder, kind="frames", width=first.width, height=first.height, fps=None,
        frame_count=len(files), codec=first.format, channels=first.channels, bit_depth=first.bit_depth,
        frame_count_exact=True, files=tuple(files),
    )


def _probe_video(path: Path, exact_count: bool) -> SourceInfo:
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
    cap = _open_capture(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise DecodeError(path, "no decodable video frame (corrupt, or a codec OpenCV's FFmpeg lacks)")
        height, width = frame.shape[:2]
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        codec = _fourcc(cap.get(cv2.CAP_PROP_FOURCC))
        exact = False
        if math.isfinite(reported) and reported >= 1 and not exact_count:
            count = int(round(reported))
        else:  # asked for, or the container gives no count: count once, without colour conversion
            count, exact = 1, True
            while cap.grab():
                count += 1
    finally:
        cap.release()
    return SourceInfo(path=path, kind="video", width=int(width), height=int(height), fps=fps,
                      frame_count=count, codec=codec, frame_count_exact=exact)


def _open_capture(path: Path) -> cv2.VideoCapture:
    # The FFmpeg backend explicitly: OpenCV's image-sequence backend would read '%d' in a name as a
    # pattern. An absolute path: FFmpeg would read 'name:rest' in a relative path as a protocol.
    try:
        cap = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
    except cv2.error as exc:
        raise DecodeError(path, f"cannot open as a video ({' '.join(str(exc).split())})") from None
    if not cap.isOpened():
        cap.release()
        raise DecodeError(path, "cannot open as a video (corrupt, or a format OpenCV's FFmpeg does not read)")
    return cap


def _fourcc(value: float) -> str | None:
    code = int(value) if math.isfinite(value) and value > 0 else 0
    text = "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4)).strip("\x00 ")
    return text if text and text.isprintable() else None


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
    """

    source: SourceInfo
    ref_indices: range
    offset: int
    needs_resize: bool = False
    actual_frame_count: int | None = None

    @property
    def dist_indices(self) -> range:
        """The distorted frames read, in order (``ref_indices`` shifted by ``offset``)."""
        r = self.ref_indices
        return range(r.start + self.offset, r.stop + self.offset, r.step)

    def pairs(self) -> Iterator[tuple[int, int]]:
        """``(ref_index, dist_index)`` pairs, lazily."""
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

    ref_info = ref if isinstance(ref, SourceInfo) else probe_source(ref)
    dist_infos = [d if isinstance(d, SourceInfo) else probe_source(d) for d in dists]
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
    lo = max(0, -offset)  # first reference frame any distorted frame can pair with
    first = start if start >= lo else start + -(-(lo - start) // step) * step  # first selected frame >= lo
    plans: list[DistPlan] = []
    for info in dist_infos:
        n_dist = info.frame_count
        shifted = f" ({n_dist - offset} after --offset {offset})" if offset else ""
        if frames == "equal" and n_dist - offset != n_ref:
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
        if ref_info.fps and info.fps and abs(ref_info.fps - info.fps) > 1e-3 * max(ref_info.fps, info.fps):
            warnings.append(
                f"frame rates differ: reference {ref_info.path} is {ref_info.fps:g} fps, {info.path} is "
                f"{info.fps:g} fps; frames are paired by index, not by time"
            )
        indices = range(first, max(first, min(stop, n_dist - offset)), step)
        if not indices and (frames == "shortest" or n_dist - offset == n_ref):
            problems.append(
                f"nothing to compare for {info.path}: no selected reference frame (start {start}, step "
                f"{step}, max frames {max_frames}) has a partner among its {n_dist} frames at offset {offset}"
            )
        plans.append(DistPlan(source=info, ref_indices=indices, offset=offset, needs_resize=needs_resize))
    if problems:
        raise PairingError("; ".join(problems))
    union_stop = max(p.ref_indices.stop for p in plans)
    return VideoPlan(
        ref=ref_info, dists=plans, ref_indices=range(first, union_stop, step), offset=offset, start=start,
        step=step, max_frames=max_frames, frames=frames, resize=resize, warnings=warnings,
    )


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
        ref: ``(H, W, C)`` reference frame: uint8 RGB for video; uint8/uint16 (or float32 after alpha
            compositing), C = 1 or 3, for frame folders.
        dists: one entry per distorted source (plan order): its frame (own size), or ``None`` when the
            source has no frame here (not planned for this index, or ended early: see ``errors``).
        dist_indices: the distorted frame index compared (``index + offset``), ``None`` where not planned.
        errors: ``None``, or why a planned frame is missing (``"... ended after N frames ..."``).
    """

    index: int
    time: float | None
    ref: np.ndarray
    dists: list[np.ndarray | None]
    dist_indices: list[int | None]
    errors: list[str | None]


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
                      max_pixels: int | None = None) -> FrameGroupStream:
    """Decode the planned frames, all sources concurrently, and yield them in reference frame order.

    One background thread per source (the reference and each distorted source) decodes into a queue of
    at most ``queue_size`` frames, so memory stays bounded for any length: about
    ``(queue_size + 2) x frame bytes`` per source. Nothing is loaded whole.

    A distorted source that ends before its planned frames (its container over-reported its length)
    gives ``None`` frames with an error in every remaining group (not an exception), and its
    :attr:`DistPlan.actual_frame_count` is set. The reference ending early ends the iteration and sets
    :attr:`VideoPlan.ref_actual_frame_count`. Both are also added to ``plan.warnings``, as is a source
    that turns out to have more frames than reported (checked with one ``grab()`` when the plan reads
    up to its reported last frame).

    Args:
        plan: from :func:`plan_video`.
        queue_size: frames buffered per source (>= 1).
        alpha: alpha policy for frame folders (see :func:`lpipscli.io.decoding.decode_image`).
        max_pixels: decompression-bomb limit per frame-folder image (None: no limit).

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
    return FrameGroupStream(_frame_groups(plan, queue_size, alpha, max_pixels))


def _frame_groups(plan: VideoPlan, queue_size: int, alpha: str, max_pixels: int | None) -> Iterator[FrameGroup]:
    stop = threading.Event()
    ref_reader = _Reader(plan.ref, plan.ref_indices, role="ref", want_time=True, alpha=alpha,
                         queue_size=queue_size, stop=stop, max_pixels=max_pixels)
    dist_readers = [
        _Reader(d.source, d.dist_indices, role=f"dist{j}", want_time=False, alpha=alpha,
                queue_size=queue_size, stop=stop, max_pixels=max_pixels)
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
            _, _, time, ref = message
            dists: list[np.ndarray | None] = []
            dist_indices: list[int | None] = []
            errors: list[str | None] = []
            for j, (dist_plan, reader) in enumerate(zip(plan.dists, dist_readers, strict=True)):
                if index not in dist_plan.ref_indices:
                    dists.append(None)
                    dist_indices.append(None)
                    errors.append(None)
                    continue
                dist_indices.append(index + plan.offset)
                if ended[j] is None:
                    message = reader.get()
                    if message[0] == "frame":
                        dists.append(message[3])
                        errors.append(None)
                        continue
                    dist_plan.actual_frame_count = message[1]
                    ended[j] = (
                        f"{dist_plan.source.path}: dist ended after {message[1]} frames (its container reported "
                        f"{dist_plan.source.frame_count}), reference has {n_ref}"
                    )
                    plan.warnings.append(ended[j])
                dists.append(None)
                errors.append(ended[j])
            yield FrameGroup(index=index, time=time, ref=ref, dists=dists, dist_indices=dist_indices,
                             errors=errors)
        for reader, done in zip(readers, [False, *(e is not None for e in ended)], strict=True):
            if not done and reader.get()[1]:
                text = (f"{reader.source.path} has more frames than its container reported "
                        f"({reader.source.frame_count}); the extra frames were not compared")
                if text not in plan.warnings:
                    plan.warnings.append(text)
    finally:
        stop.set()
        for reader in readers:
            reader.drain()
        for reader in readers:
            if reader.ident is not None:  # started
                reader.join(_JOIN_TIMEOUT_S)


class _Reader(threading.Thread):
    """Decodes one source's planned frames into a bounded queue.

    Messages, in order: ``("frame", index, time, array)`` per planned frame, then one terminal message:
    ``("done", more)`` after the last planned frame (``more``: the source has frames past its reported
    count), ``("end", n)`` when the source ended with ``n`` frames before a planned one, or
    ``("error", DecodeError)``.
    """

    def __init__(self, source: SourceInfo, indices: range, *, role: str, want_time: bool, alpha: str,
                 queue_size: int, stop: threading.Event, max_pixels: int | None = None):
        super().__init__(name=f"lpipscli-video-{role}", daemon=True)
        self.max_pixels = max_pixels
        self.source = source
        self.indices = indices
        self.want_time = want_time
        self.alpha = alpha
        self.stop = stop
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._cap: cv2.VideoCapture | None = None

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
            if not self._put(("frame", index, None, array)):
                return
        self._put(("done", False))

    def _run_video(self) -> None:
        path = self.source.path
        self._cap = _open_capture(path)
        pos = 0  # index of the frame the next grab()/read() returns
        seeking = True
        for index in self.indices:
            if self.stop.is_set():
                return
            frame = None
            if seeking and index - pos >= SEEK_MIN_GAP:
                frame = self._seek_read(index)
                if frame is None:  # seek failed or landed elsewhere: sequential reading from now on
                    seeking = False
                    self._release()
                    self._cap = _open_capture(path)
                    pos = 0
            if frame is None:
                while pos < index:
                    if not self._cap.grab():
                        self._put(("end", pos))
                        return
                    pos += 1
                    if pos % 64 == 0 and self.stop.is_set():
                        return
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    self._put(("end", index))
                    return
            pos = index + 1
            time = self._time(index) if self.want_time else None
            rgb = self._to_rgb(frame, index)
            if not self._put(("frame", index, time, rgb)):
                return
        more = bool(self.indices) and self.indices[-1] >= self.source.frame_count - 1 and self._cap.grab()
        self._put(("done", more))

    def _seek_read(self, index: int) -> np.ndarray | None:
        """Seek to ``index`` and read it; ``None`` when the seek cannot be trusted."""
        cap = self._cap
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, index):
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        fps = self.source.fps
        if fps:
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            if not math.isfinite(msec) or abs(msec - index * 1000.0 / fps) > 500.0 / fps:
                return None
        return frame

    def _time(self, index: int) -> float | None:
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(msec) and (msec > 0 or (msec == 0 and index == 0)):
            return msec / 1000.0
        return index / self.source.fps if self.source.fps else None

    def _to_rgb(self, frame: np.ndarray, index: int) -> np.ndarray:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        else:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self._check_size(frame, self.source.path, index)
        return frame

    def _check_size(self, array: np.ndarray, path, index: int) -> None:
        height, width = array.shape[:2]
        if (width, height) != (self.source.width, self.source.height):
            raise DecodeError(path, (
                f"frame {index} is {width}x{height}, the source started at {self.source.size}; "
                "a resolution change inside a source is not supported"
            ))

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else "")
