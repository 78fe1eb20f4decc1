"""Tests for lpipscli.io.decoding: precision, channels, alpha, orientation, bad files.

Every input is written in tmp_path with Pillow, OpenCV, or the byte-level PNG/TIFF writers below, and
every expected array comes from the array that was written (numpy), never from the decoder under test.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib

import cv2
import numpy as np
import pytest
from _helpers import MUTATION, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from lpipscli.errors import DecodeError
from lpipscli.io import decoding
from lpipscli.io.decoding import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    ImageInfo,
    decode_image,
    has_supported_extension,
    probe_image,
    to_float,
)

TOLERANCES = {
    # (atol, rtol) for float32 compositing against a float64 numpy computation of rgb*a + bg*(1-a)
    "composite": (1e-6, 0.0),
    # to_float against float64 division
    "to_float": (1e-7, 0.0),
    # CMYK JPEG (quality 95, smooth image) against the RGB it was made from: mean and max abs error, 8-bit
    "cmyk_jpeg_mean": 1.5,
    "cmyk_jpeg_max": 12,
}

H, W = 12, 20  # non-square on purpose, so that a 90-degree orientation is visible in the shape
RNG = np.random.default_rng(20240611)


# ---------------------------------------------------------------------------------------------------
# Independent writers (the decoder under test is never used to build inputs or expectations)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bytes(samples: np.ndarray, color_type: int, chunks_before_idat: bytes = b"", after_idat: bytes = b"") -> bytes:
    """Minimal PNG writer: (H, W, C) uint8/uint16 samples, filter 0 on every row, one IDAT."""
    height, width = samples.shape[:2]
    depth = samples.dtype.itemsize * 8
    big_endian = samples.astype(">u2") if depth == 16 else samples
    raw = b"".join(b"\x00" + big_endian[row].tobytes() for row in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + chunks_before_idat
        + _png_chunk(b"IDAT", zlib.compress(raw)) + after_idat + _png_chunk(b"IEND", b"")
    )


def _exif_payload(orientation: int) -> bytes:
    """Raw TIFF-structured EXIF (no 'Exif\\0\\0' prefix, as the PNG eXIf chunk stores it)."""
    return b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"


def _insert_exif_chunk(png: bytes, orientation: int, *, after_idat: bool = False) -> bytes:
    chunk = _png_chunk(b"eXIf", _exif_payload(orientation))
    at = png.index(b"IEND") - 4 if after_idat else 8 + 25  # before IEND, or right after IHDR
    return png[:at] + chunk + png[at:]


def _tiff_bytes(samples: np.ndarray, orientation: int = 1) -> bytes:
    """Minimal little-endian baseline TIFF: one uncompressed strip, (H, W, C) uint8/uint16, C in 1/3/4."""
    height, width, channels = samples.shape
    bits = samples.dtype.itemsize * 8
    pixels = samples.astype(f"<u{samples.dtype.itemsize}").tobytes()
    n_entries = 11 + (channels == 4)
    bits_at = 8 + 2 + 12 * n_entries + 4
    pixels_at = bits_at + 2 * channels
    entries = [
        (256, 4, 1, width), (257, 4, 1, height),
        (258, 3, channels, bits if channels == 1 else bits_at),
        (259, 3, 1, 1), (262, 3, 1, 1 if channels == 1 else 2), (273, 4, 1, pixels_at),
        (274, 3, 1, orientation), (277, 3, 1, channels), (278, 4, 1, height), (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    if channels == 4:
        entries.append((338, 3, 1, 2))  # unassociated alpha
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:
        packed_value = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed_value
    out += b"\0\0\0\0" + struct.pack(f"<{channels}H", *([bits] * channels))
    return out + pixels


def _orient_reference(array: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation from its definition (CIPA DC-008 table), with numpy's rot90/flip."""
    return {
        1: lambda a: a,
        2: np.fliplr,
        3: lambda a: np.rot90(a, 2),
        4: np.flipud,
        5: lambda a: np.rot90(np.fliplr(a), 1),  # transpose
        6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
        7: lambda a: np.rot90(np.fliplr(a), -1),  # transverse
        8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
    }[orientation](array)


def _blocky_rgb(height: int, width: int) -> np.ndarray:
    """8x8-block image: JPEG reproduces it almost exactly, and every orientation differs."""
    blocks = RNG.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:height, :width]


