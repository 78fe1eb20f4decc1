"""LPIPS (Zhang et al. 2018) with torchvision's ImageNet backbones and the calibrated heads of `lpips`.

Numerically the official ``lpips.LPIPS`` (v0.1 and v0.0), restructured so that reference features can
be computed once and reused for several distorted images, and so that the heads load with
``strict=True`` (the official loader's ``strict=False`` silently keeps random heads when its key layout
does not match).

Start-up: neither ``torchvision`` nor ``lpips`` is imported. ``import torchvision`` costs about 1.7 s
(mostly ``torch._dynamo``, pulled in by ``torchvision.ops``) for three small feature stacks, so they are
defined here as ``nn.Sequential`` stacks whose state-dict keys and shapes are torchvision's
(``features.0.weight`` ...), and load torchvision's weight files as they are (:mod:`lpipscli.weights`).
The heads are read from the files of the installed ``lpips`` distribution, located with
``importlib.util.find_spec`` (which does not execute the package).

Precision: ``precision="float32"`` (default) runs everything in float32. ``precision="bf16"`` runs the
backbone convolutions under ``torch.autocast(dtype=torch.bfloat16)`` (CPU and CUDA); the input scaling,
the unit normalisation of the features, the squared differences, the heads and the spatial mean stay in
float32. On CUDA, float32 convolutions follow the caller's TF32 settings
(``torch.backends.cudnn.allow_tf32``, ``torch.backends.cuda.matmul.allow_tf32``): this module neither reads
nor changes them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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

#: Classifier tensors of torchvision's checkpoints (unused by LPIPS, checked so that a wrong file is refused).
_CLASSIFIERS: dict[str, dict[str, tuple[int, ...]]] = {
    "alex": {
        "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
        "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
        "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
    },
    "vgg": {
        "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
        "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
    },
    "squeeze": {"classifier.1.weight": (1000, 512, 1, 1), "classifier.1.bias": (1000,)},
}

#: Accepted values of ``precision``: the dtype of the backbone convolutions.
PRECISIONS = ("float32", "bf16")

#: Smallest side each backbone accepts (measured with the official code; smaller -> pooling error).
MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class Fire(nn.Module):
    """SqueezeNet's Fire module, with torchvision's attribute names (``squeeze``, ``expand1x1``, ``expand3x3``)."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


def _alexnet_features() -> nn.Sequential:
    """``torchvision.models.alexnet().features`` (same layers, indices and parameter names)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features`` (configuration "D", no batch norm)."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def _squeezenet1_1_features() -> nn.Sequential:
    """``torchvision.models.squeezenet1_1().features``."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
    )


_FEATURES: dict[str, Callable[[], nn.Sequential]] = {
    "alex": _alexnet_features, "vgg": _vgg16_features, "squeeze": _squeezenet1_1_features,
}


def backbone_features(net: str) -> nn.Sequential:
    """The ``features`` stack of torchvision's ``alexnet`` / ``vgg16`` / ``squeezenet1_1`` for ``net``,
    without importing torchvision (randomly initialised; :class:`LPIPS` loads the checkpoint into it).

    Args:
        net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.

    Returns:
        An ``nn.Sequential`` whose ``state_dict()`` keys and shapes, prefixed with ``features.``, are
        those of the torchvision model.
    """
    if net not in _FEATURES:
        raise ValueError(f"unknown LPIPS net {net!r}; choose one of {', '.join(_FEATURES)}")
    return _FEATURES[net]()


def expected_checkpoint_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in torchvision's ImageNet checkpoint of ``net`` (features and classifier)."""
    with torch.device("meta"):
        features = backbone_features(net)
    shapes = {f"features.{k}": tuple(v.shape) for k, v in features.state_dict().items()}
    return {**shapes, **_CLASSIFIERS[net]}


