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


def check_indexed(ref: Tensor, dist: Tensor, ref_index: Tensor | None, name: str, min_side: int) -> None:
    """:func:`check_pair`, where with ``ref_index`` ``ref`` holds ``R`` references and ``dist`` ``P`` images."""
    if ref_index is None:
        check_pair(ref, dist, name=name, min_side=min_side)
        return
    if not isinstance(ref_index, Tensor) or ref_index.dim() != 1 or ref_index.dtype.is_floating_point:
        raise MetricInputError(f"{name}: ref_index must be a 1-D integer tensor")
    if not isinstance(dist, Tensor) or dist.dim() != 4 or ref_index.shape[0] != dist.shape[0]:
        raise MetricInputError(f"{name}: ref_index needs one entry per distorted image")
    if not isinstance(ref, Tensor) or ref.dim() != 4 or ref.shape[1:] != dist.shape[1:]:
        shape = tuple(ref.shape) if isinstance(ref, Tensor) else type(ref).__name__
        raise MetricInputError(f"{name}: ref and dist image shapes differ: {shape} vs {tuple(dist.shape)}")
    if ref_index.numel() and (int(ref_index.min()) < 0 or int(ref_index.max()) >= ref.shape[0]):
        raise MetricInputError(f"{name}: ref_index out of range for {ref.shape[0]} reference(s)")
    if len(dist):
        check_pair(ref[:1], dist[:1], name=name, min_side=min_side)


def check_samples(ref: Tensor, dist: Tensor, scale: float, ref_index: Tensor | None, name: str,
                  min_side: int) -> None:
    """:func:`check_indexed` for integer samples standing for ``k / scale`` (shapes checked on meta tensors)."""
    for t in (ref, dist):
        if not isinstance(t, Tensor) or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise MetricInputError(f"{name}: with scale, expected integer sample tensors, got {got}")
    if not scale > 0:
        raise MetricInputError(f"{name}: scale must be positive, got {scale}")
    ref = torch.empty(ref.shape, dtype=torch.float32, device="meta")
    dist = torch.empty(dist.shape, dtype=torch.float32, device="meta")
    check_indexed(ref, dist, ref_index, name, min_side)
