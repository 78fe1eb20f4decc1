"""The metric registry: the key is also the CLI name (``--metric``) and the output column.

Every metric takes ``ref, dist`` float tensors ``(N, C, H, W)`` in ``[0, 1]`` (C = 1 or 3) and returns
``(N,)``. Pure functions are called by the engine directly; LPIPS builds a module once per run and reuses
each reference's features for all its distorted versions.
"""

from __future__ import annotations

import functools
from typing import Any

from lpipscli.config import MetricSpec
from lpipscli.errors import UsageError
from lpipscli.metrics import mmd as _mmd
from lpipscli.metrics import psnr as _psnr
from lpipscli.metrics import ssim as _ssim
from lpipscli.metrics.lasi import lasi
from lpipscli.metrics.lpips import LPIPS, lpips
from lpipscli.metrics.lpips import MIN_SIDE as _LPIPS_MIN_SIDE
from lpipscli.metrics.mmd import mmd, mmd_pp, mmd_rff
from lpipscli.metrics.psnr import l1, mse, psnr, psnr_y
from lpipscli.metrics.ssim import ms_ssim, ssim, ssim_matlab, ssim_y

REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    if spec.key in REGISTRY:
        raise ValueError(f"metric {spec.key!r} registered twice")
    REGISTRY[spec.key] = spec
    return spec


