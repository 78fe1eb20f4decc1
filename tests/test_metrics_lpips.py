"""LPIPS parity with the official `lpips` package, weight loading, and properties.

Both sides get identical seeded backbone weights through a temporary TORCH_HOME, so absolute values are
only meaningful for these seeded weights; parity is what is tested.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import distort, smooth_image

from lpipscli import weights
from lpipscli.errors import MetricInputError, WeightsError
from lpipscli.metrics.lpips import LPIPS, lpips

TOLERANCES = {"official_parity": (1e-5, 0.0), "batched_vs_single": (1e-6, 1e-5), "map_mean": (1e-6, 0.0)}

lpips_official = pytest.importorskip("lpips")


def _pair(height, width, channels=3, seed=0):
    ref = smooth_image(height, width, channels, seed)
    dist = distort(ref, seed + 1)
    to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    return to(ref), to(dist)


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
@pytest.mark.parametrize("version", ["0.1", "0.0"])
def test_matches_official_lpips(torch_home, net, version):
    ours = LPIPS(net, version, allow_unverified=True)
    official = lpips_official.LPIPS(net=net, version=version, verbose=False)
    # odd, non-square sizes and a batch of different images
    ref = torch.cat([_pair(67, 45, seed=s)[0] for s in range(3)])
    dist = torch.cat([_pair(67, 45, seed=s)[1] for s in range(3)])
    with torch.no_grad():
        expected = official(ref * 2 - 1, dist * 2 - 1).flatten()
        got = ours(ref, dist)
    assert got.shape == (3,)
    atol, _ = TOLERANCES["official_parity"]
    assert torch.allclose(got, expected, atol=atol, rtol=0), (got, expected)
    assert (got > 0).all()


def test_matches_official_spatial_map(torch_home):
    ours = LPIPS("alex", allow_unverified=True)
    official = lpips_official.LPIPS(net="alex", spatial=True, verbose=False)
    ref, dist = _pair(70, 53)
    with torch.no_grad():
        expected = official(ref * 2 - 1, dist * 2 - 1)
        score, spatial = ours.distance(ours.features(ref), ours.features(dist), out_hw=(70, 53))
    assert spatial.shape == expected.shape == (1, 1, 70, 53)
    assert torch.allclose(spatial, expected, atol=1e-5)
    assert abs(spatial.mean().item() - score.item()) < 1e-5


def test_gray_is_replicated(torch_home):
    ours = LPIPS("alex", allow_unverified=True)
    ref, dist = _pair(48, 40, channels=1)
    gray = ours(ref, dist)
    rgb = ours(ref.expand(-1, 3, -1, -1), dist.expand(-1, 3, -1, -1))
    assert torch.allclose(gray, rgb, atol=1e-7)


def test_identity_symmetry_batching_and_reuse(torch_home):
    ours = LPIPS("squeeze", allow_unverified=True)
    pairs = [_pair(40, 44, seed=s) for s in range(4)]
    ref = torch.cat([p[0] for p in pairs])
    dist = torch.cat([p[1] for p in pairs])
    with torch.no_grad():
        batched = ours(ref, dist)
        single = torch.cat([ours(ref[i:i + 1], dist[i:i + 1]) for i in range(4)])
        assert torch.allclose(batched, single, atol=1e-6, rtol=1e-5)
        assert torch.allclose(ours(dist, ref), batched, atol=1e-6)
        assert torch.equal(ours(ref, ref), torch.zeros(4))
        # reference features computed once and reused: ref 0 against dists 0..3
        reused = ours.runner(ref[:1], dist, torch.zeros(4, dtype=torch.long))
        direct = ours(ref[:1].expand(4, -1, -1, -1), dist)
        assert torch.allclose(reused, direct, atol=1e-6)
    assert ours(ref[:1], dist[:1]).shape == (1,)


def test_differentiable_functional_api(torch_home):
    ref, dist = _pair(36, 36)
    dist = dist.clone().requires_grad_(True)
    loss = lpips(ref, dist, net="alex", allow_unverified=True).sum()
    loss.backward()
    assert dist.grad is not None and dist.grad.abs().sum() > 0


@pytest.mark.parametrize("net,minimum", [("alex", 31), ("vgg", 16), ("squeeze", 17)])
def test_too_small_inputs_are_refused(torch_home, net, minimum):
    ours = LPIPS(net, allow_unverified=True)
    ok = torch.rand(1, 3, minimum, minimum + 3)
    assert ours(ok, ok.flip(-1)).shape == (1,)
    small = torch.rand(1, 3, minimum - 1, 64)
    with pytest.raises(MetricInputError, match=rf"lpips_{net} needs images of at least {minimum}x{minimum} px"):
        ours(small, small)


def test_unverified_backbone_is_refused_without_override(torch_home):
    with pytest.raises(WeightsError, match="sha256 .* expected 7be5be791159472b.*--allow-unverified-weights"):
        LPIPS("alex")


def test_env_override_accepts_and_records_unverified(torch_home, monkeypatch):
    monkeypatch.setenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", "1")
    module = LPIPS("alex")
    backbone, head = module.weight_records
    assert backbone.verified is False
    assert backbone.sha256 == weights.sha256_file(weights.backbone_path("alex"))
    assert backbone.expected_sha256 == weights.BACKBONES["alex"].sha256
    assert head.verified is True  # the official package's heads match the pinned hashes


def test_matching_hash_loads_verified(torch_home, monkeypatch):
    actual = weights.sha256_file(weights.backbone_path("alex"))
    info = weights.BACKBONES["alex"]
    pinned = weights.BackboneFile(info.net, info.arch, info.filename, actual, None)
    monkeypatch.setitem(weights.BACKBONES, "alex", pinned)
    module = LPIPS("alex")
    assert all(r.verified for r in module.weight_records)


def test_missing_backbone_message_names_file_folder_and_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        LPIPS("vgg", allow_unverified=True)
    message = str(info.value)
    assert "\n" not in message
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "--metric ssim,psnr" in message


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    torch.save({"features.0.weight": Evil()}, folder / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        LPIPS("alex", allow_unverified=True)


def test_heads_load_strictly_with_remapped_keys(torch_home):
    module = LPIPS("vgg", allow_unverified=True)
    official_state = torch.load(weights.heads_dir("0.1") / "vgg.pth", map_location="cpu", weights_only=True)
    for k, lin in enumerate(module.lins):
        np.testing.assert_array_equal(lin.weight.numpy(), official_state[f"lin{k}.model.1.weight"].numpy())
