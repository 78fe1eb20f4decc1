"""Decode image files into numpy arrays at their full precision, or fail with a one-line DecodeError.

Two entry points share one header reader, so that the size :func:`probe_image` reports is the size
:func:`decode_image` returns:

- :func:`probe_image` reads only the header (Pillow's lazy open, the PNG chunk list, the TIFF tags).
- :func:`decode_image` reads the whole file once and decodes it with Pillow or, for 16-bit colour
  PNG/TIFF that Pillow silently truncates to 8 bits, with OpenCV.

Decisions (documented here because they change results):

- **Precision.** 8-bit files give ``uint8``, 16-bit files ``uint16``; values are never rescaled.
  Bit depths below 8 (1/2/4-bit PNG, bilevel TIFF) are expanded by Pillow to 8 bits (``0..255``).
- **Channels.** Gray stays 1 channel (promotion to RGB is the caller's job); palette images become
  RGB (RGBA when the palette has transparency), CMYK and YCbCr become RGB (Pillow's conversion, no
  colour management: embedded ICC profiles are ignored everywhere).
- **Alpha.** An alpha channel is a real alpha channel (``RGBA``/``LA``/``PA`` modes or a ``tRNS``
  transparency entry), even when fully opaque. Policies: ``"drop"`` keeps the colour values as
  stored (as the official LPIPS loader does); ``"white"``/``"black"`` composite
  ``rgb * a + bg * (1 - a)`` in float32 and return float32 in ``[0, 1]``; ``"error"`` raises only
  when some alpha value is below the maximum (a fully opaque alpha channel cannot change any result,
  so it is dropped silently). ``"composite-both"`` and ``"mask"`` are decided per pair
  (:func:`pair_arrays`): both sides are composited over one colour, a distorted side without alpha with
  the reference's alpha; ``mask`` also gives the opaque pixels to the metrics that take a mask.
- **Orientation.** The EXIF orientation (all 8 values; JPEG, WebP, TIFF, and the PNG ``eXIf`` chunk
  wherever it is) is applied once, by this module, on both code paths. The orientation is removed
  from the bytes handed to the decoders first, because OpenCV (TIFF) and Pillow (TIFF) apply it
  themselves in some versions and not in others.
- **Integrity.** Truncated or corrupt files raise :class:`~lpipscli.errors.DecodeError`, never
  partial images: Pillow runs with ``LOAD_TRUNCATED_IMAGES`` off, every PNG chunk's CRC and the final
  ``IEND`` are checked before decoding, and OpenCV returning nothing is an error.
- **Multi-frame files** (animated PNG/WebP, multi-page TIFF) are refused. A JPEG's MPF extra images
  (previews, stereo pairs) are ignored: the primary image is decoded, as every viewer shows it.
- **Format** comes from the file's content, not its extension (a PNG named ``.jpg`` decodes as PNG).
- **Decompression bombs.** ``max_pixels`` is checked from the header before any pixel is decoded.
  Pillow's own ``Image.MAX_IMAGE_PIXELS`` check in ``Image.open`` is bypassed (the format's opener is
  called directly) so that ``max_pixels`` is the limit; Pillow's TIFF and WebP plugins still apply
  their own check internally, and their error is reported as a DecodeError.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from PIL import BmpImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

from lpipscli.errors import DecodeError

__all__ = [
    "ALPHA_COLORS",
    "ALPHA_POLICIES",
    "DEFAULT_MAX_PIXELS",
    "MASKABLE_METRICS",
    "PAIR_ALPHA_POLICIES",
    "SUPPORTED_EXTENSIONS",
    "DecodedImage",
    "ImageInfo",
    "alpha_mismatch_warning",
    "composite",
    "decode_image",
    "decode_with_alpha",
    "opaque_mask",
    "pair_arrays",
    "parse_alpha_color",
    "reference_array",
    "has_supported_extension",
    "probe_image",
    "to_float",
]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""File name extensions the tool looks for, lower case (match them case-insensitively)."""

DEFAULT_MAX_PIXELS = 16384 * 16384
"""Default decompression-bomb limit: 268,435,456 pixels (a 16384 x 16384 image)."""

ALPHA_POLICIES = ("drop", "white", "black", "error", "composite-both", "mask")
"""``--alpha`` choices. ``composite-both`` and ``mask`` treat a pair's two sides alike (see
:func:`pair_arrays`); decoded one file at a time they composite the file over the ``--alpha-color``."""

#: Policies decided per pair: a distorted side without alpha borrows the reference's alpha.
PAIR_ALPHA_POLICIES = ("composite-both", "mask")
#: Metrics that can score the opaque pixels only (``--alpha mask``); the others see ``composite-both`` arrays.
MASKABLE_METRICS = ("psnr", "mse")
#: Named ``--alpha-color`` values (sRGB, 0..255).
ALPHA_COLORS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}