def resolve_params(key: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword settings of metric ``key``: pinned defaults updated by ``overrides``."""
    spec = REGISTRY[key]
    params = dict(spec.params)
    for name, value in (overrides or {}).items():
        if name not in params:
            raise UsageError(f"metric {key} has no setting {name!r} (settings: {', '.join(params) or 'none'})")
        params[name] = value
    return params


def _mse_with_map(ref, dist):
    """MSE and its per-pixel squared-error map (the map of ``psnr``)."""
    _, error_map = psnr(ref, dist, return_map=True)
    return mse(ref, dist), error_map


def _build_lpips(net: str):
    def build(device, *, allow_unverified: bool = False, version: str = "0.1"):
        module = LPIPS(net, version, allow_unverified=allow_unverified).to(device)
        return module.runner, module.weight_records

    return build


_LPIPS_INFO = {
    "alex": "AlexNet",
    "vgg": "VGG16",
    "squeeze": "SqueezeNet 1.1",
}
_LPIPS_COST = {"alex": "3.5 GFLOP at 256x256", "vgg": "~40 GFLOP at 256x256", "squeeze": "~1.7 GFLOP at 256x256"}

for _net, _name in _LPIPS_INFO.items():
    register(
        MetricSpec(
            key=f"lpips_{_net}",
            fn=functools.partial(lpips, net=_net),
            measures=f"learned perceptual distance (LPIPS, {_name} features, calibrated heads)",
            value_range="[0, ~1]",
            higher_is_better=False,
            min_side=_LPIPS_MIN_SIDE[_net],
            needs_weights=True,
            params={"version": "0.1"},
            conventions={
                "net": _net,
                "input": "[0,1] -> [-1,1], gray replicated to RGB",
                "backbone": f"torchvision {_name} ImageNet",
                "reduction": "spatial mean per layer, sum",
            },
            build=_build_lpips(_net),
            cost=_LPIPS_COST[_net],
        )
    )

register(
    MetricSpec(
        key="psnr",
        input_dtype="float64",
        map_fn=functools.partial(psnr, return_map=True),
        fn=psnr,
        measures="peak signal-to-noise ratio over all channels (dB)",
        value_range="[0, inf] dB; inf for identical images",
        higher_is_better=True,
        min_side=1,
        conventions=_psnr.PSNR_DEFAULTS,
        differentiable=True,
        cost="negligible",
    )
)
register(
    MetricSpec(
        key="ssim",
        input_dtype="float64",
        map_fn=functools.partial(ssim, return_map=True),
        fn=ssim,
        measures="structural similarity (Wang 2004), per channel, averaged",
        value_range="[-1, 1]; 1 for identical images",
        higher_is_better=True,
        min_side=_ssim.SSIM_MIN_SIDE,
        conventions=_ssim.SSIM_DEFAULTS,
        cost="small",
    )
)
register(
    MetricSpec(
        key="psnr_y",
        input_dtype="float64",
        map_fn=functools.partial(psnr_y, return_map=True),
        fn=psnr_y,
        measures="PSNR of BT.601 luma (dB)",
        value_range="[0, inf] dB",
        higher_is_better=True,
        min_side=1,
        conventions=_psnr.PSNR_Y_DEFAULTS,
        cost="negligible",
    )
)
register(
    MetricSpec(
        key="mse",
        input_dtype="float64",
        map_fn=_mse_with_map,
        fn=mse,
        measures="mean squared error of [0,1] values, all channels",
        value_range="[0, 1]; 0 for identical images",
        higher_is_better=False,
        min_side=1,
        conventions=_psnr.MSE_DEFAULTS,
        cost="negligible",
    )
)
register(
    MetricSpec(
        key="l1",
        input_dtype="float64",
        fn=l1,
        measures="mean absolute error of [0,1] values, all channels",
        value_range="[0, 1]; 0 for identical images",
        higher_is_better=False,
        min_side=1,
        conventions=getattr(_psnr, "L1_DEFAULTS", _psnr.MSE_DEFAULTS),
        cost="negligible",
    )
)
register(
    MetricSpec(
        key="ssim_y",
        input_dtype="float64",
        map_fn=functools.partial(ssim_y, return_map=True),
        fn=ssim_y,
        measures="SSIM of BT.601 luma",
        value_range="[-1, 1]",
        higher_is_better=True,
        min_side=_ssim.SSIM_MIN_SIDE,
        conventions=_ssim.SSIM_Y_DEFAULTS,
        cost="small",
    )
)
register(
    MetricSpec(
        key="ssim_matlab",
        input_dtype="float64",
        fn=ssim_matlab,
        measures="SSIM of luma after MATLAB ssim.m's automatic downsampling",
        value_range="[-1, 1]",
        higher_is_better=True,
        min_side=_ssim.SSIM_MIN_SIDE,
        conventions=_ssim.SSIM_MATLAB_DEFAULTS,
        cost="small",
    )
)
register(
    MetricSpec(
        key="ms_ssim",
        input_dtype="float64",
        fn=ms_ssim,
        measures="multi-scale SSIM (5 scales, pytorch-msssim conventions)",
        value_range="[0, 1]",
        higher_is_better=True,
        min_side=_ssim.MS_SSIM_MIN_SIDE,
        conventions=_ssim.MS_SSIM_DEFAULTS,
        cost="small",
    )
)

register(
    MetricSpec(
        key="mmd",
        fn=mmd,
        measures="patch MMD^2 (Amir & Weiss): 3x3 patch distributions in 32x32 windows, exact",
        value_range="[0, 2]; 0 for identical images",
        higher_is_better=False,
        min_side=_mmd.MIN_SIDE["mmd"],
        params=_mmd.MMD_DEFAULTS,
        conventions=_mmd.PROVENANCE["mmd"],
        cost="O(H*W*1024) kernel values",
    )
)
register(
    MetricSpec(
        key="mmd_rff",
        fn=mmd_rff,
        measures="patch MMD^2 by random Fourier features (expectation = mmd), seeded",
        value_range="[0, ~2]; 0 for identical images",
        higher_is_better=False,
        min_side=_mmd.MIN_SIDE["mmd_rff"],
        params=_mmd.MMD_RFF_DEFAULTS,
        conventions=_mmd.PROVENANCE["mmd_rff"],
        cost="O(H*W*features)",
    )
)
register(
    MetricSpec(
        key="mmd_pp",
        fn=mmd_pp,
        measures="MMD++: 0.001 L2 + 0.05 local patch RBF + patch MMD (RFF), seeded",
        value_range="[0, ~1]; 0 for identical images",
        higher_is_better=False,
        min_side=_mmd.MIN_SIDE["mmd_pp"],
        params=_mmd.MMD_PP_DEFAULTS,
        conventions=_mmd.PROVENANCE["mmd_pp"],
        cost="O(H*W*features)",
    )
)
register(
    MetricSpec(
        key="lasi",
        input_dtype="float64",
        fn=lasi,
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
    )
)

DEFAULT_METRICS = ("lpips_alex", "ssim", "psnr")

__all__ = [
    "REGISTRY",
    "DEFAULT_METRICS",
    "MetricSpec",
    "register",
    "resolve_params",
    "LPIPS",
    "lpips",
    "psnr",
    "psnr_y",
    "mse",
    "l1",
    "ssim",
    "ssim_y",
    "ssim_matlab",
    "ms_ssim",
    "mmd",
    "mmd_rff",
    "mmd_pp",
    "lasi",
]
