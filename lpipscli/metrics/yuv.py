"""PSNR and SSIM on decoded YUV planes, equal to FFmpeg's ``psnr`` and ``ssim`` filters frame by frame.

No colour conversion: the planes are compared as stored (Y, U, V at their own sizes, 8- to 16-bit
integers). Both functions replicate FFmpeg's ``libavfilter/vf_psnr.c`` and ``vf_ssim.c`` (FFmpeg 7/8):

- ``psnr_yuv``: per plane ``MSE = SSE / (w * h)`` with the exact integer SSE, ``PSNR = 10 log10(max^2 /
  MSE)`` with ``max = 2^bits - 1`` (1023 for 10-bit: the stream's own scale, no shift to 8 bits);
  ``inf`` when a plane is identical (no cap). ``avg`` is FFmpeg's ``psnr_avg``: the PSNR of the MSEs
  averaged with weights ``plane area / total area`` (so 4:2:0 weights Y 4/6, U 1/6, V 1/6), not the mean
  of the per-plane PSNRs.
- ``ssim_ffmpeg``: FFmpeg's (and x264's) fast SSIM, *not* Wang et al.'s Gaussian SSIM (that one is
  :func:`lpipscli.metrics.ssim.ssim`): sums over non-overlapping 4x4 blocks, combined 2x2 into 8x8
  windows that overlap by 4 pixels (stride 4), uniform weights, constants
  ``c1 = round(0.01^2 * max^2 * 64)`` and ``c2 = round(0.03^2 * max^2 * 64 * 63)`` in integers,
  each window's SSIM evaluated in float32 exactly as FFmpeg does (an 8-bit plane with FFmpeg's fixed
  ``max = 255``; a >8-bit plane with ``max = 2^bits - 1`` and FFmpeg's float32 accumulation along each
  row of windows), averaged over the ``(w/4 - 1) x (h/4 - 1)`` windows of each plane (pixels past the last
  multiple of 4 are ignored, as FFmpeg ignores them). ``all`` is the plane-area-weighted mean, and
  :func:`ssim_db` is FFmpeg's ``dB`` value.

Inputs are NumPy arrays (or anything ``np.asarray`` takes, e.g. CPU tensors) ``(N, h, w)`` per plane
(or ``(h, w)`` for one frame); results are float64 arrays ``(N,)``. Integer arithmetic is exact (in the
narrowest of int16, int32 and int64 that holds every value for the bit depth, see :func:`integer_sse`);
the only differences from FFmpeg are in the order of float64 summations (below 1e-12).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lpipscli.errors import MetricInputError

__all__ = ["PLANE_NAMES", "TOLERANCES", "integer_sse", "plane_weights", "psnr_yuv", "ssim_db", "ssim_ffmpeg",
           "ssim_ffmpeg_plane"]

PLANE_NAMES = ("y", "u", "v")

#: Agreement with FFmpeg's filters, as tested (FFmpeg prints frame metadata as float32 with ``%f``).
TOLERANCES = {"psnr_yuv": (1e-6, 1e-6), "ssim_ffmpeg": (2e-6, 0.0)}  # (atol, rtol)

PSNR_YUV_DEFAULTS = {
    "reference": "FFmpeg libavfilter/vf_psnr.c",
    "max": "2^bits - 1 of the stream",
    "avg": "PSNR of the plane-area-weighted MSE",
    "identical": "inf (no cap)",
}
SSIM_FFMPEG_DEFAULTS = {
    "reference": "FFmpeg libavfilter/vf_ssim.c (x264's 8x8 block SSIM on 4x4 sums, stride 4)",
    "window": "8x8 uniform, stride 4",
    "all": "plane-area-weighted mean",
}


def _planes(planes, name: str) -> list[np.ndarray]:
    out = []
    for k, plane in enumerate(planes):
        array = np.asarray(plane)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise MetricInputError(f"{name}: plane {k} must be (N, h, w) or (h, w), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise MetricInputError(f"{name}: planes must hold integer samples as decoded, got {array.dtype}")
        out.append(array)
    if not out:
        raise MetricInputError(f"{name}: no planes given")
    return out


def _pair(ref_planes, dist_planes, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ref = _planes(ref_planes, name)
    dist = _planes(dist_planes, name)
    if len(ref) != len(dist):
        raise MetricInputError(f"{name}: {len(ref)} reference planes but {len(dist)} distorted planes")
    for k, (a, b) in enumerate(zip(ref, dist, strict=True)):
        if a.shape != b.shape:
            raise MetricInputError(f"{name}: plane {k} shapes differ: reference {a.shape}, distorted {b.shape}")
        if a.shape[0] != ref[0].shape[0]:
            raise MetricInputError(f"{name}: plane {k} has {a.shape[0]} frames, plane 0 has {ref[0].shape[0]}")
    return ref, dist


def _check_bits(bit_depth: int, name: str) -> int:
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) or not 8 <= bit_depth <= 16:
        raise MetricInputError(f"{name}: bit_depth must be an integer 8..16, got {bit_depth!r}")
    return int(bit_depth)


def plane_weights(shapes: Sequence[tuple[int, int]]) -> np.ndarray:
    """FFmpeg's plane weights: each plane's area over the summed area of all planes."""
    areas = np.array([h * w for h, w in shapes], dtype=np.float64)
    return areas / areas.sum()


def psnr_yuv(ref_planes: Sequence, dist_planes: Sequence, bit_depth: int) -> dict[str, np.ndarray]:
    """Per-plane and average PSNR exactly as FFmpeg's ``psnr`` filter.

    Args:
        ref_planes: reference planes Y, U, V (or one gray plane), each ``(N, h, w)`` integers.
        dist_planes: distorted planes, same shapes.
        bit_depth: bits per sample of the stream (8..16); ``max = 2^bit_depth - 1``.

    Returns:
        ``{"y", "u", "v", "avg"}`` (or ``{"y", "avg"}`` for one plane) -> float64 ``(N,)`` in dB, ``inf``
        for identical planes; plus ``"mse_y"``, ``"mse_u"``, ``"mse_v"``, ``"mse_avg"``.

    Raises:
        MetricInputError: shapes or counts that differ, non-integer samples, a bad bit depth.

    Matches:
        FFmpeg ``psnr`` frame metadata ``lavfi.psnr.psnr.{y,u,v}``, ``lavfi.psnr.psnr_avg``,
        ``lavfi.psnr.mse.{y,u,v}``, ``lavfi.psnr.mse_avg`` (tested against the filter, 8- and 10-bit).
    """
    ref, dist = _pair(ref_planes, dist_planes, "psnr_yuv")
    bits = _check_bits(bit_depth, "psnr_yuv")
    sse = np.stack([integer_sse(a, b, bits) for a, b in zip(ref, dist, strict=True)])
    return _psnr_from_sse(sse, [a.shape[1:] for a in ref], bits)


def _psnr_from_sse(sse: np.ndarray, shapes: Sequence[tuple[int, int]], bits: int) -> dict[str, np.ndarray]:
    """:func:`psnr_yuv`'s result from the exact sums of squared differences ``(planes, N)`` int64 of planes of
    ``shapes`` ``(h, w)``."""
    top = float((1 << bits) - 1)
    weights = plane_weights(list(shapes))
    out: dict[str, np.ndarray] = {}
    mse_avg = np.zeros(sse.shape[1], dtype=np.float64)
    with np.errstate(divide="ignore"):
        for name, plane_sse, (height, width), weight in zip(PLANE_NAMES, sse, shapes, weights, strict=False):
            mse = plane_sse / float(height * width)
            out[name] = 10.0 * np.log10(top * top / mse)
            out[f"mse_{name}"] = mse
            mse_avg += mse * weight
        # FFmpeg rounds the weighted max to an integer (lrint); equal to `top` for YUV planes of one depth.
        out["avg"] = 10.0 * np.log10(top * top / mse_avg)
    out["mse_avg"] = mse_avg
    return out


def integer_sse(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Exact sum of squared differences per frame, ``(N,)`` int64, of integer planes ``(N, h, w)``.

    Every step is exact in the narrowest type that holds it. 8-bit samples: ``|a - b|`` as
    ``max(a, b) - min(a, b)`` in uint8, its square in uint16 (``<= 255^2 < 2^16``), each row's sum in uint32
    (``w * 255^2 < 2^32`` for any ``w <= 66051``). Samples of 9 to 15 bits (uint16 below ``2^15``) are
    reinterpreted as int16 and subtract without wrapping (``|d| <= 2^15 - 1``); the square fits int32
    (``< 2^30``) and so does a row's sum while ``w (2^bits - 1)^2 < 2^31`` (1920 samples of 10 bits). Rows are
    then summed in int64. Narrow types are less memory traffic: 1.6x faster than int32 squares summed to
    int64 at 360p and 1080p. int32 samples of at most 15 bits (the engine's 10-bit RGB video frames) subtract
    and square in int32 likewise (3x faster than through int64 at 1080p). Wider samples (or other dtypes) take
    the int32/int64 difference.
    """
    width = a.shape[2]
    if a.dtype == np.uint8 and b.dtype == np.uint8 and width * 255 * 255 < 1 << 32:
        diff = np.maximum(a, b)
        diff -= np.minimum(a, b)
        square = diff.astype(np.uint16)
        square *= square
        return np.add.reduce(square, axis=2, dtype=np.uint32).sum(axis=1, dtype=np.int64)
    if a.dtype == np.uint16 and b.dtype == np.uint16 and bits <= 15 and a.dtype.isnative and b.dtype.isnative:
        diff = np.subtract(a.view(np.int16), b.view(np.int16))  # samples < 2^bits <= 2^15: no wrap
        square = diff.astype(np.int32)
        square *= square
        if width * ((1 << bits) - 1) ** 2 < 1 << 31:
            return np.add.reduce(square, axis=2, dtype=np.int32).sum(axis=1, dtype=np.int64)
        return square.sum(axis=(1, 2), dtype=np.int64)
    if a.dtype == np.int32 and b.dtype == np.int32 and bits <= 15:
        square = np.subtract(a, b)  # samples 0 .. 2^bits - 1: |d| < 2^15, d^2 < 2^30
        square *= square
        if width * ((1 << bits) - 1) ** 2 < 1 << 31:
            return np.add.reduce(square, axis=2, dtype=np.int32).sum(axis=1, dtype=np.int64)
        return square.sum(axis=(1, 2), dtype=np.int64)
    diff = a.astype(np.int64 if a.dtype.itemsize > 2 or b.dtype.itemsize > 2 else np.int32)
    diff -= b
    return np.einsum("nij,nij->n", diff, diff, dtype=np.int64)


