"""Structural similarity: ``ssim``, ``ssim_y``, ``ssim_matlab``, ``ms_ssim`` (METRICS.md sections 2, 3, 8).

Every function takes ``ref, dist`` float tensors ``(N, C, H, W)`` with values in ``[0, 1]``
(C = 1 gray or 3 RGB) and returns a float64 tensor of shape ``(N,)``, whatever the input dtype.

How it is computed (one core for all four keys): per image plane, float64 maps are filtered with the
separable Gaussian (two 1-D passes of ``kernel_size`` taps, valid region only). SSIM needs the two variances
only as their sum ``var_x + var_y``, so a pair needs four filtered maps, ``x``, ``y``, ``x^2 + y^2`` and
``xy``; a reference shared by several distorted images (``ref_index``, as the engine passes batches: each
reference once) has ``G*x`` and ``G*x^2`` filtered once, and each of its distorted images then needs three
(``y``, ``y^2``, ``xy``). On CPU tensors the filtering is OpenCV's ``sepFilter2D`` in float64 (the constants
``C1``/``C2`` and the factor 2 of the covariance ride on its ``delta`` and kernel for free), the rest eleven
in-place whole-map operations, in cache-sized strips of a plane spread over ``torch.get_num_threads()``
threads; on other devices (and for inputs that need gradients) the same maps come from torch shifted
multiply-adds in cache-sized chunks. All paths agree to ~1e-16 per pixel.

Measured (issue 14, CPU time, one thread): OpenCV's float64 filter is ~60-65 % of the SSIM time (4-5 ns
per pixel and map; float32 runs ~2.2 ns, but see below), the eleven map operations and the three products
most of the rest (~0.5-1 ns per pixel each). Integer samples (the runner's ``scale``) skip the float64 copy
of the batch: OpenCV reads uint8/uint16 strips as they are.

Why float64, and why it is exact: the local moments use ``E[x^2] - E[x]^2``, which cancels badly in
flat regions, where the variance is tiny next to ``C2 = 9e-4``. A filtered value carries a rounding
error of up to ``gamma * G*|f|`` with ``gamma ~ 2 * kernel_size * u`` (``u`` the unit roundoff), so
``var_x + var_y`` is off by up to ``~3 gamma (G*x^2 + G*y^2)`` and the contrast-structure term by that
over ``var_x + var_y + C2 >= C2``. In float32 (``u = 2**-24``, ``gamma ~ 1.3e-6``) this bound reaches
``~2e-3`` per pixel on a flat mid-grey region, and centring the data (by 0.5, or per tile) or splitting the
taps into exact high parts and small low parts (integer-valued 8-bit inputs make ``x^2`` and ``xy`` exact,
but the two passes need ``16 + 2q > 24`` bits for ``q``-bit taps) does not bring the worst case under
the 1e-5 the README promises; measured float32 errors reached 3.3e-5 on nearly flat 8- and 16-bit images
(3e-6 on photos). Integer inputs do not rescue float32: the taps are not integers, so even the mean
maps of 8-bit data are rounded (tap times sample needs ``24 + 8`` bits), and an error ``gamma * mu`` in a
mean moves ``mu^2`` by ``2 gamma mu^2``, as large as the second moments' error; quantising the taps to
``q <= 16`` bits makes the first pass exact (sums of multiples of ``2**-16`` below ``2**24``) but the second
pass then needs ``2q + 8 > 24`` bits, and the residual taps cost more passes than float64 saves.
Float32 with a computed error bound and float64 only where it is too large (issue 14's suggestion) does
not pay either. With the data centred by a constant ``m`` over a strip (exact for integer samples), the
filtered second moments carry ``|error| <= gamma * G*(z^2)`` with ``z = x - m``, and ``G*(z^2) = var + A^2``
where ``A = mu - m`` is how far the local mean sits from ``m``; the contrast-structure term then moves by up
to ``~2 * 3 gamma (var + A^2) / (var + C2)`` (``gamma = 26 u ~ 1.55e-6`` for two 11-tap passes, rounded taps,
products and stores), plus the luminance term's own bound. Even a window centred exactly (``A = 0``) with
a large variance gets ``~6 gamma ~ 9e-6``, the whole budget, and any flat window whose mean is 10 grey
levels from ``m`` (sky next to shadow in a strip) fails. Computed on the reference crops of the 540-pair
sweep and on 1080p/640x480 frames (8-bit, centred per strip of ``1 << 16`` pixels, noise 4 added), the
per-pixel a-priori bound averaged ``1.1e-3`` and ``3.8e-3``: over 99 % of pixels would need the float64
recomputation at any budget between 5e-6 and 8e-6, so the float32 pass would only add to the float64 one.
In float64 (``u = 2**-53``) the same bound is ``~4e-12`` per pixel: the result equals scikit-image's
float64 computation to ~1e-12 on float64 inputs (about 1e-8 on float32 inputs, the rounding of the inputs
themselves). CUDA convolutions (TF32) are never used.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor

from lpipscli.errors import MetricInputError
from lpipscli.metrics._checks import check_indexed, check_pair, check_samples
from lpipscli.metrics.psnr import COMPUTE_DTYPE, luma601

#: Smallest accepted image side for the SSIM keys with the default 11-tap window.
SSIM_MIN_SIDE = 11
#: Smallest accepted image side for ``ms_ssim``: ``(11 - 1) * 2**4 + 1`` (pytorch-msssim asserts ``> 160``).
MS_SSIM_MIN_SIDE = 161

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: Pinned settings, recorded in the output provenance of each key.
SSIM_DEFAULTS = {
    "window": "gaussian",
    "kernel_size": 11,
    "sigma": 1.5,
    "k1": 0.01,
    "k2": 0.03,
    "data_range": 1.0,
    "moments": "population",
    "region": "valid",
    "color": "per-channel mean",
    "downsample": "none",
    "precision": "float64",
}
SSIM_Y_DEFAULTS = {**SSIM_DEFAULTS, "color": "luma601 (0.299R+0.587G+0.114B, float; gray used as is)"}
SSIM_MATLAB_DEFAULTS = {
    **SSIM_Y_DEFAULTS,
    "downsample": (
        "matlab ssim.m: f = max(1, round(min(H, W) / 256)) (half away from zero); if f > 1 "
        "f x f box filter, symmetric padding, 'same' with centre floor((f + 1) / 2), keep every f-th "
        "pixel from the first"
    ),
}
MS_SSIM_DEFAULTS = {
    "window": "gaussian",
    "kernel_size": 11,
    "sigma": 1.5,
    "k1": 0.01,
    "k2": 0.03,
    "data_range": 1.0,
    "moments": "population",
    "region": "valid",
    "scales": 5,
    "weights": MS_SSIM_WEIGHTS,
    "downsample": "avg_pool2d(2, stride 2, padding (H % 2, W % 2), count_include_pad) (pytorch-msssim)",
    "clamp": "relu on cs (scales 1-4) and ssim (scale 5)",
    "color": "product per channel, then channel mean",
    "precision": "float64",
}


def _check_settings(name: str, data_range: float, kernel_size: int, sigma: float) -> None:
    if not data_range > 0:
        raise MetricInputError(f"{name}: data_range must be positive, got {data_range}")
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise MetricInputError(f"{name}: kernel_size must be a positive odd integer, got {kernel_size}")
    if not sigma > 0:
        raise MetricInputError(f"{name}: sigma must be positive, got {sigma}")


#: working-memory budget of one SSIM chunk of the torch path (float64 moments), in bytes; small enough for
#: the chunk to stay in a CPU's L2 cache when that path runs on a CPU
_CHUNK_BYTES = 2 * 1024 * 1024

#: output pixels per strip of the OpenCV path. ``sepFilter2D`` filters a strip's ``kernel_size - 1`` context
#: rows too (both passes), so short strips waste work (29 % at 1 << 16: 34 rows of a 1080p plane) and tall
#: ones leave the cache; 1 << 17 (68 rows of 1080p, 15 % context, 1.2 MB per float64 map) was
#: ~4 % faster per 1080p frame than 1 << 16 and ~15 % faster than 1 << 18 (issue 14 profile). A 256x256
#: plane is one strip either way.
_STRIP_PIXELS = 1 << 17

#: ``"auto"``: OpenCV's separable filter on CPU tensors, torch elsewhere; ``"torch"`` or ``"opencv"`` force one
#: (tests run both; they agree to float64 rounding).
_BACKEND = "auto"


def _gaussian_window(kernel_size: int, sigma: float, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian taps ``(kernel_size,)`` in float64 (the 2-D window is their outer product)."""
    coords = torch.arange(kernel_size, dtype=COMPUTE_DTYPE, device=device) - kernel_size // 2
    taps = torch.exp(-coords.square() / (2.0 * sigma**2))
    return taps / taps.sum()


