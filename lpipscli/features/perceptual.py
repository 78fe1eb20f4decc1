"""The perceptual distance on any backbone (METRICS.md section 9): per-layer distances, weights, style term.

``D(x, y) = sum_i w_i d(F_i(x), F_i(y)) + style_weight * sum_j v_j s(G_j(x), G_j(y))`` over the chosen layers
of a backbone ``F``, averaged over the members of a random ensemble. Per-layer distances ``d`` (``(N,)``):

* ``mse``: ``1/(M H W) sum_m ||F_m(x) - F_m(y)||^2`` (the PE paper's Eq. 1);
* ``l1``: ``1/(M H W) sum_m |F_m(x) - F_m(y)|``;
* ``l2``: LPIPS's uncalibrated distance: unit-normalise over channels at every position
  (``f / (sqrt(sum_m f_m^2) + 1e-10)``), sum over channels of the squared difference, spatial mean;
* ``cosine``: ``1 - cos`` of the channel vectors at every position (same normalisation), spatial mean.

Channel selection (``channel_index``) keeps some channels of a layer before anything else (the unit
normalisation of ``l2`` and ``cosine`` is then over the kept channels); channel weights ``c_m`` multiply the
per-channel terms (``mse``: ``1/(M H W) sum_m c_m ||.||^2``; ``l2``: ``sum_m c_m (.)^2``, LPIPS's heads with
fixed weights) and are refused with ``cosine``. Style term (Gatys): ``G = F F^T / (C H W)`` of a layer's
``(C, H W)`` features (BasicSR's normalisation; piq's ``StyleLoss`` does not normalise), compared with
``l1`` (BasicSR's default criterion) or ``mse`` (mean over the ``C x C`` entries).

With LPIPS's taps, ``normalize="lpips"``, ``distance="l2"`` and unit layer weights this is the official
``lpips.LPIPS(lpips=False)`` (tested to 1e-5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lpipscli.errors import UsageError
from lpipscli.features.backbones import DEFAULT_LAYERS, Ensemble, canonical_arch

DISTANCES = ("mse", "l1", "l2", "cosine")
STYLE_CRITERIA = ("l1", "mse")
#: Added to the channel norm (not inside the square root), as LPIPS's ``normalize_tensor``.
NORM_EPS = 1e-10
GRAM_NORMALIZATION = "C*H*W (BasicSR)"


def unit_normalize(feat: Tensor, eps: float = NORM_EPS) -> Tensor:
    """``f / (sqrt(sum_c f^2) + eps)`` over the channel dimension of ``(N, C, H, W)``."""
    return feat / (torch.sqrt(torch.sum(feat * feat, dim=1, keepdim=True)) + eps)


def layer_map(f0: Tensor, f1: Tensor, distance: str, weights: Tensor | None = None) -> Tensor:
    """Per-position distance ``(N, 1, H, W)`` of two feature maps ``(N, C, H, W)``; its spatial mean is ``d``.

    Args:
        f0, f1: features of the same layer.
        distance: one of :data:`DISTANCES`.
        weights: optional per-channel weights ``(C,)`` (not with ``cosine``).
    """
    if distance not in DISTANCES:
        raise UsageError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    w = None if weights is None else weights.to(f0.dtype).view(1, -1, 1, 1)
    if distance in ("mse", "l1"):
        diff = (f0 - f1) ** 2 if distance == "mse" else (f0 - f1).abs()
        return (diff if w is None else diff * w).mean(dim=1, keepdim=True)
    n0, n1 = unit_normalize(f0), unit_normalize(f1)
    if distance == "l2":
        diff = (n0 - n1) ** 2
        return (diff if w is None else diff * w).sum(dim=1, keepdim=True)
    if w is not None:
        raise UsageError("channel weights do not apply to the cosine distance (use mse, l1 or l2)")
    return 1.0 - (n0 * n1).sum(dim=1, keepdim=True)


def gram(feat: Tensor) -> Tensor:
    """Gram matrices ``(N, C, C)`` of ``(N, C, H, W)`` features, normalised by ``C * H * W`` (BasicSR)."""
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_distance(f0: Tensor, f1: Tensor, criterion: str = "l1") -> Tensor:
    """``(N,)`` distance of the Gram matrices of two feature maps: mean absolute or squared difference."""
    if criterion not in STYLE_CRITERIA:
        raise UsageError(f"style criterion must be one of {', '.join(STYLE_CRITERIA)}, got {criterion!r}")
    diff = gram(f0) - gram(f1)
    return (diff.abs() if criterion == "l1" else diff * diff).mean(dim=(1, 2))


def _weights(values: Sequence[float] | None, count: int, what: str) -> tuple[float, ...]:
    if values is None:
        return (1.0,) * count
    values = tuple(float(v) for v in values)
    if len(values) != count:
        raise UsageError(f"{what}: {len(values)} weights for {count} layers")
    return values


class PerceptualHead(nn.Module):
    """The parameter-free part: distances of precomputed features (one dict of node features per member).

    Args:
        nodes: the distance layers (node names).
        distance: one of :data:`DISTANCES`.
        layer_weights: one weight per node (default 1 each: layers are summed, as LPIPS).
        channel_index: per member, per node: the kept channel indices (or absent for all channels).
        channel_weights: per member, per node: weights of the kept channels (or absent for uniform).
        style_weight: weight of the style term (0 = off).
        style_nodes: the style layers (default: ``nodes``).
        style_layer_weights: one weight per style node (default 1 each).
        style_criterion: ``l1`` or ``mse``.
    """

    def __init__(
        self, nodes: Sequence[str], *, distance: str = "mse", layer_weights: Sequence[float] | None = None,
        channel_index: Sequence[Mapping[str, Tensor]] | None = None,
        channel_weights: Sequence[Mapping[str, Tensor]] | None = None,
        style_weight: float = 0.0, style_nodes: Sequence[str] | None = None,
        style_layer_weights: Sequence[float] | None = None, style_criterion: str = "l1",
    ):
        super().__init__()
        if distance not in DISTANCES:
            raise UsageError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if style_criterion not in STYLE_CRITERIA:
            raise UsageError(f"style criterion must be one of {', '.join(STYLE_CRITERIA)}, got {style_criterion!r}")
        if channel_weights and distance == "cosine":
            raise UsageError("channel weights do not apply to the cosine distance (use mse, l1 or l2)")
        self.nodes = tuple(nodes)
        self.distance = distance
        self.layer_weights = _weights(layer_weights, len(self.nodes), "layer_weights")
        self.channel_index = [dict(m) for m in (channel_index or [])]
        self.channel_weights = [dict(m) for m in (channel_weights or [])]
        self.style_weight = float(style_weight)
        self.style_nodes = tuple(style_nodes) if style_nodes is not None else self.nodes
        self.style_layer_weights = _weights(style_layer_weights, len(self.style_nodes), "style_layer_weights")
        self.style_criterion = style_criterion

    @property
    def all_nodes(self) -> tuple[str, ...]:
        nodes = self.nodes + (self.style_nodes if self.style_weight else ())
        return tuple(dict.fromkeys(nodes))

    def _select(self, member: int, node: str, feat: Tensor) -> Tensor:
        if member < len(self.channel_index) and node in self.channel_index[member]:
            return feat.index_select(1, self.channel_index[member][node].to(feat.device))
        return feat

    def _channel_weights(self, member: int, node: str) -> Tensor | None:
        if member < len(self.channel_weights):
            return self.channel_weights[member].get(node)
        return None

    def member_distance(
        self, member: int, ref: Mapping[str, Tensor], dist: Mapping[str, Tensor], out_hw: tuple[int, int] | None
    ) -> tuple[Tensor, Tensor | None]:
        total, spatial = None, None
        for node, weight in zip(self.nodes, self.layer_weights, strict=True):
            f0 = self._select(member, node, ref[node])
            f1 = self._select(member, node, dist[node])
            cw = self._channel_weights(member, node)
            lmap = layer_map(f0, f1, self.distance, None if cw is None else cw.to(f0.device))
            value = weight * lmap.mean(dim=(1, 2, 3))
            total = value if total is None else total + value
            if out_hw is not None:
                up = weight * F.interpolate(lmap, size=out_hw, mode="bilinear", align_corners=False)
                spatial = up if spatial is None else spatial + up
        if self.style_weight:
            for node, weight in zip(self.style_nodes, self.style_layer_weights, strict=True):
                f0 = self._select(member, node, ref[node])
                f1 = self._select(member, node, dist[node])
                total = total + self.style_weight * weight * style_distance(f0, f1, self.style_criterion)
        return total, spatial

    def member_distances(self, ref_feats: Sequence[Mapping[str, Tensor]],
                         dist_feats: Sequence[Mapping[str, Tensor]]) -> Tensor:
        """``(K, N)``: the distance of each ensemble member (for voting)."""
        return torch.stack([self.member_distance(k, r, d, None)[0]
                            for k, (r, d) in enumerate(zip(ref_feats, dist_feats, strict=True))])

    def forward(self, ref_feats: Sequence[Mapping[str, Tensor]], dist_feats: Sequence[Mapping[str, Tensor]],
                out_hw: tuple[int, int] | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Mean over members of the distance ``(N,)``; with ``out_hw`` also the map ``(N, 1, *out_hw)``.

        The map is each distance layer's per-position map upsampled bilinearly (``align_corners=False``)
        and weighted-summed, as LPIPS's ``spatial=True``; the style term has no map.
        """
        values, maps = [], []
        for k, (r, d) in enumerate(zip(ref_feats, dist_feats, strict=True)):
            value, spatial = self.member_distance(k, r, d, out_hw)
            values.append(value)
            maps.append(spatial)
        score = torch.stack(values).mean(dim=0)
        if out_hw is None:
            return score
        return score, torch.stack(maps).mean(dim=0)


