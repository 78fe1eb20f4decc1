"""Video decoding at full precision with PyAV: YUV planes as decoded, RGB by the stream's own matrix.

Three kinds of input share one API (:func:`open_video` picks the reader by file name):

- **Containers** (``.mp4``, ``.mkv``, ``.webm``, ``.mov``...) are decoded by PyAV (FFmpeg bundled in its
  wheels): :class:`AVVideoReader`.
- **Raw YUV** (``.yuv``, ``.raw``) has no header: give its size, pixel format and frame rate
  (:class:`RawSpec`): :class:`RawVideoReader`.
- **YUV4MPEG2** (``.y4m``) carries its own header, parsed here (not by FFmpeg), so that seeking is a
  file offset: :class:`Y4MReader`.

Every reader yields :class:`Frame` objects: ``planes`` exactly as stored in the stream (uint8 for 8-bit,
uint16 holding the stream's own values for 9- to 16-bit, e.g. 0..1023 for 10-bit; never shifted or
truncated) and, on demand, ``rgb``.

Decisions (documented here because they change results):

- **RGB conversion is done here (float32, NumPy and OpenCV), not by FFmpeg's swscale.** Reasons:
  swscale's YUV->RGB paths use fixed-point approximations whose rounding depends on the CPU path and on
  flags PyAV does not expose (``accurate_rnd``, ``full_chroma_int``), and its 10-bit output cannot be
  asked to keep the stream's scale. The conversion (:func:`yuv_to_rgb`) follows ITU-R BT.601 /
  BT.709 / BT.2020 (non-constant luminance) from their ``Kr``/``Kb`` constants, in float32, with
  limited range (``16..235`` luma, ``16..240`` chroma, scaled by ``2^(bits-8)``) or full range
  (``0..2^bits-1``, chroma centred on ``2^(bits-1)``), chroma upsampled by sample replication (nearest
  neighbour, the same as OpenCV's ``COLOR_YUV2RGB_I420``), rounded to nearest (half to even) and
  clipped. The RGB result has the
  stream's bit depth: uint8 for 8-bit sources, uint16 in ``0..2^bits-1`` above (so the data range of
  a 10-bit stream is 1023). ``rgb`` is computed only when asked for (metrics on planes never pay).
- **Colour metadata** (matrix, range, primaries, transfer) is read from the first decoded frame.
  Overrides (``colorspace=``, ``color_range=``) win over the metadata. When a tag is missing the
  reader assumes BT.709 for frames at least 1280 wide or 720 high and BT.601 below (what players do),
  and limited range (full range for ``yuvj*`` formats), and puts a warning naming the assumption in
  :attr:`VideoReader.warnings`. Primaries and transfer are reported, never converted.
- **Frame indices** count decoded frames in presentation order from 0. ``pts_time`` is the frame's
  presentation time in seconds from the container (variable frame rate kept as is); ``None`` when the
  container has none. Raw and Y4M frames get ``index / fps``.
- **Seeking** (:meth:`VideoReader.seek_to`): raw and Y4M files jump to a byte offset (nothing is read
  in between). Containers seek by timestamp to the keyframe at or before the target and decode forward
  from there, when the stream is constant-frame-rate (its timestamps sit on the ``1/fps`` grid, checked
  on every decoded frame); otherwise (variable frame rate, a container without an index, a seek that
  lands after the target) they decode sequentially, and the :class:`SeekReport` says so.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from lpipscli.errors import DecodeError, UsageError

__all__ = [
    "COLORSPACES",
    "COLOR_RANGES",
    "RAW_EXTENSIONS",
    "SEEK_MIN_GAP",
    "AVVideoReader",
    "Frame",
    "RawSpec",
    "RawVideoReader",
    "SeekReport",
    "VideoInfo",
    "VideoReader",
    "Y4MReader",
    "open_video",
    "planes_to_av_frame",
    "probe",
    "read_frames",
    "yuv_to_rgb",
]

#: YUV->RGB matrices by name: ``(Kr, Kb)`` of ITU-R BT.601, BT.709 and BT.2020 (non-constant luminance).
COLORSPACES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}
COLOR_RANGES = ("limited", "full")
RAW_EXTENSIONS = (".yuv", ".raw")
SEEK_MIN_GAP = 32
"""Containers: forward jumps of at least this many frames seek by timestamp; shorter ones decode through."""

# FFmpeg's AVColorSpace / AVColorRange / AVColorPrimaries / AVColorTransferCharacteristic values.
_AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}
_AV_MATRIX_NAMES = {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
                    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
                    13: "chroma-derived-c", 14: "ictcp"}
_AV_RANGE = {1: "limited", 2: "full"}
_AV_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
                 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_AV_TRC = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "srgb",
           14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
_UNSPECIFIED = 2  # for matrix, primaries and transfer; 0 for range

# Packed / semi-planar formats re-laid out (losslessly, by swscale's unscaled copy) to a planar one.
_PLANAR_OF = {
    "nv12": "yuv420p", "nv21": "yuv420p", "nv16": "yuv422p", "nv24": "yuv444p", "nv42": "yuv444p",
    "yuyv422": "yuv422p", "uyvy422": "yuv422p", "yvyu422": "yuv422p",
    "p010le": "yuv420p10le", "p010be": "yuv420p10le", "p012le": "yuv420p12le", "p016le": "yuv420p16le",
    "p210le": "yuv422p10le", "p216le": "yuv422p16le", "p410le": "yuv444p10le", "p416le": "yuv444p16le",
    "y210le": "yuv422p10le", "y212le": "yuv422p12le",
    "rgb24": "gbrp", "bgr24": "gbrp", "rgba": "gbrp", "bgra": "gbrp", "argb": "gbrp", "abgr": "gbrp",
    "rgb0": "gbrp", "bgr0": "gbrp", "0rgb": "gbrp", "0bgr": "gbrp",
    "rgb48le": "gbrp16le", "rgb48be": "gbrp16le", "bgr48le": "gbrp16le", "rgba64le": "gbrp16le",
    "gbrap": "gbrp", "gbrap10le": "gbrp10le", "gbrap12le": "gbrp12le", "gbrap16le": "gbrp16le",
    "ya8": "gray", "ya16le": "gray16le",
}
_PLANAR = re.compile(r"^(yuvj?(420|422|444|440|411|410)p|yuva(420|422|444)p|gray|gbrp)(\d+)?(le|be)?$")


# --------------------------------------------------------------------------------------------------
# Records


class SampleGeometry:
    """``size`` and ``max_value`` of a record with ``width``, ``height`` and ``bit_depth`` (stream or source)."""

    @property
    def size(self) -> str:
        """``"WIDTHxHEIGHT"``, as messages write it."""
        return f"{self.width}x{self.height}"

    @property
    def max_value(self) -> int:
        """Largest sample value, ``2^bit_depth - 1``: the data range of PSNR on these integer samples."""
        return (1 << self.bit_depth) - 1


@dataclass(frozen=True)
class VideoInfo(SampleGeometry):
    """What a source is, from its header and (for containers) its first decoded frame.

    Attributes:
        path: the file.
        kind: ``"container"`` (PyAV), ``"raw"`` (headerless ``.yuv``) or ``"y4m"``.
        width, height: luma size in pixels.
        fps: average frame rate (``None`` when unknown).
        frame_count: number of frames: exact for raw/Y4M and when ``frame_count_exact``; otherwise the
            container's count, or an estimate from duration x fps (``None`` when neither exists).
        frame_count_exact: the count is known to be exact.
        duration: seconds (``None`` when unknown).
        codec: codec name (``"rawvideo"`` for raw and Y4M).
        pix_fmt: pixel format of the decoded frames as FFmpeg names it (``yuv420p10le``...).
        planar_fmt: the planar format :attr:`Frame.planes` is given in (equal to ``pix_fmt`` except for
            packed/semi-planar formats such as ``nv12`` -> ``yuv420p``).
        family: ``"yuv"``, ``"rgb"`` (planes G, B, R as FFmpeg orders them) or ``"gray"``.
        bit_depth: bits per sample (8, 10, 12, 16...).
        colorspace, color_range, color_primaries, color_trc: the stream's tags (FFmpeg's names), ``None``
            when the tag is missing or unspecified.
        metadata_missing: names of the tags the YUV->RGB conversion needs but the stream lacks
            (``"colorspace"``, ``"color_range"``); empty for RGB and gray sources.
        vfr: the container's average and nominal frame rates differ (variable frame rate likely).
    """

    path: Path
    kind: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    frame_count_exact: bool
    duration: float | None
    codec: str
    pix_fmt: str
    planar_fmt: str
    family: str
    bit_depth: int
    colorspace: str | None = None
    color_range: str | None = None
    color_primaries: str | None = None
    color_trc: str | None = None
    metadata_missing: tuple[str, ...] = ()
    vfr: bool = False


@dataclass
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based frame index in presentation order.
        pts_time: presentation time in seconds (container timestamps; ``index / fps`` for raw and Y4M),
            ``None`` when unknown.
        planes: the planes in FFmpeg's order (Y, U, V; or G, B, R; or gray), each ``(h, w)``, uint8 for
            8-bit and uint16 (values ``0..2^bits-1``) above; chroma planes at their own (subsampled) size.
        bit_depth: bits per sample.
        family: ``"yuv"``, ``"rgb"`` or ``"gray"``.
        colorspace: the matrix :attr:`rgb` uses (``bt601``/``bt709``/``bt2020``; ``None`` when the stream's
            tag is one this module does not convert, e.g. ``smpte240m``: :attr:`rgb` then raises).
        color_range: the range :attr:`rgb` uses (``limited``/``full``).
    """

    index: int
    pts_time: float | None
    planes: tuple[np.ndarray, ...]
    bit_depth: int
    family: str
    colorspace: str | None
    color_range: str
    _rgb: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[1])

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` RGB at the stream's bit depth (uint8 for 8-bit, uint16 ``0..2^bits-1`` above), a view
        of channel-planar memory (``.transpose(2, 0, 1)`` is contiguous, the layout the metrics read).

        Computed on first access with :func:`yuv_to_rgb` and kept.
        """
        if self._rgb is None:
            if self.family == "yuv" and self.colorspace is None:
                raise UsageError("this stream's colour matrix is not supported for RGB conversion; pass "
                                 f"--colorspace {'|'.join(COLORSPACES)}")
            if self.family == "yuv":
                self._rgb = yuv_to_rgb(self.planes, bit_depth=self.bit_depth, colorspace=self.colorspace,
                                       color_range=self.color_range)
            elif self.family == "rgb":
                g, b, r = self.planes[:3]
                self._rgb = np.stack([r, g, b]).transpose(1, 2, 0)  # channel-planar memory, as yuv_to_rgb's
            else:
                self._rgb = np.repeat(self.planes[0][None], 3, axis=0).transpose(1, 2, 0)
        return self._rgb


@dataclass(frozen=True)
class SeekReport:
    """What :meth:`VideoReader.seek_to` did.

    Attributes:
        index: the frame the next ``next()`` returns.
        decoded: frames decoded (or, for raw/Y4M, read) to get there, the target excluded.
        method: ``"offset"`` (raw/Y4M byte offset), ``"seek"`` (timestamp seek, then decoding from the
            keyframe), ``"sequential"`` (decoding from the current position or from the start) or
            ``"none"`` (already there).
        note: why a container could not seek (``""`` otherwise).
    """

    index: int
    decoded: int
    method: str
    note: str = ""


@dataclass(frozen=True)
class RawSpec:
    """How to read a headerless ``.yuv`` file: its size, FFmpeg pixel format and frame rate."""

    width: int
    height: int
    pix_fmt: str = "yuv420p"
    fps: float = 25.0

    @classmethod
    def parse(cls, size: str, pix_fmt: str = "yuv420p", fps: float | str = 25.0) -> RawSpec:
        """From CLI-style text: ``size="1920x1080"``, ``pix_fmt="yuv420p10le"``, ``fps="30000/1001"``."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(size))
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise UsageError(f"--raw-size must be WIDTHxHEIGHT (e.g. 1920x1080), got {size!r}")
        try:
            rate = float(Fraction(str(fps)))
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"--raw-fps must be a number or a fraction such as 30000/1001, got {fps!r}") from None
        if not rate > 0:
            raise UsageError(f"--raw-fps must be > 0, got {fps!r}")
        return cls(int(match[1]), int(match[2]), pix_fmt, rate)


# --------------------------------------------------------------------------------------------------
# Colour


def yuv_to_rgb(planes: Sequence[np.ndarray], *, bit_depth: int, colorspace: str, color_range: str) -> np.ndarray:
    """Convert Y, U, V planes to RGB with an ITU-R matrix (see the module doc for every choice).

    Args:
        planes: Y ``(H, W)`` and U, V ``(ceil(H / sy), ceil(W / sx))`` integer arrays (extra planes ignored).
        bit_depth: bits per sample of the planes (8 to 16).
        colorspace: ``"bt601"``, ``"bt709"`` or ``"bt2020"`` (non-constant luminance).
        color_range: ``"limited"`` or ``"full"``.

    Returns:
        ``(H, W, 3)`` RGB, uint8 when ``bit_depth == 8`` else uint16 in ``0..2^bit_depth - 1`` (a view of
        channel-planar ``(3, H, W)`` memory: ``.transpose(2, 0, 1)`` is contiguous).

    The arithmetic is defined in float32, in this order: ``E'Y = (Y - y_off) * f32(top / y_span)`` and
    ``Pb``, ``Pr`` likewise at the chroma planes' size; ``R = E'Y + kv_r * Pr``,
    ``G = (E'Y - ku_g * Pb) - kv_g * Pr``, ``B = E'Y + ku_b * Pb`` with the chroma terms replicated
    (nearest neighbour); then rounded half to even, clipped to ``0..top`` and cast. It runs in strips of
    :data:`_STRIP_ROWS` luma rows that stay in cache, and every step gives the very float32 value of that
    definition, so the result is bit-identical to it (tests/test_yuv_to_rgb.py checks every 8-bit triple):

    - uint8 planes: ``E'Y`` and the four chroma terms are read from 256-entry tables computed by the same
      NumPy float32 operations (``cv2.LUT`` copies them; for 2x horizontal subsampling each entry holds
      its value twice, so the look-up also replicates). Other planes (and uint8 with more than 2x
      horizontal subsampling): the same NumPy operations, replicated along the row by copies
      (``cv2.merge``).
    - The sums are single correctly rounded float32 ``cv2.add``/``cv2.subtract`` operations (IEEE, like
      NumPy's), on row-strided views for vertical subsampling (no vertical copy). Their ``dtype`` output
      converts with ``saturate_cast``: ``cvRound`` (round half to even, as ``np.rint``) then saturation
      to ``0..255`` / ``0..65535``, i.e. the clip for 8 and 16 bits; 9 to 15 bits add ``cv2.min``.

    Raises:
        UsageError: unknown ``colorspace`` or ``color_range``.
        ValueError: a bit depth outside 8..16 or planes whose sizes do not fit a chroma subsampling.
    """
    if colorspace not in COLORSPACES:
        raise UsageError(f"colorspace must be one of {', '.join(COLORSPACES)}, got {colorspace!r}")
    if color_range not in COLOR_RANGES:
        raise UsageError(f"color range must be one of {', '.join(COLOR_RANGES)}, got {color_range!r}")
    if not 8 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be 8..16, got {bit_depth}")
    y, u, v = planes[0], planes[1], planes[2]
    height, width = y.shape
    ch, cw = u.shape
    fy, fx = -(-height // ch), -(-width // cw)
    if -(-height // fy) != ch or -(-width // fx) != cw or v.shape != u.shape:
        raise ValueError(f"a {cw}x{ch} chroma plane does not fit a {width}x{height} luma plane")
    y_off, y_mul, c_off, c_mul, weights = _conversion_constants(bit_depth, colorspace, color_range)
    top = (1 << bit_depth) - 1
    import cv2

    out_depth = cv2.CV_8U if bit_depth == 8 else cv2.CV_16U
    rgb = np.empty((3, height, width), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    # cv2 reads planes whose samples are adjacent within a row, rows at any positive step (decoder padding)
    y, u, v = (p if p.strides[1] == p.itemsize and p.strides[0] > 0 else np.ascontiguousarray(p) for p in (y, u, v))
    tables = None
    if y.dtype == u.dtype == v.dtype == np.uint8 and fx <= 2:
        tables = _lookup_tables(bit_depth, colorspace, color_range, fx == 2)
    f32 = np.float32
    step = max(fy, _STRIP_ROWS // fy * fy)  # luma rows per strip: a whole number of chroma rows
    rows = step // fy
    yy_buf, g_buf = np.empty((2, step, width), f32)
    chroma_buf = np.empty((2, rows, cw), f32)
    term_buf = np.empty((4, rows, cw * fx), f32)
    wide_buf = np.empty((2, rows, cw * fx), f32) if tables is None and fx > 1 else None
    for r0 in range(0, height, step):
        r1 = min(r0 + step, height)
        c0, c1 = r0 // fy, -(-r1 // fy)
        m = c1 - c0
        yy = yy_buf[:r1 - r0]
        terms = [term_buf[i, :m] for i in range(4)]  # R: +kv*Pr, G: -ku*Pb - kv*Pr, B: +ku*Pb
        if tables is not None:  # every step below is a table of the same float32 operations on 0..255
            cv2.LUT(y[r0:r1], tables[0], dst=yy)
            for term, table, plane in zip(terms, tables[1:], (v, u, v, u), strict=True):
                # fx == 2: 8-byte entries holding the float32 value twice, so the look-up also replicates
                cv2.LUT(plane[c0:c1], table, dst=term.view(np.float64) if fx == 2 else term)
        else:
            np.subtract(y[r0:r1], y_off, dtype=f32, out=yy)
            np.multiply(yy, y_mul, out=yy)
            pb, pr = chroma_buf[0, :m], chroma_buf[1, :m]
            for chroma, plane in ((pb, u), (pr, v)):
                np.subtract(plane[c0:c1], c_off, dtype=f32, out=chroma)
                np.multiply(chroma, c_mul, out=chroma)
            if fx > 1:  # sample replication along the row: fx interleaved copies (cv2.merge up to 4 channels)
                for i, c in enumerate((pb, pr)):
                    wide = wide_buf[i, :m].reshape(m, cw, fx)
                    if fx <= 4:
                        cv2.merge([c] * fx, dst=wide)
                    else:
                        wide[...] = c[:, :, None]
                pb, pr = wide_buf[0, :m], wide_buf[1, :m]
            for term, weight, chroma in zip(terms, weights, (pr, pb, pr, pb), strict=True):
                np.multiply(weight, chroma, out=term)
        terms = [term[:, :width] for term in terms]
        for phase in range(min(fy, r1 - r0)):  # luma rows r0 + phase, r0 + phase + fy... read chroma rows c0...
            n = -(-(r1 - r0 - phase) // fy)
            base = yy[phase::fy]
            tr, tgu, tgv, tbu = (term[:n] for term in terms)
            red, green, blue = (rgb[c, r0 + phase:r1:fy] for c in range(3))
            cv2.add(base, tr, dst=red, dtype=out_depth)
            g = cv2.subtract(base, tgu, dst=g_buf[phase:r1 - r0:fy])
            cv2.subtract(g, tgv, dst=green, dtype=out_depth)
            cv2.add(base, tbu, dst=blue, dtype=out_depth)
        if top < 0xFFFF and bit_depth > 8:  # the float -> uint16 conversion saturates at 65535, not at top
            for c in range(3):
                plane = rgb[c, r0:r1]
                if plane.size > 1:
                    cv2.min(plane, top, dst=plane)
                else:  # cv2.min would take a 1x1 plane for the scalar
                    np.minimum(plane, top, out=plane)
    return rgb.transpose(1, 2, 0)


#: Luma rows per strip of :func:`yuv_to_rgb` (its float32 buffers, a few MB at 4K, stay in cache).
_STRIP_ROWS = 64


def _conversion_constants(bit_depth: int, colorspace: str, color_range: str):
    """``(y_off, y_mul, c_off, c_mul, (kv_r, ku_g, kv_g, ku_b))``, float32, of :func:`yuv_to_rgb`."""
    kr, kb = COLORSPACES[colorspace]
    kg = 1.0 - kr - kb
    top = (1 << bit_depth) - 1
    if color_range == "limited":
        scale = 1 << (bit_depth - 8)
        y_off, y_span, c_off, c_span = 16 * scale, 219 * scale, 128 * scale, 224 * scale
    else:
        y_off, y_span, c_off, c_span = 0, top, 1 << (bit_depth - 1), top
    f32 = np.float32
    weights = (f32(2 * (1 - kr)), f32(2 * kb * (1 - kb) / kg), f32(2 * kr * (1 - kr) / kg), f32(2 * (1 - kb)))
    return f32(y_off), f32(top / y_span), f32(c_off), f32(top / c_span), weights


@functools.lru_cache(maxsize=16)
def _lookup_tables(bit_depth: int, colorspace: str, color_range: str, doubled: bool) -> tuple[np.ndarray, ...]:
    """For uint8 planes: ``E'Y`` and the four chroma terms of :func:`yuv_to_rgb` for every sample 0..255.

    Computed by the same float32 operations as the plane path, so a look-up returns the very value the
    arithmetic would. ``doubled``: each chroma entry is its float32 value twice, read as one float64 (a
    look-up then writes the sample replicated twice along the row; no arithmetic touches the bits).
    """
    y_off, y_mul, c_off, c_mul, weights = _conversion_constants(bit_depth, colorspace, color_range)
    samples = np.arange(256, dtype=np.float32)
    yy = (samples - y_off) * y_mul
    chroma = (samples - c_off) * c_mul
    terms = [weight * chroma for weight in weights]
    if doubled:
        terms = [np.repeat(term, 2).view(np.float64) for term in terms]
    tables = tuple(np.ascontiguousarray(t) for t in (yy, *terms))
    for table in tables:
        table.flags.writeable = False  # shared by every call
    return tables


class ColourNote(str):
    """A warning about the colour matrix or range assumed for RGB: moot for a run that converts nothing to RGB."""


def _choose_colour(info: VideoInfo, colorspace: str | None,
                   color_range: str | None) -> tuple[str | None, str, list[str]]:
    """The matrix (``None``: unsupported tag) and range used for RGB, and warnings naming assumptions."""
    if colorspace is not None and colorspace not in COLORSPACES:
        raise UsageError(f"--colorspace must be one of {', '.join(COLORSPACES)}, got {colorspace!r}")
    if color_range is not None and color_range not in COLOR_RANGES:
        raise UsageError(f"--color-range must be one of {', '.join(COLOR_RANGES)}, got {color_range!r}")
    warnings: list[str] = []
    if info.family != "yuv":
        return colorspace or "bt709", color_range or "full", warnings
    matrix = colorspace
    if matrix is None:
        tag = info.colorspace
        if tag is None:
            matrix = "bt709" if info.width >= 1280 or info.height >= 720 else "bt601"
            warnings.append(ColourNote(
                f"{info.path}: no colour matrix in the stream; assuming {matrix.upper().replace('BT', 'BT.')} "
                f"({'HD' if matrix == 'bt709' else 'SD'} size {info.size}); pass --colorspace to override"
            ))
        elif tag in ("bt709", "bt470bg", "smpte170m", "bt2020nc"):
            matrix = {"bt709": "bt709", "bt2020nc": "bt2020"}.get(tag, "bt601")
        else:  # planes stay usable; Frame.rgb raises
            matrix = None
            warnings.append(ColourNote(f"{info.path}: colour matrix {tag} is not supported for RGB conversion; "
                                       f"pass --colorspace {'|'.join(COLORSPACES)} to convert with another one"))
    rng = color_range
    if rng is None:
        rng = info.color_range
        if rng is None:
            rng = "full" if info.pix_fmt.startswith("yuvj") else "limited"
            if not info.pix_fmt.startswith("yuvj"):
                warnings.append(ColourNote(f"{info.path}: no colour range in the stream; assuming limited (TV) "
                                           "range; pass --color-range to override"))
    return matrix, rng, warnings


# --------------------------------------------------------------------------------------------------
# Pixel formats


def _format_facts(pix_fmt: str) -> tuple[str, str, int]:
    """``(planar_fmt, family, bit_depth)`` for an FFmpeg pixel format, or DecodeError-worthy ValueError."""
    import av

    planar = _PLANAR_OF.get(pix_fmt, pix_fmt)
    match = _PLANAR.match(planar)
    if not match:
        raise ValueError(f"pixel format {pix_fmt} is not supported")
    if planar.endswith("be"):
        planar = planar[:-2] + "le"
    fmt = av.VideoFormat(planar)
    bits = fmt.components[0].bits
    if bits > 16:
        raise ValueError(f"pixel format {pix_fmt} has {bits}-bit samples (at most 16 supported)")
    family = "gray" if planar.startswith("gray") else "rgb" if planar.startswith("gbr") else "yuv"
    return planar, family, bits


def _frame_planes(frame, planar_fmt: str, bits: int) -> tuple[np.ndarray, ...]:
    """The planes of a PyAV frame as contiguous arrays (alpha dropped), in ``planar_fmt``."""
    if frame.format.name != planar_fmt:
        frame = frame.reformat(format=planar_fmt)
    dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
    item = np.dtype(dtype).itemsize
    n_planes = 1 if planar_fmt.startswith("gray") else 3
    out = []
    for plane in frame.planes[:n_planes]:
        array = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)
        out.append(np.ascontiguousarray(array[:, : plane.width]))
    return tuple(out)


def planes_to_av_frame(planes: Sequence[np.ndarray], pix_fmt: str, *, pts: int | None = None,
                       time_base: Fraction | None = None):
    """Build an ``av.VideoFrame`` in ``pix_fmt`` holding these planes (for FFmpeg filter graphs).

    Args:
        planes: planes in FFmpeg's order, each at its own size (uint8, or uint16 for >8-bit formats).
        pix_fmt: a planar FFmpeg format whose plane sizes match (``yuv420p``, ``yuv420p10le``, ``gray``...).
        pts, time_base: timestamp to set (optional).

    Returns:
        The ``av.VideoFrame``.

    Raises:
        ValueError: plane count or sizes that do not fit ``pix_fmt``.
    """
    import av

    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    if len(frame.planes) != len(planes):
        raise ValueError(f"{pix_fmt} has {len(frame.planes)} planes, got {len(planes)}")
    for plane, array in zip(frame.planes, planes, strict=True):
        array = np.asarray(array)
        item = array.dtype.itemsize
        if array.shape != (plane.height, plane.width):
            raise ValueError(f"{pix_fmt} plane is {plane.width}x{plane.height}, got {array.shape[1]}x{array.shape[0]}")
        view = np.frombuffer(memoryview(plane), dtype=array.dtype.newbyteorder("<") if item > 1 else array.dtype)
        view.reshape(plane.height, plane.line_size // item)[:, : plane.width] = array
    if pts is not None:
        frame.pts = pts
    if time_base is not None:
        frame.time_base = time_base
    return frame


# --------------------------------------------------------------------------------------------------
# Readers


class VideoReader:
    """Common API of the readers: iterate frames, seek, count what was decoded; a context manager.

    Attributes:
        info: the source's :class:`VideoInfo`.
        colorspace, color_range: what :attr:`Frame.rgb` uses (metadata, override or assumption).
        warnings: assumptions made (missing colour metadata) and seeks that fell back to decoding.
        decoded: frames decoded (containers) or read (raw/Y4M) since the reader was opened, including
            frames decoded only to reach a seek target.
    """

    info: VideoInfo
    colorspace: str | None
    color_range: str

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.decoded = 0

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        raise NotImplementedError

    def seek_to(self, index: int) -> SeekReport:
        """Position the reader so that the next frame returned is ``index``; see the module doc."""
        raise NotImplementedError

    def read(self, index: int) -> Frame:
        """Frame ``index`` (a seek, then one frame); DecodeError when the source ends before it."""
        self.seek_to(index)
        try:
            return next(self)
        except StopIteration:
            raise DecodeError(self.info.path, f"has no frame {index}") from None

    def close(self) -> None:
        """Release the file (idempotent)."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _make_frame(self, index: int, pts_time: float | None, planes: tuple[np.ndarray, ...]) -> Frame:
        return Frame(index=index, pts_time=pts_time, planes=planes, bit_depth=self.info.bit_depth,
                     family=self.info.family, colorspace=self.colorspace, color_range=self.color_range)


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise UsageError(f"frame index must be an integer >= 0, got {index!r}")


def _open_container(path: Path):
    import av

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DecodeError(path, "no such file") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise DecodeError(path, f"cannot open as a video ({' '.join(str(exc).split())[:200]})") from None
    if not container.streams.video:
        container.close()
        raise DecodeError(path, "has no video stream")
    return container


class AVVideoReader(VideoReader):
    """A container decoded by PyAV (see the module doc for timestamps and seeking).

    Args:
        path: the video file.
        colorspace, color_range: overrides for the RGB conversion (``None``: from the stream's metadata).
        threads: decoder threads (0: FFmpeg's choice). Use 1 per DataLoader worker when many workers run.
        exact_count: count frames by demuxing every packet when the container stores no count.
        seek_min_gap: forward jumps shorter than this decode through (a seek restarts at the previous
            keyframe, which for short jumps decodes more than going on would); backward jumps always seek.
    """

    seek_min_gap = SEEK_MIN_GAP

    def __init__(self, path: str | os.PathLike, *, colorspace: str | None = None, color_range: str | None = None,
                 threads: int = 0, exact_count: bool = False, seek_min_gap: int = SEEK_MIN_GAP):
        super().__init__()
        self.seek_min_gap = max(2, int(seek_min_gap))
        self.path = Path(path)
        self._container = _open_container(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self._threads = threads
        self._rate: Fraction | None = self._stream.average_rate or self._stream.base_rate or None
        self._pending: Frame | None = None
        self._gen = None
        self._next_index = 0
        self._no_seek = ""  # why seeking failed once (then frames are decoded forward)
        try:
            first = self._decode_next()
            if first is None:
                raise DecodeError(self.path, "no decodable video frame")
            self.info = self._describe(first, exact_count)
            self._first_pts = first.pts
            self.colorspace, self.color_range, warnings = _choose_colour(self.info, colorspace, color_range)
            self.warnings.extend(warnings)
            self._pending = self._convert(first, 0)
            self._next_index = 0
        except Exception:
            self.close()
            raise

    # -- decoding

    def _decode_next(self):
        import av

        if self._gen is None:
            self._gen = self._container.decode(self._stream)
        try:
            frame = next(self._gen)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            raise DecodeError(self.path, f"decoding failed ({' '.join(str(exc).split())[:200]})") from None
        self.decoded += 1
        return frame

    def _convert(self, frame, index: int) -> Frame:
        info = self.info
        if (frame.width, frame.height) != (info.width, info.height):
            raise DecodeError(self.path, (f"frame {index} is {frame.width}x{frame.height}, the stream started at "
                                          f"{info.size}; a resolution change inside a source is not supported"))
        planes = _frame_planes(frame, info.planar_fmt, info.bit_depth)
        time_base = frame.time_base
        # pts * num / den in Python integers is correctly rounded: the same float as float(pts * time_base), without
        # two Fractions per frame
        pts_time = (frame.pts * time_base.numerator / time_base.denominator
                    if frame.pts is not None and time_base else None)
        return self._make_frame(index, pts_time, planes)

    def __next__(self) -> Frame:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._next_index = frame.index + 1
            return frame
        raw = self._decode_next()
        if raw is None:
            raise StopIteration
        frame = self._convert(raw, self._next_index)
        self._next_index += 1
        return frame

    # -- seeking

    def _grid_index(self, pts: int | None) -> int | None:
        """The frame index of a timestamp on the constant-frame-rate grid, ``None`` when off the grid."""
        if pts is None or self._first_pts is None or not self._rate:
            return None
        position = (pts - self._first_pts) * self._stream.time_base * self._rate
        nearest = round(position)
        return int(nearest) if abs(position - nearest) < 0.01 else None

    def seek_to(self, index: int) -> SeekReport:
        _check_index(index)
        if index == self._next_index:
            return SeekReport(index, 0, "none")
        start = self.decoded
        note = self._no_seek
        if note:
            pass
        elif self.info.vfr:
            note = "variable frame rate: frame indices cannot be mapped to timestamps"
        elif not self._rate or self._first_pts is None:
            note = "the container gives no frame rate or timestamps"
        if not note and (index < self._next_index or index - self._next_index >= self.seek_min_gap):
            landed = self._try_seek(index)
            if landed is True:
                return SeekReport(index, self.decoded - start - 1, "seek")
            note = self._no_seek = landed  # no more seeks on this stream: decode forward from now on
            self._reopen()  # the failed seek left the demuxer somewhere: start again from frame 0
        elif index < self._next_index:
            self._reopen()
        while self._next_index < index:  # sequential: decode and drop the frames before the target
            if self._pending is not None:
                self._pending = None
            elif self._decode_next() is None:
                raise DecodeError(self.path, f"has no frame {index} (it ended after {self._next_index} frames)")
            self._next_index += 1
        if note:
            text = f"{self.path}: cannot seek by timestamp ({note}); frames before a target are decoded"
            if text not in self.warnings:
                self.warnings.append(text)
        return SeekReport(index, self.decoded - start, "sequential", note)

    def _reopen(self) -> None:
        self._gen = None
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = self._threads
        self._pending = None
        self._next_index = 0

    def _try_seek(self, index: int) -> bool | str:
        """Seek and decode up to ``index`` (kept pending); True, or why not (state then unspecified)."""
        import av

        target = self._first_pts + int(round(Fraction(index) / self._rate / self._stream.time_base))
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError as exc:
            return f"the container refused the seek ({' '.join(str(exc).split())[:120]})"
        self._gen = None
        self._pending = None
        while True:
            raw = self._decode_next()
            if raw is None:
                raise DecodeError(self.path, f"has no frame {index}")
            at = self._grid_index(raw.pts)
            if at is None:
                return "timestamps off the constant-frame-rate grid"
            if at > index:
                return f"the seek landed at frame {at}, after the target"
            if at == index:
                self._pending = self._convert(raw, index)
                self._next_index = index
                return True

    # -- description

    def _describe(self, first, exact_count: bool) -> VideoInfo:
        stream = self._stream
        pix_fmt = first.format.name
        try:
            planar, family, bits = _format_facts(pix_fmt)
        except ValueError as exc:
            raise DecodeError(self.path, str(exc)) from None
        avg = stream.average_rate
        base = stream.base_rate
        fps = float(avg) if avg else (float(base) if base else None)
        vfr = bool(avg and base and abs(float(avg) - float(base)) > 1e-3 * float(base))
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000
        count, exact = (stream.frames or None), False
        if count:
            exact = self._container.format.name.split(",")[0] in ("mov", "mp4", "avi")
        if exact_count and not exact:
            count, exact = self._count_packets(), True
        elif count is None and duration and fps:
            count = int(round(duration * fps))
        matrix = _AV_MATRIX_NAMES.get(first.colorspace) if first.colorspace != _UNSPECIFIED else None
        rng = _AV_RANGE.get(first.color_range)
        missing = ()
        if family == "yuv":
            missing = tuple(name for name, value in (("colorspace", matrix), ("color_range", rng)) if value is None)
        return VideoInfo(
            path=self.path, kind="container", width=first.width, height=first.height, fps=fps, frame_count=count,
            frame_count_exact=exact, duration=duration, codec=stream.codec_context.name, pix_fmt=pix_fmt,
            planar_fmt=planar, family=family, bit_depth=bits, colorspace=matrix, color_range=rng,
            color_primaries=_AV_PRIMARIES.get(first.color_primaries), color_trc=_AV_TRC.get(first.color_trc),
            metadata_missing=missing, vfr=vfr,
        )

    def _count_packets(self) -> int:
        container = _open_container(self.path)
        try:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
        finally:
            container.close()

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._gen = None
            container.close()
            self._container = None


# --------------------------------------------------------------------------------------------------
# Raw YUV and Y4M


_Y4M_C = {
    "420jpeg": "yuv420p", "420paldv": "yuv420p", "420mpeg2": "yuv420p", "420": "yuv420p",
    "411": "yuv411p", "422": "yuv422p", "444": "yuv444p", "mono": "gray",
    **{f"{s}p{b}": f"yuv{s}p{b}le" for s in ("420", "422", "444") for b in (9, 10, 12, 14, 16)},
    **{f"mono{b}": f"gray{b}le" for b in (9, 10, 12, 16)},
}


class _PlanarFileReader(VideoReader):
    """Frames stored back to back as planes (raw YUV; Y4M adds a header per frame)."""

    def __init__(self, path: Path, width: int, height: int, pix_fmt: str, fps: float | None, *, kind: str,
                 colorspace: str | None, color_range: str | None, color_range_tag: str | None = None):
        import av

        super().__init__()
        self.path = path
        try:
            planar, family, bits = _format_facts(pix_fmt)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        if planar != pix_fmt or pix_fmt.startswith(("yuva", "gbr")):
            raise UsageError(f"{path}: raw input needs a planar YUV or gray format such as yuv420p or "
                             f"yuv420p10le, got {pix_fmt}")
        fmt = av.VideoFormat(pix_fmt, width, height)
        self._pix_fmt = pix_fmt
        self._dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
        item = np.dtype(self._dtype).itemsize
        self._shapes = [(fmt.components[k].height, fmt.components[k].width) for k in range(len(fmt.components))]
        self._frame_bytes = sum(h * w * item for h, w in self._shapes)
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._next_index = 0
        self._offsets = self._frame_offsets()
        count = len(self._offsets)
        self.info = VideoInfo(
            path=path, kind=kind, width=width, height=height, fps=fps, frame_count=count, frame_count_exact=True,
            duration=count / fps if fps else None, codec="rawvideo", pix_fmt=pix_fmt, planar_fmt=pix_fmt,
            family=family, bit_depth=bits, color_range=color_range_tag,
            metadata_missing=(("colorspace",) + (() if color_range_tag else ("color_range",)))
            if family == "yuv" else (),
        )
        self.colorspace, self.color_range, warnings = _choose_colour(self.info, colorspace, color_range)
        self.warnings.extend(warnings)

    def _frame_offsets(self) -> list[int]:
        raise NotImplementedError

    def __next__(self) -> Frame:
        index = self._next_index
        if index >= len(self._offsets):
            raise StopIteration
        self._file.seek(self._offsets[index])
        data = self._file.read(self._frame_bytes)
        if len(data) < self._frame_bytes:
            raise DecodeError(self.path, f"frame {index} is truncated")
        planes, pos = [], 0
        item = np.dtype(self._dtype).itemsize
        for h, w in self._shapes:
            n = h * w * item
            planes.append(np.frombuffer(data, dtype=self._dtype, count=h * w, offset=pos).reshape(h, w).copy())
            pos += n
        self.decoded += 1
        self._next_index = index + 1
        fps = self.info.fps
        return self._make_frame(index, index / fps if fps else None, tuple(planes))

    def seek_to(self, index: int) -> SeekReport:
        _check_index(index)
        if index > len(self._offsets):
            raise DecodeError(self.path, f"has no frame {index} (it has {len(self._offsets)})")
        if index == self._next_index:
            return SeekReport(index, 0, "none")
        self._next_index = index
        return SeekReport(index, 0, "offset")

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
            self._file = None


class RawVideoReader(_PlanarFileReader):
    """A headerless raw file of planar frames (``.yuv``); its size, format and rate come from ``spec``.

    A trailing partial frame is an error (a wrong size or format is the usual cause).
    """

    def __init__(self, path: str | os.PathLike, spec: RawSpec, *, colorspace: str | None = None,
                 color_range: str | None = None):
        super().__init__(Path(path), spec.width, spec.height, spec.pix_fmt, spec.fps, kind="raw",
                         colorspace=colorspace, color_range=color_range)

    def _frame_offsets(self) -> list[int]:
        size = os.fstat(self._file.fileno()).st_size
        count, rest = divmod(size, self._frame_bytes)
        if rest or not count:
            self.close()
            raise DecodeError(self.path, (
                f"size {size} bytes is not a whole number of {self._frame_bytes}-byte frames "
                f"({self._shapes[0][1]}x{self._shapes[0][0]} {self._pix_fmt}); check --raw-size and --raw-format"))
        return [k * self._frame_bytes for k in range(count)]


class Y4MReader(_PlanarFileReader):
    """A YUV4MPEG2 file (``.y4m``): header ``W H F C`` (and FFmpeg's ``XCOLORRANGE``) parsed here."""

    def __init__(self, path: str | os.PathLike, *, colorspace: str | None = None, color_range: str | None = None):
        path = Path(path)
        header = self._read_header(path)
        tokens = header.split()
        if not tokens or tokens[0] != "YUV4MPEG2":
            raise DecodeError(path, "not a YUV4MPEG2 file (no 'YUV4MPEG2' signature)")
        fields: dict[str, str] = {}
        xtags: dict[str, str] = {}
        for token in tokens[1:]:
            if token[0] == "X" and "=" in token:
                key, _, value = token[1:].partition("=")
                xtags[key.upper()] = value
            else:
                fields[token[0]] = token[1:]
        try:
            width, height = int(fields["W"]), int(fields["H"])
        except (KeyError, ValueError):
            raise DecodeError(path, "Y4M header lacks W and H") from None
        fps = None
        if "F" in fields:
            num, _, den = fields["F"].partition(":")
            try:
                fps = float(Fraction(int(num), int(den or 1))) or None
            except (ValueError, ZeroDivisionError):
                fps = None
        chroma = fields.get("C", "420jpeg").lower()
        pix_fmt = _Y4M_C.get(chroma)
        if pix_fmt is None:
            raise DecodeError(path, f"Y4M colour space C{chroma} is not supported")
        rng = {"FULL": "full", "LIMITED": "limited"}.get(xtags.get("COLORRANGE", "").upper())
        self._data_start = len(header) + 1
        super().__init__(path, width, height, pix_fmt, fps, kind="y4m", colorspace=colorspace,
                         color_range=color_range, color_range_tag=rng)

    @staticmethod
    def _read_header(path: Path) -> str:
        try:
            with open(path, "rb") as file:
                head = file.read(4096)
        except FileNotFoundError:
            raise DecodeError(path, "no such file") from None
        except OSError as exc:
            raise DecodeError(path, f"cannot read the file ({exc.strerror or exc})") from None
        end = head.find(b"\n")
        if end < 0:
            raise DecodeError(path, "not a YUV4MPEG2 file (no header line)")
        return head[:end].decode("ascii", "replace")

    def _frame_offsets(self) -> list[int]:
        """Walk the ``FRAME`` headers (a few bytes read per frame, no pixel data)."""
        size = os.fstat(self._file.fileno()).st_size
        offsets, pos = [], self._data_start
        while pos < size:
            self._file.seek(pos)
            line = self._file.read(256)
            end = line.find(b"\n")
            if not line.startswith(b"FRAME") or end < 0:
                raise DecodeError(self.path, f"bad Y4M frame header at byte {pos}")
            start = pos + end + 1
            if start + self._frame_bytes > size:
                raise DecodeError(self.path, f"frame {len(offsets)} is truncated")
            offsets.append(start)
            pos = start + self._frame_bytes
        return offsets


# --------------------------------------------------------------------------------------------------
# Entry points


def open_video(path: str | os.PathLike, *, raw: RawSpec | None = None, colorspace: str | None = None,
               color_range: str | None = None, threads: int = 0, exact_count: bool = False) -> VideoReader:
    """Open a video file with the reader its name calls for.

    Args:
        path: ``.yuv``/``.raw`` (needs ``raw``), ``.y4m``, or any container FFmpeg reads.
        raw: size, pixel format and frame rate of a headerless raw file.
        colorspace: ``bt601``/``bt709``/``bt2020`` to override the stream's matrix (``None``: metadata).
        color_range: ``limited``/``full`` to override the stream's range.
        threads: decoder threads for containers (0: FFmpeg's choice).
        exact_count: containers without a stored frame count are counted by demuxing.

    Returns:
        A :class:`VideoReader` positioned at frame 0 (use it as a context manager).

    Raises:
        UsageError: a raw file without ``raw``, bad overrides, an unsupported raw format.
        DecodeError: a file that cannot be opened or decoded.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(RAW_EXTENSIONS):
        if raw is None:
            raise UsageError(f"{path}: a raw YUV file has no header; give --raw-size WxH, --raw-format "
                             "(e.g. yuv420p, yuv420p10le) and --raw-fps")
        return RawVideoReader(path, raw, colorspace=colorspace, color_range=color_range)
    if name.endswith(".y4m"):
        return Y4MReader(path, colorspace=colorspace, color_range=color_range)
    return AVVideoReader(path, colorspace=colorspace, color_range=color_range, threads=threads,
                         exact_count=exact_count)


def read_frames(path: str | os.PathLike, indices: Sequence[int], *, raw: RawSpec | None = None,
                colorspace: str | None = None, color_range: str | None = None, threads: int = 1,
                warnings: list[str] | None = None) -> Iterator[Frame]:
    """Yield the frames ``indices`` (increasing) of one source: the worker-side unit of decoding.

    Opens its own reader (so it can run in a DataLoader worker), seeks to the first index (see
    :meth:`VideoReader.seek_to`), then steps through; stops early, without error, when the source ends.

    Args:
        path, raw, colorspace, color_range, threads: see :func:`open_video` (``threads`` defaults to 1,
            one decoder thread per worker).
        indices: frame indices, strictly increasing (a ``range`` is ideal).
        warnings: a list the reader's warnings are appended to when the generator finishes.

    Yields:
        :class:`Frame` objects, in order.
    """
    with open_video(path, raw=raw, colorspace=colorspace, color_range=color_range, threads=threads) as reader:
        try:
            previous = -1
            for index in indices:
                if index <= previous:
                    raise UsageError(f"read_frames: indices must increase, got {index} after {previous}")
                previous = index
                try:
                    yield reader.read(index)
                except DecodeError as exc:
                    if "has no frame" in str(exc):
                        return
                    raise
        finally:
            if warnings is not None:
                warnings.extend(w for w in reader.warnings if w not in warnings)


def probe(path: str | os.PathLike, *, raw: RawSpec | None = None, exact_count: bool = False) -> VideoInfo:
    """Describe a video; decodes at most its first frame (see :func:`open_video` for the arguments)."""
    with open_video(path, raw=raw, exact_count=exact_count, threads=1) as reader:
        return reader.info

