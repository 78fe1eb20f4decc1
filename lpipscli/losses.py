"""Training losses: ``nn.Module`` wrappers of the metrics that backpropagate.

Every loss takes ``(pred, target)`` ``(N, C, H, W)`` (C = 1 or 3) in an **explicit** input range,
``input_range=(0, 1)`` or ``(-1, 1)``: values outside it raise :class:`~lpipscli.errors.MetricInputError`
(a silently wrong range is the most reported LPIPS mistake: ``[0, 1]`` images fed to a ``[-1, 1]`` LPIPS give
plausible but wrong numbers). Each loss maps its inputs to ``[0, 1]`` once and calls the same core as the
metric registry, so ``loss(pred, target)`` with ``reduction="none"`` equals the metric of the same key (for
the similarities SSIM and MS-SSIM the loss is ``1 - similarity``). Backbones are frozen (no parameter
requires grad), stay in eval mode whatever ``.train()`` says, and move with ``.to()``.

Example::

    import torch
    from lpipscli.losses import PerceptualLoss, SSIMLoss

    perceptual = PerceptualLoss("vgg16", ["relu2_2", "relu3_3"], input_range=(-1, 1)).to("cuda")
    ssim_loss = SSIMLoss(input_range=(-1, 1))
    loss = perceptual(output, target) + 0.1 * ssim_loss(output, target)
    loss.backward()
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lpipscli.errors import MetricInputError, UsageError

RANGES = ((0.0, 1.0), (-1.0, 1.0))
REDUCTIONS = ("mean", "sum", "none")
#: Values may exceed the range by this much (float rounding of a clamp or a tanh) without an error.
RANGE_TOLERANCE = 1e-6


def _check_range(input_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise UsageError(f"input_range must be (0, 1) or (-1, 1), got {input_range!r}") from None
    if (lo, hi) not in RANGES:
        raise UsageError(f"input_range must be (0, 1) or (-1, 1), got {input_range!r}")
    return lo, hi


class _RangeLoss(nn.Module):
    """Shared input checks, range mapping and reduction."""

    name = "loss"

    def __init__(self, input_range, reduction: str):
        super().__init__()
        self.input_range = _check_range(input_range)
        if reduction not in REDUCTIONS:
            raise UsageError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"input_range={self.input_range}, reduction={self.reduction!r}"

    def _to_unit(self, x: Tensor, which: str) -> Tensor:
        if not isinstance(x, Tensor) or not torch.is_floating_point(x):
            raise MetricInputError(f"{self.name}: {which} must be a floating tensor")
        lo, hi = self.input_range
        with torch.no_grad():
            low, high = float(x.min()), float(x.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise MetricInputError(f"{self.name}: {which} holds NaN or infinite values")
        if low < lo - RANGE_TOLERANCE or high > hi + RANGE_TOLERANCE:
            hint = " (did you pass [0, 1] images to a (-1, 1) loss, or the reverse?)"
            raise MetricInputError(
                f"{self.name}: {which} values span [{low:.4g}, {high:.4g}], outside input_range {self.input_range}"
                f"{hint}"
            )
        return x if lo == 0.0 else (x + 1.0) / 2.0

    def _reduce(self, values: Tensor) -> Tensor:
        if self.reduction == "mean":
            return values.mean()
        if self.reduction == "sum":
            return values.sum()
        return values

    def score(self, pred: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred``, ``target`` ``(N, C, H, W)`` in ``input_range`` -> reduced loss (``(N,)`` with "none")."""
        return self._reduce(self.score(self._to_unit(target, "target"), self._to_unit(pred, "pred")))

    def train(self, mode: bool = True):
        return super().train(False)


class LPIPSLoss(_RangeLoss):
    """LPIPS (v0.1 or v0.0, alex / vgg / squeeze) as a loss; equals the ``lpips_<net>`` metric."""

    def __init__(self, net: str = "alex", version: str = "0.1", *, input_range=(0, 1), reduction: str = "mean",
                 allow_unverified: bool = False):
        super().__init__(input_range, reduction)
        from lpipscli.metrics.lpips import LPIPS

        self.name = f"LPIPSLoss({net})"
        self.module = LPIPS(net, version, allow_unverified=allow_unverified)
        self.module.requires_grad_(False)

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        return self.module(ref, dist)