_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PREFIX_BYTES = 64

_PIL_GRAY_16 = ("I;16", "I;16L", "I;16B", "I;16N")
_PIL_GRAY = ("1", "L", "LA", "La", *_PIL_GRAY_16)
_PIL_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")
_PIL_MODES = (*_PIL_GRAY, "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")

# Errors that Pillow, OpenCV and the byte parsers below raise on malformed input. Only the calls into
# those libraries are wrapped, so a bug in this module still surfaces as itself.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says about the array :func:`decode_image` will return.

    Attributes:
        width: width in pixels, after the EXIF orientation (a 90-degree rotation swaps the sides).
        height: height in pixels, after the EXIF orientation.
        channels: 1 (gray) or 3 (colour), after palette expansion and the alpha policy.
        bit_depth: 8 or 16, the precision of the decoded samples (``uint8`` or ``uint16``).
        has_alpha: the file has an alpha channel or a transparency entry, opaque or not.
        format: ``"PNG"``, ``"JPEG"``, ``"BMP"``, ``"TIFF"`` or ``"WEBP"``, from the content.
    """

    width: int
    height: int
    channels: int
    bit_depth: int
    has_alpha: bool
    format: str


@dataclass
class _Header:
    """The parsed header plus what decoding needs (internal)."""

    info: ImageInfo
    image: Any  # the lazily opened PIL.ImageFile.ImageFile
    route: str  # "pillow" or "opencv"
    orientation: int  # EXIF orientation 1..8
    stored_size: tuple[int, int]  # (width, height) as stored, before the orientation
    png_exif_span: tuple[int, int] | None  # byte range of the PNG eXIf chunk, if any


def has_supported_extension(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends with one of :data:`SUPPORTED_EXTENSIONS`, ignoring case."""
    return os.fspath(path).lower().endswith(SUPPORTED_EXTENSIONS)


def probe_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read a file's header (no pixel data is decoded) and describe the array it decodes to.

    Cheap enough for every file before decoding: the lazy Pillow open, the PNG chunk headers (to
    find an ``eXIf`` chunk that may follow the pixel data) and the TIFF tags.

    Args:
        path: the image file.
        max_pixels: decompression-bomb limit on ``width * height``; ``None`` disables it.

    Returns:
        The :class:`ImageInfo` of the array :func:`decode_image` returns (size after EXIF orientation).

    Raises:
        DecodeError: empty file, missing/unreadable file or a directory, not an image (or a format
            other than PNG, JPEG, BMP, TIFF, WebP), unsupported mode or bit depth, multi-frame
            image, truncated PNG chunk list, or more pixels than ``max_pixels``. The message
            names the file and gives a one-line cause.
    """
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed below; OSError must be told apart from decoder errors
    except OSError as exc:
        raise DecodeError(path, _os_cause(exc)) from None
    with fp:
        return _read_header(fp, path, max_pixels=max_pixels, check_png_crc=False).info


def decode_image(
    path: str | os.PathLike, *, alpha: str = "drop", max_pixels: int | None = DEFAULT_MAX_PIXELS,
    alpha_color: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Decode an image file at full precision, EXIF orientation applied.

    Args:
        path: the image file (any name, including spaces and non-ASCII characters).
        alpha: what to do with an alpha channel: ``"drop"`` (keep the colour values),
            ``"white"`` / ``"black"`` (composite over that background in float32), ``"error"``
            (raise when some pixel is not fully opaque), ``"composite-both"`` / ``"mask"`` (composite
            over ``alpha_color``; the pair-level rules are :func:`pair_arrays`'s).
        max_pixels: decompression-bomb limit on ``width * height``, checked from the header before
            decoding; ``None`` disables it.
        alpha_color: the background of ``composite-both`` and ``mask``, RGB in ``[0, 1]``.

    Returns:
        ``(H, W, C)`` array, C = 1 (gray) or 3 (RGB), C-contiguous: ``uint8`` for files of up to
        8 bits per sample, ``uint16`` for 16-bit files, ``float32`` in ``[0, 1]`` when alpha
        compositing ran (a compositing policy on a file with an alpha channel).

    Raises:
        DecodeError: everything :func:`probe_image` raises, plus truncated or corrupt pixel data and
            (with ``alpha="error"``) transparent pixels. The message names the file.
        ValueError: ``alpha`` is not one of :data:`ALPHA_POLICIES`.
    """
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_POLICIES)}, got {alpha!r}")
    image = decode_with_alpha(path, max_pixels=max_pixels)
    if alpha in PAIR_ALPHA_POLICIES:
        return image.color if image.alpha is None else composite(image.color, image.alpha, alpha_color)
    return np.ascontiguousarray(_apply_alpha(path, image.color, image.alpha, alpha))


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image with its alpha channel kept apart (EXIF orientation applied to both).

    Attributes:
        color: ``(H, W, C)`` samples, C = 1 or 3, ``uint8`` or ``uint16``.
        alpha: ``(H, W)`` alpha of the same dtype, or ``None`` when the file has none.
    """

    color: np.ndarray
    alpha: np.ndarray | None

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None


def decode_with_alpha(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file (as :func:`decode_image` does) keeping its alpha channel apart, for the pair-level
    alpha policies (:func:`pair_arrays`).

    Raises:
        DecodeError: as :func:`decode_image`.
    """
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except OSError as exc:
        raise DecodeError(path, _os_cause(exc)) from None

    header = _read_header(io.BytesIO(data), path, max_pixels=max_pixels, check_png_crc=True)
    if header.info.format == "TIFF" and header.orientation != 1:
        # Pillow (some versions) and OpenCV apply the TIFF orientation while decoding; hand both a copy
        # whose tag says 1, so that it is applied exactly once, below.
        data = _tiff_without_orientation(data)
        if header.route == "pillow":
            try:
                header.image = _opener("TIFF")(io.BytesIO(data), "")
            except _DECODER_ERRORS as exc:
                raise DecodeError(path, f"cannot read the TIFF header ({_one_line(exc)})") from None
    if header.route == "opencv":
        color, alpha_channel = _decode_opencv(data, header, path)
    else:
        color, alpha_channel = _decode_pillow(header, path)

    width, height = header.stored_size
    if color.shape != (height, width, header.info.channels):
        raise DecodeError(path, (
            f"decoded to {color.shape[1]}x{color.shape[0]}x{color.shape[2]}, "
            f"the header says {width}x{height}x{header.info.channels}"
        ))
    color = np.ascontiguousarray(_orient(color, header.orientation))
    if alpha_channel is not None:
        alpha_channel = np.ascontiguousarray(_orient(alpha_channel[:, :, None], header.orientation)[:, :, 0])
    return DecodedImage(color, alpha_channel)


