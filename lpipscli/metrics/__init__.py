"""The metric registry: metadata only. The key is also the CLI name (``--metric``) and the output column.

Every metric takes ``ref, dist`` float tensors ``(N, C, H, W)`` in ``[0, 1]`` (C = 1 or 3) and returns
``(N,)``. Implementations are named lazily (``"module:function"``) and imported only when a run needs
them, so that reading this registry (``lpips metrics``, ``summary``, ``diff``, ``--help``) never imports
torch. The functional API (``lpipscli.metrics.ssim`` ...) is re-exported lazily too.

A new metric is one module with a pure batched function plus one :func:`register` call here (with its
map scale when it has a per-pixel map).
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from lpipscli.config import Lazy, LazyMapping, MapSpec, MetricSpec
from lpipscli.errors import UsageError

REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    if spec.key in REGISTRY:
        raise ValueError(f"metric {spec.key!r} registered twice")
    REGISTRY[spec.key] = spec
    return spec


@contextlib.contextmanager
def registered(specs):
    """Register run-scoped metrics (named definitions, ``--define``) for the duration of a run."""
    added = []
    try:
        for spec in specs:
            register(spec)
            added.append(spec.key)
        yield
    finally:
        for key in added:
            REGISTRY.pop(key, None)


def resolve_params(key: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword settings of metric ``key``: pinned defaults updated by ``overrides``."""
    spec = REGISTRY[key]
    params = dict(spec.params)
    for name, value in (overrides or {}).items():
        if name not in params:
            raise UsageError(f"metric {key} has no setting {name!r} (settings: {', '.join(params) or 'none'})")
        params[name] = value
    return params


def map_metrics() -> list[str]:
    """The registered metrics that have a per-pixel map."""
    return [k for k, s in REGISTRY.items() if s.has_map]


_LPIPS_INFO = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet 1.1"}
_LPIPS_MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}
_LPIPS_COST = {"alex": "3.5 GFLOP at 256x256", "vgg": "~40 GFLOP at 256x256", "squeeze": "~1.7 GFLOP at 256x256"}
_SSIM_MIN_SIDE = 11
_MS_SSIM_MIN_SIDE = 161
_MMD_MIN_SIDE = 3

_SSIM_MAP = (
    "per-pixel SSIM (Gaussian 11x11, sigma 1.5) shown as dissimilarity 1 - SSIM on [0, 1]: black = SSIM 1 "
    "(identical), brightest = SSIM <= 0 (clipped); the 5 px border outside the valid region has no value "
    "(NaN: gray in PNG, 65535 in 16-bit PNG)"
)
_ERROR_MAP = (
    "per-pixel squared error of [0, 1] values{what} on [0, 0.01]: black = 0, brightest = 0.01 or more "
    "(|error| >= 0.1 of full range, a per-pixel PSNR <= 20 dB; clipped)"
)


def _error_map(key: str, what: str, units: str, relation: str) -> MapSpec:
    return MapSpec(key=key, lo=0.0, hi=0.01, higher_is_worse=True, units=units,
                   description=_ERROR_MAP.format(what=what), relation=relation)


for _net, _name in _LPIPS_INFO.items():
    register(MetricSpec(
        key=f"lpips_{_net}",
        fn=Lazy("lpipscli.metrics.lpips:lpips", net=_net),
        measures=f"learned perceptual distance (LPIPS, {_name} features, calibrated heads)",
        value_range="[0, ~1]",
        higher_is_better=False,
        min_side=_LPIPS_MIN_SIDE[_net],
        needs_weights=True,
        params={"version": "0.1", "precision": "float32"},
        conventions={
            "net": _net,
            "input": "[0,1] -> [-1,1], gray replicated to RGB",
            "backbone": f"torchvision {_name} ImageNet",
            "reduction": "spatial mean per layer, sum",
        },
        build=Lazy("lpipscli.metrics.runners:lpips_runner", net=_net),
        cost=_LPIPS_COST[_net],
        map=MapSpec(
            key=f"lpips_{_net}", lo=0.0, hi=1.0, higher_is_worse=True, units="per-pixel LPIPS distance",
            description="per-pixel LPIPS (official spatial map, layers upsampled bilinearly and summed) on [0, 1]; "
                        "black = 0, values >= 1 clipped to the brightest colour",
            relation="mean of the map = score (to ~1e-6)",
        ),
        options={"--lpips-version": "version", "--precision": "precision"},
    ))

