"""Masked pixel metrics for ``--alpha mask``: ``psnr`` and ``mse`` over the pixels a mask keeps.

``--alpha mask`` scores the pixels that are opaque on both sides of a pair
(:func:`lpipscli.io.decoding.pair_arrays` gives the mask). Only metrics whose value is a plain average over
pixels can take a mask without changing what they mean: ``mse`` and ``psnr`` (keys of
:data:`MASKED_FUNCTIONS`). SSIM, MS-SSIM, LPIPS, MMD and LASI work on neighbourhoods or whole feature maps,
so under ``--alpha mask`` they score both sides composited over ``--alpha-color`` instead (the
``composite-both`` arrays).

Same conventions as :mod:`lpipscli.metrics.psnr`: ``ref, dist`` float tensors ``(N, C, H, W)`` in
``[0, 1]``, float64 inside and out, shape ``(N,)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lpipscli.errors import MetricInputError
from lpipscli.metrics._checks import check_pair

__all__ = ["MASKED_FUNCTIONS", "masked_mse", "masked_psnr"]


def _mask(mask: Tensor, ref: Tensor) -> Tensor:
    n, _, h, w = ref.shape
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.dim() != 4 or mask.shape[0] != n or mask.shape[1] != 1 or tuple(mask.shape[2:]) != (h, w):
        raise MetricInputError(f"mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(ref.shape)} "
                               f"(expected ({n}, 1, {h}, {w}) or ({n}, {h}, {w}))")
    return mask.to(device=ref.device, dtype=torch.float64)


def masked_mse(ref: Tensor, dist: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the kept pixels (all channels): ``sum(m * (ref - dist)^2) / (C * sum(m))``.

    Args:
        ref, dist: ``(N, C, H, W)`` floats in ``[0, 1]``.
        mask: ``(N, 1, H, W)`` or ``(N, H, W)``, true (or 1) where a pixel counts.

    Returns:
        ``(N,)`` float64; NaN for a pair whose mask keeps no pixel (nothing to score).

    Raises:
        MetricInputError: shapes that do not match.
    """
    check_pair(ref, dist, name="masked_mse")
    m = _mask(mask, ref)
    diff = ref.to(torch.float64) - dist.to(torch.float64)
    kept = m.sum(dim=(1, 2, 3)) * ref.shape[1]
    total = (diff * diff * m).sum(dim=(1, 2, 3))
    out = total / kept
    return torch.where(kept > 0, out, torch.full_like(out, math.nan))


def masked_psnr(ref: Tensor, dist: Tensor, mask: Tensor, *, data_range: float = 1.0) -> Tensor:
    """``10 log10(data_range^2 / masked_mse)``; ``inf`` when the kept pixels are identical, NaN when none is kept.

    Args:
        ref, dist: ``(N, C, H, W)`` floats in ``[0, 1]``.
        mask: as :func:`masked_mse`.
        data_range: the value range (1.0 for ``[0, 1]``).

    Returns:
        ``(N,)`` float64.
    """
    mse = masked_mse(ref, dist, mask)
    return 10.0 * torch.log10(float(data_range) ** 2 / mse)


#: Metric key -> its masked function (what ``--alpha mask`` computes for that key).
MASKED_FUNCTIONS = {"mse": masked_mse, "psnr": masked_psnr}
