"""LPIPS (Zhang et al. 2018) with torchvision backbones and the calibrated heads of the `lpips` package.

Numerically the official ``lpips.LPIPS`` (v0.1 and v0.0), restructured so that reference features can
be computed once and reused for several distorted images, and so that the heads load with
``strict=True`` (the official loader's ``strict=False`` silently keeps random heads when its key layout
does not match).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpipscli.errors import WeightsError
from lpipscli.metrics._checks import check_pair
from lpipscli.weights import NETS, VERSIONS, WeightRecord, load_backbone, load_head

#: Backbone taps (after ReLU) as slices of torchvision's ``features``.
_SLICES: dict[str, tuple[tuple[int, int], ...]] = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
    "squeeze": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13)),
}
_CHANNELS: dict[str, tuple[int, ...]] = {
    "alex": (64, 192, 384, 256, 256),
    "vgg": (64, 128, 256, 512, 512),
    "squeeze": (64, 128, 256, 384, 384, 512, 512),
}
_ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}

#: Smallest side each backbone accepts (measured with the official code; smaller -> pooling error).
MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit-normalise over channels: ``f / (sqrt(sum_c f^2) + eps)`` (the official ``normalize_tensor``)."""
    return feat / (torch.sqrt(torch.sum(feat * feat, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity, one distance per image pair.

    Args:
        net: backbone, ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        version: ``"0.1"`` (default) or ``"0.0"`` (the original release without input scaling).
        allow_unverified: accept weight files whose sha256 does not match the pinned value.

    Raises:
        WeightsError: a weight file is missing, unverified or unloadable.

    Matches: ``lpips.LPIPS(net=net, version=version)(2*ref-1, 2*dist-1)`` of the official package.
    References: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018, doi:10.1109/CVPR.2018.00068.
    """

    def __init__(self, net: str = "alex", version: str = "0.1", *, allow_unverified: bool = False):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS net {net!r}; choose one of {', '.join(NETS)}")
        if version not in VERSIONS:
            raise ValueError(f"unknown LPIPS version {version!r}; choose one of {', '.join(VERSIONS)}")
        import torchvision

        self.net_name = net
        self.version = version
        backbone_state, backbone_record = load_backbone(net, allow_unverified=allow_unverified)
        head_state, head_record = load_head(net, version, allow_unverified=allow_unverified)
        self.weight_records: tuple[WeightRecord, ...] = (backbone_record, head_record)

        # Built on the meta device (no random init of the 100M-parameter classifiers), checked key by
        # key and shape by shape against the file (strict), then only the feature layers take real tensors.
        with torch.device("meta"):
            model = getattr(torchvision.models, _ARCH[net])(weights=None)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in backbone_state.items() if isinstance(v, torch.Tensor)}
        if got != expected:
            missing = sorted(expected.keys() - got.keys())[:3]
            unexpected = sorted(got.keys() - expected.keys())[:3]
            wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])[:3]
            raise WeightsError(
                f"{backbone_record.path} is not a torchvision {_ARCH[net]} state dict "
                f"(missing {missing}, unexpected {unexpected}, wrong shapes {wrong})"
            )
        features = model.features
        features.load_state_dict(
            {k[len("features."):]: v.float() for k, v in backbone_state.items() if k.startswith("features.")},
            strict=True, assign=True,
        )
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in _SLICES[net])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        remapped = {}
        for key, value in head_state.items():
            # official keys: "lin{k}.model.1.weight" (Dropout at index 0) or "lin{k}.model.0.weight"
            parts = key.split(".")
            if len(parts) != 4 or not parts[0].startswith("lin") or parts[-1] != "weight":
                remapped[key] = value
                continue
            remapped[f"lins.{int(parts[0][3:])}.weight"] = value
        missing, unexpected = self.lins.load_state_dict(
            {k[len("lins."):]: v for k, v in remapped.items() if k.startswith("lins.")}, strict=False
        )
        extra = [k for k in remapped if not k.startswith("lins.")]
        if missing or unexpected or extra:
            raise WeightsError(
                f"{head_record.path}: head keys do not match the {net} layout "
                f"(missing {list(missing)}, unexpected {list(unexpected) + extra})"
            )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def min_side(self) -> int:
        return MIN_SIDE[self.net_name]

    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised backbone features of ``x`` ``(N, C, H, W)`` in ``[0, 1]``, C = 1 or 3."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = 2 * x - 1
        if self.version == "0.1":
            x = (x - self.shift) / self.scale
        x = x.contiguous(memory_format=torch.channels_last)
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(_normalize(x))
        return feats

    def distance(
        self, ref_feats: list[Tensor], dist_feats: list[Tensor], *, out_hw: tuple[int, int] | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """LPIPS from precomputed features.

        Args:
            ref_feats, dist_feats: outputs of :meth:`features`, same shapes.
            out_hw: when given, also return the spatial map ``(N, 1, H, W)``: each layer's map upsampled
                bilinearly (``align_corners=False``) to ``out_hw`` and summed, as ``spatial=True`` does.

        Returns:
            ``(N,)`` distances, and the map when ``out_hw`` is given.
        """
        total = None
        spatial = None
        for lin, f0, f1 in zip(self.lins, ref_feats, dist_feats, strict=True):
            layer = lin((f0 - f1) ** 2)
            value = layer.mean(dim=(2, 3), keepdim=True)
            total = value if total is None else total + value
            if out_hw is not None:
                up = F.interpolate(layer, size=out_hw, mode="bilinear", align_corners=False)
                spatial = up if spatial is None else spatial + up
        scores = total.reshape(total.shape[0])
        return (scores, spatial) if out_hw is not None else scores

    def forward(self, ref: Tensor, dist: Tensor) -> Tensor:
        """LPIPS of each pair: ``ref``, ``dist`` ``(N, C, H, W)`` in ``[0, 1]`` -> ``(N,)``."""
        check_pair(ref, dist, name=f"lpips_{self.net_name}", min_side=self.min_side)
        return self.distance(self.features(ref), self.features(dist))

    def runner(self, ref: Tensor, dist: Tensor, ref_index: Tensor | None, *, with_map: bool = False):
        """Score ``dist[p]`` against ``ref[ref_index[p]]``, computing each reference's features once.

        ``ref_index=None`` means ``ref[p]`` pairs with ``dist[p]``. With ``with_map`` also return the
        spatial maps ``(P, 1, H, W)`` (official ``spatial=True``).
        """
        check_pair(ref[:1], dist[:1], name=f"lpips_{self.net_name}", min_side=self.min_side)
        ref_feats = self.features(ref)
        if ref_index is not None:
            ref_feats = [f.index_select(0, ref_index) for f in ref_feats]
        out_hw = tuple(dist.shape[-2:]) if with_map else None
        return self.distance(ref_feats, self.features(dist), out_hw=out_hw)


@functools.lru_cache(maxsize=8)
def _cached_module(net: str, version: str, device: str, allow_unverified: bool) -> LPIPS:
    return LPIPS(net, version, allow_unverified=allow_unverified).to(device)


def lpips(
    ref: Tensor, dist: Tensor, *, net: str = "alex", version: str = "0.1", allow_unverified: bool = False
) -> Tensor:
    """LPIPS distance of each pair (0 = identical, larger = more different); differentiable.

    The network is built once per (net, version, device) and cached, so this can be called in a
    training loop as a loss.

    Args:
        ref: ``(N, C, H, W)`` in ``[0, 1]``, C = 1 (replicated to RGB) or 3.
        dist: same shape as ``ref``.
        net: ``"alex"`` (min side 31), ``"vgg"`` (16) or ``"squeeze"`` (17).
        version: ``"0.1"`` or ``"0.0"``.
        allow_unverified: accept weights whose sha256 does not match.

    Returns:
        ``(N,)`` distances.

    Raises:
        MetricInputError: shapes differ or the images are too small for the backbone.
        WeightsError: weights missing or unverified.
    """
    module = _cached_module(net, version, str(ref.device), allow_unverified)
    return module(ref, dist)
