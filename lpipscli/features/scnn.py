"""The Simple-CNN of Amir & Weiss (CVPR 2021, section 1.2) with random weights, as a distance.

"A single spatial convolution with kernel size P followed by D 1x1 convolution layers and a single average
pooling layer with window size W and strides S. All intermediate layers have constant width C and all
convolutional layers are followed by ReLU"; distance: "L2 distance over normalized representations in the
post-pooling layer". Paper defaults: P = 3, D = 6, C = 1024, W = 32, S = 16. By the paper's Theorem 2.1 the
distance tends, as C grows, to an average patch MMD (``lpipscli.metrics.mmd``) with a robust kernel.

Every choice the paper leaves open is a documented default (:data:`SCNN_DECISIONS`, recorded with scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpipscli.errors import UsageError
from lpipscli.features.perceptual import NORM_EPS, unit_normalize

#: The paper's settings (2AFC experiment).
SCNN_DEFAULTS: dict[str, object] = {
    "patch_size": 3, "depth": 6, "width": 1024, "window": 32, "stride": 16, "seed": 0, "members": 1,
    "zero_mean_first": False,
}

SCNN_DECISIONS: dict[str, object] = {
    "input": "[0,1] mapped to [-1,1] by 2x-1 (as mmd); gray replicated to RGB",
    "padding": "reflect by patch_size//2 before the PxP convolution: one patch per pixel (as mmd)",
    "init": "He-normal weights N(0, 2/fan_in), drawn layer by layer from torch.Generator('cpu')"
    ".manual_seed(seed + k) for member k, then moved to the device (PyTorch's default init shrinks the signal "
    "~2.4x per ReLU layer: at D=6 the pooled features were bias-dominated, distances ~1e-7, and their rank "
    "correlation with mmd lower, 0.77 vs 0.90 on 16 crops of ../shared/data at C=256)",
    "biases": "none",
    "relu": "after every convolution (the PxP one and each of the D 1x1 ones)",
    "pooling": "average pooling window x window, stride `stride`, only windows that fit; a side shorter than "
    "`window` uses one window spanning that side (as mmd)",
    "normalization": "unit L2 norm over channels at every pooled position (+1e-10 on the norm, as LPIPS)",
    "distance": "sum over channels of the squared difference of the normalised vectors, mean over positions; "
    "mean over ensemble members",
    "zero_mean_first": "off by default (the paper uses it for random VGG); when on, each PxP filter slice "
    "minus its spatial mean",
}


def _pool_geometry(side: int, window: int, stride: int) -> tuple[int, int]:
    return (side, 1) if side < window else (window, stride)


class SimpleCNN(nn.Module):
    """A random S-CNN; ``forward(x)`` gives the normalised post-pooling representation ``(N, C, h, w)``.

    Args:
        patch_size: P, the spatial kernel (odd).
        depth: D, the number of 1x1 convolutions after it.
        width: C, every layer's width.
        window: W, the average-pooling window.
        stride: S, the pooling stride.
        seed: the weights' seed.
        zero_mean_first: make each first-layer filter slice zero-mean.
        in_channels: input channels (3: gray inputs are replicated).
    """

    def __init__(self, *, patch_size: int = 3, depth: int = 6, width: int = 1024, window: int = 32,
                 stride: int = 16, seed: int = 0, zero_mean_first: bool = False, in_channels: int = 3):
        super().__init__()
        for name, value in (("patch_size", patch_size), ("width", width), ("window", window), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"scnn: {name} must be a positive integer, got {value!r}")
        if patch_size % 2 == 0:
            raise UsageError(f"scnn: patch_size must be odd, got {patch_size}")
        if not isinstance(depth, int) or depth < 0:
            raise UsageError(f"scnn: depth must be a non-negative integer, got {depth!r}")
        self.patch_size, self.depth, self.width = patch_size, depth, width
        self.window, self.stride, self.seed = window, stride, seed
        with torch.device("meta"):
            layers = [nn.Conv2d(in_channels, width, patch_size, bias=False)]
            layers += [nn.Conv2d(width, width, 1, bias=False) for _ in range(depth)]
        generator = torch.Generator().manual_seed(seed)
        for conv in layers:
            fan_in = conv.weight[0].numel()
            weight = torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            conv.weight = nn.Parameter(weight, requires_grad=False)
        self.convs = nn.ModuleList(layers)
        if zero_mean_first:
            with torch.no_grad():
                self.convs[0].weight -= self.convs[0].weight.mean(dim=(2, 3), keepdim=True)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, C, H, W)`` in ``[0, 1]`` -> unit-normalised pooled features ``(N, width, h, w)``."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pad = self.patch_size // 2
        x = F.pad(2 * x - 1, (pad, pad, pad, pad), mode="reflect")
        for conv in self.convs:
            x = F.relu(conv(x))
        kh, sh = _pool_geometry(x.shape[-2], self.window, self.stride)
        kw, sw = _pool_geometry(x.shape[-1], self.window, self.stride)
        pooled = F.avg_pool2d(x, (kh, kw), (sh, sw))
        return unit_normalize(pooled, NORM_EPS)


class SCNNDistance(nn.Module):
    """The S-CNN distance, averaged over an ensemble of ``members`` networks (seeds ``seed + k``).

    Input: ``(N, C, H, W)`` in ``[0, 1]``; output ``(N,)`` (0 for identical images, at most 2 per position).
    """

    def __init__(self, *, patch_size: int = 3, depth: int = 6, width: int = 1024, window: int = 32,
                 stride: int = 16, seed: int = 0, members: int = 1, zero_mean_first: bool = False):
        super().__init__()
        if not isinstance(members, int) or members < 1:
            raise UsageError(f"scnn: members must be a positive integer, got {members!r}")
        self.nets = nn.ModuleList(
            SimpleCNN(patch_size=patch_size, depth=depth, width=width, window=window, stride=stride,
                      seed=seed + k, zero_mean_first=zero_mean_first)
            for k in range(members)
        )
        self.min_side = patch_size // 2 + 1
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> SCNNDistance:
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        return [net(x) for net in self.nets]

    def distance(self, ref_feats: list[Tensor], dist_feats: list[Tensor],
                 out_hw: tuple[int, int] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """``(N,)`` from pooled features; with ``out_hw`` also the per-window map upsampled bilinearly."""
        maps = torch.stack([((r - d) ** 2).sum(dim=1, keepdim=True)
                            for r, d in zip(ref_feats, dist_feats, strict=True)]).mean(dim=0)
        scores = maps.mean(dim=(1, 2, 3))
        if out_hw is None:
            return scores
        return scores, F.interpolate(maps, size=out_hw, mode="bilinear", align_corners=False)

    def forward(self, ref: Tensor, dist: Tensor) -> Tensor:
        return self.distance(self.features(ref), self.features(dist))

    def runner(self, ref: Tensor, dist: Tensor, ref_index: Tensor | None, *, with_map: bool = False):
        """The metric runner: reference features once per reference, gathered per distorted image."""
        ref_feats = self.features(ref)
        if ref_index is not None:
            ref_feats = [f.index_select(0, ref_index) for f in ref_feats]
        return self.distance(ref_feats, self.features(dist), tuple(dist.shape[-2:]) if with_map else None)