def parse_alpha_color(text: str) -> tuple[float, float, float]:
    """``--alpha-color``: ``white``, ``black``, ``gray``, ``#rrggbb`` or ``R,G,B`` (0..255) -> RGB in ``[0, 1]``.

    Raises:
        UsageError: anything else.
    """
    from lpipscli.errors import UsageError

    raw = str(text).strip().lower()
    rgb: tuple[int, ...] | None = ALPHA_COLORS.get(raw)
    try:
        if rgb is None and raw.startswith("#") and len(raw) == 7:
            rgb = tuple(int(raw[i:i + 2], 16) for i in (1, 3, 5))
        elif rgb is None and raw.count(",") == 2:
            rgb = tuple(int(v) for v in raw.split(","))
    except ValueError:
        rgb = None
    if rgb is None or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise UsageError(f"--alpha-color {text!r}: use white, black, gray, #rrggbb or R,G,B with values 0..255")
    return tuple(v / 255.0 for v in rgb)  # type: ignore[return-value]


def composite(color: np.ndarray, alpha: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """``color * a + background * (1 - a)`` in float32, clipped to ``[0, 1]`` (``a`` = alpha scaled by its dtype).

    Args:
        color: ``(H, W, C)`` uint8/uint16 (or float32 in ``[0, 1]``), C = 1 or 3.
        alpha: ``(H, W)`` of the same size, uint8/uint16 (or float32).
        background: RGB in ``[0, 1]``; a gray image (C = 1) gets its BT.601 luma
            ``0.299 R + 0.587 G + 0.114 B``.

    Raises:
        ValueError: ``color`` and ``alpha`` differ in size.
    """
    if alpha.shape != color.shape[:2]:
        raise ValueError(f"alpha is {alpha.shape[1]}x{alpha.shape[0]}, the image {color.shape[1]}x{color.shape[0]}")
    if color.shape[2] == 1:
        bg = np.float32(0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2])
    else:
        bg = np.asarray(background, dtype=np.float32)
    a = to_float(alpha)[:, :, None]
    out = to_float(color) * a + bg * (np.float32(1.0) - a)
    return np.clip(out, 0.0, 1.0, out=out)


def opaque_mask(ref_alpha: np.ndarray | None, dist_alpha: np.ndarray | None) -> np.ndarray | None:
    """Pixels opaque on both sides (alpha at its dtype's maximum), ``(H, W)`` bool; ``None`` when neither side
    has alpha (every pixel counts). A side without alpha is opaque everywhere."""
    masks = [a == np.iinfo(a.dtype).max if a.dtype.kind in "ui" else a >= 1.0
             for a in (ref_alpha, dist_alpha) if a is not None]
    if not masks:
        return None
    if len(masks) == 2 and masks[0].shape != masks[1].shape:
        raise ValueError(f"alpha sizes differ: {masks[0].shape} and {masks[1].shape}")
    return masks[0] & masks[1] if len(masks) == 2 else masks[0]