register(MetricSpec(
    key="psnr",
    input_dtype="float64",
    map_fn=Lazy("lpipscli.metrics.psnr:psnr", return_map=True),
    fn=Lazy("lpipscli.metrics.psnr:psnr"),
    samples_fn=Lazy("lpipscli.metrics.psnr:psnr_samples"),
    measures="peak signal-to-noise ratio over all channels (dB)",
    value_range="[0, inf] dB; inf for identical images",
    higher_is_better=True,
    min_side=1,
    conventions=LazyMapping("lpipscli.metrics.psnr:PSNR_DEFAULTS"),
    cost="negligible",
    map=_error_map("psnr", ", mean over channels", "squared error", "score = -10 * log10(mean of the map) dB"),
))
register(MetricSpec(
    key="ssim",
    input_dtype="float64",
    build=Lazy("lpipscli.metrics.ssim:ssim_runner", key="ssim"),  # references filtered once per batch
    map_fn=Lazy("lpipscli.metrics.ssim:ssim", return_map=True),
    fn=Lazy("lpipscli.metrics.ssim:ssim"),
    measures="structural similarity (Wang 2004), per channel, averaged",
    value_range="[-1, 1]; 1 for identical images",
    higher_is_better=True,
    min_side=_SSIM_MIN_SIDE,
    conventions=LazyMapping("lpipscli.metrics.ssim:SSIM_DEFAULTS"),
    cost="small",
    map=MapSpec(key="ssim", lo=0.0, hi=1.0, higher_is_worse=False, units="SSIM", description=_SSIM_MAP,
                relation="mean of the finite (valid-region) values = score", border=5),
))
register(MetricSpec(
    key="psnr_y",
    input_dtype="float64",
    map_fn=Lazy("lpipscli.metrics.psnr:psnr_y", return_map=True),
    fn=Lazy("lpipscli.metrics.psnr:psnr_y"),
    measures="PSNR of BT.601 luma (dB)",
    value_range="[0, inf] dB",
    higher_is_better=True,
    min_side=1,
    conventions=LazyMapping("lpipscli.metrics.psnr:PSNR_Y_DEFAULTS"),
    cost="negligible",
    map=_error_map("psnr_y", " of BT.601 luma", "squared luma error", "score = -10 * log10(mean of the map) dB"),
))
register(MetricSpec(
    key="mse",
    input_dtype="float64",
    map_fn=Lazy("lpipscli.metrics.psnr:mse_with_map"),
    fn=Lazy("lpipscli.metrics.psnr:mse"),
    samples_fn=Lazy("lpipscli.metrics.psnr:mse_samples"),
    measures="mean squared error of [0,1] values, all channels",
    value_range="[0, 1]; 0 for identical images",
    higher_is_better=False,
    min_side=1,
    conventions=LazyMapping("lpipscli.metrics.psnr:MSE_DEFAULTS"),
    cost="negligible",
    map=_error_map("mse", ", mean over channels", "squared error", "score = mean of the map"),
))
register(MetricSpec(
    key="l1",
    input_dtype="float64",
    fn=Lazy("lpipscli.metrics.psnr:l1"),
    measures="mean absolute error of [0,1] values, all channels",
    value_range="[0, 1]; 0 for identical images",
    higher_is_better=False,
    min_side=1,
    conventions=LazyMapping("lpipscli.metrics.psnr:L1_DEFAULTS"),
    cost="negligible",
))
register(MetricSpec(
    key="ssim_y",
    input_dtype="float64",
    build=Lazy("lpipscli.metrics.ssim:ssim_runner", key="ssim_y"),  # references filtered once per batch
    map_fn=Lazy("lpipscli.metrics.ssim:ssim_y", return_map=True),
    fn=Lazy("lpipscli.metrics.ssim:ssim_y"),
    measures="SSIM of BT.601 luma",
    value_range="[-1, 1]",
    higher_is_better=True,
    min_side=_SSIM_MIN_SIDE,
    conventions=LazyMapping("lpipscli.metrics.ssim:SSIM_Y_DEFAULTS"),
    cost="small",
    map=MapSpec(key="ssim_y", lo=0.0, hi=1.0, higher_is_worse=False, units="SSIM of luma",
                description=_SSIM_MAP.replace("per-pixel SSIM", "per-pixel SSIM of BT.601 luma"),
                relation="mean of the finite (valid-region) values = score", border=5),
))
register(MetricSpec(
    key="ssim_matlab",
    input_dtype="float64",
    build=Lazy("lpipscli.metrics.ssim:ssim_runner", key="ssim_matlab"),  # references filtered once per batch
    fn=Lazy("lpipscli.metrics.ssim:ssim_matlab"),
    measures="SSIM of luma after MATLAB ssim.m's automatic downsampling",
    value_range="[-1, 1]",
    higher_is_better=True,
    min_side=_SSIM_MIN_SIDE,
    conventions=LazyMapping("lpipscli.metrics.ssim:SSIM_MATLAB_DEFAULTS"),
    cost="small",
))
register(MetricSpec(
    key="ms_ssim",
    input_dtype="float64",
    fn=Lazy("lpipscli.metrics.ssim:ms_ssim"),
    measures="multi-scale SSIM (5 scales, pytorch-msssim conventions)",
    value_range="[0, 1]",
    higher_is_better=True,
    min_side=_MS_SSIM_MIN_SIDE,
    conventions=LazyMapping("lpipscli.metrics.ssim:MS_SSIM_DEFAULTS"),
    cost="small",
))
register(MetricSpec(
    key="mmd",
    fn=Lazy("lpipscli.metrics.mmd:mmd"),
    measures="patch MMD^2 (Amir & Weiss): 3x3 patch distributions in 32x32 windows, exact",
    value_range="[0, 2]; 0 for identical images",
    higher_is_better=False,
    min_side=_MMD_MIN_SIDE,
    params=LazyMapping("lpipscli.metrics.mmd:MMD_DEFAULTS"),
    conventions=LazyMapping("lpipscli.metrics.mmd:MMD_PROVENANCE"),
    cost="O(H*W*1024) kernel values",
    options={"--mmd-sigma": "sigma", "--mmd-normalize": "normalize"},
))
register(MetricSpec(
    key="mmd_rff",
    fn=Lazy("lpipscli.metrics.mmd:mmd_rff"),
    measures="patch MMD^2 by random Fourier features (expectation = mmd), seeded",
    value_range="[0, ~2]; 0 for identical images",
    higher_is_better=False,
    min_side=_MMD_MIN_SIDE,
    params=LazyMapping("lpipscli.metrics.mmd:MMD_RFF_DEFAULTS"),
    conventions=LazyMapping("lpipscli.metrics.mmd:MMD_RFF_PROVENANCE"),
    cost="O(H*W*features)",
    options={"--mmd-sigma": "sigma", "--mmd-normalize": "normalize", "--mmd-features": "features",
             "--mmd-seed": "seed"},
))
register(MetricSpec(
    key="mmd_pp",
    fn=Lazy("lpipscli.metrics.mmd:mmd_pp"),
    measures="MMD++: 0.001 L2 + 0.05 local patch RBF + patch MMD (RFF), seeded",
    value_range="[0, ~1]; 0 for identical images",
    higher_is_better=False,
    min_side=_MMD_MIN_SIDE,
    params=LazyMapping("lpipscli.metrics.mmd:MMD_PP_DEFAULTS"),
    conventions=LazyMapping("lpipscli.metrics.mmd:MMD_PP_PROVENANCE"),
    cost="O(H*W*features)",
    options={"--mmd-features": "features", "--mmd-seed": "seed"},
))
register(MetricSpec(
    key="lasi",
    input_dtype="float64",
    fn=Lazy("lpipscli.metrics.lasi:lasi"),
    measures="LASI (Severo, Theis, Balle): distance of local linear-prediction weights, exact",
    value_range="[0, 2]; 0 for identical images",
    higher_is_better=False,
    min_side=1,
    params={"k": 10, "ols_regularization_coef": 1.0},
    conventions={
        "ridge_lambda": "coef*80/127.5 (0.62745)",
        "omega": 0.8,
        "scale": "[0,1] inputs x 255",
        "pinv_rtol": "10*k*2^-23 = 1.19e-5 (JAX float32 default)",
        "param_offset": 1e-6,
        "unit_normalize_features": True,
        "neighbourhood": "k L1-nearest previous elements, raster order, channel fastest, ties by flat index, "
        "missing = 0",
        "evaluation": "exact O(N k^2), float64",
        "reference": "dsevero/Linear-Autoregressive-Similarity-Index bcac40c",
        "min_elements": "H*W*C > k",
    },
    differentiable=False,
    cost="O(H*W*C*k^2)",
    options={"--lasi-k": "k"},
))