def _composite(color: np.ndarray, alpha: np.ndarray, background: float) -> np.ndarray:
    scale = float(np.iinfo(color.dtype).max)
    c = color.astype(np.float64) / scale
    a = alpha.astype(np.float64)[..., None] / scale
    return c * a + background * (1.0 - a)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------
# A set of valid files: name -> (path, expected array with alpha="drop", alpha channel or None, format)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    out = {}

    rgb8 = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb8).save(d / "rgb8.png")
    out["rgb8_png"] = (d / "rgb8.png", rgb8, None, "PNG")

    rgb16 = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    assert cv2.imwrite(str(d / "rgb16.png"), rgb16[..., ::-1])
    out["rgb16_png"] = (d / "rgb16.png", rgb16, None, "PNG")

    rgba16 = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)
    assert cv2.imwrite(str(d / "rgba16.png"), rgba16[..., [2, 1, 0, 3]])
    out["rgba16_png"] = (d / "rgba16.png", rgba16[..., :3], rgba16[..., 3], "PNG")

    gray16 = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    assert cv2.imwrite(str(d / "gray16.png"), gray16)
    out["gray16_png"] = (d / "gray16.png", gray16[..., None], None, "PNG")

    grayalpha16 = RNG.integers(0, 65536, (H, W, 2), dtype=np.uint16)
    _write(d / "grayalpha16.png", _png_bytes(grayalpha16, color_type=4))
    out["grayalpha16_png"] = (d / "grayalpha16.png", grayalpha16[..., :1], grayalpha16[..., 1], "PNG")

    assert cv2.imwrite(str(d / "rgb16.tif"), rgb16[..., ::-1])
    out["rgb16_tif"] = (d / "rgb16.tif", rgb16, None, "TIFF")

    Image.fromarray(gray16).save(d / "gray16.tif")
    out["gray16_tif"] = (d / "gray16.tif", gray16[..., None], None, "TIFF")

    gray8 = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(gray8).save(d / "gray8.png")
    out["gray8_png"] = (d / "gray8.png", gray8[..., None], None, "PNG")

    grayalpha8 = RNG.integers(0, 256, (H, W, 2), dtype=np.uint8)
    Image.fromarray(grayalpha8, "LA").save(d / "grayalpha8.png")
    out["grayalpha8_png"] = (d / "grayalpha8.png", grayalpha8[..., :1], grayalpha8[..., 1], "PNG")

    palette = RNG.integers(0, 256, (4, 3), dtype=np.uint8)
    trns = np.array([0, 128, 255, 40], dtype=np.uint8)
    index = RNG.integers(0, 4, (H, W), dtype=np.uint8)
    pal_image = Image.fromarray(index, "P")
    pal_image.putpalette(palette.ravel().tolist())
    pal_image.save(d / "palette_trns.png", transparency=trns.tobytes())
    out["palette_trns_png"] = (d / "palette_trns.png", palette[index], trns[index], "PNG")
    pal_image.save(d / "palette.png")
    out["palette_png"] = (d / "palette.png", palette[index], None, "PNG")

    rgba8 = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    rgba8[0, 0, 3], rgba8[0, 1, 3] = 0, 255
    Image.fromarray(rgba8, "RGBA").save(d / "rgba8.png")
    out["rgba8_png"] = (d / "rgba8.png", rgba8[..., :3], rgba8[..., 3], "PNG")

    Image.fromarray(rgb8).save(d / "lossless.webp", lossless=True)
    out["rgb8_webp_lossless"] = (d / "lossless.webp", rgb8, None, "WEBP")
    Image.fromarray(rgba8, "RGBA").save(d / "lossless_rgba.webp", lossless=True, exact=True)
    out["rgba8_webp_lossless"] = (d / "lossless_rgba.webp", rgba8[..., :3], rgba8[..., 3], "WEBP")
    Image.fromarray(rgb8).save(d / "lossy.webp", quality=80)
    out["rgb8_webp_lossy"] = (d / "lossy.webp", None, None, "WEBP")

    Image.fromarray(rgb8).save(d / "rgb8.bmp")
    out["rgb8_bmp"] = (d / "rgb8.bmp", rgb8, None, "BMP")

    Image.fromarray(rgb8).save(d / "rgb8.tif")
    out["rgb8_tif"] = (d / "rgb8.tif", rgb8, None, "TIFF")

    Image.fromarray(_blocky_rgb(H, W)).save(d / "rgb8.jpg", quality=90)
    out["rgb8_jpg"] = (d / "rgb8.jpg", None, None, "JPEG")
    Image.fromarray(gray8).save(d / "gray8.jpg", quality=90)
    out["gray8_jpg"] = (d / "gray8.jpg", None, None, "JPEG")
    Image.fromarray(_blocky_rgb(H, W)).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    out["cmyk_jpg"] = (d / "cmyk.jpg", None, None, "JPEG")
    return out


