"""Shared fixtures: seeded stand-ins for the torchvision backbones, small images on disk.

ImageNet weights cannot be downloaded in CI, so LPIPS tests write seeded random state dicts under
torchvision's exact file names into a temporary ``TORCH_HOME`` and allow unverified weights. The
classifier tensors (unused by LPIPS) are stored as expanded zero views, so they cost nothing on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

BACKBONE_FILES = {
    "alex": ("alexnet", "alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16", "vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth"),
}


def seeded_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-shaped state dict with He-scaled random conv weights and zero classifier views."""
    import torchvision

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
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for net in nets:
        arch, filename = BACKBONE_FILES[net]
        torch.save(seeded_state_dict(arch, seed), folder / filename)
    return folder


@pytest.fixture(scope="session")
def seeded_torch_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    write_seeded_backbones(home)
    return home


@pytest.fixture
def torch_home(seeded_torch_home, monkeypatch) -> Path:
    """TORCH_HOME pointing at seeded backbones (unverified: tests must allow that explicitly)."""
    monkeypatch.setenv("TORCH_HOME", str(seeded_torch_home))
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    return seeded_torch_home