register(MetricSpec(
    key="psnr_yuv",
    input="planes",
    columns=("psnr_yuv_y", "psnr_yuv_u", "psnr_yuv_v", "psnr_yuv"),
    fn=Lazy("lpipscli.metrics.yuv:psnr_yuv_columns"),
    measures="PSNR per decoded YUV plane and FFmpeg's weighted average (dB), equal to FFmpeg's psnr filter; video",
    value_range="[0, inf] dB; inf for identical planes",
    higher_is_better=True,
    min_side=1,
    conventions=LazyMapping("lpipscli.metrics.yuv:PSNR_YUV_DEFAULTS"),
    differentiable=False,
    cost="negligible",
))
register(MetricSpec(
    key="ssim_ffmpeg",
    input="planes",
    columns=("ssim_ffmpeg_y", "ssim_ffmpeg_u", "ssim_ffmpeg_v", "ssim_ffmpeg"),
    fn=Lazy("lpipscli.metrics.yuv:ssim_ffmpeg_columns"),
    measures="FFmpeg's 8x8-block SSIM per decoded YUV plane and its weighted 'All', equal to FFmpeg's ssim filter; "
             "video",
    value_range="[-1, 1]; 1 for identical planes",
    higher_is_better=True,
    min_side=16,
    conventions=LazyMapping("lpipscli.metrics.yuv:SSIM_FFMPEG_DEFAULTS"),
    differentiable=False,
    cost="small",
))

