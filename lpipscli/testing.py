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

from lpipscli.weights import BACKBONES


def seeded_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-shaped state dict: He-scaled random conv weights, classifier as expanded zero views.

    The classifier tensors (unused by LPIPS) are zero views of a single element, so they cost nothing on
    disk: a seeded AlexNet file is 10 MB instead of 233 MB.
    """
    import torchvision

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


def write_seeded_backbones(torch_home: Path, nets=("alex", "vgg", "squeeze"), seed: int = 0) -> Path:
    """Write seeded backbones for ``nets`` into ``torch_home/hub/checkpoints``; returns that folder."""
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for net in nets:
        info = BACKBONES[net]
        torch.save(seeded_state_dict(info.arch, seed), folder / info.filename)
    return folder
