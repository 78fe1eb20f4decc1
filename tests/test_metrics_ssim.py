"""SSIM family against scikit-image, pytorch-msssim and an independent MATLAB-style downsampler."""

from __future__ import annotations

import importlib
import io
import math

import numpy as np
import pytest
import torch

from lpipscli.errors import MetricInputError
from lpipscli.metrics.ssim import (
    matlab_downsample_factor,
    ms_ssim,
    ssim,
    ssim_matlab,
    ssim_y,
)

# the package re-exports the function `ssim`, which shadows the submodule attribute
ssim_module = importlib.import_module("lpipscli.metrics.ssim")

skimage_data = pytest.importorskip("skimage.data")
skimage_metrics = pytest.importorskip("skimage.metrics")

#: Absolute tolerances. Parity ones are the product requirement (inputs are float32, as the engine
#: passes them; references run in float64). Property ones only absorb float64 rounding.
TOLERANCES = {
    "ssim_vs_skimage": 1e-5,
    "ssim_y_vs_skimage": 1e-5,
    "ssim_matlab_vs_independent": 1e-5,
    "ms_ssim_vs_pytorch_msssim": 1e-5,
    # float64 inputs, and for MS-SSIM pytorch-msssim given a float64 window (its default window is built
    # in float32, which alone moves MS-SSIM by ~1e-6): only summation order is left.
    "float64_exact": 1e-10,
    "property": 1e-12,
    # the OpenCV (CPU) and torch paths: both float64, only the summation order differs
    "backends": 1e-12,
}


@pytest.fixture(params=["opencv", "torch"])
def backend(request, monkeypatch):
    """Run a test on both filtering paths (OpenCV on CPU, the torch path used on other devices)."""
    monkeypatch.setattr(ssim_module, "_BACKEND", request.param)
    return request.param

LUMA = (0.299, 0.587, 0.114)


# ---------------------------------------------------------------- inputs built here, never read from disk
def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(pil.open(buffer))