LOSSLESS = [
    "rgb8_png", "rgb16_png", "rgba16_png", "gray16_png", "grayalpha16_png", "rgb16_tif", "gray16_tif", "gray8_png",
    "grayalpha8_png", "palette_trns_png", "palette_png", "rgba8_png", "rgb8_webp_lossless", "rgba8_webp_lossless",
    "rgb8_bmp", "rgb8_tif",
]
ALL_FILES = [*LOSSLESS, "rgb8_webp_lossy", "rgb8_jpg", "gray8_jpg", "cmyk_jpg"]


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_files_decode_exactly(files, name):
    path, expected, _, _ = files[name]
    array = decode_image(path)
    assert array.dtype == expected.dtype
    assert array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)
    assert array.flags.c_contiguous


@pytest.mark.parametrize("name", ALL_FILES)
def test_probe_matches_decode(files, name):
    path, _, alpha, fmt = files[name]
    info = probe_image(path)
    array = decode_image(path)
    assert isinstance(info, ImageInfo)
    assert (info.height, info.width, info.channels) == array.shape
    assert info.bit_depth == array.dtype.itemsize * 8
    assert info.has_alpha == (alpha is not None)
    assert info.format == fmt
    # compositing keeps the shape and the channel count
    assert decode_image(path, alpha="white").shape == array.shape


def test_pillow_alone_truncates_16bit_rgb_png(files):
    """The reason for the OpenCV path: Pillow opens 48-bit PNG as 8-bit RGB and loses the low byte."""
    path, expected, _, _ = files["rgb16_png"]
    pillow = np.asarray(Image.open(path))
    assert pillow.dtype == np.uint8
    assert np.any(expected.astype(np.uint32) != pillow.astype(np.uint32) * 257)  # information Pillow lost
    ours = decode_image(path)
    assert ours.dtype == np.uint16 and np.array_equal(ours, expected)
    assert probe_image(path).bit_depth == 16


def test_jpeg_files_close_to_source(files):
    rgb = decode_image(files["rgb8_jpg"][0])
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    gray = decode_image(files["gray8_jpg"][0])
    assert gray.shape == (H, W, 1)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    source = _blocky_rgb(32, 48)
    Image.fromarray(source).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    array = decode_image(tmp_path / "cmyk.jpg")
    assert array.shape == (32, 48, 3) and array.dtype == np.uint8
    error = np.abs(array.astype(np.int16) - source.astype(np.int16))
    assert error.mean() < TOLERANCES["cmyk_jpeg_mean"]
    assert error.max() <= TOLERANCES["cmyk_jpeg_max"]


# ---------------------------------------------------------------------------------------------------
# Alpha policies


@pytest.mark.parametrize(
    "name", ["rgba8_png", "rgba16_png", "grayalpha8_png", "grayalpha16_png", "palette_trns_png", "rgba8_webp_lossless"]
)
@pytest.mark.parametrize("policy, background", [("white", 1.0), ("black", 0.0)])
def test_alpha_composite(files, name, policy, background):
    path, color, alpha, _ = files[name]
    array = decode_image(path, alpha=policy)
    assert array.dtype == np.float32
    atol, rtol = TOLERANCES["composite"]
    np.testing.assert_allclose(array, _composite(color, alpha, background), atol=atol, rtol=rtol)
    assert array.min() >= 0.0 and array.max() <= 1.0


@pytest.mark.parametrize("name", ["rgba8_png", "rgba16_png", "grayalpha16_png", "palette_trns_png"])
def test_alpha_drop_keeps_color_and_error_refuses(files, name):
    path, color, _, _ = files[name]
    np.testing.assert_array_equal(decode_image(path, alpha="drop"), color)
    with pytest.raises(DecodeError, match="alpha") as info:
        decode_image(path, alpha="error")
    assert path.name in str(info.value)
    assert "drop" in str(info.value) and "white" in str(info.value)


def test_opaque_alpha_still_alpha_but_error_policy_accepts(tmp_path):
    rgba = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    assert probe_image(tmp_path / "opaque.png").has_alpha
    np.testing.assert_array_equal(decode_image(tmp_path / "opaque.png", alpha="error"), rgba[..., :3])
    white = decode_image(tmp_path / "opaque.png", alpha="white")
    assert white.dtype == np.float32
    np.testing.assert_allclose(white, rgba[..., :3] / 255.0, atol=TOLERANCES["composite"][0])