class PerceptualLoss(_RangeLoss):
    """The perceptual (+ style) distance of :class:`lpipscli.features.perceptual.PerceptualDistance` as a loss.

    All keyword arguments of that class are accepted (``distance``, ``layer_weights``, ``weights="random"``,
    ``seed``, ``members``, ``zero_mean_first``, ``normalize``, ``select="H-10"``, ``channel_weights="pe"``,
    ``pe``, ``style_weight``, ``style_layers``, ``style_layer_weights``, ``style_criterion``,
    ``allow_unverified``).
    """

    def __init__(self, net: str = "vgg16", layers: Sequence[str] | None = None, *, input_range=(0, 1),
                 reduction: str = "mean", **kwargs):
        super().__init__(input_range, reduction)
        from lpipscli.features.perceptual import PerceptualDistance

        self.name = f"PerceptualLoss({net})"
        self.distance = PerceptualDistance(net, layers, **kwargs)

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        return self.distance(ref, dist)


class SCNNLoss(_RangeLoss):
    """The random S-CNN distance (Amir & Weiss) as a loss; keyword arguments of ``SCNNDistance``."""

    def __init__(self, *, input_range=(0, 1), reduction: str = "mean", **kwargs):
        super().__init__(input_range, reduction)
        from lpipscli.features.scnn import SCNNDistance

        self.name = "SCNNLoss"
        self.distance = SCNNDistance(**kwargs)

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        return self.distance(ref, dist)


class SSIMLoss(_RangeLoss):
    """``1 - ssim`` (Wang et al. 2004, the ``ssim`` metric's settings); computed in float64, returned in the
    input's dtype."""

    def __init__(self, *, input_range=(0, 1), reduction: str = "mean", kernel_size: int = 11, sigma: float = 1.5):
        super().__init__(input_range, reduction)
        self.name = "SSIMLoss"
        self.kernel_size, self.sigma = kernel_size, sigma

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        from lpipscli.metrics.ssim import ssim

        return (1.0 - ssim(ref, dist, kernel_size=self.kernel_size, sigma=self.sigma)).to(dist.dtype)


class MSSSIMLoss(_RangeLoss):
    """``1 - ms_ssim`` (pytorch-msssim conventions); ``weights`` sets the scales (5 need sides >= 161 px)."""

    def __init__(self, *, input_range=(0, 1), reduction: str = "mean", weights: Sequence[float] | None = None):
        super().__init__(input_range, reduction)
        from lpipscli.metrics.ssim import MS_SSIM_WEIGHTS

        self.name = "MSSSIMLoss"
        self.weights = tuple(weights) if weights is not None else MS_SSIM_WEIGHTS

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        from lpipscli.metrics.ssim import ms_ssim

        return (1.0 - ms_ssim(ref, dist, weights=self.weights)).to(dist.dtype)


class PatchMMDLoss(_RangeLoss):
    """Windowed patch MMD^2 (Amir & Weiss): ``exact=True`` is the ``mmd`` metric, ``exact=False`` the seeded
    random-Fourier-feature ``mmd_rff`` (``features`` and ``seed`` apply). Other keywords: ``sigma``,
    ``patch_size``, ``window``, ``stride``, ``normalize``."""

    def __init__(self, *, exact: bool = False, input_range=(0, 1), reduction: str = "mean", **kwargs):
        super().__init__(input_range, reduction)
        from lpipscli.metrics.mmd import MMD_DEFAULTS, MMD_RFF_DEFAULTS

        self.name = "PatchMMDLoss"
        self.exact = exact
        defaults = MMD_DEFAULTS if exact else MMD_RFF_DEFAULTS
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise UsageError(f"PatchMMDLoss: unknown setting {', '.join(unknown)} (known: {', '.join(defaults)})")
        self.params = {**defaults, **kwargs}

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        from lpipscli.metrics.mmd import mmd, mmd_rff

        return (mmd if self.exact else mmd_rff)(ref, dist, **self.params)


class MMDPPLoss(_RangeLoss):
    """MMD++ (``0.001 L2 + 0.05 PatchRBF + MMD(RFF)``), the ``mmd_pp`` metric; keywords as ``mmd_pp``."""

    def __init__(self, *, input_range=(0, 1), reduction: str = "mean", **kwargs):
        super().__init__(input_range, reduction)
        from lpipscli.metrics.mmd import MMD_PP_DEFAULTS

        self.name = "MMDPPLoss"
        unknown = sorted(set(kwargs) - set(MMD_PP_DEFAULTS))
        if unknown:
            raise UsageError(f"MMDPPLoss: unknown setting {', '.join(unknown)} (known: {', '.join(MMD_PP_DEFAULTS)})")
        self.params = {**MMD_PP_DEFAULTS, **kwargs}

    def score(self, ref: Tensor, dist: Tensor) -> Tensor:
        from lpipscli.metrics.mmd import mmd_pp

        return mmd_pp(ref, dist, **self.params)


__all__ = [
    "LPIPSLoss", "PerceptualLoss", "SCNNLoss", "SSIMLoss", "MSSSIMLoss", "PatchMMDLoss", "MMDPPLoss", "RANGES",
]