def _filter_valid(images: Tensor, window: Tensor) -> Tensor:
    """Separable Gaussian filter without padding: ``(N, C, H, W) -> (N, C, H-k+1, W-k+1)``.

    Written as shifted multiply-adds (one pass per tap and axis) rather than a depthwise ``conv2d``:
    PyTorch has no fast float64 depthwise convolution on the CPU (its fallback was ~5x slower and
    allocated im2col buffers of 11x the input per call).
    """
    taps = [float(t) for t in window.tolist()]
    out_w = images.shape[-1] - len(taps) + 1
    along_w = images[..., :out_w] * taps[0]
    for k, tap in enumerate(taps[1:], start=1):
        along_w.add_(images[..., k:k + out_w], alpha=tap)
    out_h = images.shape[-2] - len(taps) + 1
    result = along_w[..., :out_h, :] * taps[0]
    for k, tap in enumerate(taps[1:], start=1):
        result.add_(along_w[..., k:k + out_h, :], alpha=tap)
    return result


def _combine(mu_x, mu_y, e_sq, e_xy, c1: float, c2: float):
    """SSIM and contrast-structure maps from the four filtered moments (torch tensors or NumPy arrays).

    ``e_sq = G*(x^2 + y^2)`` and ``e_xy = G*(xy)``: SSIM only needs ``var_x + var_y``, so one map holds both
    second moments (population moments, as Wang et al.).
    """
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    cs_map = (2.0 * (e_xy - mu_xy) + c2) / (e_sq - mu_sq + c2)
    ssim_map = (2.0 * mu_xy + c1) / (mu_sq + c1) * cs_map
    return ssim_map, cs_map


