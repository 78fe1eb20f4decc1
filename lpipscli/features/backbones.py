"""torchvision classification backbones as feature extractors: trained (ImageNet) or random weights.

Layers are addressed by torchvision's graph node names (``torchvision.models.feature_extraction``), or by a
module name whose last node is taken (``layer3``, ``features.4``), or by a friendly alias where a convention
exists: ``conv{b}_{i}`` / ``relu{b}_{i}`` / ``pool{b}`` for VGG (Caffe and BasicSR names; ``relu1_2`` =
``features.3`` of VGG-16), ``conv{k}`` / ``relu{k}`` / ``pool{k}`` for AlexNet, ``conv1`` / ``relu1`` /
``fire2`` ... ``fire9`` for SqueezeNet 1.1.

Trained weights are torchvision's ImageNet checkpoints, loaded through :mod:`lpipscli.weights` (torch hub
cache, sha256 check, ``weights_only=True``). Random weights (Amir & Weiss 2021, section 1.2) are torchvision's
own initialisation drawn from ``torch.manual_seed(seed)`` on the CPU (inside ``torch.random.fork_rng``, so the
caller's random state is untouched, and CPU and CUDA runs use the same numbers), optionally with zero-mean
first-layer filters, and an ensemble member ``k`` uses seed ``seed + k``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lpipscli.errors import UsageError
from lpipscli.weights import WeightRecord, load_feature_backbone

#: The backbones, by torchvision architecture name (the PE paper's set plus VGG-19 and ResNet-50).
ARCHS = ("alexnet", "vgg16", "vgg19", "squeezenet1_1", "resnet50", "shufflenet_v2_x1_0", "googlenet")
#: LPIPS's short names are accepted too.
NET_ALIASES = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}

#: LPIPS's taps (METRICS.md section 4), as node names.
LPIPS_TAPS: dict[str, tuple[str, ...]] = {
    "alexnet": ("features.1", "features.4", "features.7", "features.9", "features.11"),
    "vgg16": ("features.3", "features.8", "features.15", "features.22", "features.29"),
    "squeezenet1_1": (
        "features.1", "features.4", "features.7", "features.9", "features.10", "features.11", "features.12",
    ),
}
#: Default layers when a definition names none: LPIPS's taps, and one tap per stage elsewhere.
DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {
    **LPIPS_TAPS,
    "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
    "resnet50": ("relu", "layer1", "layer2", "layer3", "layer4"),
    "shufflenet_v2_x1_0": ("conv1", "stage2", "stage3", "stage4", "conv5"),
    "googlenet": ("conv1", "conv3", "inception3b", "inception4e", "inception5b"),
}

#: Input normalisations: ImageNet mean/std on [0, 1] RGB (torchvision's), LPIPS v0.1's scaling layer on
#: [-1, 1] (``(2x - 1 - shift) / scale``), or none ([0, 1] as is).
NORMALIZATIONS = ("imagenet", "lpips", "none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

#: How random weights are drawn (recorded in every output that uses them).
RANDOM_INIT = (
    "torchvision's own initialisation of <arch>(weights=None), drawn after torch.manual_seed(seed + k) on the "
    "CPU inside torch.random.fork_rng (member k of the ensemble), then moved to the device"
)
ZERO_MEAN_FIRST = (
    "first convolution: each filter slice (output, input channel) minus its spatial mean, so every input "
    "channel's DC is ignored (Amir & Weiss 2021, section 1.2)"
)


def canonical_arch(net: str) -> str:
    """``alex`` -> ``alexnet`` etc.; raises UsageError for an unknown backbone."""
    arch = NET_ALIASES.get(net, net)
    if arch not in ARCHS:
        raise UsageError(f"unknown backbone {net!r}; choose one of {', '.join(ARCHS)} (or alex, vgg, squeeze)")
    return arch


def _constructor_kwargs(arch: str, trained: bool) -> dict:
    if arch == "googlenet":
        # torchvision's checkpoint holds the auxiliary heads, and its trained weights expect transform_input
        return {"aux_logits": trained, "init_weights": not trained, "transform_input": trained}
    return {}


def _construct(arch: str, trained: bool) -> nn.Module:
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None, **_constructor_kwargs(arch, trained))
    if arch == "googlenet" and trained:
        model.aux1 = None
        model.aux2 = None
    return model


@functools.lru_cache(maxsize=16)
def _meta_model(arch: str) -> nn.Module:
    with torch.device("meta"):
        return _construct(arch, trained=False).eval()


@functools.lru_cache(maxsize=16)
def node_names(arch: str) -> tuple[str, ...]:
    """torchvision's eval-mode graph node names of ``arch`` (``x`` excluded)."""
    from torchvision.models.feature_extraction import get_graph_node_names

    _, eval_nodes = get_graph_node_names(_meta_model(arch))
    return tuple(n for n in eval_nodes if n != "x")