def test_single_colour_transparency_trns(tmp_path):
    """tRNS on an RGB / 16-bit gray PNG: pixels equal to that colour are transparent."""
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    key = tuple(int(v) for v in rgb[1, 2])
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=key)
    expected_alpha = np.where(np.all(rgb == key, axis=2), 0, 255).astype(np.uint8)
    assert probe_image(tmp_path / "key.png").has_alpha
    np.testing.assert_allclose(decode_image(tmp_path / "key.png", alpha="black"), _composite(rgb, expected_alpha, 0.0),
                               atol=TOLERANCES["composite"][0])

    gray16 = RNG.integers(0, 65536, (H, W, 1), dtype=np.uint16)
    gray16[3, 4] = 500
    _write(tmp_path / "g16.png", _png_bytes(gray16, 0, chunks_before_idat=_png_chunk(b"tRNS", struct.pack(">H", 500))))
    expected_alpha = np.where(gray16[..., 0] == 500, 0, 65535).astype(np.uint16)
    np.testing.assert_allclose(decode_image(tmp_path / "g16.png", alpha="white"),
                               _composite(gray16, expected_alpha, 1.0), atol=TOLERANCES["composite"][0])


def test_unknown_alpha_policy_is_a_value_error(files):
    with pytest.raises(ValueError, match="alpha must be one of"):
        decode_image(files["rgb8_png"][0], alpha="premultiply")


# ---------------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.fixture(scope="module")
def oriented_jpegs(tmp_path_factory):
    """The same JPEG pixel data with orientation tags 1..8 (libjpeg is deterministic)."""
    d = tmp_path_factory.mktemp("exif")
    source = Image.fromarray(_blocky_rgb(H, W))
    paths = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        paths[orientation] = d / f"o{orientation}.jpg"
        source.save(paths[orientation], quality=95, exif=exif.tobytes())
    return paths


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(oriented_jpegs, orientation):
    stored = np.asarray(Image.open(oriented_jpegs[1]))  # pixels as stored, decoded by Pillow
    path = oriented_jpegs[orientation]
    array = decode_image(path)
    expected = _orient_reference(stored, orientation)
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_array_equal(array, np.asarray(ImageOps.exif_transpose(Image.open(path))))  # Pillow agrees
    info = probe_image(path)
    assert (info.height, info.width) == array.shape[:2]
    assert (info.width, info.height) == ((H, W) if orientation >= 5 else (W, H))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_exif_orientation_png_and_tiff(tmp_path, orientation, dtype):
    """Orientation applied exactly once, from a PNG eXIf chunk or the TIFF tag, on both paths.

    uint16 RGB goes through OpenCV, uint8 and 16-bit gray through Pillow (both apply the TIFF tag
    themselves in some versions).
    """
    rgb = RNG.integers(0, np.iinfo(dtype).max, (H, W, 3), dtype=dtype)
    gray = rgb[..., :1]
    cases = [
        (_insert_exif_chunk(_png_bytes(rgb, 2), orientation), ".png", rgb),
        (_insert_exif_chunk(_png_bytes(gray, 0), orientation), ".png", gray),
        (_tiff_bytes(rgb, orientation), ".tif", rgb),
        (_tiff_bytes(gray, orientation), ".tif", gray),
    ]
    for k, (data, ext, source) in enumerate(cases):
        path = _write(tmp_path / f"o{k}{ext}", data)
        array = decode_image(path)
        np.testing.assert_array_equal(array, _orient_reference(source, orientation), err_msg=path.name)
        info = probe_image(path)
        assert (info.height, info.width, info.channels) == array.shape
        assert info.bit_depth == np.dtype(dtype).itemsize * 8


