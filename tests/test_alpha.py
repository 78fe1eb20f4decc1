"""Alpha policies for pairs whose sides disagree on alpha (issue 11 point 5).

An RGBA photo-like image (opaque area, a fully transparent window with noise under it, a half-transparent
band) is saved as PNG; its JPEG (alpha dropped, colours as stored) and its lossy WebP (alpha kept, colours
under transparent pixels changed by the encoder) are made with Pillow. Expected arrays, PSNR and MSE are
computed here with NumPy from Pillow's own decoding of the files.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _helpers import smooth_image
from PIL import Image

from lpipscli.errors import UsageError
from lpipscli.io.decoding import (
    ALPHA_POLICIES,
    alpha_mismatch_warning,
    decode_image,
    decode_with_alpha,
    opaque_mask,
    pair_arrays,
    parse_alpha_color,
    reference_array,
)
from lpipscli.metrics.masked import masked_mse, masked_psnr
from lpipscli.metrics.psnr import psnr

#: float32 compositing against NumPy float64 (values in [0, 1]); PSNR in dB from those arrays.
TOLERANCES = {"composite": 1e-6, "psnr_db": 1e-4, "mse": 1e-9}
H, W = 48, 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("alpha")
    rgb = smooth_image(H, W, 3, seed=21)
    alpha = np.full((H, W), 255, np.uint8)
    alpha[8:30, 10:40] = 0  # a transparent window
    alpha[36:44, :] = 128  # a half-transparent band
    noise = np.random.default_rng(5).integers(0, 256, (22, 30, 3), dtype=np.uint8)
    rgb[8:30, 10:40] = noise  # what lies under the window is not seen over a background
    rgba = np.dstack([rgb, alpha])
    Image.fromarray(rgba, "RGBA").save(d / "photo.png")
    Image.fromarray(rgba, "RGBA").convert("RGB").save(d / "photo.jpg", quality=85)  # alpha dropped
    Image.fromarray(rgba, "RGBA").save(d / "photo.webp", quality=90)  # lossy, alpha kept, exact=False
    return d


def numpy_read(path) -> tuple[np.ndarray, np.ndarray | None]:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGBA" if im.mode == "RGBA" else "RGB")).astype(np.float64) / 255.0
    return (arr[..., :3], arr[..., 3]) if arr.shape[2] == 4 else (arr, None)


def numpy_composite(rgb, a, bg):
    return rgb * a[..., None] + np.asarray(bg) * (1.0 - a[..., None])


def numpy_psnr(x, y, keep=None):
    se = (x - y) ** 2
    mse = se.mean() if keep is None else se[keep].mean()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    if array.dtype == np.uint8:
        array = array.astype(np.float64) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).permute(2, 0, 1)[None]


def test_files_have_the_properties_the_issue_describes(files):
    ref_rgb, ref_a = numpy_read(files / "photo.png")
    webp_rgb, webp_a = numpy_read(files / "photo.webp")
    assert numpy_read(files / "photo.jpg")[1] is None and webp_a is not None
    window = ref_a == 0
    assert np.abs(webp_rgb[window] - ref_rgb[window]).mean() > 0.05  # colour under transparency changed
    assert np.array_equal(webp_a, ref_a)  # WebP keeps alpha losslessly


@pytest.mark.parametrize("colour", ["white", "#336699"])
def test_composite_both_on_the_jpeg_borrows_the_reference_alpha(files, colour):
    bg = parse_alpha_color(colour)
    ref_rgb, ref_a = numpy_read(files / "photo.png")
    jpg_rgb, _ = numpy_read(files / "photo.jpg")
    r, d, mask = pair_arrays(decode_with_alpha(files / "photo.png"), decode_with_alpha(files / "photo.jpg"),
                             "composite-both", bg)
    assert mask is None
    np.testing.assert_allclose(r, numpy_composite(ref_rgb, ref_a, bg), atol=TOLERANCES["composite"])
    np.testing.assert_array_equal(reference_array(decode_with_alpha(files / "photo.png"), "composite-both", bg), r)
    np.testing.assert_allclose(d, numpy_composite(jpg_rgb, ref_a, bg), atol=TOLERANCES["composite"])
    expected = numpy_psnr(numpy_composite(ref_rgb, ref_a, bg), numpy_composite(jpg_rgb, ref_a, bg))
    got = float(psnr(as_tensor(r), as_tensor(d))[0])
    assert got == pytest.approx(expected, abs=TOLERANCES["psnr_db"])
    # the old --alpha white: only the reference is composited; the JPEG's window noise counts in full
    white_r, white_d, _ = pair_arrays(decode_with_alpha(files / "photo.png"), decode_with_alpha(files / "photo.jpg"),
                                      "white")
    uneven = numpy_psnr(numpy_composite(ref_rgb, ref_a, (1, 1, 1)), jpg_rgb)
    assert float(psnr(as_tensor(white_r), as_tensor(white_d))[0]) == pytest.approx(uneven, abs=TOLERANCES["psnr_db"])
    assert expected > uneven + 10  # treating both sides alike removes the invisible difference


def test_composite_both_on_the_webp_uses_each_sides_alpha(files):
    ref_rgb, ref_a = numpy_read(files / "photo.png")
    webp_rgb, webp_a = numpy_read(files / "photo.webp")
    r, d, _ = pair_arrays(decode_with_alpha(files / "photo.png"), decode_with_alpha(files / "photo.webp"),
                          "composite-both")
    np.testing.assert_allclose(d, numpy_composite(webp_rgb, webp_a, (1, 1, 1)), atol=TOLERANCES["composite"])
    both = numpy_psnr(numpy_composite(ref_rgb, ref_a, (1, 1, 1)), numpy_composite(webp_rgb, webp_a, (1, 1, 1)))
    assert float(psnr(as_tensor(r), as_tensor(d))[0]) == pytest.approx(both, abs=TOLERANCES["psnr_db"])
    drop_r, drop_d, _ = pair_arrays(decode_with_alpha(files / "photo.png"), decode_with_alpha(files / "photo.webp"),
                                    "drop")
    dropped = numpy_psnr(ref_rgb, webp_rgb)
    assert float(psnr(as_tensor(drop_r), as_tensor(drop_d))[0]) == pytest.approx(dropped, abs=TOLERANCES["psnr_db"])
    assert both > dropped + 5  # --alpha drop counts the encoder's changes under transparent pixels


@pytest.mark.parametrize("dist_name", ["photo.jpg", "photo.webp"])
def test_mask_scores_opaque_pixels_only(files, dist_name):
    ref_rgb, ref_a = numpy_read(files / "photo.png")
    dist_rgb, dist_a = numpy_read(files / dist_name)
    ref, dist = decode_with_alpha(files / "photo.png"), decode_with_alpha(files / dist_name)
    r, d, mask = pair_arrays(ref, dist, "mask")
    keep = (ref_a == 1.0) & (dist_a == 1.0 if dist_a is not None else True)
    np.testing.assert_array_equal(mask, keep)
    m = torch.from_numpy(mask)[None]
    # the masked metrics see the colours as stored on opaque pixels (compositing does not change them)
    mse = float(((ref_rgb - dist_rgb) ** 2)[keep].mean())
    assert float(masked_mse(as_tensor(r), as_tensor(d), m)[0]) == pytest.approx(mse, abs=TOLERANCES["mse"])
    assert float(masked_psnr(as_tensor(r), as_tensor(d), m)[0]) == pytest.approx(
        numpy_psnr(ref_rgb, dist_rgb, keep), abs=TOLERANCES["psnr_db"])


def test_masked_metrics_edge_cases():
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    none = torch.zeros(2, 5, 6, dtype=torch.bool)
    assert torch.isnan(masked_mse(x, x + 0.1, none)).all()
    every = torch.ones(2, 1, 5, 6)
    assert torch.isinf(masked_psnr(x, x, every)).all()
    y = (x + 0.05).clamp(0, 1)
    np.testing.assert_allclose(masked_psnr(x, y, every).numpy(), psnr(x, y).numpy(), atol=1e-9)
    with pytest.raises(ValueError, match="mask"):
        masked_mse(x, y, torch.ones(2, 4, 6))


def test_opaque_mask_without_alpha_is_none_and_16_bit_max_counts():
    assert opaque_mask(None, None) is None
    a16 = np.array([[65535, 65534]], np.uint16)
    np.testing.assert_array_equal(opaque_mask(a16, None), [[True, False]])


def test_decode_image_composites_over_the_alpha_colour(files):
    ref_rgb, ref_a = numpy_read(files / "photo.png")
    got = decode_image(files / "photo.png", alpha="composite-both", alpha_color=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(got, numpy_composite(ref_rgb, ref_a, (0, 0, 0)), atol=TOLERANCES["composite"])
    jpg = decode_image(files / "photo.jpg", alpha="mask")
    assert jpg.dtype == np.uint8  # no alpha: as stored


@pytest.mark.parametrize("policy", ALPHA_POLICIES)
def test_mismatch_warning_names_the_policy(policy):
    assert alpha_mismatch_warning(True, True, policy) is None and alpha_mismatch_warning(False, False, policy) is None
    for ref_has, dist_has in ((True, False), (False, True)):
        text = alpha_mismatch_warning(ref_has, dist_has, policy)
        assert f"--alpha {policy}" in text and "\n" not in text
        assert ("the reference has an alpha channel" in text) is ref_has


def test_alpha_colour_parsing():
    assert parse_alpha_color("white") == (1.0, 1.0, 1.0)
    assert parse_alpha_color("#ff0000") == (1.0, 0.0, 0.0)
    assert parse_alpha_color("0, 128,255") == (0.0, 128 / 255, 1.0)
    for bad in ("purple", "#12345", "1,2", "0,0,256", "#gg0000"):
        with pytest.raises(UsageError, match="--alpha-color"):
            parse_alpha_color(bad)
