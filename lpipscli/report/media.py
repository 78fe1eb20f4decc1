"""Thumbnails inlined in the page as ``data:`` URIs: images, video frames and heatmaps (no torch).

Images are decoded with :func:`lpipscli.io.decoding.decode_image` (16-bit files shown as 8-bit), video frames
with OpenCV (seek by frame index), heatmaps as written by ``--heatmaps`` (``png`` as is; ``png16`` and ``npy``
drawn again with the same colormap and the metric's fixed scale). Each thumbnail is downscaled to at most
:data:`THUMB_SIDE` pixels on its longer side and stored as PNG, or as JPEG (quality 90) when the PNG would be
larger than :data:`PNG_BUDGET` bytes (photographs, noisy maps); the page says which (the full-size heatmap
file is one click away).
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Longest side of a thumbnail, in pixels.
THUMB_SIDE = 256
#: A thumbnail's PNG larger than this is stored as JPEG instead.
PNG_BUDGET = 32_000
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Thumb:
    """One inlined image: ``uri`` (``data:image/...;base64,...``), its size, the format, where it came from."""

    uri: str
    width: int
    height: int
    fmt: str
    source: str


def resolve(path: str, bases: list[Path]) -> Path | None:
    """The file ``path`` names: as written (absolute, or relative to the working folder), else relative to
    each of ``bases`` in turn; ``None`` when none exists."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.exists():
        return candidate
    if not candidate.is_absolute():
        for base in bases:
            if (base / candidate).exists():
                return base / candidate
    return None


def _encode(rgb: np.ndarray, source: str, max_side: int = THUMB_SIDE, photo: bool = True) -> Thumb:
    image = Image.fromarray(rgb)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS if photo else Image.Resampling.BOX)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data, fmt = buf.getvalue(), "png"
    if len(data) > PNG_BUDGET:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
        data, fmt = buf.getvalue(), "jpeg"
    uri = f"data:image/{fmt};base64," + base64.b64encode(data).decode("ascii")
    return Thumb(uri=uri, width=image.size[0], height=image.size[1], fmt=fmt, source=source)


def _to_rgb8(array: np.ndarray) -> np.ndarray:
    from lpipscli.sinks.heatmap import to_display_rgb

    return to_display_rgb(array)


def image_thumb(path: Path, max_side: int = THUMB_SIDE) -> Thumb:
    """A thumbnail of an image file (raises :class:`lpipscli.errors.DecodeError` when it cannot be read)."""
    from lpipscli.io.decoding import decode_image

    return _encode(_to_rgb8(decode_image(path)), str(path), max_side)


def video_frame_thumb(path: Path, index: int, max_side: int = THUMB_SIDE) -> Thumb:
    """A thumbnail of frame ``index`` (0-based) of a video file or of a frame-sequence folder.

    Raises:
        ValueError: the frame cannot be read.
    """
    if path.is_dir():
        from lpipscli.io.video import frame_sequence_files

        files = frame_sequence_files(path)
        if not 0 <= index < len(files):
            raise ValueError(f"{path}: no frame {index}")
        return _encode(_to_rgb8(_decode(files[index])), f"{files[index]}", max_side)
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: cannot open")
        if index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise ValueError(f"{path}: cannot read frame {index}")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    return _encode(np.ascontiguousarray(frame[:, :, 2::-1]), f"{path}#{index}", max_side)


def _decode(path: Path) -> np.ndarray:
    from lpipscli.io.decoding import decode_image

    return decode_image(path)


def heatmap_thumb(path: Path, metric: str, max_side: int = THUMB_SIDE) -> Thumb:
    """A thumbnail of a heatmap file written by ``--heatmaps`` (``.png`` colour or 16-bit, or ``.npy``).

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    from lpipscli.sinks.heatmap import NODATA_U16, badness, colorize, map_spec

    if path.suffix.lower() == ".npy":
        values = np.load(path, allow_pickle=False).astype(np.float64)
        spec = map_spec(metric)
        rgb = colorize(badness(values, spec.lo, spec.hi, spec.higher_is_worse))
    else:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I"):
                raw = np.asarray(image, dtype=np.int64)
                rgb = colorize(np.where(raw == NODATA_U16, np.nan, np.clip(raw, 0, 65534) / 65534.0))
            else:
                rgb = np.asarray(image.convert("RGB"))
    return _encode(np.ascontiguousarray(rgb, dtype=np.uint8), str(path), max_side, photo=False)


def relative_link(target: Path, out_dir: Path) -> str:
    """``target`` as a link from a page in ``out_dir`` (relative when possible, POSIX separators)."""
    try:
        return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return target.resolve().as_uri()
