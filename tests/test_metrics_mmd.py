"""Patch-MMD family (``mmd``, ``mmd_rff``, ``mmd_pp``) against NumPy float64 implementations of METRICS.md
section 6 written here from the definition (loops over windows, SciPy pairwise distances)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from skimage import data

from lpipscli.errors import MetricInputError, UsageError
from lpipscli.metrics.mmd import (
    MIN_SIDE,
    MMD_DEFAULTS,
    MMD_PP_DEFAULTS,
    MMD_RFF_DEFAULTS,
    PROVENANCE,
    mmd,
    mmd_pp,
    mmd_rff,
)

TOLERANCES = {
    # relative agreement of the float64 torch code with the float64 NumPy definition
    "mmd_vs_numpy_rtol": 1e-6,
    "rff_vs_numpy_rtol": 1e-9,
    "mmd_pp_vs_numpy_rtol": 1e-9,
    # float32 against float64 (cancellation in |a|^2 + |b|^2 - 2ab, sums of 1e6 kernel values)
    "float32_vs_float64_rtol": 1e-5,
    # batch composition, symmetry (float32: different summation orders only)
    "batch_rtol": 1e-6,
    "symmetry_rtol_f64": 1e-12,
    # RFF vs exact: relative RMS error over seeds at r=2048 (unbiased, ~1/sqrt(r) scale), and the ratio
    # of RMS errors r=128 / r=2048, expected sqrt(16) = 4 if the error shrinks like 1/sqrt(r)
    "rff_rms_rel_err_r2048": 0.06,
    "rff_rms_ratio": (2.5, 6.5),
    # CUDA vs CPU (same features, float32)
    "cuda_rtol": 1e-4,
}


# --------------------------------------------------------------------------------------------------
# inputs


def _pair(height: int, width: int, channels: int, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` crops of a natural image and a noisy, slightly shifted version, float64 in [0, 1]."""
    rng = np.random.default_rng(seed)
    src = data.astronaut() if channels == 3 else data.camera()[..., None]
    src = src.astype(np.float64) / 255.0
    refs, dists = [], []
    for k in range(n):
        top, left = 60 + 70 * k, 150 + 50 * k
        ref = src[top : top + height, left : left + width]
        dist = src[top + 1 : top + 1 + height, left : left + width] * 0.9 + 0.05
        dist = np.clip(dist + rng.normal(0, 0.04, dist.shape), 0, 1)
        refs.append(ref.transpose(2, 0, 1))
        dists.append(dist.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(refs)), torch.from_numpy(np.stack(dists))


# --------------------------------------------------------------------------------------------------
# NumPy float64 definitions (METRICS.md section 6)