@functools.lru_cache(maxsize=16)
def aliases(arch: str) -> dict[str, str]:
    """Friendly layer names of ``arch`` -> node names (empty where no convention exists)."""
    model = _meta_model(arch)
    out: dict[str, str] = {}
    if arch in ("vgg16", "vgg19"):
        block, conv = 1, 0
        for index, module in enumerate(model.features):
            if isinstance(module, nn.Conv2d):
                conv += 1
                out[f"conv{block}_{conv}"] = f"features.{index}"
            elif isinstance(module, nn.ReLU):
                out[f"relu{block}_{conv}"] = f"features.{index}"
            elif isinstance(module, nn.MaxPool2d):
                out[f"pool{block}"] = f"features.{index}"
                block, conv = block + 1, 0
    elif arch == "alexnet":
        conv = 0
        for index, module in enumerate(model.features):
            if isinstance(module, nn.Conv2d):
                conv += 1
                out[f"conv{conv}"] = f"features.{index}"
            elif isinstance(module, nn.ReLU):
                out[f"relu{conv}"] = f"features.{index}"
            elif isinstance(module, nn.MaxPool2d):
                out[f"pool{conv}"] = f"features.{index}"
    elif arch == "squeezenet1_1":
        out.update({"conv1": "features.0", "relu1": "features.1", "pool1": "features.2"})
        fire = 2
        for index, module in enumerate(model.features):
            if type(module).__name__ == "Fire":
                out[f"fire{fire}"] = f"features.{index}"
                fire += 1
    return out


def resolve_layer(arch: str, layer: str) -> str:
    """The node name of ``layer`` (an alias, a node name or a module name) in ``arch``.

    Raises:
        UsageError: the name is neither, with the aliases and a few node names as a hint.
    """
    names = aliases(arch)
    if layer in names:
        return names[layer]
    nodes = node_names(arch)
    if layer in nodes or any(n.startswith(layer + ".") for n in nodes):
        return layer
    hint = ", ".join(list(names)[:8]) or ", ".join(nodes[:8])
    raise UsageError(f"{arch} has no layer {layer!r} (e.g. {hint}; `lpips layers {arch}` lists them all)")


def _extractor(model: nn.Module, nodes: Sequence[str]) -> nn.Module:
    import warnings

    from torchvision.models.feature_extraction import create_feature_extractor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_feature_extractor(model, return_nodes={n: n for n in nodes})


@functools.lru_cache(maxsize=64)
def _meta_shapes(arch: str, nodes: tuple[str, ...], side: int) -> tuple[tuple[int, ...], ...] | None:
    extractor = _extractor(_meta_model(arch), nodes)
    try:
        out = extractor(torch.empty(1, 3, side, side, device="meta"))
    except RuntimeError:
        return None
    shapes = tuple(tuple(out[n].shape) for n in nodes)
    if any(len(s) == 4 and min(s[2:]) < 1 for s in shapes):
        return None
    return shapes


def layer_table(arch: str, side: int = 224) -> list[dict]:
    """Every node of ``arch`` with its alias, channel count and spatial size for a ``side`` x ``side`` input.

    Computed on the meta device: no weights are needed and nothing is allocated.
    """
    nodes = node_names(arch)
    shapes = _meta_shapes(arch, nodes, side)
    by_node: dict[str, list[str]] = {}
    for alias, node in aliases(arch).items():
        by_node.setdefault(node, []).append(alias)
    rows = []
    for node, shape in zip(nodes, shapes or [()] * len(nodes), strict=True):
        rows.append({
            "node": node, "alias": ",".join(by_node.get(node, [])),
            "channels": shape[1] if len(shape) >= 2 else None,
            "height": shape[2] if len(shape) == 4 else None, "width": shape[3] if len(shape) == 4 else None,
        })
    return rows


def channels(arch: str, nodes: Sequence[str]) -> tuple[int, ...]:
    """Channel count of each node (from a 224 x 224 meta forward)."""
    shapes = _meta_shapes(arch, tuple(nodes), 224)
    return tuple(s[1] for s in shapes)


@functools.lru_cache(maxsize=64)
def min_side(arch: str, nodes: tuple[str, ...]) -> int:
    """Smallest square input side for which every node has a non-empty output (meta-device probe)."""
    for side in range(1, 1025):
        if _meta_shapes(arch, nodes, side) is not None:
            return side
    raise UsageError(f"{arch}: layers {', '.join(nodes)} need inputs larger than 1024 px")


