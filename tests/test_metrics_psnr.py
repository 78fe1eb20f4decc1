"""PSNR, PSNR-Y, MSE and L1 against scikit-image and NumPy written from the definitions."""

from __future__ import annotations

import importlib
import io
import warnings

import numpy as np
import pytest
import torch

from lpipscli.errors import MetricInputError
from lpipscli.metrics.psnr import l1, luma601, mse, mse_samples, psnr, psnr_samples, psnr_y

skimage_data = pytest.importorskip("skimage.data")
skimage_metrics = pytest.importorskip("skimage.metrics")

#: Absolute tolerances (dB for PSNR). 16-bit parity needs float64 inputs: float32 cannot hold k / 65535
#: exactly, which moves the PSNR of nearly identical 16-bit images by up to ~1e-4 dB.
TOLERANCES = {
    "psnr_vs_skimage": 1e-6,
    "psnr_y_vs_skimage": 1e-6,
    "mse_l1_vs_numpy": 1e-12,
    "property": 1e-12,
    # MSE of integer samples (exact SSE, one rounding) against the float64 [0, 1] arrays, relative
    "samples_mse_rel": 1e-13,
}

LUMA = (0.299, 0.587, 0.114)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(pil.open(buffer))


def _tensor(array: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` integer image -> ``(1, C, H, W)`` tensor in [0, 1] by its bit depth."""
    unit = torch.from_numpy(array.astype(np.float64) / np.iinfo(array.dtype).max)
    unit = unit[None, None] if unit.ndim == 2 else unit.permute(2, 0, 1)[None]
    return unit.to(dtype)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    crop = np.ascontiguousarray(skimage_data.astronaut()[:121, 5:144])  # 121 x 139
    gray = np.ascontiguousarray(skimage_data.camera()[100:177, 60:161])
    deep = (crop.astype(np.uint16) * 257 + rng.integers(0, 257, crop.shape)).astype(np.uint16)
    deep_dist = np.clip(deep.astype(int) + rng.integers(-3, 4, deep.shape), 0, 65535).astype(np.uint16)
    return {
        "rgb_jpeg": (crop, _jpeg(crop, 40)),
        "gray_jpeg": (gray, _jpeg(gray, 70)),
        "rgb_one_lsb": (crop, np.clip(crop.astype(int) + rng.integers(-1, 2, crop.shape), 0, 255).astype(np.uint8)),
        "rgb_16bit_small_error": (deep, deep_dist),
    }


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_psnr_matches_skimage_on_integer_data(case):
    ref, dist = CASES[case]
    peak = np.iinfo(ref.dtype).max
    expected = skimage_metrics.peak_signal_noise_ratio(ref, dist, data_range=peak)
    got = psnr(_tensor(ref), _tensor(dist))
    assert got.shape == (1,) and got.dtype == torch.float64
    assert abs(got.item() - expected) <= TOLERANCES["psnr_vs_skimage"]


@pytest.mark.parametrize("case", ["rgb_jpeg", "gray_jpeg"])
def test_psnr_of_float32_8bit_input_matches_skimage(case):
    """What the engine passes for 8-bit files: float32 k / 255."""
    ref, dist = CASES[case]
    expected = skimage_metrics.peak_signal_noise_ratio(ref, dist, data_range=255)
    got = psnr(_tensor(ref, torch.float32), _tensor(dist, torch.float32))
    assert abs(got.item() - expected) <= TOLERANCES["psnr_vs_skimage"]


def _luma(array: np.ndarray) -> np.ndarray:
    unit = array.astype(np.float64) / np.iinfo(array.dtype).max
    if unit.ndim == 2:
        return unit
    return LUMA[0] * unit[..., 0] + LUMA[1] * unit[..., 1] + LUMA[2] * unit[..., 2]


@pytest.mark.parametrize("case", sorted(CASES))
def test_psnr_y_matches_skimage_on_luma(case):
    ref, dist = CASES[case]
    expected = skimage_metrics.peak_signal_noise_ratio(_luma(ref), _luma(dist), data_range=1.0)
    got = psnr_y(_tensor(ref), _tensor(dist))
    assert abs(got.item() - expected) <= TOLERANCES["psnr_y_vs_skimage"]


def test_luma601_weights_and_gray_passthrough():
    ref, _ = CASES["rgb_jpeg"]
    expected = torch.from_numpy(_luma(ref))[None, None]
    assert torch.allclose(luma601(_tensor(ref)), expected, rtol=0, atol=TOLERANCES["property"])
    gray = _tensor(CASES["gray_jpeg"][0])
    assert luma601(gray) is gray
    assert torch.equal(psnr_y(gray, gray * 0.5), psnr(gray, gray * 0.5))


@pytest.mark.parametrize("case", ["rgb_jpeg", "gray_jpeg", "rgb_16bit_small_error"])
def test_mse_and_l1_match_numpy(case):
    ref, dist = CASES[case]
    peak = np.iinfo(ref.dtype).max
    a, b = ref.astype(np.float64) / peak, dist.astype(np.float64) / peak
    x, y = _tensor(ref), _tensor(dist)
    assert abs(mse(x, y).item() - skimage_metrics.mean_squared_error(a, b)) <= TOLERANCES["mse_l1_vs_numpy"]
    assert abs(l1(x, y).item() - np.mean(np.abs(a - b))) <= TOLERANCES["mse_l1_vs_numpy"]


def test_identical_images_give_inf_without_warning():
    ref = _tensor(CASES["rgb_jpeg"][0], torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(ref, ref).item() == float("inf")
        assert psnr_y(ref, ref.clone()).item() == float("inf")
    assert mse(ref, ref).item() == 0.0 and l1(ref, ref).item() == 0.0


def _pair(batch=1, channels=3, rows=13, cols=17, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ref = torch.rand(batch, channels, rows, cols, generator=generator)
    dist = (ref + 0.1 * torch.randn(batch, channels, rows, cols, generator=generator)).clamp(0, 1)
    return ref, dist


@pytest.mark.parametrize("fn", [psnr, psnr_y, mse, l1])
def test_symmetry_batching_and_shape(fn):
    ref, dist = _pair(batch=3)
    batched = fn(ref, dist)
    assert batched.shape == (3,) and batched.dtype == torch.float64
    assert torch.allclose(batched, fn(dist, ref), rtol=0, atol=TOLERANCES["property"])
    looped = torch.cat([fn(ref[i : i + 1], dist[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, looped, rtol=0, atol=TOLERANCES["property"])
    assert len(set(batched.tolist())) == 3
    assert fn(ref[:1], dist[:1]).shape == (1,)


def test_batch_with_an_identical_pair_keeps_other_scores():
    ref, dist = _pair(batch=2)
    dist[1] = ref[1]
    values = psnr(ref, dist)
    assert values[1].item() == float("inf")
    assert torch.equal(values[:1], psnr(ref[:1], dist[:1]))


@pytest.mark.parametrize("fn", [psnr, psnr_y])
def test_return_map_is_the_squared_error(fn):
    ref, dist = _pair(batch=2)
    value, error_map = fn(ref, dist, return_map=True)
    assert error_map.shape == (2, 1, 13, 17)
    assert torch.allclose(10 * torch.log10(1.0 / error_map.mean(dim=(1, 2, 3))), value, rtol=0, atol=1e-9)
    if fn is psnr:
        expected = (ref.double() - dist.double()).square().mean(dim=1, keepdim=True)
        assert torch.allclose(error_map, expected, rtol=0, atol=TOLERANCES["property"])


def test_data_range_scales_like_the_definition():
    ref, dist = (x.double() for x in _pair())
    assert torch.allclose(psnr(ref * 255, dist * 255, data_range=255.0), psnr(ref, dist), rtol=0, atol=1e-9)


def test_rejects_bad_inputs():
    ref, dist = _pair()
    with pytest.raises(MetricInputError, match="psnr"):
        psnr(ref, dist[:, :, :-1])
    with pytest.raises(MetricInputError, match="data_range"):
        psnr(ref, dist, data_range=0.0)
    with pytest.raises(MetricInputError, match="psnr_y"):
        psnr_y(ref[0], dist[0])


# ---------------------------------------------------------------- the chunked CPU path
@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_mse_equals_the_plain_float64_expression(monkeypatch, chunk, dtype):
    psnr_module = importlib.import_module("lpipscli.metrics.psnr")
    monkeypatch.setattr(psnr_module, "_CHUNK_ELEMENTS", chunk)
    generator = torch.Generator().manual_seed(4)
    ref = torch.rand(3, 3, 19, 23, generator=generator, dtype=dtype)
    dist = (ref + 0.01 * torch.randn(ref.shape, generator=generator, dtype=dtype)).clamp(0, 1)
    ref_before, dist_before = ref.clone(), dist.clone()
    plain = (ref.double() - dist.double()).square().mean(dim=(1, 2, 3))
    torch.testing.assert_close(mse(ref, dist), plain, rtol=1e-13, atol=0)
    torch.testing.assert_close(psnr(ref, dist), 10 * torch.log10(1.0 / plain), rtol=0, atol=1e-10)
    assert torch.equal(ref, ref_before) and torch.equal(dist, dist_before)  # inputs never written


# --------------------------------------------------------------------------------------------------
# integer samples (the engine's path for decoded pixels)


def _samples(array: np.ndarray) -> torch.Tensor:
    """``(H, W[, C])`` integer image -> ``(1, C, H, W)`` tensor of its samples as the engine holds them
    (uint8 stays uint8, wider samples become int32)."""
    tensor = torch.from_numpy(array.astype(np.uint8 if array.dtype == np.uint8 else np.int32))
    return tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("case", sorted(CASES))
def test_psnr_and_mse_of_samples_match_skimage(case):
    ref, dist = CASES[case]
    full = float(np.iinfo(ref.dtype).max)
    got_psnr = float(psnr_samples(_samples(ref), _samples(dist), scale=full)[0])
    want = skimage_metrics.peak_signal_noise_ratio(ref, dist, data_range=full)
    assert abs(got_psnr - want) <= TOLERANCES["psnr_vs_skimage"]
    got_mse = float(mse_samples(_samples(ref), _samples(dist), scale=full)[0])
    want_mse = skimage_metrics.mean_squared_error(ref / full, dist / full)
    assert got_mse == pytest.approx(want_mse, rel=TOLERANCES["samples_mse_rel"], abs=0)


def test_samples_follow_ref_index_and_a_10bit_scale():
    """Each distorted image is compared with the reference ``ref_index`` names; 10-bit video samples
    (int32, full scale 1023) give the PSNR of ``k / 1023``."""
    rng = np.random.default_rng(3)
    refs = rng.integers(0, 1024, (2, 3, 17, 23)).astype(np.int32)
    index = [1, 0, 1, 1]
    dists = np.clip(refs[index] + rng.integers(-9, 10, refs[index].shape), 0, 1023).astype(np.int32)
    got = psnr_samples(torch.from_numpy(refs), torch.from_numpy(dists), torch.tensor(index), scale=1023.0)
    want = [skimage_metrics.peak_signal_noise_ratio(refs[r] / 1023, d / 1023, data_range=1.0)
            for r, d in zip(index, dists, strict=True)]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=TOLERANCES["psnr_vs_skimage"])
    floats = psnr(torch.from_numpy(refs[index] / 1023), torch.from_numpy(dists / 1023))
    np.testing.assert_allclose(got.numpy(), floats.numpy(), rtol=0, atol=TOLERANCES["property"])


def test_samples_of_identical_images_give_inf_and_data_range_applies():
    image = _samples(CASES["rgb_jpeg"][0])
    assert torch.isinf(psnr_samples(image, image.clone(), scale=255.0)).all()
    ref, dist = (_samples(a) for a in CASES["rgb_jpeg"])
    base = float(psnr_samples(ref, dist, scale=255.0)[0])
    doubled = float(psnr_samples(ref, dist, scale=255.0, data_range=2.0)[0])
    assert doubled - base == pytest.approx(20 * np.log10(2.0), abs=TOLERANCES["property"])
    assert float(mse_samples(image, image.clone(), scale=255.0)[0]) == 0.0


def test_samples_reject_floats_bad_scales_and_non_cpu_tensors():
    ref, dist = (_samples(a) for a in CASES["rgb_jpeg"])
    with pytest.raises(MetricInputError, match="integer sample"):
        psnr_samples(ref.double(), dist.double(), scale=255.0)
    with pytest.raises(MetricInputError, match="scale must be positive"):
        mse_samples(ref, dist, scale=0.0)
    with pytest.raises(MetricInputError, match="data_range"):
        psnr_samples(ref, dist, scale=255.0, data_range=0.0)
    with pytest.raises(MetricInputError, match="shapes differ"):
        psnr_samples(ref, dist[..., 1:], scale=255.0)
    meta = torch.empty(ref.shape, dtype=torch.uint8, device="meta")
    with pytest.raises(MetricInputError, match="on the CPU"):
        psnr_samples(meta, meta, scale=255.0)