def test_exif_orientation_webp(tmp_path):
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "o6.webp", lossless=True, exif=exif.tobytes())
    np.testing.assert_array_equal(decode_image(tmp_path / "o6.webp"), _orient_reference(rgb, 6))
    info = probe_image(tmp_path / "o6.webp")
    assert (info.width, info.height) == (H, W)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_exif_chunk_after_pixel_data(tmp_path, bit_depth):
    """A PNG eXIf chunk may follow IDAT; probe (which decodes nothing) must still see it."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    rgb = RNG.integers(0, np.iinfo(dtype).max, (H, W, 3), dtype=dtype)
    path = _write(tmp_path / "late.png", _insert_exif_chunk(_png_bytes(rgb, 2), 6, after_idat=True))
    info = probe_image(path)
    assert (info.width, info.height) == (H, W)
    np.testing.assert_array_equal(decode_image(path), _orient_reference(rgb, 6))


# ---------------------------------------------------------------------------------------------------
# Names, formats, extensions


def test_non_ascii_name_on_both_paths(tmp_path):
    rgb8 = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb16 = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    p8 = tmp_path / "é 图.png"
    p16 = tmp_path / "é 图 16.png"
    Image.fromarray(rgb8).save(p8)
    p16.write_bytes(cv2.imencode(".png", rgb16[..., ::-1])[1].tobytes())  # cv2.imwrite may not take the name
    np.testing.assert_array_equal(decode_image(p8), rgb8)
    np.testing.assert_array_equal(decode_image(str(p16)), rgb16)
    assert probe_image(p16).bit_depth == 16


def test_format_from_content_not_extension(files, tmp_path):
    misnamed = _write(tmp_path / "really_png.jpg", files["rgb8_png"][0].read_bytes())
    assert probe_image(misnamed).format == "PNG"
    np.testing.assert_array_equal(decode_image(misnamed), files["rgb8_png"][1])


def test_supported_extensions():
    assert SUPPORTED_EXTENSIONS == (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
    assert has_supported_extension("a/B.JPEG") and has_supported_extension("x.Tif")
    assert not has_supported_extension("x.gif") and not has_supported_extension("png")


def test_animated_png_refused(tmp_path):
    frames = [Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)) for _ in range(2)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(DecodeError, match="2 frames"):
        probe_image(tmp_path / "anim.png")


# ---------------------------------------------------------------------------------------------------
# to_float


def test_to_float_by_dtype_never_by_values():
    u8 = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    u16 = np.array([[0, 255, 256, 65535]], dtype=np.uint16)  # max 65535 here, but see the next line
    dark16 = np.array([[0, 255]], dtype=np.uint16)  # a dark 16-bit image is not an 8-bit one
    atol, rtol = TOLERANCES["to_float"]
    np.testing.assert_allclose(to_float(u8), u8 / 255.0, atol=atol, rtol=rtol)
    np.testing.assert_allclose(to_float(u16), u16 / 65535.0, atol=atol, rtol=rtol)
    np.testing.assert_allclose(to_float(dark16), dark16 / 65535.0, atol=atol, rtol=rtol)
    assert to_float(u8).dtype == np.float32 and to_float(u16).dtype == np.float32
    f = np.array([0.25], dtype=np.float32)
    assert to_float(f) is f
    for bad in (np.zeros(2, np.float64), np.zeros(2, np.int32), np.zeros(2, bool)):
        with pytest.raises(TypeError, match="uint8, uint16 or float32"):
            to_float(bad)


# ---------------------------------------------------------------------------------------------------
# Bad inputs


def _bad_files(tmp_path, files):
    png = files["rgb8_png"][0].read_bytes()
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    jpg = buf.getvalue()  # big enough that the cut falls inside the entropy-coded data
    png16 = files["rgb16_png"][0].read_bytes()
    return {
        "zero": (_write(tmp_path / "zero.png", b""), "empty"),
        "text": (_write(tmp_path / "notes.png", b"hello, this is not an image\n"), "text file"),
        "random": (_write(tmp_path / "noise.jpg", RNG.integers(0, 256, 500, dtype=np.uint8).tobytes()), "not a"),
        "gif": (_write(tmp_path / "gif.png", b"GIF89a" + bytes(40)), "GIF"),
        "truncated_png": (_write(tmp_path / "cut.png", png[: len(png) // 2]), "truncated"),
        "truncated_png16": (_write(tmp_path / "cut16.png", png16[: len(png16) - 20]), "truncated"),
        "png_bad_crc": (_write(tmp_path / "crc.png", png[:60] + bytes([png[60] ^ 1]) + png[61:]), "CRC"),
        "truncated_jpg": (_write(tmp_path / "cut.jpg", jpg[: len(jpg) * 2 // 3]), "truncated"),
        "truncated_jpg_header": (_write(tmp_path / "cut_header.jpg", jpg[:300]), "truncated"),
        "directory": (tmp_path / "a_directory.png", "directory"),
        "missing": (tmp_path / "missing.png", "no such file"),
    }


BAD = ["zero", "text", "random", "gif", "truncated_png", "truncated_png16", "png_bad_crc", "truncated_jpg",
       "truncated_jpg_header", "directory", "missing"]


@pytest.mark.parametrize("name", BAD)
def test_bad_inputs_raise_decode_error_naming_the_file(tmp_path, files, name):
    (tmp_path / "a_directory.png").mkdir()
    path, cause = _bad_files(tmp_path, files)[name]
    with pytest.raises(DecodeError) as info:
        decode_image(path)
    message = str(info.value)
    assert path.name in message and info.value.path == str(path)
    assert cause.lower() in message.lower()
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("name", ["zero", "text", "random", "gif", "truncated_png", "directory", "missing"])
def test_bad_headers_fail_probe_too(tmp_path, files, name):
    (tmp_path / "a_directory.png").mkdir()
    path, cause = _bad_files(tmp_path, files)[name]
    with pytest.raises(DecodeError, match=f"(?i){cause}"):
        probe_image(path)


def test_unreadable_file(tmp_path, files):
    path = _write(tmp_path / "locked.png", files["rgb8_png"][0].read_bytes())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        for fn in (decode_image, probe_image):
            with pytest.raises(DecodeError, match="permission denied") as info:
                fn(path)
            assert "locked.png" in str(info.value)
    finally:
        path.chmod(0o644)


def test_permission_error_is_a_decode_error(monkeypatch, files):
    """The same mapping as above, simulated so that it runs as root too."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(decoding, "open", refuse, raising=False)
    for fn in (decode_image, probe_image):
        with pytest.raises(DecodeError, match="permission denied"):
            fn(files["rgb8_png"][0])