def _zero_mean_first_conv(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight -= module.weight.mean(dim=(2, 3), keepdim=True)
            return


def load_model(
    arch: str, *, weights: str = "imagenet", seed: int = 0, zero_mean_first: bool = False,
    allow_unverified: bool = False,
) -> tuple[nn.Module, WeightRecord | None]:
    """The full torchvision model of ``arch`` on the CPU, float32, eval mode, frozen.

    Args:
        arch: one of :data:`ARCHS`.
        weights: ``"imagenet"`` (the checkpoint in the torch hub cache) or ``"random"``.
        seed: the seed of the random weights.
        zero_mean_first: make every first-layer filter slice zero-mean (random networks' default).
        allow_unverified: accept a checkpoint whose sha256 does not match.

    Returns:
        The model and the weight file's record (None for random weights).

    Raises:
        WeightsError: the checkpoint is missing (one line naming the file), unverified or malformed.
    """
    arch = canonical_arch(arch)
    record = None
    if weights == "imagenet":
        import torchvision

        from lpipscli.errors import WeightsError

        state, record = load_feature_backbone(arch, allow_unverified=allow_unverified)
        with torch.device("meta"):
            model = getattr(torchvision.models, arch)(weights=None, **_constructor_kwargs(arch, True))
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                                  strict=True, assign=True)
        except RuntimeError as exc:
            raise WeightsError(
                f"{record.path} is not a torchvision {arch} state dict: {str(exc).splitlines()[1].strip()}"
            ) from None
        if arch == "googlenet":
            model.aux1 = None
            model.aux2 = None
    elif weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _construct(arch, trained=False)
    else:
        raise UsageError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    if zero_mean_first:
        _zero_mean_first_conv(model)
    model.requires_grad_(False)
    return model.eval(), record


class Backbone(nn.Module):
    """One network's features at the asked nodes, from ``[0, 1]`` RGB (or gray, replicated) images.

    Args:
        arch: torchvision architecture (or ``alex``/``vgg``/``squeeze``).
        layers: aliases, node names or module names (see :func:`resolve_layer`).
        weights: ``"imagenet"`` or ``"random"``.
        seed: seed of the random weights.
        zero_mean_first: zero-mean first-layer filters.
        normalize: input normalisation, one of :data:`NORMALIZATIONS`.
        allow_unverified: accept a checkpoint whose sha256 does not match.

    Only the part of the graph the nodes need is kept (``create_feature_extractor``); the module is frozen
    and in eval mode, and ``.to()`` moves it.
    """

    def __init__(
        self, arch: str, layers: Sequence[str], *, weights: str = "imagenet", seed: int = 0,
        zero_mean_first: bool = False, normalize: str = "imagenet", allow_unverified: bool = False,
    ):
        super().__init__()
        self.arch = canonical_arch(arch)
        if normalize not in NORMALIZATIONS:
            raise UsageError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        self.nodes = tuple(dict.fromkeys(resolve_layer(self.arch, layer) for layer in layers))
        self.normalize = normalize
        model, self.record = load_model(
            self.arch, weights=weights, seed=seed, zero_mean_first=zero_mean_first,
            allow_unverified=allow_unverified,
        )
        self.body = _extractor(model, self.nodes)
        if normalize == "imagenet":
            shift, scale = IMAGENET_MEAN, IMAGENET_STD
        elif normalize == "lpips":
            shift, scale = LPIPS_SHIFT, LPIPS_SCALE
        else:
            shift, scale = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        # frozen feature extractor: batch norms keep their running statistics whatever the caller does
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``x`` ``(N, C, H, W)`` in ``[0, 1]``, C = 1 or 3 -> ``{node: (N, C_k, H_k, W_k)}``."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.normalize == "lpips":
            x = 2 * x - 1
        x = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        return dict(self.body(x))


class Ensemble(nn.Module):
    """K backbones; member ``k`` has seed ``seed + k`` (random weights) or all share the checkpoint (K = 1)."""

    def __init__(
        self, arch: str, layers: Sequence[str], *, weights: str = "imagenet", seed: int = 0, members: int = 1,
        zero_mean_first: bool = False, normalize: str = "imagenet", allow_unverified: bool = False,
    ):
        super().__init__()
        if members < 1:
            raise UsageError(f"an ensemble needs at least one member, got {members}")
        if weights == "imagenet" and members != 1:
            raise UsageError("an ensemble of trained networks would repeat one network: use members=1")
        self.members = nn.ModuleList(
            Backbone(arch, layers, weights=weights, seed=seed + k, zero_mean_first=zero_mean_first,
                     normalize=normalize, allow_unverified=allow_unverified)
            for k in range(members)
        )
        self.arch = self.members[0].arch
        self.nodes = self.members[0].nodes

    @property
    def records(self) -> tuple[WeightRecord, ...]:
        return tuple(m.record for m in self.members if m.record is not None)

    def train(self, mode: bool = True) -> Ensemble:
        return super().train(False)

    def forward(self, x: Tensor) -> list[dict[str, Tensor]]:
        return [member(x) for member in self.members]