def pair_arrays(
    ref: DecodedImage, dist: DecodedImage, policy: str,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0), *, ref_path: str = "", dist_path: str = "",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The arrays a pair is scored on under an ``--alpha`` policy, and the mask of ``--alpha mask``.

    Rules:

    - ``drop``, ``white``, ``black``, ``error``: each side on its own, as :func:`decode_image` does (a side
      without alpha is scored as stored, so a pair whose sides disagree on alpha is treated unevenly:
      :func:`alpha_mismatch_warning` says so).
    - ``composite-both``: both sides composited over ``background``: each side with its own alpha; a
      distorted side without alpha (an encoder dropped it, e.g. JPEG) with the reference's alpha. A reference
      without alpha is opaque: nothing is borrowed from the distorted side (so the reference's array never
      depends on the distorted image, and its features can be shared by all its distorted versions).
    - ``mask``: the ``composite-both`` arrays, plus the mask of pixels opaque on both sides (a side without
      alpha counts as opaque) for the metrics that take one (:data:`MASKABLE_METRICS`: ``psnr``, ``mse``
      average over those pixels only; every other metric scores the composited arrays).

    Args:
        ref, dist: from :func:`decode_with_alpha`; for a borrowed alpha both must have the same size
            (resample the distorted colour to the reference's size first).
        policy: one of :data:`ALPHA_POLICIES`.
        background: RGB in ``[0, 1]`` (``--alpha-color``) for ``composite-both`` and ``mask``.
        ref_path, dist_path: for messages.

    Returns:
        ``(ref_array, dist_array, mask)``: ``(H, W, C)`` arrays (uint8/uint16 as stored, or float32 in
        ``[0, 1]`` where compositing ran) and the ``(H, W)`` bool mask for ``mask`` (``None`` otherwise, or
        when neither side has alpha).

    Raises:
        DecodeError: ``error`` and a side with transparent pixels.
        ValueError: an unknown policy, or a borrowed alpha of another size.
    """
    if policy not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_POLICIES)}, got {policy!r}")
    if policy not in PAIR_ALPHA_POLICIES:
        return (np.ascontiguousarray(_apply_alpha(ref_path, ref.color, ref.alpha, policy)),
                np.ascontiguousarray(_apply_alpha(dist_path, dist.color, dist.alpha, policy)), None)
    ref_array = reference_array(ref, policy, background, ref_path=ref_path)
    dist_alpha = dist.alpha if dist.alpha is not None else ref.alpha
    if dist_alpha is not None and dist_alpha.shape != dist.color.shape[:2]:
        raise ValueError(f"{dist_path}: is {dist.color.shape[1]}x{dist.color.shape[0]}, the reference's alpha "
                         f"{dist_alpha.shape[1]}x{dist_alpha.shape[0]}: resample it to the reference's size first")
    dist_array = dist.color if dist_alpha is None else composite(dist.color, dist_alpha, background)
    mask = opaque_mask(ref.alpha, dist.alpha) if policy == "mask" else None
    return ref_array, dist_array, mask


def reference_array(ref: DecodedImage, policy: str, background: tuple[float, float, float] = (1.0, 1.0, 1.0), *,
                    ref_path: str = "") -> np.ndarray:
    """The reference's array under ``policy`` (what :func:`pair_arrays` returns for it): it never depends on the
    distorted side, so a chunk decodes and converts its reference once for all its distorted images."""
    if policy not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_POLICIES)}, got {policy!r}")
    if policy in PAIR_ALPHA_POLICIES:
        return ref.color if ref.alpha is None else composite(ref.color, ref.alpha, background)
    return np.ascontiguousarray(_apply_alpha(ref_path, ref.color, ref.alpha, policy))


def _color_name(background: tuple[float, float, float]) -> str:
    rgb = tuple(round(v * 255) for v in background)
    for name, value in ALPHA_COLORS.items():
        if value == rgb:
            return name
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def alpha_mismatch_warning(ref_has_alpha: bool, dist_has_alpha: bool, policy: str,
                           background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> str | None:
    """One line for a pair whose sides disagree on alpha (one has an alpha channel, the other none), naming
    the policy applied and what it does to this pair; ``None`` when both sides agree.

    The engine calls it once per pair (or once per run with a count); the caller prefixes the pair's names.
    """
    if bool(ref_has_alpha) == bool(dist_has_alpha):
        return None
    which = ("the reference has an alpha channel and the distorted image has none" if ref_has_alpha
             else "the distorted image has an alpha channel and the reference has none")
    colour = _color_name(background)
    if policy == "drop":
        what = ("--alpha drop: both are scored on their stored colours, transparency ignored (colours under "
                "transparent pixels count); --alpha composite-both or mask treat both sides alike")
    elif policy in ("white", "black"):
        side = "reference" if ref_has_alpha else "distorted image"
        what = (f"--alpha {policy}: only the {side} is composited over {policy}, the other side is scored as "
                f"stored; --alpha composite-both or mask treat both sides alike")
    elif policy == "error":
        what = "--alpha error: allowed because the alpha channel is fully opaque"
    elif policy == "composite-both":
        what = (f"--alpha composite-both: the distorted image is composited over {colour} with the reference's "
                f"alpha" if ref_has_alpha else f"--alpha composite-both: the distorted image is composited over "
                f"{colour} with its own alpha (the reference is opaque)")
    else:
        what = (f"--alpha mask: {', '.join(MASKABLE_METRICS)} score the pixels opaque on both sides only; "
                f"other metrics see both sides composited over {colour}"
                + (" with the reference's alpha" if ref_has_alpha else ""))
    return f"{which}; {what}"


def to_float(array: np.ndarray) -> np.ndarray:
    """Scale a decoded array to float32 in ``[0, 1]`` by its dtype, never by its values.

    Args:
        array: ``uint8`` (divided by 255), ``uint16`` (divided by 65535) or ``float32`` (returned as
            is, not copied: already in ``[0, 1]``, e.g. after alpha compositing).

    Returns:
        float32 array of the same shape.

    Raises:
        TypeError: any other dtype (the range would have to be guessed).
    """
    if array.dtype == np.uint8:
        out = array.astype(np.float32)
        out /= 255.0
        return out
    if array.dtype == np.uint16:
        out = array.astype(np.float32)
        out /= 65535.0
        return out
    if array.dtype == np.float32:
        return array
    raise TypeError(f"to_float takes uint8, uint16 or float32 arrays, got {array.dtype}")


# --------------------------------------------------------------------------------------------------
# Header


def _read_header(fp: IO[bytes], path, *, max_pixels: int | None, check_png_crc: bool) -> _Header:
    """Identify the format by content, open it lazily and collect everything decoding needs."""
    prefix = fp.read(_PREFIX_BYTES)
    if not prefix:
        raise DecodeError(path, "empty file (0 bytes)")
    fmt = _sniff(prefix)
    if fmt is None:
        raise DecodeError(path, _unknown_format_cause(prefix))

    png_exif: bytes | None = None
    png_exif_span = None
    png_depth = png_color_type = None
    if fmt == "PNG":
        png_depth, png_color_type, png_exif, png_exif_span = _scan_png(fp, path, check_crc=check_png_crc)
    elif fmt == "WEBP":
        # Pillow's WebP opener allocates the canvas, so check the size written in the header first.
        size = _webp_size(prefix)
        if size is not None:
            _check_pixels(path, *size, max_pixels)

    fp.seek(0)
    try:
        image = _opener(fmt)(fp, "")
    except _DECODER_ERRORS as exc:
        raise DecodeError(path, f"cannot read the {fmt} header ({_one_line(exc)})") from None

    mode = image.mode
    width, height = image.size
    if fmt == "TIFF":  # Pillow reports the TIFF size after the orientation; we want it as stored
        width, height = image.tag_v2.get(256, width), image.tag_v2.get(257, height)
    if width < 1 or height < 1:
        raise DecodeError(path, f"invalid image size {width}x{height}")
    _check_pixels(path, width, height, max_pixels)
    try:
        frames = getattr(image, "n_frames", 1) if fmt != "JPEG" else 1
    except _DECODER_ERRORS as exc:
        raise DecodeError(path, f"cannot read the {fmt} frame list ({_one_line(exc)})") from None
    if frames > 1:
        raise DecodeError(path, f"has {frames} frames; animated or multi-page images are not supported")

    route = "pillow"
    transparency = "transparency" in image.info
    if fmt == "PNG":
        bit_depth = 16 if png_depth == 16 else 8
        if bit_depth == 16 and png_color_type in (2, 4, 6):
            route = "opencv"  # Pillow truncates 16-bit RGB / RGBA / gray+alpha PNG to 8 bits
            channels = 1 if png_color_type == 4 else 3
            has_alpha = png_color_type in (4, 6) or transparency
        else:
            channels, has_alpha = _channels_and_alpha(path, mode, transparency, bit_depth)
    elif fmt == "TIFF":
        bit_depth = _tiff_bit_depth(path, image)
        if bit_depth == 16 and mode not in _PIL_GRAY_16:
            if mode not in ("RGB", "RGBA"):
                raise DecodeError(path, f"unsupported 16-bit TIFF layout (Pillow mode {mode})")
            route = "opencv"  # Pillow truncates 16-bit RGB(A) TIFF to 8 bits
            channels, has_alpha = 3, mode == "RGBA"
        else:
            channels, has_alpha = _channels_and_alpha(path, mode, transparency, bit_depth)
    else:
        bit_depth = 8
        channels, has_alpha = _channels_and_alpha(path, mode, transparency, bit_depth)

    try:
        orientation = _orientation(fmt, image, png_exif)
    except _DECODER_ERRORS as exc:
        raise DecodeError(path, f"cannot read the EXIF orientation ({_one_line(exc)})") from None
    out_w, out_h = (height, width) if orientation >= 5 else (width, height)
    info = ImageInfo(width=out_w, height=out_h, channels=channels, bit_depth=bit_depth, has_alpha=has_alpha,
                     format=fmt)
    return _Header(info=info, image=image, route=route, orientation=orientation, stored_size=(width, height),
                   png_exif_span=png_exif_span)


def _opener(fmt: str):
    """The format's own opener: Image.open minus its Image.MAX_IMAGE_PIXELS check (see module doc)."""
    if fmt == "PNG":
        return PngImagePlugin.PngImageFile
    if fmt == "JPEG":
        return JpegImagePlugin.JpegImageFile  # not jpeg_factory: MPF extras are previews, decode the primary
    if fmt == "BMP":
        return BmpImagePlugin.BmpImageFile
    if fmt == "TIFF":
        return TiffImagePlugin.TiffImageFile
    from PIL import WebPImagePlugin  # imported lazily: Pillow may be built without WebP

    return WebPImagePlugin.WebPImageFile


def _sniff(prefix: bytes) -> str | None:
    if prefix.startswith(_PNG_SIGNATURE):
        return "PNG"
    if prefix.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if prefix[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WEBP"
    if prefix[:2] == b"BM":
        return "BMP"
    return None


def _unknown_format_cause(prefix: bytes) -> str:
    known = {
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"%PDF": "PDF",
        b"\xff\x0a": "JPEG XL",
        b"\x00\x00\x00\x0cJXL ": "JPEG XL",
        b"8BPS": "Photoshop",
        b"\x00\x00\x01\x00": "ICO",
    }
    supported = "PNG, JPEG, BMP, TIFF or WebP"
    for magic, name in known.items():
        if prefix.startswith(magic):
            return f"is a {name} file; supported formats are {supported}"
    if prefix[4:8] == b"ftyp":
        return f"is an ISO media file (HEIF/AVIF/MP4); supported formats are {supported}"
    if b"\x00" not in prefix and all(b >= 0x20 or b in b"\t\n\r\f" for b in prefix):
        return f"is a text file, not an image ({supported})"
    return f"is not a {supported} image (starts with bytes {prefix[:8].hex(' ')})"


def _check_pixels(path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise DecodeError(path, (
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            f"(decompression-bomb guard); if the file is trusted, raise the limit with --max-pixels"
        ))


def _channels_and_alpha(path, mode: str, transparency: bool, bit_depth: int) -> tuple[int, bool]:
    """Channels (1/3) and alpha presence of an image Pillow decodes itself."""
    if mode == "I" and bit_depth == 16:  # 16-bit gray PNG in some Pillow versions
        return 1, transparency
    if mode not in _PIL_MODES:
        raise DecodeError(path, f"unsupported image mode {mode} (supported: 8/16-bit gray, RGB, RGBA, palette)")
    channels = 1 if mode in _PIL_GRAY else 3
    has_alpha = mode in _PIL_ALPHA or (transparency and mode not in ("CMYK", "YCbCr", "RGBX"))
    return channels, has_alpha


def _tiff_bit_depth(path, image) -> int:
    bits = image.tag_v2.get(258, (1,))
    bits = set(bits) if isinstance(bits, tuple) else {bits}
    if bits == {16}:
        return 16
    if bits <= {1, 2, 4, 8}:
        return 8
    raise DecodeError(path, f"unsupported TIFF bit depth {sorted(bits)} (supported: 1 to 8 and 16 bits)")


def _orientation(fmt: str, image, png_exif: bytes | None) -> int:
    if fmt == "PNG":
        if png_exif is None:
            return 1
        exif = Image.Exif()
        exif.load(png_exif)
        value = exif.get(_ORIENTATION_TAG, 1)
    elif fmt == "TIFF":
        value = image.tag_v2.get(_ORIENTATION_TAG, 1)
    elif fmt in ("JPEG", "WEBP"):
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    else:
        value = 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _scan_png(fp: IO[bytes], path, *, check_crc: bool):
    """Walk the PNG chunk list: IHDR depth and colour type, the eXIf payload and its byte span.

    With ``check_crc`` every chunk is read and its CRC checked (decode); otherwise chunk payloads are
    skipped by seeking (probe). Either way a chunk list that ends before IEND is an error.
    """
    fp.seek(len(_PNG_SIGNATURE))
    depth = color_type = None
    exif = exif_span = None
    first = True
    while True:
        start = fp.tell()
        head = fp.read(8)
        if len(head) < 8:
            raise DecodeError(path, "truncated PNG (the chunk list ends before IEND)")
        length, kind = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            raise DecodeError(path, f"corrupt PNG (chunk length {length} at byte {start})")
        if first and kind != b"IHDR":
            raise DecodeError(path, "corrupt PNG (the first chunk is not IHDR)")
        first = False
        if check_crc or kind in (b"IHDR", b"eXIf"):
            payload = fp.read(length)
            crc = fp.read(4)
            if len(payload) < length or len(crc) < 4:
                raise DecodeError(path, f"truncated PNG (inside the {_chunk_name(kind)} chunk)")
            if check_crc and zlib.crc32(payload, zlib.crc32(kind)) != struct.unpack(">I", crc)[0]:
                raise DecodeError(path, f"corrupt PNG (CRC mismatch in the {_chunk_name(kind)} chunk at byte {start})")
            if kind == b"IHDR":
                if length != 13:
                    raise DecodeError(path, "corrupt PNG (bad IHDR length)")
                depth, color_type = payload[8], payload[9]
            elif kind == b"eXIf" and exif is None:
                exif, exif_span = payload, (start, fp.tell())
        else:
            fp.seek(length + 4, os.SEEK_CUR)
        if kind == b"IEND":
            return depth, color_type, exif, exif_span


def _chunk_name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isalpha() else kind.hex()


def _webp_size(prefix: bytes) -> tuple[int, int] | None:
    """Canvas size from the first WebP chunk header (VP8X, VP8 or VP8L), None if not recognised."""
    if len(prefix) < 30:
        return None
    chunk = prefix[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(prefix[24:27], "little"), 1 + int.from_bytes(prefix[27:30], "little")
    if chunk == b"VP8 " and prefix[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(prefix[26:28], "little") & 0x3FFF, int.from_bytes(prefix[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and prefix[20] == 0x2F:
        bits = int.from_bytes(prefix[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# --------------------------------------------------------------------------------------------------
# Pixels

_truncation_lock = threading.Lock()
_truncation_users = 0
_truncation_saved = False


@contextlib.contextmanager
def _truncated_images_refused() -> Iterator[None]:
    """Make sure ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False while we load, and restore it after.

    It is False unless some other code in the process set it; Pillow reads the module attribute at
    load time, so it is forced False while any of our loads runs (a counter, for threads).
    """
    global _truncation_users, _truncation_saved
    with _truncation_lock:
        if _truncation_users == 0:
            _truncation_saved = ImageFile.LOAD_TRUNCATED_IMAGES
        _truncation_users += 1
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        with _truncation_lock:
            _truncation_users -= 1
            if _truncation_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _truncation_saved


def _decode_pillow(header: _Header, path) -> tuple[np.ndarray, np.ndarray | None]:
    """Pillow decode -> (H, W, C) colour/gray samples and the (H, W) alpha channel or None."""
    image = header.image
    mode = image.mode
    fmt = header.info.format
    try:
        with _truncated_images_refused():
            image.load()
        if mode in ("P", "PA"):
            image = image.convert("RGBA" if header.info.has_alpha else "RGB")
        elif mode in ("1", "La", "RGBa", "RGBX", "CMYK", "YCbCr"):
            image = image.convert({"1": "L", "La": "LA", "RGBa": "RGBA"}.get(mode, "RGB"))
        array = np.asarray(image)
    except _DECODER_ERRORS as exc:
        raise DecodeError(path, f"cannot decode the {fmt} data ({_one_line(exc)})") from None

    if mode in _PIL_GRAY_16 or mode == "I":
        if mode == "I" and (array.min() < 0 or array.max() > 65535):
            raise DecodeError(path, "16-bit PNG decoded to values outside 0..65535")
        array = array.astype(np.uint16)
    if array.dtype not in (np.uint8, np.uint16):
        raise DecodeError(path, f"unexpected sample type {array.dtype} from Pillow mode {mode}")

    if array.ndim == 2:
        color, alpha = array[:, :, None], None
    elif image.mode in ("LA", "RGBA"):
        color, alpha = array[:, :, :-1], array[:, :, -1]
    else:
        color, alpha = array, None

    transparent = header.image.info.get("transparency") if mode not in ("P", "PA") else None
    if alpha is None and header.info.has_alpha and transparent is not None:
        alpha = _transparency_mask(color, transparent, scale=255 if mode == "1" else 1)
    return color, alpha


def _transparency_mask(color: np.ndarray, transparent, *, scale: int = 1) -> np.ndarray | None:
    """tRNS single-colour transparency -> alpha (0 where the pixel equals that colour, else max)."""
    key = np.asarray(transparent if isinstance(transparent, tuple) else (transparent,), dtype=np.int64) * scale
    if key.ndim != 1 or key.size != color.shape[2]:
        return None
    maxval = np.iinfo(color.dtype).max
    opaque = np.any(color.astype(np.int64) != key, axis=2)
    return np.where(opaque, maxval, 0).astype(color.dtype)


def _decode_opencv(data: bytes, header: _Header, path) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV decode of 16-bit colour PNG/TIFF, with the orientation removed from the bytes first."""
    fmt = header.info.format
    buffer: bytes | bytearray = data
    if fmt == "PNG" and header.png_exif_span is not None:
        start, end = header.png_exif_span
        buffer = data[:start] + data[end:]
    import cv2  # only 16-bit colour files need it (importing it costs ~0.13 s of every run's start-up)

    try:
        array = cv2.imdecode(np.frombuffer(buffer, np.uint8), cv2.IMREAD_UNCHANGED)
    except (*_DECODER_ERRORS, cv2.error) as exc:
        raise DecodeError(path, f"cannot decode the {fmt} data ({_one_line(exc)})") from None
    if array is None:
        raise DecodeError(path, f"cannot decode the {fmt} data (OpenCV could not read it: corrupt or truncated)")
    if array.dtype != np.uint16:
        raise DecodeError(path, f"OpenCV decoded a 16-bit {fmt} as {array.dtype}")

    if array.ndim == 2:
        color, alpha = array[:, :, None], None
    elif array.shape[2] == 3:
        color, alpha = array[:, :, ::-1], None
    elif array.shape[2] == 4:
        color, alpha = array[:, :, 2::-1], array[:, :, 3]
    else:
        raise DecodeError(path, f"OpenCV decoded {array.shape[2]} channels")
    if header.info.channels == 1 and color.shape[2] == 3:
        color = color[:, :, :1]  # gray+alpha PNG comes back as BGRA with B = G = R
    if header.info.has_alpha and alpha is None:
        transparent = header.image.info.get("transparency")
        if transparent is not None:
            alpha = _transparency_mask(color, transparent)
    if not header.info.has_alpha:
        alpha = None
    return color, alpha


def _tiff_without_orientation(data: bytes) -> bytes | bytearray:
    """Copy of a TIFF whose first IFD's Orientation tag says 1 (unchanged if there is no such tag)."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        if struct.unpack_from(order + "H", data, 2)[0] == 43:  # BigTIFF
            ifd = struct.unpack_from(order + "Q", data, 8)[0]
            count = struct.unpack_from(order + "Q", data, ifd)[0]
            first, size, value_at = ifd + 8, 20, 12
        else:
            ifd = struct.unpack_from(order + "I", data, 4)[0]
            count = struct.unpack_from(order + "H", data, ifd)[0]
            first, size, value_at = ifd + 2, 12, 8
        for k in range(count):
            entry = first + k * size
            tag, kind = struct.unpack_from(order + "HH", data, entry)
            if tag == _ORIENTATION_TAG and kind in (3, 4):
                patched = bytearray(data)
                struct.pack_into(order + ("H" if kind == 3 else "I"), patched, entry + value_at, 1)
                return patched
    except struct.error:
        pass
    return data


def _apply_alpha(path, color: np.ndarray, alpha: np.ndarray | None, policy: str) -> np.ndarray:
    if alpha is None or policy == "drop":
        return color
    if policy == "error":
        if alpha.min() < np.iinfo(alpha.dtype).max:
            raise DecodeError(path, (
                "has an alpha channel with transparent pixels; choose how to treat it with --alpha drop "
                "(ignore alpha), white or black (composite over that background), composite-both or mask"
            ))
        return color
    background = np.float32(1.0 if policy == "white" else 0.0)
    a = to_float(alpha)[:, :, None]
    out = to_float(color) * a + background * (np.float32(1.0) - a)
    return np.clip(out, 0.0, 1.0, out=out)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, C) array (views; the caller makes it contiguous)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return array.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return array[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return array.transpose(1, 0, 2)[::-1]
    return array


# --------------------------------------------------------------------------------------------------
# Messages


def _os_cause(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied (the file is not readable)"
    return f"cannot read the file ({exc.strerror or _one_line(exc)})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
