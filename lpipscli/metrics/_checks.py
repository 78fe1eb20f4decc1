"""Input validation shared by every metric (never `assert`: `python -O` strips it)."""

from __future__ import annotations

import torch
from torch import Tensor

from lpipscli.errors import MetricInputError


def check_pair(ref: Tensor, dist: Tensor, *, name: str, min_side: int = 1) -> None:
    """Validate a batch pair for metric ``name``.

    Args:
        ref: ``(N, C, H, W)`` floating tensor, values in ``[0, 1]``.
        dist: same shape, dtype and device as ``ref``.
        name: metric key, used in messages.
        min_side: smallest accepted image side in pixels.

    Raises:
        MetricInputError: on a shape, dtype or size the metric cannot score.
    """
    if not isinstance(ref, Tensor) or not isinstance(dist, Tensor):
        raise MetricInputError(f"{name}: expected torch tensors, got {type(ref).__name__} and {type(dist).__name__}")
    if ref.dim() != 4:
        raise MetricInputError(f"{name}: expected (N, C, H, W) tensors, got shape {tuple(ref.shape)}")
    if ref.shape != dist.shape:
        raise MetricInputError(
            f"{name}: ref and dist shapes differ: {tuple(ref.shape)} vs {tuple(dist.shape)}"
        )
    if not torch.is_floating_point(ref) or not torch.is_floating_point(dist):
        raise MetricInputError(
            f"{name}: expected floating tensors in [0, 1], got {ref.dtype} and {dist.dtype} "
            "(convert once with x.float() / 255 for 8-bit data)"
        )
    if ref.shape[1] not in (1, 3):
        raise MetricInputError(f"{name}: expected 1 (gray) or 3 (RGB) channels, got {ref.shape[1]}")
    height, width = ref.shape[-2:]
    if min(height, width) < min_side:
        raise MetricInputError(
            f"{name} needs images of at least {min_side}x{min_side} px, got {width}x{height}"
        )
