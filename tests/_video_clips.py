"""Tiny video clips made with PyAV for the video tests: known planes in, encoded files out.

Everything here is independent of lpipscli's readers: planes are written straight into ``av.VideoFrame``
buffers and the files are encoded by FFmpeg (through PyAV).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

av = __import__("pytest").importorskip("av")

# FFmpeg's enum values, written out here so that the tests do not use the module under test's tables.
AVCOL_SPC = {"bt709": 1, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020nc": 9, "unspecified": 2}
AVCOL_RANGE = {"limited": 1, "full": 2, "unspecified": 0}


def plane_shapes(pix_fmt: str, width: int, height: int) -> list[tuple[int, int]]:
    """(height, width) of each plane, from FFmpeg's pixel format descriptor."""
    fmt = av.VideoFormat(pix_fmt, width, height)
    return [(c.height, c.width) for c in fmt.components]


def synthetic_planes(n: int, width: int, height: int, pix_fmt: str, *, seed: int = 0,
                     noise: float = 0.0) -> list[tuple[np.ndarray, ...]]:
    """``n`` frames of a moving smooth pattern (+ optional noise), valid limited-range YUV.

    Each frame differs from its neighbours (a diagonal gradient moving 3 px per frame plus a moving
    blob), so frame misalignment is visible.
    """
    bits = av.VideoFormat(pix_fmt).components[0].bits
    scale = 1 << (bits - 8)
    dtype = np.uint8 if bits == 8 else np.uint16
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        planes = []
        for p, (h, w) in enumerate(plane_shapes(pix_fmt, width, height)):
            fy, fx = height / h, width / w
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            yy *= fy
            xx *= fx
            phase = 3.0 * k + 17.0 * p
            base = 0.5 + 0.35 * np.sin((xx + 0.7 * yy + phase) / 9.0)
            blob = np.exp(-(((xx - (5 * k) % width) ** 2) + (yy - height / 2) ** 2) / 60.0)
            value = base + 0.3 * blob * (1 if p == 0 else -1)
            if noise:
                value = value + rng.normal(0, noise, size=value.shape)
            lo, hi = (16, 235) if p == 0 else (16, 240)
            samples = np.clip(np.rint((lo + (hi - lo) * np.clip(value, 0, 1)) * scale), 0, (1 << bits) - 1)
            planes.append(samples.astype(dtype))
        frames.append(tuple(planes))
    return frames


def make_frame(planes, pix_fmt: str):
    """An ``av.VideoFrame`` holding ``planes`` (written into its padded buffers)."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, array in zip(frame.planes, planes, strict=True):
        item = array.dtype.itemsize
        view = np.frombuffer(memoryview(plane), dtype=array.dtype).reshape(plane.height, plane.line_size // item)
        view[:, : plane.width] = array
    return frame


def encode(path: Path, frames, pix_fmt: str, *, codec: str = "ffv1", rate: int = 25, options=None,
           colorspace: str | None = None, color_range: str | None = None, pts: list[int] | None = None,
           time_base: Fraction | None = None, encode_pix_fmt: str | None = None) -> Path:
    """Encode planes to ``path`` with PyAV; optional colour tags and explicit timestamps (VFR)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        height, width = frames[0][0].shape
        stream.width, stream.height = width, height
        stream.pix_fmt = encode_pix_fmt or pix_fmt
        if options:
            stream.options = dict(options)
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if colorspace is not None:
            stream.codec_context.colorspace = AVCOL_SPC[colorspace]
        if color_range is not None:
            stream.codec_context.color_range = AVCOL_RANGE[color_range]
        for k, planes in enumerate(frames):
            frame = make_frame(planes, pix_fmt)
            if colorspace is not None:
                frame.colorspace = AVCOL_SPC[colorspace]
            if color_range is not None:
                frame.color_range = AVCOL_RANGE[color_range]
            if pts is not None:
                frame.pts = pts[k]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    """All frames' planes decoded by PyAV directly (no lpipscli code)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            bits = frame.format.components[0].bits
            dtype = np.uint8 if bits == 8 else np.uint16
            planes = []
            for plane in frame.planes:
                item = np.dtype(dtype).itemsize
                arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)
                planes.append(arr[:, : plane.width].copy())
            out.append(tuple(planes))
    return out