register(MetricSpec(
    key="vmaf",
    input="sequence",
    fn=Lazy("lpipscli.metrics.vmaf:VmafSequences"),
    measures="VMAF per frame (libvmaf, vmaf_v0.6.1) = FFmpeg's libvmaf filter; video; needs av>=19 (Python>=3.12)",
    value_range="[0, 100]",
    higher_is_better=True,
    min_side=16,
    params={"model": "vmaf_v0.6.1"},
    conventions=LazyMapping("lpipscli.metrics.vmaf:VMAF_DEFAULTS"),
    differentiable=False,
    cost="7 ms per 360p frame",
    options={"--vmaf-model": "model"},
))

DEFAULT_METRICS = ("lpips_alex", "ssim", "psnr")

#: the functional API, imported on first access (``from lpipscli.metrics import ssim``)
_LAZY_EXPORTS = {
    "LPIPS": "lpipscli.metrics.lpips", "lpips": "lpipscli.metrics.lpips",
    "psnr": "lpipscli.metrics.psnr", "psnr_y": "lpipscli.metrics.psnr", "mse": "lpipscli.metrics.psnr",
    "l1": "lpipscli.metrics.psnr", "ssim": "lpipscli.metrics.ssim", "ssim_y": "lpipscli.metrics.ssim",
    "ssim_matlab": "lpipscli.metrics.ssim", "ms_ssim": "lpipscli.metrics.ssim", "mmd": "lpipscli.metrics.mmd",
    "mmd_rff": "lpipscli.metrics.mmd", "mmd_pp": "lpipscli.metrics.mmd", "lasi": "lpipscli.metrics.lasi",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lpipscli.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["REGISTRY", "DEFAULT_METRICS", "MetricSpec", "MapSpec", "register", "resolve_params", "map_metrics",
           *_LAZY_EXPORTS]