def _unit(samples: Tensor, scale: float) -> Tensor:
    """Integer samples -> float64 ``k / scale`` (correctly rounded division: the engine's own conversion)."""
    return samples.to(COMPUTE_DTYPE).div_(scale)


def _use_opencv(x: Tensor, y: Tensor) -> bool:
    if x.requires_grad or y.requires_grad:
        return False  # the torch path keeps SSIM differentiable
    if _BACKEND == "auto":
        return x.device.type == "cpu"
    return _BACKEND == "opencv"


def _ssim_stats(
    x: Tensor, y: Tensor, window: Tensor, data_range: float, k1: float, k2: float, return_map: bool,
    ref_index: Tensor | None = None, want_cs: bool = True, scale: float | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-channel means of the SSIM and contrast-structure maps over the valid region, ``(P, C)`` each,
    and with ``return_map`` the channel-mean SSIM map ``(P, 1, H-k+1, W-k+1)``; all float64.

    ``x`` holds the references ``(R, C, H, W)``, ``y`` the distorted images ``(P, C, H, W)``; ``ref_index``
    ``(P,)`` says which reference each distorted image is compared with (None: ``x[p]`` with ``y[p]``).
    Without ``want_cs`` the OpenCV path skips the contrast-structure means (returned as None).
    With ``scale``, ``x`` and ``y`` are integer samples ``k`` standing for ``k / scale`` (see
    :func:`ssim_runner`).
    """
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    if _use_opencv(x, y):
        return _ssim_stats_opencv(x, y, ref_index, window, c1, c2, return_map, want_cs, scale)
    if scale is not None:
        x, y = _unit(x, scale), _unit(y, scale)
    if ref_index is not None:
        x = x.index_select(0, ref_index.to(x.device))
    # Bounded working memory: the float64 moments take ~16x the input, so batches go in chunks small
    # enough to stay in cache (per-image values do not depend on the chunking).
    per_image = x[0].numel() * 8 * 4
    chunk = max(1, _CHUNK_BYTES // max(1, per_image))
    ssim_means, cs_means, maps = [], [], []
    for i in range(0, x.shape[0], chunk):
        xc, yc = x[i:i + chunk].to(COMPUTE_DTYPE), y[i:i + chunk].to(COMPUTE_DTYPE)
        moments = _filter_valid(torch.cat([xc, yc, xc * xc + yc * yc, xc * yc], dim=1), window)
        ssim_map, cs_map = _combine(*moments.split(x.shape[1], dim=1), c1, c2)
        ssim_means.append(ssim_map.mean(dim=(2, 3)))
        cs_means.append(cs_map.mean(dim=(2, 3)))
        if return_map:
            maps.append(ssim_map.mean(dim=1, keepdim=True))
    return torch.cat(ssim_means), torch.cat(cs_means), torch.cat(maps) if return_map else None


def _as_numpy(images: Tensor):
    """A CPU tensor as a C-contiguous NumPy array of its own dtype (a view when it already is one); dtypes
    NumPy lacks (bfloat16) become float64."""
    images = images.detach().cpu()
    if images.dtype == torch.bfloat16:
        images = images.to(COMPUTE_DTYPE)
    return images.contiguous().numpy()


#: with several threads, most distorted images one work item of the OpenCV path takes for a shared reference
#: (more are split into several items, each filtering the reference strip again, so that threads share a
#: one-reference batch); one thread keeps them together
_GROUP = 8


def _ssim_stats_opencv(
    x: Tensor, y: Tensor, ref_index: Tensor | None, window: Tensor, c1: float, c2: float, return_map: bool,
    want_cs: bool, scale: float | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """:func:`_ssim_stats` on the CPU: OpenCV's separable float64 filter, one strip of a plane at a time.

    A work item is one strip of one reference plane (up to :data:`_STRIP_PIXELS` output pixels: a whole
    256x256 plane, 68 rows of a 1080p one, plus the ``kernel_size - 1`` rows of context it needs) with the
    same strip of each distorted image compared with it, so that every map stays in cache. Per pixel:

    * a reference scored against one distorted image: four filtered maps, ``G*x``, ``G*y``,
      ``G*(x^2 + y^2) + C2`` and ``2 G*(xy) + C2`` (the constants come from the filter's ``delta`` and a
      kernel scaled by 2, both free);
    * a reference shared by several distorted images (``ref_index`` repeats it): ``G*x`` and
      ``G*x^2 + C2 - (G*x)^2`` once per strip, then three maps per distorted image (``G*y``, ``G*y^2``,
      ``2 G*(xy) + C2``): a quarter fewer filter passes and half the products.

    Then ``SSIM = (2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2))`` in
    eleven whole-map operations into preallocated buffers (``cv2`` arithmetic between maps, about twice
    as fast as NumPy's on the filter's strided valid region and on uint8 products; NumPy for a constant,
    since OpenCV takes an array of up to four elements for a scalar, so a 1x1 map plus ``C1`` came back
    4x1, and for the sums, pairwise and ~60x more accurate than ``cv2.sumElems``). Both forms are float64
    rearrangements of the same sums (they agree to ~1e-16 per pixel). A distorted strip identical to its
    reference strip scores exactly 1 per pixel without arithmetic (rounding could leave 1 - 1 ulp; 2AFC
    ties compare scores for equality).
    ``cv2.sepFilter2D``'s border rule does not matter: only the valid region is read.

    Items run on ``torch.get_num_threads()`` threads (OpenCV releases the GIL); their sums are
    added in a fixed order, so the thread count never changes a value.

    Inputs keep their dtype until a strip is read (no float64 copy of a whole batch: for a 1080p frame that
    copy cost more CPU, in page faults, than a third of the filtering): uint8, uint16, float32 and float64
    strips go to OpenCV as they are (its filter and ``accumulate*`` convert each sample to float64 before
    any arithmetic, and the products are asked for float64 results), other dtypes are copied into a
    float64 strip buffer. With ``scale`` the inputs are integer samples ``k`` for ``k / scale``; the maths
    then runs on ``k`` itself, with ``C1``, ``C2`` scaled by ``scale**2``: SSIM is the same ratio (every term
    scales by ``scale**2``), and only the float64 rounding differs (~1e-16 relative).
    """
    import cv2
    import numpy as np

    taps = window.detach().cpu().numpy().astype(np.float64)
    taps2 = taps * 2.0  # exact
    r = taps.shape[0] // 2
    if scale is not None:
        c1, c2 = c1 * scale * scale, c2 * scale * scale
    if ref_index is None and x.shape[0] > 1 and x.stride(0) == 0:
        # one reference expanded over the batch (a stride-0 view): filtered once, never copied per pair
        x, ref_index = x[:1], torch.zeros(x.shape[0], dtype=torch.long)
    xs = _as_numpy(x)  # read only: may share the caller's memory
    ys = _as_numpy(y)
    direct = {np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float64)}
    n, channels, height, width = ys.shape
    out_h, out_w = height - 2 * r, width - 2 * r
    rows = max(1, _STRIP_PIXELS // out_w)
    index = np.arange(n) if ref_index is None else ref_index.detach().cpu().numpy().astype(np.int64)
    groups: dict[int, list[int]] = {}
    for p, ref in enumerate(index.tolist()):
        groups.setdefault(ref, []).append(p)
    threads = torch.get_num_threads()
    items = []
    for ref, members in groups.items():
        # one thread: all of a reference's images in one item (its maps filtered once); more threads: parts
        # of at most _GROUP, as even as possible (9 -> 5 + 4). A part never changes a value: each image's
        # arithmetic is the same in any part, and the form (shared or not) follows the whole group.
        parts = 1 if threads == 1 else -(-len(members) // _GROUP)
        shared = len(members) > 1
        for k in range(parts):
            part = members[k * len(members) // parts:(k + 1) * len(members) // parts]
            items.extend((ref, part, shared, c, top) for c in range(channels) for top in range(0, out_h, rows))
    items.sort(key=lambda item: -len(item[1]))  # largest first, so that threads finish together (stable)

    local = threading.local()

    def buffers(strip_rows: int) -> list:
        """Twelve work arrays per thread, reused by its items (fresh ones cost page faults, ~as much as the
        maths): a product, four filter outputs, five valid-region maps, two input strips (other dtypes)."""
        cached = getattr(local, "buffers", None)
        if cached is None or cached[0].shape[0] != strip_rows:
            strip, valid = (strip_rows, width), (strip_rows - 2 * r, out_w)
            cached = [np.empty(strip) for _ in range(5)] + [np.empty(valid) for _ in range(5)]
            cached += [np.empty(strip) for _ in range(2)]
            local.buffers = cached
        return cached

    def readable(strip, buffer):
        """The strip as OpenCV can take it: as it is, or copied into a float64 buffer."""
        if strip.dtype in direct:
            return strip
        np.copyto(buffer, strip, casting="unsafe")  # int32/int16 samples and float16: exact in float64
        return buffer

    def filtered(src, dst, ky=taps, delta=0.0):
        cv2.sepFilter2D(src, cv2.CV_64F, taps, ky, dst=dst, delta=delta)
        return dst[r:dst.shape[0] - r, r:r + out_w]

    def tail(num_l, num_cs, den_l, den_cs, spare):
        """``num_l = 2 mu_x mu_y + C1``, ``num_cs = 2 cov + C2`` and the denominators -> sums (and map)."""
        cs_sum = None
        if want_cs:
            cs_sum = float(cv2.divide(num_cs, den_cs, dst=spare).sum())
        cv2.multiply(num_l, num_cs, dst=num_l)
        cv2.multiply(den_l, den_cs, dst=den_l)
        ssim_map = cv2.divide(num_l, den_l, dst=num_l)
        return float(ssim_map.sum()), cs_sum, ssim_map.copy() if return_map else None

    def identical(a, b) -> bool:
        return np.array_equal(a[0], b[0]) and np.array_equal(a, b)  # first row first: cheap when they differ

    def one_item(item):
        ref, members, shared, c, top = item
        bottom = min(top + rows, out_h) + 2 * r  # input rows top .. bottom - 1
        a = xs[ref, c, top:bottom]
        product, f0, f1, f2, f3, b0, b1, b2, b3, b4, in_a, in_b = buffers(bottom - top)
        # identical strips: every window has l = cs = 1 exactly (the rounded arithmetic could miss by 1 ulp)
        same = [p for p in members if identical(a, ys[p, c, top:bottom])]
        count = float((bottom - top - 2 * r) * out_w)
        out = [(p, count, count, np.ones((bottom - top - 2 * r, out_w)) if return_map else None) for p in same]
        members = [p for p in members if p not in same]
        if not members:
            return out
        a = readable(a, in_a)
        if not shared:
            p = members[0]
            b = readable(ys[p, c, top:bottom], in_b)
            mu_x, mu_y = filtered(a, f0), filtered(b, f1)
            cv2.multiply(a, a, dst=product, dtype=cv2.CV_64F)
            cv2.accumulateSquare(b, product)
            e_sq = filtered(product, f2, delta=c2)  # G*(x^2 + y^2) + C2
            cv2.multiply(a, b, dst=product, dtype=cv2.CV_64F)
            e_xy = filtered(product, f3, taps2, c2)  # 2 G*(xy) + C2
            mu_sq = cv2.multiply(mu_x, mu_x, dst=b0)
            cv2.accumulateProduct(mu_y, mu_y, mu_sq)  # mu_x^2 + mu_y^2
            mu_xy2 = cv2.multiply(mu_x, mu_y, dst=b1, scale=2.0)
            den_cs = cv2.subtract(e_sq, mu_sq, dst=b2)
            num_cs = cv2.subtract(e_xy, mu_xy2, dst=b3)
            np.add(mu_sq, c1, out=mu_sq)
            np.add(mu_xy2, c1, out=mu_xy2)
            out.append((p, *tail(mu_xy2, num_cs, mu_sq, den_cs, b4)))
            return out
        # shared reference: its moments once per strip
        mu_x = filtered(a, f0)
        two_mu_x = cv2.add(mu_x, mu_x)  # exact
        cv2.multiply(a, a, dst=product, dtype=cv2.CV_64F)
        var_x = filtered(product, f1, delta=c2)  # G*x^2 + C2, then minus mu_x^2
        mu_x_sq = cv2.multiply(mu_x, mu_x)
        var_x = cv2.subtract(var_x, mu_x_sq)
        mu_x_sq_c1 = np.add(mu_x_sq, c1, out=mu_x_sq)
        for p in members:
            b = readable(ys[p, c, top:bottom], in_b)
            mu_y = filtered(b, f0)
            cv2.multiply(b, b, dst=product, dtype=cv2.CV_64F)
            e_yy = filtered(product, f2)
            cv2.multiply(a, b, dst=product, dtype=cv2.CV_64F)
            e_xy = filtered(product, f3, taps2, c2)  # 2 G*(xy) + C2
            mu_y_sq = cv2.multiply(mu_y, mu_y, dst=b0)
            mu_xy2 = cv2.multiply(two_mu_x, mu_y, dst=b1)
            den_cs = cv2.add(e_yy, var_x, dst=b2)
            cv2.subtract(den_cs, mu_y_sq, dst=den_cs)
            num_cs = cv2.subtract(e_xy, mu_xy2, dst=b3)
            cv2.add(mu_y_sq, mu_x_sq_c1, dst=mu_y_sq)
            np.add(mu_xy2, c1, out=mu_xy2)
            out.append((p, *tail(mu_xy2, num_cs, mu_y_sq, den_cs, b4)))
        return out

    workers = min(threads, len(items))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one_item, items))
    else:
        results = [one_item(item) for item in items]
    # accumulated here, in item order: deterministic whatever the threads
    ssim_sums = np.zeros((n, channels))
    cs_sums = np.zeros((n, channels))
    maps = np.zeros((n, 1, out_h, out_w)) if return_map else None
    for (_, _, _, c, top), result in zip(items, results, strict=True):
        for p, ssim_sum, cs_sum, strip_map in result:
            ssim_sums[p, c] += ssim_sum
            if want_cs:
                cs_sums[p, c] += cs_sum
            if return_map:
                maps[p, 0, top:top + strip_map.shape[0]] += strip_map
    if return_map:
        maps /= channels
    to = functools.partial(torch.as_tensor, dtype=COMPUTE_DTYPE, device=y.device)
    count = out_h * out_w
    return (to(ssim_sums / count), to(cs_sums / count) if want_cs else None,
            to(maps) if return_map else None)


def _ssim(
    x: Tensor,
    y: Tensor,
    data_range: float,
    kernel_size: int,
    sigma: float,
    k1: float,
    k2: float,
    return_map: bool,
    ref_index: Tensor | None = None,
    scale: float | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    window = _gaussian_window(kernel_size, sigma, x.device)
    ssim_means, _, ssim_map = _ssim_stats(x, y, window, data_range, k1, k2, return_map, ref_index, want_cs=False,
                                          scale=scale)
    value = ssim_means.mean(dim=1)
    if return_map:
        return value, ssim_map
    return value


def ssim_runner(device: torch.device, *, key: str = "ssim", allow_unverified: bool = False, **params):
    """Engine runner for ``ssim``/``ssim_y``/``ssim_matlab``: ``(runner, [])`` (no weights).

    ``runner(ref, dist, ref_index, *, with_map=False, scale=None)`` takes each distinct reference once
    (``ref_index`` as in :func:`ssim`), so that a reference shared by several distorted images is neither
    copied per pair nor filtered again. ``device`` and ``allow_unverified`` are unused (the engine's
    builder signature).

    With ``scale`` (the runner's ``takes_samples`` attribute says it accepts one), ``ref`` and ``dist`` are
    the decoded integer samples (uint8, uint16, int16 or int32) and stand for ``k / scale`` (255 for 8-bit,
    65535 for 16-bit, 1023 for 10-bit video): the same scores as the float64 ``k / scale`` tensors, to float64
    rounding, without the float64 copy of the batch (``ssim`` reads the samples strip by strip; ``ssim_y``
    and ``ssim_matlab`` convert them first, as the engine would).
    """
    fn = {"ssim": ssim, "ssim_y": ssim_y, "ssim_matlab": ssim_matlab}[key]

    def run(ref: Tensor, dist: Tensor, ref_index: Tensor | None, *, with_map: bool = False,
            scale: float | None = None):
        if scale is None:
            return fn(ref, dist, return_map=with_map, ref_index=ref_index, **params)
        settings = {**{k: SSIM_DEFAULTS[k] for k in ("data_range", "kernel_size", "sigma", "k1", "k2")}, **params}
        check_samples(ref, dist, scale, ref_index, key, settings["kernel_size"])
        if key != "ssim":
            return fn(_unit(ref, scale), _unit(dist, scale), return_map=with_map, ref_index=ref_index, **params)
        _check_settings(key, settings["data_range"], settings["kernel_size"], settings["sigma"])
        return _ssim(ref, dist, settings["data_range"], settings["kernel_size"], settings["sigma"], settings["k1"],
                     settings["k2"], with_map, ref_index, scale=float(scale))

    run.takes_samples = True
    return run, []


def ssim(
    ref: Tensor,
    dist: Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
    ref_index: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """SSIM of Wang et al. (2004), computed per channel and averaged over channels.

    Local statistics use a normalised ``kernel_size`` x ``kernel_size`` Gaussian window of standard
    deviation ``sigma`` and population moments; the map is averaged over the valid region only (no
    padding), so it is ``(kernel_size - 1) / 2`` px (5 px by default) smaller on every side than the image.

    Args:
        ref: reference images ``(N, C, H, W)``, float in ``[0, 1]``, C = 1 or 3.
        dist: distorted images, same shape.
        data_range: dynamic range ``L`` of the inputs; ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.
        kernel_size: odd window size; also the smallest accepted image side.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1: luminance stabilising constant.
        k2: contrast stabilising constant.
        return_map: also return the SSIM map of the valid region.
        ref_index: optional ``(P,)`` integer tensor: ``ref`` then holds ``R`` distinct references and
            ``dist[p]`` is compared with ``ref[ref_index[p]]`` (each reference's moments are filtered once).

    Returns:
        ``(N,)`` float64 SSIM in ``[-1, 1]`` (1 for identical images); with ``return_map`` also the
        ``(N, 1, H - kernel_size + 1, W - kernel_size + 1)`` float64 map (channel mean; its mean is
        the score).

    Raises:
        MetricInputError: on mismatched or malformed inputs, a side shorter than ``kernel_size``
            (e.g. 7x7 with the default 11), or invalid settings.

    Matches:
        ``skimage.metrics.structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0, channel_axis=...)`` (scikit-image 0.26) and
        ``pytorch_msssim.ssim(..., size_average=False)`` (1.0); not torchmetrics (full-image mean).

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error
        visibility to structural similarity", IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861.
    """
    _check_settings("ssim", data_range, kernel_size, sigma)
    check_indexed(ref, dist, ref_index, "ssim", kernel_size)
    return _ssim(ref, dist, data_range, kernel_size, sigma, k1, k2, return_map, ref_index)


def ssim_y(
    ref: Tensor,
    dist: Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
    ref_index: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """SSIM (as :func:`ssim`) of the BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (float, no rounding).

    Args:
        ref: reference images ``(N, C, H, W)``, float in ``[0, 1]``, C = 1 (used as is) or 3.
        dist: distorted images, same shape.
        data_range: dynamic range ``L`` of the inputs.
        kernel_size: odd window size; also the smallest accepted image side.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1: luminance stabilising constant.
        k2: contrast stabilising constant.
        return_map: also return the SSIM map of the valid region (5 px smaller on every side).
        ref_index: optional ``(P,)``: ``dist[p]`` is compared with ``ref[ref_index[p]]`` (as :func:`ssim`).

    Returns:
        ``(N,)`` float64 SSIM; with ``return_map`` also the ``(N, 1, H - 10, W - 10)`` float64 map.

    Raises:
        MetricInputError: on mismatched or malformed inputs, a side shorter than ``kernel_size``,
            or invalid settings.

    Matches:
        ``skimage.metrics.structural_similarity(y_ref, y_dist, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0)`` on float64 luma.

    References:
        Wang et al. 2004, doi:10.1109/TIP.2003.819861; METRICS.md section 2 (``luma601``).
    """
    _check_settings("ssim_y", data_range, kernel_size, sigma)
    check_indexed(ref, dist, ref_index, "ssim_y", kernel_size)
    x, y = luma601(ref.to(COMPUTE_DTYPE)), luma601(dist.to(COMPUTE_DTYPE))
    return _ssim(x, y, data_range, kernel_size, sigma, k1, k2, return_map, ref_index)


def matlab_downsample_factor(height: int, width: int) -> int:
    """``f = max(1, round(min(H, W) / 256))`` with MATLAB's round (half away from zero)."""
    return max(1, (2 * min(height, width) + 256) // 512)


def _symmetric_pad(images: Tensor, before: int, after: int, dim: int) -> Tensor:
    """MATLAB/NumPy ``'symmetric'`` padding (edge sample repeated) along ``dim``; pads shorter than the side."""
    size = images.shape[dim]
    index = torch.arange(size, device=images.device)
    index = torch.cat([index[:before].flip(0), index, index[size - after :].flip(0)])
    return images.index_select(dim, index)


def _matlab_downsample(images: Tensor, factor: int) -> Tensor:
    """MATLAB ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` then ``img(1:f:end, 1:f:end)``.

    'same' with an ``f``-tap kernel centres it at ``c = floor((f + 1) / 2)`` (1-based), so output pixel
    ``i`` averages ``img(i - c + 1 .. i + f - c)``. Padding ``c - 1`` before and ``f - c`` after, the kept
    pixels ``1, 1 + f, ...`` are exactly the non-overlapping ``f`` x ``f`` blocks of the padded image.
    """
    if factor == 1:
        return images
    centre = (factor + 1) // 2
    before, after = centre - 1, factor - centre
    padded = _symmetric_pad(_symmetric_pad(images, before, after, 2), before, after, 3)
    return F.avg_pool2d(padded, kernel_size=factor, stride=factor)


def ssim_matlab(
    ref: Tensor,
    dist: Tensor,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
    ref_index: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """SSIM of the luma601 after the automatic downsampling of Wang's MATLAB ``ssim.m`` (2009).

    With ``f = max(1, round(min(H, W) / 256))`` (half away from zero: f = 1 below 384 px, 2 for
    384..639, 3 for 640..895, ...), each image is box-filtered with ``ones(f)/f^2`` (symmetric padding,
    MATLAB's 'same' centre) and every ``f``-th pixel from the first is kept; then :func:`ssim_y`.

    Args:
        ref: reference images ``(N, C, H, W)``, float in ``[0, 1]``, C = 1 (used as is) or 3.
        dist: distorted images, same shape.
        data_range: dynamic range ``L`` of the inputs.
        kernel_size: odd window size; also the smallest accepted image side.
        sigma: standard deviation of the Gaussian window, in pixels.
        k1: luminance stabilising constant.
        k2: contrast stabilising constant.
        return_map: also return the SSIM map of the valid region of the downsampled luma.
        ref_index: optional ``(P,)``: ``dist[p]`` is compared with ``ref[ref_index[p]]`` (as :func:`ssim`).

    Returns:
        ``(N,)`` float64 SSIM; with ``return_map`` also the
        ``(N, 1, ceil(H / f) - 10, ceil(W / f) - 10)`` float64 map (downsampled grid, valid region).

    Raises:
        MetricInputError: on mismatched or malformed inputs, a side shorter than ``kernel_size``,
            or invalid settings.

    Matches:
        Wang's ``ssim.m`` (2009 revision, ``K = [0.01 0.03]``, 11x11 Gaussian 1.5, ``L`` scaled with the
        data) on luma601; equivalently scikit-image SSIM (settings of :func:`ssim`) on the downsampled luma.

    References:
        Wang et al. 2004, doi:10.1109/TIP.2003.819861; https://ece.uwaterloo.ca/~z70wang/research/ssim/ssim.m.
    """
    _check_settings("ssim_matlab", data_range, kernel_size, sigma)
    check_indexed(ref, dist, ref_index, "ssim_matlab", kernel_size)
    factor = matlab_downsample_factor(ref.shape[-2], ref.shape[-1])
    x = _matlab_downsample(luma601(ref.to(COMPUTE_DTYPE)), factor)
    y = _matlab_downsample(luma601(dist.to(COMPUTE_DTYPE)), factor)
    return _ssim(x, y, data_range, kernel_size, sigma, k1, k2, return_map, ref_index)


def ms_ssim(
    ref: Tensor,
    dist: Tensor,
    *,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> Tensor:
    """Multi-scale SSIM with the conventions of pytorch-msssim.

    ``MS-SSIM = prod_{j<M} relu(mean cs_j)^w_j * relu(mean ssim_M)^w_M`` per channel, then the mean over
    channels; between scales ``avg_pool2d(2, stride 2, padding (H % 2, W % 2))`` (zero padding counted,
    so an odd side averages a zero row/column into the first output row/column). SSIM pieces as
    :func:`ssim` with its defaults (11x11 Gaussian 1.5, valid region, population moments).

    Args:
        ref: reference images ``(N, C, H, W)``, float in ``[0, 1]``, C = 1 or 3.
        dist: distorted images, same shape.
        data_range: dynamic range ``L`` of the inputs.
        weights: exponents per scale, finest first; their count ``M`` sets the number of scales.

    Returns:
        ``(N,)`` float64 MS-SSIM in ``[0, 1]`` (1 for identical images).

    Raises:
        MetricInputError: on mismatched or malformed inputs, invalid settings, or a side shorter than
            ``10 * 2**(M - 1) + 1`` (161 px for the 5 default scales: 160x160 is refused).

    Matches:
        ``pytorch_msssim.ms_ssim(ref, dist, data_range=1.0, size_average=False)`` (pytorch-msssim 1.0);
        not torchmetrics for odd sizes (no padding there) nor Wang's ``msssim.m``.

    References:
        Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for image quality
        assessment", Asilomar 2003, doi:10.1109/ACSSC.2003.1292216.
    """
    kernel_size, sigma, k1, k2 = 11, 1.5, 0.01, 0.03
    _check_settings("ms_ssim", data_range, kernel_size, sigma)
    scales = len(weights)
    if scales < 1:
        raise MetricInputError("ms_ssim: weights must name at least one scale")
    check_pair(ref, dist, name="ms_ssim", min_side=(kernel_size - 1) * 2 ** (scales - 1) + 1)
    window = _gaussian_window(kernel_size, sigma, ref.device)
    exponents = torch.tensor([float(w) for w in weights], dtype=COMPUTE_DTYPE, device=ref.device)
    x, y = ref.to(COMPUTE_DTYPE), dist.to(COMPUTE_DTYPE)
    factors = []
    for scale in range(scales):
        ssim_means, cs_means, _ = _ssim_stats(x, y, window, data_range, k1, k2, False)
        if scale < scales - 1:
            factors.append(torch.relu(cs_means))
            padding = (x.shape[2] % 2, x.shape[3] % 2)
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    factors.append(torch.relu(ssim_means))
    per_channel = torch.prod(torch.stack(factors) ** exponents.view(-1, 1, 1), dim=0)
    return per_channel.mean(dim=1)
