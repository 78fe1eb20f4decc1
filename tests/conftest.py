"""Shared fixtures: seeded stand-ins for the torchvision backbones, small images on disk.

ImageNet weights cannot be downloaded in CI, so LPIPS tests write seeded random state dicts under
torchvision's exact file names into a temporary ``TORCH_HOME`` and allow unverified weights. The
classifier tensors (unused by LPIPS) are stored as expanded zero views, so they cost nothing on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lpipscli.testing import write_seeded_backbones


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