def _normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit-normalise over channels: ``f / (sqrt(sum_c f^2) + eps)`` (the official ``normalize_tensor``)."""
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + eps)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity, one distance per image pair.

    Args:
        net: backbone, ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        version: ``"0.1"`` (default) or ``"0.0"`` (the original release without input scaling).
        allow_unverified: accept weight files whose sha256 does not match the pinned value.
        precision: ``"float32"`` (default, the official numbers) or ``"bf16"``: the backbone convolutions
            run under ``torch.autocast(dtype=torch.bfloat16)`` on the input's device; input scaling, feature
            normalisation, differences, heads and means stay float32. Scores come back float32 either way.
        channels_last: run the backbone in ``torch.channels_last`` layout (default; faster with oneDNN on
            CPU and with cuDNN); results are the same to float32 rounding.

    Raises:
        WeightsError: a weight file is missing, unverified or unloadable.
        ValueError: unknown ``net``, ``version`` or ``precision``.

    Matches: ``lpips.LPIPS(net=net, version=version)(2*ref-1, 2*dist-1)`` of the official package
    (float32); bf16 within the tolerance written in ``tests/test_metrics_lpips.py``.
    References: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
    Metric", CVPR 2018, doi:10.1109/CVPR.2018.00068.
    """

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        *,
        allow_unverified: bool = False,
        precision: str = "float32",
        channels_last: bool = True,
    ):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS net {net!r}; choose one of {', '.join(NETS)}")
        if version not in VERSIONS:
            raise ValueError(f"unknown LPIPS version {version!r}; choose one of {', '.join(VERSIONS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown LPIPS precision {precision!r}; choose one of {', '.join(PRECISIONS)}")

        self.net_name = net
        self.version = version
        self.precision = precision
        self.channels_last = bool(channels_last)
        backbone_state, backbone_record = load_backbone(net, allow_unverified=allow_unverified)
        head_state, head_record = load_head(net, version, allow_unverified=allow_unverified)
        self.weight_records: tuple[WeightRecord, ...] = (backbone_record, head_record)

        # Checked key by key and shape by shape against torchvision's layout (strict), then the feature
        # layers, built on the meta device (no random init), take the file's tensors.
        expected = expected_checkpoint_shapes(net)
        got = {k: tuple(v.shape) for k, v in backbone_state.items() if isinstance(v, torch.Tensor)}
        if got != expected:
            missing = sorted(expected.keys() - got.keys())[:3]
            unexpected = sorted(got.keys() - expected.keys())[:3]
            wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])[:3]
            raise WeightsError(
                f"{backbone_record.path} is not a torchvision {_ARCH[net]} state dict "
                f"(missing {missing}, unexpected {unexpected}, wrong shapes {wrong})"
            )
        with torch.device("meta"):
            features = backbone_features(net)
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
        """Unit-normalised float32 backbone features of ``x`` ``(N, C, H, W)`` in ``[0, 1]``, C = 1 or 3."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = 2 * x.float() - 1
        if self.version == "0.1":
            x = (x - self.shift) / self.scale
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = []
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for block in self.slices:
                x = block(x)
                with torch.autocast(x.device.type, enabled=False):
                    feats.append(_normalize(x.float()))
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
        with torch.autocast(ref_feats[0].device.type, enabled=False):  # heads in float32, even in a caller's autocast
            return self._distance(ref_feats, dist_feats, out_hw)

    def _distance(self, ref_feats: list[Tensor], dist_feats: list[Tensor], out_hw: tuple[int, int] | None,
                  ref_index: Tensor | None = None, consume: bool = False):
        """``ref_index``: ``dist_feats[p]`` pairs with ``ref_feats[ref_index[p]]`` (None: with ``ref_feats[p]``);
        ``consume``: the distorted features are the caller's temporaries and become the differences in place
        (no gathered copy of the references, no new buffer)."""
        total = None
        spatial = None
        for lin, f0, f1 in zip(self.lins, ref_feats, dist_feats, strict=True):
            dtype = torch.promote_types(lin.weight.dtype, torch.float32)  # bf16 features -> float32; float64 stays
            diff = _subtract_references(f1.to(dtype, copy=not consume), f0.to(dtype), ref_index).square_()
            if out_hw is None:
                # the 1x1 head and the spatial mean are both linear: mean first, then one dot product per
                # image (the head's 1-output convolution has no fast path in channels_last layout)
                value = diff.mean(dim=(2, 3)) @ lin.weight.reshape(-1)
            else:
                layer = lin(diff)
                value = layer.mean(dim=(2, 3)).reshape(-1)
                up = F.interpolate(layer, size=out_hw, mode="bilinear", align_corners=False)
                spatial = up if spatial is None else spatial + up
            total = value if total is None else total + value
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
        out_hw = tuple(dist.shape[-2:]) if with_map else None
        with torch.autocast(ref.device.type, enabled=False):
            return self._distance(ref_feats, self.features(dist), out_hw, ref_index, consume=True)


def _subtract_references(diff: Tensor, ref: Tensor, ref_index: Tensor | None) -> Tensor:
    """``diff[p] -= ref[ref_index[p]]`` in place (``ref[p]`` without an index), the sign of ``dist - ref``.

    Consecutive pairs of one reference (how batches are grouped) take it by broadcasting, so no gathered copy
    of the reference features is made. The result is squared, so the sign does not matter.
    """
    if ref_index is None:
        return diff.sub_(ref)
    index = ref_index.tolist()
    start = 0
    for stop in range(1, len(index) + 1):
        if stop == len(index) or index[stop] != index[start]:
            diff[start:stop].sub_(ref[index[start]: index[start] + 1])
            start = stop
    return diff


@functools.lru_cache(maxsize=8)
def _cached_module(net: str, version: str, device: str, allow_unverified: bool, precision: str = "float32") -> LPIPS:
    return LPIPS(net, version, allow_unverified=allow_unverified, precision=precision).to(device)


def lpips(
    ref: Tensor,
    dist: Tensor,
    *,
    net: str = "alex",
    version: str = "0.1",
    allow_unverified: bool = False,
    precision: str = "float32",
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
        precision: ``"float32"`` (default) or ``"bf16"`` (backbone convolutions under bfloat16 autocast).

    Returns:
        ``(N,)`` float32 distances.

    Raises:
        MetricInputError: shapes differ or the images are too small for the backbone.
        WeightsError: weights missing or unverified.
    """
    module = _cached_module(net, version, str(ref.device), allow_unverified, precision)
    return module(ref, dist)