def ensemble_vote(d0: Tensor, d1: Tensor) -> Tensor:
    """2AFC voting of an ensemble (Amir & Weiss 2021): the fraction of members that judge ``p0`` closer.

    Args:
        d0, d1: ``(K, N)`` member distances of ``(ref, p0)`` and ``(ref, p1)``
            (:meth:`PerceptualDistance.member_distances`).

    Returns:
        ``(N,)`` in ``[0, 1]``: mean over members of ``1[d0 < d1] + 0.5 * 1[d0 == d1]``; above 0.5 the ensemble
        picks ``p0``.
    """
    if d0.shape != d1.shape or d0.dim() != 2:
        raise UsageError(f"ensemble_vote needs two (K, N) tensors of one shape, got {tuple(d0.shape)} and "
                         f"{tuple(d1.shape)}")
    return ((d0 < d1).to(torch.float64) + 0.5 * (d0 == d1).to(torch.float64)).mean(dim=0)


def gather_features(feats: Sequence[Mapping[str, Tensor]], index: Tensor | None) -> list[dict[str, Tensor]]:
    """Repeat reference features per distorted image: ``index`` ``(P,)`` into the reference batch."""
    if index is None:
        return [dict(f) for f in feats]
    return [{k: v.index_select(0, index) for k, v in f.items()} for f in feats]