def _noisy(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(image.dtype).max
    return np.clip(image + rng.normal(0.0, std, image.shape), 0, top).round().astype(image.dtype)


def _as_unit(array: np.ndarray) -> np.ndarray:
    """Integer image -> float64 in [0, 1] by its bit depth (the product's one conversion)."""
    return array.astype(np.float64) / np.iinfo(array.dtype).max


def _tensor(array: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` integer image -> ``(1, C, H, W)`` tensor in [0, 1]."""
    unit = torch.from_numpy(_as_unit(array))
    unit = unit[None, None] if unit.ndim == 2 else unit.permute(2, 0, 1)[None]
    return unit.to(dtype)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    astronaut = skimage_data.astronaut()
    camera = skimage_data.camera()
    rng = np.random.default_rng(7)
    crop = np.ascontiguousarray(astronaut[3:160, 11:214])  # 157 x 203, odd sides
    gray = np.ascontiguousarray(camera[40:171, 200:297])  # 131 x 97
    # nearly flat: a faint ramp near white with 1-LSB noise (tiny variances next to C2)
    _, cols = np.mgrid[0:61, 0:73]
    flat = (230 + 0.05 * cols + rng.integers(0, 2, cols.shape)).astype(np.uint8)
    flat_dist = np.clip(flat.astype(int) + rng.integers(-1, 2, flat.shape), 0, 255).astype(np.uint8)
    # 16-bit-derived data (values k / 65535), with small differences
    deep = (crop[:101, :120].astype(np.uint16) * 257 + rng.integers(0, 257, (101, 120, 3))).astype(np.uint16)
    deep_dist = np.clip(deep.astype(int) + rng.integers(-60, 61, deep.shape), 0, 65535).astype(np.uint16)
    flat16 = (60000 + rng.integers(0, 3, (45, 52))).astype(np.uint16)
    flat16_dist = (flat16 + rng.integers(0, 3, flat16.shape)).astype(np.uint16)
    return {
        "rgb_jpeg_odd": (crop, _jpeg(crop, 30)),
        "rgb_noise_odd": (crop, _noisy(crop, 6.0, seed=1)),
        "gray_jpeg_odd": (gray, _jpeg(gray, 50)),
        "gray_nearly_flat": (flat, flat_dist),
        "rgb_16bit": (deep, deep_dist),
        "gray_16bit_nearly_flat": (flat16, flat16_dist),
    }


CASES = _cases()


def _skimage_ssim(ref: np.ndarray, dist: np.ndarray) -> float:
    return skimage_metrics.structural_similarity(
        ref,
        dist,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2 if ref.ndim == 3 else None,
    )


def _luma(array: np.ndarray) -> np.ndarray:
    unit = _as_unit(array)
    if unit.ndim == 2:
        return unit
    return LUMA[0] * unit[..., 0] + LUMA[1] * unit[..., 1] + LUMA[2] * unit[..., 2]


# ---------------------------------------------------------------- parity
@pytest.mark.parametrize("case", sorted(CASES))
def test_ssim_matches_skimage(case, backend):
    ref, dist = CASES[case]
    expected = _skimage_ssim(_as_unit(ref), _as_unit(dist))
    got = ssim(_tensor(ref), _tensor(dist))
    assert got.shape == (1,)
    assert abs(got.item() - expected) <= TOLERANCES["ssim_vs_skimage"]
    exact = ssim(_tensor(ref, torch.float64), _tensor(dist, torch.float64))
    assert abs(exact.item() - expected) <= TOLERANCES["float64_exact"]


@pytest.mark.parametrize("case", ["rgb_jpeg_odd", "rgb_16bit", "gray_nearly_flat"])
def test_ssim_y_matches_skimage_on_luma(case):
    ref, dist = CASES[case]
    expected = _skimage_ssim(_luma(ref), _luma(dist))
    assert abs(ssim_y(_tensor(ref), _tensor(dist)).item() - expected) <= TOLERANCES["ssim_y_vs_skimage"]


def test_ssim_y_of_gray_is_ssim():
    ref, dist = CASES["gray_jpeg_odd"]
    x, y = _tensor(ref), _tensor(dist)
    assert torch.allclose(ssim_y(x, y), ssim(x, y), rtol=0, atol=TOLERANCES["property"])


def _matlab_round(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def _matlab_ssim_reference(ref: np.ndarray, dist: np.ndarray) -> float:
    """Wang's ssim.m written from its definition: luma, imfilter(ones(f)/f^2, 'symmetric', 'same'),
    img(1:f:end, 1:f:end), then Gaussian SSIM (scikit-image)."""
    y_ref, y_dist = _luma(ref), _luma(dist)
    rows, cols = y_ref.shape
    f = max(1, _matlab_round(min(rows, cols) / 256))

    def downsample(image):
        if f == 1:
            return image
        centre = (f + 1) // 2  # MATLAB's centre of an f-tap kernel (1-based)
        offsets = range(1 - centre, f - centre + 1)
        pad = f  # generous symmetric padding, then read shifted windows out of it
        padded = np.pad(image, pad, mode="symmetric")
        filtered = np.zeros_like(image)
        for dr in offsets:
            for dc in offsets:
                filtered += padded[pad + dr : pad + dr + rows, pad + dc : pad + dc + cols]
        filtered /= f * f
        return filtered[::f, ::f]

    return _skimage_ssim(downsample(y_ref), downsample(y_dist))


def _large_photo(rows: int, cols: int) -> np.ndarray:
    astronaut = skimage_data.astronaut()
    return np.pad(astronaut, ((0, max(0, rows - 512)), (0, max(0, cols - 512)), (0, 0)), mode="reflect")[:rows, :cols]


@pytest.mark.parametrize(("rows", "cols", "factor"), [(300, 300, 1), (400, 500, 2), (401, 387, 2), (700, 640, 3)])
def test_ssim_matlab_matches_independent_downsampling(rows, cols, factor):
    ref = _large_photo(rows, cols)
    dist = _jpeg(ref, 35)
    assert max(1, _matlab_round(min(rows, cols) / 256)) == factor  # the sizes cover f = 1, 2, 3
    expected = _matlab_ssim_reference(ref, dist)
    got = ssim_matlab(_tensor(ref), _tensor(dist))
    assert abs(got.item() - expected) <= TOLERANCES["ssim_matlab_vs_independent"]
    if factor > 1:  # the downsampling must matter, or this test proves nothing about it
        plain = ssim_y(_tensor(ref), _tensor(dist)).item()
        assert abs(plain - expected) > 100 * TOLERANCES["ssim_matlab_vs_independent"]


@pytest.mark.parametrize("side", [11, 255, 383, 384, 385, 639, 640, 767, 768, 895, 896, 1151, 1152])
def test_matlab_downsample_factor_rounds_half_away_from_zero(side):
    assert matlab_downsample_factor(side, side + 7) == max(1, _matlab_round(side / 256))


@pytest.mark.parametrize(("rows", "cols", "channels"), [(161, 161, 3), (200, 171, 3), (256, 256, 3), (163, 190, 1)])
def test_ms_ssim_matches_pytorch_msssim(rows, cols, channels, backend):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    ref = _large_photo(rows, cols)
    ref = ref if channels == 3 else np.ascontiguousarray(ref[..., 1])
    dist = _jpeg(ref, 20)
    expected = pytorch_msssim.ms_ssim(
        _tensor(ref, torch.float64), _tensor(dist, torch.float64), data_range=1.0, size_average=False
    )
    got = ms_ssim(_tensor(ref), _tensor(dist))
    assert got.shape == (1,)
    assert abs(got.item() - expected.item()) <= TOLERANCES["ms_ssim_vs_pytorch_msssim"]
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = torch.from_numpy(taps / taps.sum()).view(1, 1, 1, 11).repeat(channels, 1, 1, 1)
    x, y = _tensor(ref, torch.float64), _tensor(dist, torch.float64)
    exact = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win=window)
    assert abs(ms_ssim(x, y).item() - exact.item()) <= TOLERANCES["float64_exact"]


def test_ms_ssim_refuses_160_with_a_clear_message():
    ref = _tensor(_large_photo(160, 200))
    with pytest.raises(MetricInputError, match=r"ms_ssim.*161x161.*200x160"):
        ms_ssim(ref, ref)


# ---------------------------------------------------------------- properties
def _pair(rows=37, cols=29, channels=3, batch=1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ref = torch.rand(batch, channels, rows, cols, generator=generator)
    dist = (ref + 0.2 * torch.rand(batch, channels, rows, cols, generator=generator)).clamp(0, 1)
    return ref, dist


@pytest.mark.parametrize("fn", [ssim, ssim_y, ssim_matlab])
def test_identity_symmetry_and_dtype(fn):
    ref, dist = _pair()
    assert torch.allclose(fn(ref, ref), torch.ones(1, dtype=torch.float64), rtol=0, atol=TOLERANCES["property"])
    forward, backward = fn(ref, dist), fn(dist, ref)
    assert forward.item() < 0.99
    assert torch.allclose(forward, backward, rtol=0, atol=TOLERANCES["property"])
    assert forward.dtype == torch.float64
    assert fn(ref.double(), dist.double()).dtype == torch.float64


def test_ms_ssim_identity_and_symmetry():
    ref, dist = _pair(rows=161, cols=170)
    assert torch.allclose(ms_ssim(ref, ref), torch.ones(1, dtype=torch.float64), rtol=0, atol=TOLERANCES["property"])
    assert torch.allclose(ms_ssim(ref, dist), ms_ssim(dist, ref), rtol=0, atol=TOLERANCES["property"])


@pytest.mark.parametrize("fn", [ssim, ssim_y, ms_ssim])
def test_batched_equals_per_image_loop(fn, backend):
    side = 161 if fn is ms_ssim else 23
    ref, dist = _pair(rows=side, cols=side + 2, batch=3, seed=3)
    batched = fn(ref, dist)
    looped = torch.cat([fn(ref[i : i + 1], dist[i : i + 1]) for i in range(3)])
    assert batched.shape == (3,)
    assert torch.allclose(batched, looped, rtol=0, atol=TOLERANCES["property"])
    assert len(set(batched.tolist())) == 3  # the three pairs really differ


def test_scale_invariance_with_data_range():
    ref, dist = (x.double() for x in _pair())  # x * 255 is exact in float64
    assert torch.allclose(
        ssim(ref * 255, dist * 255, data_range=255.0), ssim(ref, dist), rtol=0, atol=TOLERANCES["property"]
    )


@pytest.mark.parametrize("fn", [ssim, ssim_y, ssim_matlab])
def test_too_small_is_an_error_naming_metric_size_and_minimum(fn):
    ref, _ = _pair(rows=7, cols=7)
    name = fn.__name__
    with pytest.raises(MetricInputError, match=rf"^{name} .*11x11.*7x7"):
        fn(ref, ref)
    ref, dist = _pair(rows=11, cols=11)
    value = fn(ref, dist)
    assert value.shape == (1,) and torch.isfinite(value).all()


def test_non_square_small_side_is_refused():
    ref, _ = _pair(rows=40, cols=10)
    with pytest.raises(MetricInputError, match="10x40"):
        ssim(ref, ref)


@pytest.mark.parametrize(("fn", "channels"), [(ssim, 3), (ssim, 1), (ssim_y, 3)])
def test_return_map_covers_the_valid_region_and_averages_to_the_score(fn, channels):
    ref, dist = _pair(rows=31, cols=24, channels=channels, batch=2)
    value, ssim_map = fn(ref, dist, return_map=True)
    assert value.shape == (2,)
    assert ssim_map.shape == (2, 1, 31 - 10, 24 - 10)
    assert torch.allclose(ssim_map.mean(dim=(1, 2, 3)), value, rtol=0, atol=TOLERANCES["property"])
    assert torch.equal(value, fn(ref, dist))


def test_ssim_matlab_map_is_on_the_downsampled_grid():
    ref, dist = _pair(rows=400, cols=391, channels=3)  # f = 2
    value, ssim_map = ssim_matlab(ref, dist, return_map=True)
    assert ssim_map.shape == (1, 1, 200 - 10, 196 - 10)
    assert torch.allclose(ssim_map.mean(dim=(1, 2, 3)), value, rtol=0, atol=TOLERANCES["property"])


def test_rejects_bad_inputs():
    ref, dist = _pair()
    with pytest.raises(MetricInputError):
        ssim(ref, dist[..., :-1])
    with pytest.raises(MetricInputError):
        ssim(ref, dist, kernel_size=10)
    with pytest.raises(MetricInputError):
        ssim(ref, dist, data_range=0.0)


# ---------------------------------------------------------------- the two filtering paths
@pytest.mark.parametrize("fn", [ssim, ssim_y, ssim_matlab])
def test_opencv_and_torch_paths_agree_with_maps(fn, monkeypatch):
    ref, dist = _pair(rows=41, cols=50, batch=3, seed=5)
    monkeypatch.setattr(ssim_module, "_BACKEND", "opencv")
    fast, fast_map = fn(ref, dist, return_map=True)
    monkeypatch.setattr(ssim_module, "_BACKEND", "torch")
    slow, slow_map = fn(ref, dist, return_map=True)
    assert fast_map.shape == slow_map.shape == (3, 1, 31, 40)
    torch.testing.assert_close(fast, slow, rtol=0, atol=TOLERANCES["backends"])
    torch.testing.assert_close(fast_map, slow_map, rtol=0, atol=TOLERANCES["backends"])


def test_ms_ssim_paths_agree(monkeypatch):
    ref, dist = _pair(rows=171, cols=165, batch=2, seed=6)
    monkeypatch.setattr(ssim_module, "_BACKEND", "opencv")
    fast = ms_ssim(ref, dist)
    monkeypatch.setattr(ssim_module, "_BACKEND", "torch")
    torch.testing.assert_close(fast, ms_ssim(ref, dist), rtol=0, atol=TOLERANCES["backends"])


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_count_does_not_change_values(threads, monkeypatch):
    ref, dist = _pair(rows=30, cols=33, batch=4, seed=8)
    monkeypatch.setattr(ssim_module, "_BACKEND", "opencv")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        value, value_map = ssim(ref, dist, return_map=True)
    finally:
        torch.set_num_threads(before)
    want, want_map = ssim(ref, dist, return_map=True)
    assert torch.equal(value, want) and torch.equal(value_map, want_map)


def test_inputs_that_need_gradients_get_the_differentiable_path():
    ref, dist = _pair(rows=24, cols=24, seed=9)
    dist = dist.double().requires_grad_(True)
    value = ssim(ref.double(), dist)
    value.sum().backward()
    assert dist.grad is not None and dist.grad.abs().sum() > 0


def test_memory_layout_does_not_matter():
    ref, dist = _pair(rows=40, cols=51, batch=2, seed=10)
    want = ssim(ref, dist)
    last = (t.contiguous(memory_format=torch.channels_last) for t in (ref, dist))
    assert torch.equal(ssim(*last), want)
    wide_ref, wide_dist = (torch.cat([t, t], dim=-1) for t in (ref, dist))
    assert torch.equal(ssim(wide_ref[..., :51], wide_dist[..., :51]), want)  # strided views
    assert torch.equal(ref, _pair(rows=40, cols=51, batch=2, seed=10)[0])  # input untouched


@pytest.mark.parametrize("strip_pixels", [1, 45, 1 << 16])
def test_strips_do_not_change_values(monkeypatch, strip_pixels):
    """The OpenCV path cuts planes into strips of output rows (1 px: one row per strip)."""
    ref, dist = _pair(rows=37, cols=45, batch=2, seed=11)
    monkeypatch.setattr(ssim_module, "_BACKEND", "torch")
    want, want_map = ssim(ref, dist, return_map=True)
    want_ms = ms_ssim(*_pair(rows=170, cols=161, seed=12))
    monkeypatch.setattr(ssim_module, "_BACKEND", "opencv")
    monkeypatch.setattr(ssim_module, "_STRIP_PIXELS", strip_pixels)
    got, got_map = ssim(ref, dist, return_map=True)
    torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCES["backends"])
    torch.testing.assert_close(got_map, want_map, rtol=0, atol=TOLERANCES["backends"])
    torch.testing.assert_close(ms_ssim(*_pair(rows=170, cols=161, seed=12)), want_ms, rtol=0,
                               atol=TOLERANCES["backends"])


# ---------------------------------------------------------------- shared references (ref_index) and the runner
def _indexed_cases():
    """Three references with 4, 1 and 10 distorted images (the 10 split into OpenCV work groups)."""
    crop_ref, crop_dist = CASES["rgb_jpeg_odd"]
    deep_ref, deep_dist = CASES["rgb_16bit"]
    flat_ref, flat_dist = CASES["gray_nearly_flat"]
    flat16_ref, flat16_dist = CASES["gray_16bit_nearly_flat"]
    return {
        "rgb_8bit_odd": (crop_ref, [crop_dist, _noisy(crop_ref, 6.0, 2), crop_ref, _jpeg(crop_ref, 70)]),
        "rgb_16bit": (deep_ref, [deep_dist]),
        "gray_nearly_flat_10": (flat_ref, [flat_dist] + [_noisy(flat_ref, s, 10 + s) for s in range(1, 10)]),
        "gray_16bit_nearly_flat": (flat16_ref, [flat16_dist, flat16_ref, _noisy(flat16_ref, 1.0, 3)]),
    }


INDEXED = _indexed_cases()


@pytest.mark.parametrize("case", sorted(INDEXED))
def test_ref_index_matches_skimage_per_pair(case, backend):
    ref, dists = INDEXED[case]
    refs = torch.cat([_tensor(ref, torch.float64)] * 2)  # the second copy is never indexed
    dist = torch.cat([_tensor(d, torch.float64) for d in dists])
    index = torch.zeros(len(dists), dtype=torch.long)
    got = ssim(refs, dist, ref_index=index)
    expected = [_skimage_ssim(_as_unit(ref), _as_unit(d)) for d in dists]
    assert got.shape == (len(dists),)
    assert np.abs(got.numpy() - expected).max() <= TOLERANCES["float64_exact"]
    assert len({round(v, 12) for v in expected}) > 1 or len(dists) == 1  # the pairs really differ


def test_ref_index_interleaved_references_strips_and_maps(monkeypatch, backend):
    """Several references in any order, strips of a few rows, maps: equal to the expanded batch."""
    ref, dist = _pair(rows=37, cols=45, batch=7, seed=13)
    refs = ref[:3].double()
    index = torch.tensor([2, 0, 2, 1, 0, 2, 2])
    monkeypatch.setattr(ssim_module, "_STRIP_PIXELS", 70)  # two rows of output per strip
    monkeypatch.setattr(ssim_module, "_GROUP", 2)
    for fn in (ssim, ssim_y):
        value, value_map = fn(refs, dist, ref_index=index, return_map=True)
        want, want_map = fn(refs.index_select(0, index), dist, return_map=True)
        torch.testing.assert_close(value, want, rtol=0, atol=TOLERANCES["backends"])
        torch.testing.assert_close(value_map, want_map, rtol=0, atol=TOLERANCES["backends"])
    value = ssim_matlab(refs, dist, ref_index=index)
    torch.testing.assert_close(value, ssim_matlab(refs.index_select(0, index), dist), rtol=0,
                               atol=TOLERANCES["backends"])


def test_ref_index_thread_count_does_not_change_values(monkeypatch):
    """One thread takes a reference's images in one work item, three threads in parts (one of a single image)."""
    ref, dist = _pair(rows=30, cols=33, batch=8, seed=14)
    index = torch.tensor([0, 0, 1, 0, 0, 0, 0, 0])
    monkeypatch.setattr(ssim_module, "_BACKEND", "opencv")
    monkeypatch.setattr(ssim_module, "_GROUP", 2)  # 7 images of reference 0 -> parts of 1, 2, 2, 2
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(ssim(ref[:2], dist, ref_index=index, return_map=True))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_ref_index_is_checked():
    ref, dist = _pair(batch=3)
    with pytest.raises(MetricInputError, match="out of range"):
        ssim(ref[:2], dist, ref_index=torch.tensor([0, 1, 2]))
    with pytest.raises(MetricInputError, match="one entry per distorted image"):
        ssim(ref[:2], dist, ref_index=torch.tensor([0, 1]))
    with pytest.raises(MetricInputError, match="integer"):
        ssim(ref[:2], dist, ref_index=torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(MetricInputError, match="shapes differ"):
        ssim(ref[:2, :, :-1], dist, ref_index=torch.tensor([0, 1, 1]))
    with pytest.raises(MetricInputError, match=r"ssim_y .*11x11"):
        small_ref, small_dist = _pair(rows=7, cols=7, batch=2)
        ssim_y(small_ref[:1], small_dist, ref_index=torch.tensor([0, 0]))


@pytest.mark.parametrize("key", ["ssim", "ssim_y", "ssim_matlab"])
def test_registry_runner_scores_shared_references_like_skimage(key):
    """What the engine calls: each reference once, ``ref_index`` per pair, maps on request."""
    from lpipscli.metrics import REGISTRY

    crop_ref, _ = CASES["rgb_jpeg_odd"]
    refs_np = [crop_ref, np.ascontiguousarray(crop_ref[::-1])]
    dists_np = [_jpeg(refs_np[0], 30), _noisy(refs_np[1], 5.0, 4), _jpeg(refs_np[0], 60), refs_np[1]]
    index = torch.tensor([0, 1, 0, 1])
    runner, records = REGISTRY[key].build(torch.device("cpu"), allow_unverified=False)
    assert records == []
    ref = torch.cat([_tensor(r, torch.float64) for r in refs_np])
    dist = torch.cat([_tensor(d, torch.float64) for d in dists_np])
    values = runner(ref, dist, index)
    pairs = [(refs_np[i], d) for i, d in zip(index.tolist(), dists_np, strict=True)]
    if key == "ssim":
        expected = [_skimage_ssim(_as_unit(r), _as_unit(d)) for r, d in pairs]
    elif key == "ssim_y":
        expected = [_skimage_ssim(_luma(r), _luma(d)) for r, d in pairs]
    else:
        expected = [_matlab_ssim_reference(r, d) for r, d in pairs]
    assert np.abs(values.numpy() - expected).max() <= TOLERANCES["float64_exact"]
    assert values[3].item() == pytest.approx(1.0, abs=TOLERANCES["property"])
    if key != "ssim_matlab":
        with_map, maps = runner(ref, dist, index, with_map=True)
        assert torch.equal(with_map, values) and maps.shape == (4, 1, 157 - 10, 203 - 10)
    identity = runner(ref.index_select(0, index), dist, None)
    torch.testing.assert_close(identity, values, rtol=0, atol=TOLERANCES["backends"])


def test_identical_images_score_exactly_one(backend):
    """Exactly 1.0, not 1 - 1ulp: 2AFC ties and gates compare scores for equality."""
    ref, dist = _pair(rows=40, cols=37, batch=3, seed=15)
    refs = ref[:2].double()
    index = torch.tensor([0, 1, 0])
    same = refs.index_select(0, index).clone()
    same[2, 1] = dist[2, 1]  # one channel differs: the other two count exactly 1 per pixel
    value, value_map = ssim(refs, same, ref_index=index, return_map=True)
    assert value[:2].tolist() == [1.0, 1.0] and value[2].item() < 1.0
    assert bool((value_map[:2] == 1.0).all())
    assert ssim(same[:1], same[:1]).item() == 1.0  # one reference, one image
    assert ssim_y(refs, refs.index_select(0, index), ref_index=index).tolist() == [1.0] * 3
    big = _pair(rows=161, cols=170, seed=16)[0].double()
    assert ms_ssim(big, big.clone()).item() == 1.0


# ---------------------------------------------------------------- integer samples (the runner's ``scale``)
def _samples(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` integer image -> ``(1, C, H, W)`` integer tensor (no scaling)."""
    tensor = torch.from_numpy(array.astype(np.int64))
    tensor = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    return tensor.to(dtype)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("key", ["ssim", "ssim_y"])
def test_runner_scores_integer_samples_like_skimage(case, key, backend):
    """``runner(..., scale=...)`` on decoded samples (uint8; 16-bit as uint16 and as the engine's int32) gives
    scikit-image's float64 value on ``k / scale`` and the float64 input's value to rounding."""
    from lpipscli.metrics import REGISTRY

    ref_np, dist_np = CASES[case]
    full = float(np.iinfo(ref_np.dtype).max)
    runner, _ = REGISTRY[key].build(torch.device("cpu"), allow_unverified=False)
    assert runner.takes_samples
    if key == "ssim":
        expected = _skimage_ssim(_as_unit(ref_np), _as_unit(dist_np))
    else:
        expected = _skimage_ssim(_luma(ref_np), _luma(dist_np))
    floats = runner(_tensor(ref_np, torch.float64), _tensor(dist_np, torch.float64), None)
    dtypes = [torch.uint8, torch.int32] if ref_np.dtype == np.uint8 else [torch.uint16, torch.int32]
    for dtype in dtypes:
        got = runner(_samples(ref_np, dtype), _samples(dist_np, dtype), None, scale=full)
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert abs(got.item() - expected) <= TOLERANCES["float64_exact"], dtype
        torch.testing.assert_close(got, floats, rtol=0, atol=TOLERANCES["backends"])


def test_runner_integer_samples_shared_references_maps_and_10_bit(backend, monkeypatch):
    """Shared references, strips of a few rows, maps, and a 10-bit scale (1023): as the float64 inputs."""
    from lpipscli.metrics import REGISTRY

    rng = np.random.default_rng(21)
    refs_np = rng.integers(0, 1024, (2, 3, 37, 45))
    dists_np = np.clip(refs_np[[0, 1, 0, 0]] + rng.integers(-40, 41, (4, 3, 37, 45)), 0, 1023)
    dists_np[3] = refs_np[0]  # identical: exactly 1
    index = torch.tensor([0, 1, 0, 0])
    runner, _ = REGISTRY["ssim"].build(torch.device("cpu"), allow_unverified=False)
    monkeypatch.setattr(ssim_module, "_STRIP_PIXELS", 70)
    refs, dists = torch.from_numpy(refs_np).to(torch.int32), torch.from_numpy(dists_np).to(torch.int32)
    got, got_map = runner(refs, dists, index, with_map=True, scale=1023)
    want, want_map = runner(refs.double() / 1023, dists.double() / 1023, index, with_map=True)
    torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCES["backends"])
    torch.testing.assert_close(got_map, want_map, rtol=0, atol=TOLERANCES["backends"])
    assert got[3].item() == 1.0
    expected = [_skimage_ssim(refs_np[i].transpose(1, 2, 0) / 1023, dists_np[p].transpose(1, 2, 0) / 1023)
                for p, i in enumerate(index.tolist())]
    assert np.abs(got.numpy() - expected).max() <= TOLERANCES["float64_exact"]


def test_runner_integer_samples_are_checked():
    from lpipscli.metrics import REGISTRY

    runner, _ = REGISTRY["ssim"].build(torch.device("cpu"), allow_unverified=False)
    ref, dist = _pair(rows=20, cols=20)
    with pytest.raises(MetricInputError, match="integer sample tensors"):
        runner(ref, dist, None, scale=255)
    samples = (ref * 255).round().to(torch.uint8)
    with pytest.raises(MetricInputError, match="scale must be positive"):
        runner(samples, samples, None, scale=0)
    with pytest.raises(MetricInputError, match="11x11"):
        runner(samples[..., :7, :7], samples[..., :7, :7], None, scale=255)


@pytest.mark.parametrize(("rows", "cols"), [(11, 11), (11, 14), (14, 11), (12, 15)])
def test_tiny_valid_regions_match_skimage(rows, cols, backend):
    """1x1, 1x4, 4x1 and 2x5 maps: OpenCV takes arrays of up to four elements for scalars in its arithmetic
    with a scalar operand (a 1x1 map plus C1 came back 4x1), so no map operation may take one."""
    rng = np.random.default_rng(rows * 100 + cols)
    ref = rng.integers(0, 256, (rows, cols, 3)).astype(np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8)
    expected = _skimage_ssim(_as_unit(ref), _as_unit(dist))
    got, got_map = ssim(_tensor(ref, torch.float64), _tensor(dist, torch.float64), return_map=True)
    assert got_map.shape == (1, 1, rows - 10, cols - 10)
    assert abs(got.item() - expected) <= TOLERANCES["float64_exact"]
    runner, _ = ssim_module.ssim_runner(torch.device("cpu"))
    samples = runner(_samples(ref, torch.uint8), _samples(dist, torch.uint8), None, scale=255)
    assert abs(samples.item() - expected) <= TOLERANCES["float64_exact"]


def test_expanded_reference_is_scored_as_a_shared_one(backend):
    """A reference expanded over the batch (stride 0, as the engine's gathered references) scores as the copies."""
    ref, dist = _pair(rows=33, cols=40, batch=4, seed=22)
    one = ref[:1].double()
    expanded = one.expand(4, -1, -1, -1)
    got, got_map = ssim(expanded, dist, return_map=True)
    want, want_map = ssim(expanded.contiguous(), dist, return_map=True)
    torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCES["backends"])
    torch.testing.assert_close(got_map, want_map, rtol=0, atol=TOLERANCES["backends"])
    expected = [_skimage_ssim(one[0].permute(1, 2, 0).numpy(), d.double().permute(1, 2, 0).numpy()) for d in dist]
    assert np.abs(got.numpy() - expected).max() <= TOLERANCES["float64_exact"]