def _ssim_constants(bits: int) -> tuple[int, int, int]:
    top = 255 if bits == 8 else (1 << bits) - 1
    c1 = int(0.01 * 0.01 * top * top * 64 + 0.5)
    c2 = int(0.03 * 0.03 * top * top * 64 * 63 + 0.5)
    return top, c1, c2


def ssim_ffmpeg_plane(ref: np.ndarray, dist: np.ndarray, bit_depth: int) -> np.ndarray:
    """FFmpeg's SSIM of one plane (see the module doc).

    Args:
        ref, dist: ``(N, h, w)`` (or ``(h, w)``) integer planes, ``h, w >= 8``.
        bit_depth: bits per sample (8..16).

    Returns:
        float64 ``(N,)``: the mean of the 8x8-window SSIMs.

    Raises:
        MetricInputError: planes under 8x8 (FFmpeg has no window there), shapes that differ, bad depth.
    """
    (a,), (b,) = _pair([ref], [dist], "ssim_ffmpeg")
    return _ssim_plane(a, b, _check_bits(bit_depth, "ssim_ffmpeg"))


def _ssim_plane(a: Sequence[np.ndarray], b: Sequence[np.ndarray], bits: int) -> np.ndarray:
    """:func:`ssim_ffmpeg_plane` of checked frames: ``a[n]``, ``b[n]`` are ``(h, w)`` integer planes of one size
    (an ``(N, h, w)`` array is such a sequence)."""
    height, width = a[0].shape
    bw, bh = width >> 2, height >> 2
    if bw < 2 or bh < 2:
        raise MetricInputError(f"ssim_ffmpeg: a {width}x{height} plane is too small: FFmpeg's SSIM needs planes "
                               "of at least 8x8 pixels (chroma of 4:2:0 needs 16x16 frames)")
    _, c1, c2 = _ssim_constants(bits)
    s1, s2, ss, s12 = _ssim_window_sums(a, b, bits)  # each (N, bh - 1, bw - 1), 8x8 window sums
    # 8-bit: every term below stays under 2^30 (s1 <= 64 * 255, ss * 64 <= 2^29.1, c2 < 2^18), so int32 holds
    # them exactly (FFmpeg's ssim_end1 uses int); deeper samples take int64, as FFmpeg's ssim_end1x does.
    wide = np.int32 if bits == 8 else np.int64
    s1, s2, ss, s12 = (x.astype(wide, copy=False) for x in (s1, s2, ss, s12))
    squares = s1 * s1
    squares += s2 * s2
    variance = ss * 64
    variance -= squares
    covariance = s12 * 64
    product = s1 * s2
    covariance -= product
    f32 = np.float32
    product *= 2
    product += c1
    covariance *= 2
    covariance += c2
    squares += c1
    variance += c2
    num = product.astype(f32)
    num *= covariance.astype(f32)
    den = squares.astype(f32)
    den *= variance.astype(f32)
    windows = np.divide(num, den, out=num)  # float32, as FFmpeg's ssim_end1 / ssim_end1x
    if bits == 8:
        total = windows.astype(np.float64).sum(axis=(1, 2))  # FFmpeg sums 8-bit windows in double
    else:
        rows = np.cumsum(windows, axis=2, dtype=f32)[:, :, -1]  # float32, left to right, per row
        total = rows.astype(np.float64).sum(axis=1)
    return total / float((bw - 1) * (bh - 1))