class PerceptualDistance(nn.Module):
    """The perceptual (and style) distance of section 9 on a torchvision backbone, trained or random.

    Args:
        net: ``alexnet``, ``vgg16``, ``vgg19``, ``squeezenet1_1``, ``resnet50``, ``shufflenet_v2_x1_0``,
            ``googlenet`` (or ``alex``, ``vgg``, ``squeeze``).
        layers: layer names (aliases such as ``relu2_2``, node names, module names); default
            :data:`~lpipscli.features.backbones.DEFAULT_LAYERS`.
        distance: ``mse`` (default, Eq. 1 of Tariq et al.), ``l1``, ``l2`` (unit-normalised), ``cosine``.
        layer_weights: one per layer (default 1 each, summed).
        weights: ``"imagenet"`` or ``"random"``.
        seed: seed of random weights; member ``k`` uses ``seed + k``.
        members: ensemble size K (random weights only); distances are averaged.
        zero_mean_first: zero-mean first-layer filters (default: on for random weights, off for trained).
        normalize: ``imagenet`` (default), ``lpips`` or ``none``.
        select: ``"all"``, ``"H-x"`` or ``"L-x"`` (Tariq et al. Eqs. 7-8, per layer, by PE).
        channel_weights: ``"uniform"`` or ``"pe"`` (weights proportional to PE, mean 1 per layer).
        pe: optional precomputed PE scores ``{layer: (M,) array}`` (one network); else computed with
            :mod:`lpipscli.features.pe`'s default stimuli when ``select``/``channel_weights`` need them.
        style_weight, style_layers, style_layer_weights, style_criterion: the Gram style term.
        allow_unverified: accept a checkpoint whose sha256 does not match.

    Input: ``(N, C, H, W)`` in ``[0, 1]`` (C = 1 replicated, or 3); output ``(N,)``.
    """

    def __init__(
        self, net: str = "vgg16", layers: Sequence[str] | None = None, *, distance: str = "mse",
        layer_weights: Sequence[float] | None = None, weights: str = "imagenet", seed: int = 0,
        members: int = 1, zero_mean_first: bool | None = None, normalize: str = "imagenet",
        select: str = "all", channel_weights: str = "uniform", pe: Mapping[str, Sequence[float]] | None = None,
        style_weight: float = 0.0, style_layers: Sequence[str] | None = None,
        style_layer_weights: Sequence[float] | None = None, style_criterion: str = "l1",
        allow_unverified: bool = False, ensemble: Ensemble | None = None,
    ):
        super().__init__()
        arch = canonical_arch(net)
        layers = tuple(layers) if layers else DEFAULT_LAYERS[arch]
        style_layers = tuple(style_layers) if style_layers else layers
        if zero_mean_first is None:
            zero_mean_first = weights == "random"
        from lpipscli.features.backbones import resolve_layer

        nodes = tuple(resolve_layer(arch, layer) for layer in layers)
        style_nodes = tuple(resolve_layer(arch, layer) for layer in style_layers)
        needed = tuple(dict.fromkeys(nodes + (style_nodes if style_weight else ())))
        if ensemble is None:
            ensemble = Ensemble(arch, needed, weights=weights, seed=seed, members=members,
                                zero_mean_first=zero_mean_first, normalize=normalize,
                                allow_unverified=allow_unverified)
        self.ensemble = ensemble
        index, cweights, self.pe_record = channel_plan(
            ensemble, nodes, select=select, channel_weights=channel_weights, pe=pe,
            pe_keys=dict(zip(nodes, layers, strict=True)),
        )
        self.head = PerceptualHead(
            nodes, distance=distance, layer_weights=layer_weights, channel_index=index, channel_weights=cweights,
            style_weight=style_weight, style_nodes=style_nodes, style_layer_weights=style_layer_weights,
            style_criterion=style_criterion,
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualDistance:
        return super().train(False)

    def member_distances(self, ref: Tensor, dist: Tensor) -> Tensor:
        """``(K, N)`` distances of each ensemble member (2AFC voting uses their signs)."""
        return self.head.member_distances(self.ensemble(ref), self.ensemble(dist))

    def forward(self, ref: Tensor, dist: Tensor) -> Tensor:
        """``ref``, ``dist`` ``(N, C, H, W)`` in ``[0, 1]`` -> ``(N,)``; differentiable in both inputs."""
        return self.head(self.ensemble(ref), self.ensemble(dist))

    def runner(self, ref: Tensor, dist: Tensor, ref_index: Tensor | None, *, with_map: bool = False):
        """The metric runner: reference features once per reference, then gathered per distorted image."""
        ref_feats = gather_features(self.ensemble(ref), ref_index)
        out_hw = tuple(dist.shape[-2:]) if with_map else None
        return self.head(ref_feats, self.ensemble(dist), out_hw=out_hw)


def channel_plan(
    ensemble: Ensemble, nodes: Sequence[str], *, select: str = "all", channel_weights: str = "uniform",
    pe: Mapping[str, Sequence[float]] | None = None, pe_keys: Mapping[str, str] | None = None,
    cache: dict | None = None,
) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]], dict | None]:
    """Channel indices and weights per member and node from PE (computed, or given in ``pe``).

    ``cache`` (a dict owned by the caller) keeps computed PE per ``(member, node)`` so that several
    definitions on one shared ensemble compute it once.

    Returns:
        ``(channel_index, channel_weights, pe_record)``: lists with one dict per member (empty lists when
        all channels count uniformly), and what PE was used (None when not needed).
    """
    from lpipscli.features import pe as pe_mod

    mode, percent = pe_mod.parse_selection(select)
    if channel_weights not in ("uniform", "pe"):
        raise UsageError(f"channel_weights must be 'uniform' or 'pe', got {channel_weights!r}")
    if mode == "all" and channel_weights == "uniform":
        return [], [], None
    scores: list[dict[str, Tensor]] = []
    if pe is not None:
        if len(ensemble.members) != 1:
            raise UsageError("precomputed PE scores describe one network: use them with members=1")
        keys = pe_keys or {}
        table = {}
        for node in nodes:
            name = node if node in pe else keys.get(node, node)
            if name not in pe:
                raise UsageError(f"the PE scores have no layer {keys.get(node, node)!r} (they have {', '.join(pe)})")
            table[node] = torch.as_tensor(pe[name], dtype=torch.float64)
        scores.append(table)
        record = {"source": "given", "settings": None}
    else:
        cache = {} if cache is None else cache
        for k, member in enumerate(ensemble.members):
            missing = [node for node in nodes if (k, node) not in cache]
            if missing:
                result = pe_mod.perceptual_efficacy(member, missing)
                cache.update({(k, node): torch.as_tensor(result[node]["pe"]) for node in missing})
            scores.append({node: cache[(k, node)] for node in nodes})
        record = {"source": "computed per member", "settings": pe_mod.DECISIONS}
    index, cweights = [], []
    for table in scores:
        member_index, member_weights = {}, {}
        for node in nodes:
            values = table[node]
            keep = torch.as_tensor(pe_mod.select_channels(values.numpy(), mode, percent), dtype=torch.long)
            if mode != "all":
                member_index[node] = keep
            if channel_weights == "pe":
                member_weights[node] = torch.as_tensor(
                    pe_mod.pe_weights(values.numpy()[keep.numpy()]), dtype=torch.float32
                )
        index.append(member_index)
        cweights.append(member_weights)
    record.update(select=select, channel_weights=channel_weights,
                  channels={node: [len(m[node]) if node in m else None for m in index] for node in nodes})
    return index, cweights, record
