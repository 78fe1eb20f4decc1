"""Test and benchmark support: seeded stand-ins for the torchvision backbones.

ImageNet weights cannot be downloaded everywhere (CI, air-gapped machines). These helpers write seeded random
state dicts under torchvision's exact file names into a ``TORCH_HOME``, so the real loading path (cache
folder, sha256 check, ``weights_only=True``) runs unchanged; such files do not verify, so runs need
``allow_unverified_weights``. Scores computed with them are only meaningful for parity and timing, never as
LPIPS values.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lpipscli.weights import BACKBONES, FEATURE_BACKBONES


def seeded_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-shaped state dict: He-scaled random conv weights, classifier as expanded zero views.

    The classifier tensors (unused by LPIPS) are zero views of a single element, so they cost nothing on
    disk: a seeded AlexNet file is 10 MB instead of 233 MB.
    """
    import torchvision

    if arch not in ("alexnet", "vgg16", "vgg19", "squeezenet1_1"):
        return _seeded_full_state_dict(arch, seed)
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if not name.startswith("features"):
            state[name] = torch.zeros(()).expand(tensor.shape)
        elif tensor.dim() > 1:
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5
        else:
            state[name] = torch.randn(tensor.shape, generator=generator) * 0.01
    return state


def _seeded_full_state_dict(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """Seeded state dict of a backbone without a ``features`` block (ResNet, ShuffleNet, GoogLeNet).

    Every conv weight is He-scaled Gaussian, batch norms are the identity (weight 1, bias 0, running mean 0,
    running var 1), and the final classifier (``fc``; GoogLeNet's auxiliary heads too) is an expanded zero view.
    GoogLeNet is built with ``aux_logits=True`` because torchvision's checkpoint holds the auxiliary heads.
    """
    import torchvision

    kwargs = {"aux_logits": True, "init_weights": False} if arch == "googlenet" else {}
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith(("fc.", "aux1.", "aux2.")):
            state[name] = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
        elif name.endswith("num_batches_tracked"):
            state[name] = torch.zeros((), dtype=torch.long)
        elif name.endswith(("running_var",)) or (name.endswith("weight") and tensor.dim() == 1):
            state[name] = torch.ones(tensor.shape)
        elif tensor.dim() == 1:
            state[name] = torch.zeros(tensor.shape)
        else:
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5
    return state


def write_seeded_backbones(torch_home: Path, nets=("alex", "vgg", "squeeze"), seed: int = 0) -> Path:
    """Write seeded backbones for ``nets`` into ``torch_home/hub/checkpoints``; returns that folder.

    ``nets`` are LPIPS net names (``alex``...) or torchvision architecture names of
    :data:`lpipscli.weights.FEATURE_BACKBONES` (``resnet50``...).
    """
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for net in nets:
        info = BACKBONES[net] if net in BACKBONES else FEATURE_BACKBONES[net]
        torch.save(seeded_state_dict(info.arch, seed), folder / info.filename)
    return folder