#: samples per strip of :func:`_ssim_window_sums`: a strip's int32 temporaries (about 5 of them, 2.6 MB) stay in
#: the L2 cache, where the same NumPy operations over whole 1080p planes stream ~200 MB through memory
_STRIP_SAMPLES = 1 << 17


def _ssim_window_sums(a: Sequence[np.ndarray], b: Sequence[np.ndarray], bits: int) -> tuple[np.ndarray, ...]:
    """The four 8x8 window sums of FFmpeg's SSIM (``sum a``, ``sum b``, ``sum a^2 + b^2``, ``sum ab``), each
    ``(N, bh - 1, bw - 1)``, from the 4x4 block sums (``bh, bw = h // 4, w // 4``) of N ``(h, w)`` planes.

    Integer sums, exact: up to 13 bits a sample's ``x^2 + y^2 < 2^27`` and a 4x4 block's sum of them ``< 2^31``,
    so everything to the block sums fits int32 (half the memory traffic of int64); wider samples use int64.
    Up to 12 bits an 8x8 window's sum of squares (``<= 128 (2^12 - 1)^2 < 2^31``) fits int32 as well; above,
    the block sums are widened to int64 before the windows. The block sums are taken strip by strip (rows of
    blocks, :data:`_STRIP_SAMPLES` samples at a time) so that the full-size temporaries stay in cache: about
    half the time of whole-plane passes at 1080p. Sums are pairwise sums of strided slices (columns, then
    rows): ~5x faster than reductions over reshaped axes, the same integers.
    """
    n, (height, width) = len(a), a[0].shape
    bh, bw = height >> 2, width >> 2
    acc = np.int32 if bits <= 13 else np.int64
    blocks = [np.empty((n, bh, bw), dtype=acc) for _ in range(4)]
    step = max(1, _STRIP_SAMPLES // (16 * bw))  # rows of blocks per strip
    for f in range(n):
        for y0 in range(0, bh, step):
            y1 = min(bh, y0 + step)
            x = a[f][4 * y0: 4 * y1, : 4 * bw].astype(acc)
            y = b[f][4 * y0: 4 * y1, : 4 * bw].astype(acc)
            squares = x * x
            squares += y * y
            _block_sums(x, out=blocks[0][f, y0:y1])
            _block_sums(y, out=blocks[1][f, y0:y1])
            _block_sums(squares, out=blocks[2][f, y0:y1])
            _block_sums(np.multiply(x, y, out=squares), out=blocks[3][f, y0:y1])
    if bits > 12:
        blocks = [x.astype(np.int64) for x in blocks]
    return tuple(_window_sums(x) for x in blocks)


def _block_sums(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sums of the 4x4 blocks of ``(4 bh, 4 bw)`` integers into ``out`` ``(bh, bw)`` (same dtype)."""
    x = x[:, 0::2] + x[:, 1::2]
    x = x[:, 0::2] + x[:, 1::2]
    x = x[0::2] + x[1::2]
    return np.add(x[0::2], x[1::2], out=out)


def _window_sums(blocks: np.ndarray) -> np.ndarray:
    """Sums of 2x2 neighbouring blocks, i.e. of the 8x8 windows at stride 4: ``(N, bh - 1, bw - 1)``."""
    out = blocks[:, :-1, :-1] + blocks[:, 1:, :-1]
    out += blocks[:, :-1, 1:]
    out += blocks[:, 1:, 1:]
    return out


def ssim_ffmpeg(ref_planes: Sequence, dist_planes: Sequence, bit_depth: int) -> dict[str, np.ndarray]:
    """Per-plane and weighted SSIM exactly as FFmpeg's ``ssim`` filter.

    Args:
        ref_planes: reference planes Y, U, V (or one gray plane), each ``(N, h, w)`` integers, ``h, w >= 8``.
        dist_planes: distorted planes, same shapes.
        bit_depth: bits per sample (8..16).

    Returns:
        ``{"y", "u", "v", "all"}`` (``{"y", "all"}`` for one plane) -> float64 ``(N,)``; ``all`` weights
        each plane by its area (FFmpeg's ``All``).

    Raises:
        MetricInputError: see :func:`ssim_ffmpeg_plane`.

    Matches:
        FFmpeg ``ssim`` frame metadata ``lavfi.ssim.Y``, ``.U``, ``.V``, ``.All`` (tested, 8- and 10-bit).
    """
    ref, dist = _pair(ref_planes, dist_planes, "ssim_ffmpeg")
    weights = plane_weights([a.shape[1:] for a in ref])
    out: dict[str, np.ndarray] = {}
    total = np.zeros(ref[0].shape[0], dtype=np.float64)
    for name, a, b, weight in zip(PLANE_NAMES, ref, dist, weights, strict=False):
        out[name] = ssim_ffmpeg_plane(a, b, bit_depth)
        total += weight * out[name]
    out["all"] = total
    return out


def ssim_db(ssim: np.ndarray) -> np.ndarray:
    """FFmpeg's SSIM in dB: ``10 log10(1 / (1 - ssim))``, ``inf`` when ``|1 - ssim| <= 1e-9``."""
    ssim = np.asarray(ssim, dtype=np.float64)
    gap = 1.0 - ssim
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(1.0 / gap)
    return np.where(np.abs(gap) > 1e-9, db, np.inf)


def _frames(ref_frames: Sequence, dist_frames: Sequence, bit_depth: int, name: str
            ) -> tuple[list[tuple[np.ndarray, ...]], list[tuple[np.ndarray, ...]], int]:
    """Check per-frame planes (the engine's batches): one ``(Y, U, V)`` (or ``(Y,)``) tuple of ``(h, w)`` integer
    arrays (or CPU tensors) per pair, every pair with the shapes and dtypes of the first."""
    def arrays(frame):
        return tuple(p.numpy() if hasattr(p, "numpy") else np.asarray(p) for p in frame)

    ref = [arrays(f) for f in ref_frames]
    dist = [arrays(f) for f in dist_frames]
    if not ref or len(ref) != len(dist):
        raise MetricInputError(f"{name}: {len(ref)} reference frames but {len(dist)} distorted frames")
    first = [a[None] for a in ref[0]]  # checks plane count, dimensions, integer samples and shapes of pair 0
    _pair(first, [b[None] for b in dist[0]], name)
    layout = [(a.shape, a.dtype) for a in ref[0]]
    for frame in (*ref, *dist):
        if [(a.shape, a.dtype) for a in frame] != layout:
            raise MetricInputError(f"{name}: frames of one batch differ in plane count, shape or dtype")
    return ref, dist, _check_bits(bit_depth, name)


def psnr_yuv_columns(ref_frames: Sequence, dist_frames: Sequence, bit_depth: int) -> dict[str, np.ndarray]:
    """The registry's ``psnr_yuv`` columns: ``psnr_yuv_y/u/v`` and ``psnr_yuv`` (FFmpeg's ``psnr_avg``).

    Args:
        ref_frames, dist_frames: one tuple of planes ``(Y, U, V)`` (or ``(Y,)``) per pair, each ``(h, w)``
            integers (NumPy arrays or CPU tensors), the reference of pair ``p`` in ``ref_frames[p]``: the
            engine hands each frame's planes where they lie, nothing is stacked.
        bit_depth: see :func:`psnr_yuv`.

    Returns:
        float64 ``(P,)`` per column, the values :func:`psnr_yuv` gives for the same frames.
    """
    ref, dist, bits = _frames(ref_frames, dist_frames, bit_depth, "psnr_yuv")
    n_planes = len(ref[0])
    sse = np.empty((n_planes, len(ref)), dtype=np.int64)
    for p, (a, b) in enumerate(zip(ref, dist, strict=True)):
        for k in range(n_planes):
            sse[k, p] = integer_sse(a[k][None], b[k][None], bits)[0]
    out = _psnr_from_sse(sse, [a.shape for a in ref[0]], bits)
    return {**{f"psnr_yuv_{name}": out[name] for name in PLANE_NAMES[:n_planes]}, "psnr_yuv": out["avg"]}


def ssim_ffmpeg_columns(ref_frames: Sequence, dist_frames: Sequence, bit_depth: int) -> dict[str, np.ndarray]:
    """The registry's ``ssim_ffmpeg`` columns: ``ssim_ffmpeg_y/u/v`` and ``ssim_ffmpeg`` (FFmpeg's ``All``).

    Frames as in :func:`psnr_yuv_columns`; the values :func:`ssim_ffmpeg` gives for the same frames. Each plane's
    block sums are taken frame by frame where the planes lie, the per-window arithmetic once for the batch.
    """
    ref, dist, bits = _frames(ref_frames, dist_frames, bit_depth, "ssim_ffmpeg")
    weights = plane_weights([a.shape for a in ref[0]])
    out: dict[str, np.ndarray] = {}
    total = np.zeros(len(ref), dtype=np.float64)
    for k, (name, weight) in enumerate(zip(PLANE_NAMES, weights, strict=False)):
        out[f"ssim_ffmpeg_{name}"] = _ssim_plane([f[k] for f in ref], [f[k] for f in dist], bits)
        total += weight * out[f"ssim_ffmpeg_{name}"]
    out["ssim_ffmpeg"] = total
    return out