def _np_signed_rgb(img: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(3, H, W)`` in [-1, 1]."""
    img = 2.0 * img - 1.0
    return np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img


def _np_patches(img: np.ndarray, p: int, normalize: str) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W, C*p*p)`` reflect-padded patches, components ordered (c, i, j)."""
    c, h, w = img.shape
    r = p // 2
    padded = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.empty((h, w, c, p, p))
    for i in range(p):
        for j in range(p):
            out[:, :, :, i, j] = padded[:, i : i + h, j : j + w].transpose(1, 2, 0)
    if normalize == "channel_mean":
        out -= out.mean(axis=(3, 4), keepdims=True)
    return out.reshape(h, w, c * p * p)


def _np_windows(side: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of every window along one side; one whole-side window for a short side."""
    if side < window:
        return [(0, side)]
    return [(s, window) for s in range(0, side - window + 1, stride)]


def _np_window_sets(ref, dist, p, window, stride, normalize):
    px = _np_patches(_np_signed_rgb(ref), p, normalize)
    py = _np_patches(_np_signed_rgb(dist), p, normalize)
    h, w = px.shape[:2]
    for r0, hh in _np_windows(h, window, stride):
        for c0, ww in _np_windows(w, window, stride):
            xs = px[r0 : r0 + hh, c0 : c0 + ww].reshape(-1, px.shape[2])
            ys = py[r0 : r0 + hh, c0 : c0 + ww].reshape(-1, py.shape[2])
            yield xs, ys


def np_mmd(ref, dist, *, sigma, patch_size=3, window=32, stride=16, normalize="none") -> float:
    """Exact canonical windowed patch MMD^2 of one ``(C, H, W)`` pair."""

    def kmean(a, b):
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2)).mean()

    values = [
        kmean(xs, xs) + kmean(ys, ys) - 2 * kmean(xs, ys)
        for xs, ys in _np_window_sets(ref, dist, patch_size, window, stride, normalize)
    ]
    return float(np.mean(values))


def _documented_features(features, sigma, seed, p, channels=3):
    """The features as the mmd_rff docstring / provenance documents them (not DC-removed here)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(features, channels, p, p, generator=gen, dtype=torch.float64) / sigma
    b = torch.rand(features, generator=gen, dtype=torch.float64) * (2 * math.pi)
    return w.reshape(features, -1).numpy(), b.numpy()


def np_mmd_rff(ref, dist, *, sigma, features, seed, patch_size=3, window=32, stride=16, normalize="none"):
    """RFF windowed MMD^2 with the documented features; DC removal applied to the patches, not to w."""
    w, b = _documented_features(features, sigma, seed, patch_size)
    values = []
    for xs, ys in _np_window_sets(ref, dist, patch_size, window, stride, normalize):
        fx = np.cos(xs @ w.T + b).mean(axis=0)
        fy = np.cos(ys @ w.T + b).mean(axis=0)
        values.append(2.0 * np.mean((fx - fy) ** 2))
    return float(np.mean(values))


def np_l2(ref, dist) -> float:
    return float(np.mean((_np_signed_rgb(ref) - _np_signed_rgb(dist)) ** 2))


def np_patch_rbf(ref, dist, *, local_patch_size=3, local_sigma=0.9) -> float:
    d2 = ((_np_signed_rgb(ref) - _np_signed_rgb(dist)) ** 2).sum(axis=0)
    h, w = d2.shape
    r = local_patch_size // 2
    padded = np.zeros((h + 2 * r, w + 2 * r))
    padded[r : r + h, r : r + w] = d2
    s = np.zeros((h, w))
    for i in range(local_patch_size):
        for j in range(local_patch_size):
            s += padded[i : i + h, j : j + w]
    return float(np.mean(1 - np.exp(-s / (2 * local_sigma**2))))


# --------------------------------------------------------------------------------------------------
# exact MMD


MMD_CASES = [
    # (H, W, C, normalize, sigma, window, stride)
    (40, 36, 3, "none", 0.5, 32, 16),
    (70, 64, 3, "channel_mean", 0.5, 32, 16),
    (70, 64, 1, "none", 0.75, 32, 16),
    (40, 36, 1, "channel_mean", 0.5, 32, 16),
    (20, 28, 3, "none", 0.5, 32, 16),  # both sides smaller than the window
    (24, 50, 3, "channel_mean", 0.5, 32, 16),  # one side smaller than the window
    (56, 48, 3, "none", 0.5, 24, 8),  # 3x3 cells per window
    (40, 36, 3, "none", 0.5, 12, 5),  # windows that do not tile (window-by-window path)
]


@pytest.mark.parametrize(("height", "width", "channels", "normalize", "sigma", "window", "stride"), MMD_CASES)
def test_mmd_matches_numpy_definition(height, width, channels, normalize, sigma, window, stride):
    ref, dist = _pair(height, width, channels)
    got = mmd(ref, dist, sigma=sigma, normalize=normalize, window=window, stride=stride)
    assert got.shape == (2,) and got.dtype == torch.float64
    for k in range(2):
        want = np_mmd(ref[k].numpy(), dist[k].numpy(), sigma=sigma, window=window, stride=stride, normalize=normalize)
        assert want > 1e-4  # a meaningful, non-degenerate comparison
        assert got[k].item() == pytest.approx(want, rel=TOLERANCES["mmd_vs_numpy_rtol"])


def test_mmd_float32_close_to_float64():
    ref, dist = _pair(40, 36, 3)
    f64 = mmd(ref, dist)
    f32 = mmd(ref.float(), dist.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), f64, rtol=TOLERANCES["float32_vs_float64_rtol"], atol=0)


def test_mmd_symmetric():
    ref, dist = _pair(40, 36, 3)
    torch.testing.assert_close(mmd(ref, dist), mmd(dist, ref), rtol=TOLERANCES["symmetry_rtol_f64"], atol=0)


def test_mmd_gray_equals_replicated_rgb():
    ref, dist = _pair(40, 36, 1)
    torch.testing.assert_close(
        mmd(ref, dist),
        mmd(ref.expand(-1, 3, -1, -1), dist.expand(-1, 3, -1, -1)),
        rtol=TOLERANCES["symmetry_rtol_f64"],
        atol=0,
    )


# --------------------------------------------------------------------------------------------------
# RFF


@pytest.mark.parametrize(
    ("height", "width", "channels", "normalize"), [(40, 36, 3, "none"), (24, 50, 1, "channel_mean")]
)
def test_mmd_rff_matches_numpy_with_documented_features(height, width, channels, normalize):
    ref, dist = _pair(height, width, channels)
    got = mmd_rff(ref, dist, features=64, seed=3, normalize=normalize)
    for k in range(2):
        want = np_mmd_rff(ref[k].numpy(), dist[k].numpy(), sigma=0.5, features=64, seed=3, normalize=normalize)
        assert got[k].item() == pytest.approx(want, rel=TOLERANCES["rff_vs_numpy_rtol"])


def test_mmd_rff_deterministic_per_seed():
    ref, dist = _pair(40, 36, 3, n=1)
    ref, dist = ref.float(), dist.float()
    first = mmd_rff(ref, dist, features=128, seed=7)
    assert torch.equal(first, mmd_rff(ref, dist, features=128, seed=7))
    other = mmd_rff(ref, dist, features=128, seed=8)
    assert not torch.allclose(first, other, rtol=1e-3, atol=0)


def test_mmd_rff_converges_to_mmd_like_inverse_sqrt_r():
    ref, dist = _pair(40, 40, 3, n=3)
    exact = mmd(ref, dist)
    seeds = range(5)

    def rel_errors(r):
        return torch.stack([(mmd_rff(ref, dist, features=r, seed=s) - exact) / exact for s in seeds]).flatten()

    err_small, err_large = rel_errors(128), rel_errors(2048)
    rms_small, rms_large = err_small.pow(2).mean().sqrt().item(), err_large.pow(2).mean().sqrt().item()
    # unbiased for every r: a wrong scale (e.g. LAB's 1/2) gives ~50% errors at every r
    assert rms_large < TOLERANCES["rff_rms_rel_err_r2048"]
    low, high = TOLERANCES["rff_rms_ratio"]
    assert low < rms_small / rms_large < high


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ref, dist = _pair(70, 64, 3)
    ref, dist = ref.float(), dist.float()
    for fn in (mmd, mmd_rff, mmd_pp):
        cpu = fn(ref, dist)
        gpu = fn(ref.cuda(), dist.cuda()).cpu()
        torch.testing.assert_close(gpu, cpu, rtol=TOLERANCES["cuda_rtol"], atol=0)


# --------------------------------------------------------------------------------------------------
# MMD++


@pytest.mark.parametrize(
    ("weights", "term"),
    [((1.0, 0.0, 0.0), "l2"), ((0.0, 1.0, 0.0), "rbf"), ((0.0, 0.0, 1.0), "mmd"), (None, "all")],
)
def test_mmd_pp_terms_match_numpy(weights, term):
    ref, dist = _pair(40, 36, 3)
    kwargs = {} if weights is None else {"weights": weights}
    got = mmd_pp(ref, dist, seed=5, **kwargs)
    for k in range(2):
        r, d = ref[k].numpy(), dist[k].numpy()
        parts = {
            "l2": np_l2(r, d),
            "rbf": np_patch_rbf(r, d),
            "mmd": np_mmd_rff(r, d, sigma=0.54, features=512, seed=5, normalize="channel_mean"),
        }
        # default weights: the LAB formula, i.e. 0.5 on our x2-scaled RFF term
        want = parts[term] if term != "all" else 0.001 * parts["l2"] + 0.05 * parts["rbf"] + 0.5 * parts["mmd"]
        assert parts[term if term != "all" else "mmd"] > 1e-4
        assert got[k].item() == pytest.approx(want, rel=TOLERANCES["mmd_pp_vs_numpy_rtol"])


def test_mmd_pp_gray_promoted():
    ref, dist = _pair(40, 36, 1, n=1)
    want = 0.001 * np_l2(ref[0].numpy(), dist[0].numpy()) + 0.05 * np_patch_rbf(ref[0].numpy(), dist[0].numpy())
    got = mmd_pp(ref, dist, weights=(0.001, 0.05, 0.0))
    assert got.item() == pytest.approx(want, rel=TOLERANCES["mmd_pp_vs_numpy_rtol"])


# --------------------------------------------------------------------------------------------------
# properties shared by the three keys

ALL = [mmd, mmd_rff, mmd_pp]


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_identity_is_zero(fn):
    ref, _ = _pair(40, 36, 3)
    for x in (ref, ref.float()):
        assert torch.equal(fn(x, x.clone()), torch.zeros(2, dtype=x.dtype))


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_batched_equals_one_by_one_and_shape(fn):
    ref, dist = _pair(40, 36, 3, n=3)
    ref, dist = ref.float(), dist.float()
    batched = fn(ref, dist)
    assert batched.shape == (3,)
    singles = []
    for k in range(3):
        one = fn(ref[k : k + 1], dist[k : k + 1])
        assert one.shape == (1,) and one.dtype == torch.float32
        singles.append(one)
    torch.testing.assert_close(batched, torch.cat(singles), rtol=TOLERANCES["batch_rtol"], atol=0)
    assert (batched > 0).all()


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_too_small_raises_with_name_size_and_minimum(fn):
    side = MIN_SIDE[fn.__name__]
    assert side == 3  # one 3x3 patch
    x = torch.rand(1, 3, side - 1, 40)
    with pytest.raises(MetricInputError, match=rf"{fn.__name__}.*at least {side}x{side}.*40x{side - 1}"):
        fn(x, x)
    ok = torch.rand(1, 3, side, side)
    assert fn(ok, ok).shape == (1,)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_empty_batch(fn):
    x = torch.rand(0, 3, 40, 36)
    assert fn(x, x).shape == (0,)


@pytest.mark.parametrize(
    "bad",
    [{"sigma": 0.0}, {"patch_size": 4}, {"window": 0}, {"stride": 0}, {"normalize": "mean"}],
)
@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_bad_settings_raise(fn, bad):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(UsageError, match=fn.__name__):
        fn(x, x, **bad)


def test_mismatched_shapes_raise():
    with pytest.raises(MetricInputError):
        mmd(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


@pytest.mark.parametrize(
    ("fn", "defaults"), [(mmd, MMD_DEFAULTS), (mmd_rff, MMD_RFF_DEFAULTS), (mmd_pp, MMD_PP_DEFAULTS)]
)
def test_pinned_defaults_are_the_signature_defaults(fn, defaults):
    params = inspect.signature(fn).parameters
    signature_defaults = {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert signature_defaults == defaults
    assert PROVENANCE[fn.__name__].items() >= defaults.items()


def test_pinned_values_of_metrics_md_section_8():
    assert MMD_DEFAULTS == {"sigma": 0.5, "patch_size": 3, "window": 32, "stride": 16, "normalize": "none"}
    assert MMD_RFF_DEFAULTS["features"] == 1024
    assert MMD_PP_DEFAULTS["features"] == 512
    assert MMD_PP_DEFAULTS["sigma"] == pytest.approx(0.06 * 9)
    assert MMD_PP_DEFAULTS["local_sigma"] == pytest.approx(0.1 * 9)
    assert MMD_PP_DEFAULTS["weights"] == (0.001, 0.05, 0.5)  # = the lab's 1.0 on its half-scale RFF term


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (mmd, {"window": 4, "stride": 2}),  # cell path
        (mmd, {"window": 5, "stride": 2}),  # window-by-window path
        (mmd_rff, {"window": 4, "stride": 2, "features": 16}),
        (mmd_pp, {"window": 4, "stride": 2, "features": 16}),
    ],
)
def test_differentiable_gradcheck(fn, kwargs):
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 7, 6, generator=gen, dtype=torch.float64)
    dist = torch.rand(1, 3, 7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: fn(ref, y, **kwargs), (dist,), fast_mode=True)