def test_max_pixels(files):
    path = files["rgb8_png"][0]
    for fn in (decode_image, probe_image):
        with pytest.raises(DecodeError, match="--max-pixels") as info:
            fn(path, max_pixels=H * W - 1)
        assert f"{W}x{H}" in str(info.value) and "rgb8.png" in str(info.value)
        fn(path, max_pixels=H * W)
        fn(path, max_pixels=None)
    assert DEFAULT_MAX_PIXELS >= 16384 * 16384


def test_max_pixels_read_from_header_only(tmp_path):
    """A PNG that claims 100000 x 100000 pixels is refused before anything is decoded."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
    path = _write(tmp_path / "bomb.png", data + _png_chunk(b"IEND", b""))
    for fn in (decode_image, probe_image):
        with pytest.raises(DecodeError, match="decompression-bomb"):
            fn(path)


def test_truncated_jpeg_refused_even_if_someone_allows_truncation(monkeypatch, files, tmp_path):
    jpg = files["rgb8_jpg"][0].read_bytes()
    path = _write(tmp_path / "cut.jpg", jpg[: len(jpg) * 2 // 3])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DecodeError, match="truncated"):
        decode_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for its owner


# ---------------------------------------------------------------------------------------------------
# Fuzz: corrupted bytes give a well-formed array or a DecodeError, nothing else


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so that a mutation reaches the decoder instead of the CRC check."""
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos: pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(data):
            out += data[pos:]
            break
        out += data[pos:end] + struct.pack(">I", zlib.crc32(data[pos + 4: end]))
        pos = end + 4
    return bytes(out)


def _valid_sources() -> dict[str, bytes]:
    buf = io.BytesIO()
    Image.fromarray(_blocky_rgb(16, 24)).save(buf, "JPEG", quality=80)
    rgb8 = RNG.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    rgb16 = RNG.integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    return {"jpg": buf.getvalue(), "png": _png_bytes(rgb8, 2), "png16": _png_bytes(rgb16, 2)}


SOURCES = _valid_sources()



@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    source=st.sampled_from(sorted(SOURCES)),
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
    fix_crc=st.booleans(),
    alpha=st.sampled_from(["drop", "white", "error"]),
)
def test_fuzz_corrupted_bytes(source, mutations, fix_crc, alpha):
    data = mutate(SOURCES[source], mutations)
    if fix_crc and source.startswith("png"):
        data = _fix_png_crcs(data)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz.bin")
        with open(path, "wb") as fp:
            fp.write(data)
        try:
            array = decode_image(path, alpha=alpha, max_pixels=1_000_000)
        except DecodeError as exc:
            assert "fuzz.bin" in str(exc) and "\n" not in str(exc)
            return
    assert array.ndim == 3 and array.shape[2] in (1, 3) and min(array.shape[:2]) >= 1
    assert array.dtype in (np.uint8, np.uint16, np.float32)
    assert array.flags.c_contiguous
