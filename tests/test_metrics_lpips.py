"""LPIPS parity with the official `lpips` package, weight loading, and properties.

Both sides get identical seeded backbone weights through a temporary TORCH_HOME, so absolute values are
only meaningful for these seeded weights; parity is what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import distort, smooth_image

from lpipscli import weights
from lpipscli.errors import MetricInputError, WeightsError
from lpipscli.metrics.lpips import LPIPS, backbone_features, expected_checkpoint_shapes, lpips

TOLERANCES = {
    "official_parity": (1e-5, 0.0),
    "batched_vs_single": (1e-6, 1e-5),
    "map_mean": (1e-6, 0.0),
    # channels_last only reorders the float32 sums of the convolutions
    "channels_last": (1e-6, 0.0),
    # largest |bf16 - float32| on the seeded-weights pairs below (64x64, Gaussian noise 12/255), measured
    # 4.4e-5 (alex), 2.3e-5 (vgg), 4.8e-4 (squeeze), with a margin of about 4x
    "bf16_vs_float32": {"alex": 2e-4, "vgg": 2e-4, "squeeze": 2e-3},
}

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


def test_runner_with_any_reference_index_equals_pairwise_forward(torch_home):
    """Runs of one reference, a reference coming back later, and the maps: each equals its own forward pass."""
    ours = LPIPS("alex", allow_unverified=True)
    refs = torch.cat([_pair(40, 48, seed=s)[0] for s in range(3)])
    dist = torch.cat([_pair(40, 48, seed=10 + s)[1] for s in range(6)])
    index = torch.tensor([0, 0, 2, 1, 1, 0])
    with torch.no_grad():
        direct = torch.cat([ours(refs[i: i + 1], dist[p: p + 1]) for p, i in enumerate(index.tolist())])
        got = ours.runner(refs, dist, index)
        got_scores, got_maps = ours.runner(refs, dist, index, with_map=True)
        want_maps = torch.cat([ours.runner(refs[i: i + 1], dist[p: p + 1], None, with_map=True)[1]
                               for p, i in enumerate(index.tolist())])
    assert torch.allclose(got, direct, atol=1e-6, rtol=1e-5)
    assert torch.allclose(got_scores, direct, atol=1e-6, rtol=1e-5)
    assert torch.allclose(got_maps, want_maps, atol=1e-6, rtol=1e-5)
    assert len(set(direct.tolist())) == 6  # six different pairs, six different values


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


# --------------------------------------------------------------------------- backbones without torchvision
@pytest.mark.parametrize("net,arch", [("alex", "alexnet"), ("vgg", "vgg16"), ("squeeze", "squeezenet1_1")])
def test_feature_stacks_have_torchvision_layout(net, arch):
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        reference = getattr(torchvision.models, arch)(weights=None)
        ours = backbone_features(net)
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert expected_checkpoint_shapes(net) == want
    assert {f"features.{k}": tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: v for k, v in want.items() if k.startswith("features.")
    }
    # same layer types, strides, paddings and pooling modes, index by index
    assert [repr(m) for m in ours] == [repr(m) for m in reference.features]


@pytest.mark.parametrize("net,arch", [("alex", "alexnet"), ("squeeze", "squeezenet1_1")])
def test_feature_stacks_compute_torchvision_features(net, arch):
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, arch)(weights=None).features.eval()
    ours = backbone_features(net).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 99, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_scoring_imports_neither_torchvision_nor_lpips(torch_home, tmp_path):
    code = (
        "import json, sys, torch\n"
        "from lpipscli.metrics.lpips import LPIPS\n"
        "m = LPIPS('alex', allow_unverified=True)\n"
        "x = torch.rand(1, 3, 64, 64)\n"
        "value = m(x, x.flip(-1)).item()\n"
        "print(json.dumps({'value': value, 'modules': sorted(n for n in sys.modules"
        " if n.split('.')[0] in ('torchvision', 'lpips'))}))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TORCH_HOME": str(torch_home), "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["value"] > 0
    assert result["modules"] == []


# --------------------------------------------------------------------------- precision and layout
def _batch(nets_seed=0, n=4, size=64):
    pairs = [_pair(size, size, seed=nets_seed + 2 * s) for s in range(n)]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_bf16_is_close_to_float32(torch_home, net):
    ref, dist = _batch()
    exact = LPIPS(net, allow_unverified=True)
    fast = LPIPS(net, allow_unverified=True, precision="bf16")
    assert exact.precision == "float32"  # the default
    with torch.inference_mode():
        want, got = exact(ref, dist), fast(ref, dist)
        reused = fast.runner(ref[:1], dist, torch.zeros(4, dtype=torch.long))
        direct = fast(ref[:1].expand(4, -1, -1, -1), dist)
    assert got.dtype == torch.float32 and got.shape == (4,)
    gap = (got - want).abs().max().item()
    assert 0 < gap <= TOLERANCES["bf16_vs_float32"][net]  # > 0: the backbone really ran in bfloat16
    torch.testing.assert_close(reused, direct, rtol=0, atol=1e-6)


def test_bf16_identity_is_zero_and_features_are_float32(torch_home):
    fast = LPIPS("alex", allow_unverified=True, precision="bf16")
    ref, _ = _batch(n=2)
    with torch.inference_mode():
        assert all(f.dtype == torch.float32 for f in fast.features(ref))
        assert torch.equal(fast(ref, ref), torch.zeros(2))


def test_functional_api_takes_precision(torch_home):
    ref, dist = _batch(n=2)
    with torch.inference_mode():
        exact = lpips(ref, dist, net="alex", allow_unverified=True)
        fast = lpips(ref, dist, net="alex", allow_unverified=True, precision="bf16")
    assert 0 < (fast - exact).abs().max().item() <= TOLERANCES["bf16_vs_float32"]["alex"]


def test_unknown_precision_is_refused(torch_home):
    with pytest.raises(ValueError, match="precision 'fp8'"):
        LPIPS("alex", allow_unverified=True, precision="fp8")


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_channels_last_is_a_layout_choice_only(torch_home, net):
    ref, dist = _batch(n=2)
    with torch.inference_mode():
        a = LPIPS(net, allow_unverified=True, channels_last=True)(ref, dist)
        b = LPIPS(net, allow_unverified=True, channels_last=False)(ref, dist)
    atol, _ = TOLERANCES["channels_last"]
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


def test_global_tf32_flags_are_left_alone(torch_home):
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
              torch.get_float32_matmul_precision())
    for precision in ("float32", "bf16"):
        module = LPIPS("alex", allow_unverified=True, precision=precision)
        with torch.inference_mode():
            module(*_batch(n=1))
    after = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.get_float32_matmul_precision())
    assert after == before


def test_bf16_module_ignores_a_callers_autocast(torch_home):
    """Inside the caller's autocast the bf16 module computes exactly what it computes outside it: the backbone
    autocast is its own, and normalisation, differences and heads are pinned to float32."""
    fast = LPIPS("alex", allow_unverified=True, precision="bf16")
    ref, dist = _batch(n=2)
    with torch.inference_mode():
        want = fast(ref, dist)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(ref, dist)
            got_map = fast.runner(ref, dist, None, with_map=True)[1]
        want_map = fast.runner(ref, dist, None, with_map=True)[1]
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    assert got_map.dtype == torch.float32 and torch.equal(got_map, want_map)
