"""Backbones, layer names and the perceptual distance (METRICS.md sections 4, 9, 10).

References: the official `lpips` package (uncalibrated baseline, `lpips=False`) for the unit-normalised l2
distance; Eq. 1 of Tariq et al., the Gram matrix and the other distances written here in NumPy on features
from torchvision modules run by hand. Seeded weights stand in for ImageNet checkpoints (tests/conftest.py).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torchvision

from lpipscli.errors import UsageError, WeightsError
from lpipscli.features import backbones
from lpipscli.features.perceptual import PerceptualDistance, ensemble_vote
from lpipscli.testing import seeded_state_dict, write_seeded_backbones

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(7)
    return torch.rand(2, 3, 40, 48, generator=gen), torch.rand(2, 3, 40, 48, generator=gen)


def _official(net: str, arch: str):
    lpips = pytest.importorskip("lpips")
    model = lpips.LPIPS(net=net, lpips=False, pretrained=False, pnet_rand=True, verbose=False)
    state = seeded_state_dict(arch)
    slices = [getattr(model.net, f"slice{k}") for k in range(1, model.net.N_slices + 1)]
    for block in slices:
        for name, module in block._modules.items():
            prefix = f"features.{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return model.eval()


@pytest.mark.parametrize(("net", "arch"), [("alex", "alexnet"), ("vgg", "vgg16"), ("squeeze", "squeezenet1_1")])
def test_unit_l2_on_lpips_taps_equals_official_uncalibrated_lpips(torch_home, images, net, arch):
    ref, dist = images
    ours = PerceptualDistance(net, distance="l2", normalize="lpips", allow_unverified=True)
    assert ours.head.nodes == backbones.LPIPS_TAPS[arch]
    with torch.no_grad():
        expected = _official(net, arch)(2 * ref - 1, 2 * dist - 1).flatten()
        got = ours(ref, dist)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got.shape == (2,) and float(got.min()) > 0


@functools.lru_cache(maxsize=1)
def _seeded_vgg16() -> torch.nn.Module:
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    model.load_state_dict(seeded_state_dict("vgg16"), assign=True)
    return model.eval()


def _vgg16_by_hand(x: np.ndarray, stop: int) -> np.ndarray:
    """torchvision VGG-16 ``features[:stop]`` with the seeded weights, ImageNet-normalised input."""
    model = _seeded_vgg16()
    with torch.no_grad():
        t = torch.as_tensor((x - IMAGENET_MEAN) / IMAGENET_STD, dtype=torch.float32)
        return model.features[:stop](t).double().numpy()


def test_mse_is_eq1_of_tariq(torch_home, images):
    ref, dist = images
    f0 = _vgg16_by_hand(ref.numpy().astype(np.float64), 9)  # relu2_2 = features.8
    f1 = _vgg16_by_hand(dist.numpy().astype(np.float64), 9)
    n, m, h, w = f0.shape
    expected = ((f0 - f1) ** 2).reshape(n, -1).sum(axis=1) / (m * h * w)  # 1/(MHW) sum_m ||.||^2
    got = PerceptualDistance("vgg16", ["relu2_2"], distance="mse", allow_unverified=True)(ref, dist)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5)


def test_l1_cosine_layer_weights_and_style_against_numpy(torch_home, images):
    ref, dist = images
    f0 = _vgg16_by_hand(ref.numpy().astype(np.float64), 4)  # relu1_2
    f1 = _vgg16_by_hand(dist.numpy().astype(np.float64), 4)
    g0 = _vgg16_by_hand(ref.numpy().astype(np.float64), 9)  # relu2_2
    g1 = _vgg16_by_hand(dist.numpy().astype(np.float64), 9)
    l1 = np.abs(f0 - f1).mean(axis=(1, 2, 3))
    n0 = f0 / (np.sqrt((f0 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
    n1 = f1 / (np.sqrt((f1 ** 2).sum(axis=1, keepdims=True)) + 1e-10)
    cosine = (1 - (n0 * n1).sum(axis=1)).mean(axis=(1, 2))
    mse2 = ((g0 - g1) ** 2).mean(axis=(1, 2, 3))
    mse1 = ((f0 - f1) ** 2).mean(axis=(1, 2, 3))

    def gram(f):
        n, c, h, w = f.shape
        flat = f.reshape(n, c, h * w)
        return flat @ flat.transpose(0, 2, 1) / (c * h * w)

    style = np.abs(gram(g0) - gram(g1)).mean(axis=(1, 2))
    cases = [
        (dict(layers=["relu1_2"], distance="l1"), l1),
        (dict(layers=["relu1_2"], distance="cosine"), cosine),
        (dict(layers=["relu1_2", "relu2_2"], distance="mse", layer_weights=[2.0, 0.5]), 2 * mse1 + 0.5 * mse2),
        (dict(layers=["relu1_2"], distance="mse", style_weight=3.0, style_layers=["relu2_2"]), mse1 + 3 * style),
    ]
    for kwargs, expected in cases:
        got = PerceptualDistance("vgg16", allow_unverified=True, **kwargs)(ref, dist)
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=2e-5, err_msg=str(kwargs))


def test_channel_selection_and_pe_weights_from_given_scores(torch_home, images):
    ref, dist = images
    f0 = _vgg16_by_hand(ref.numpy().astype(np.float64), 4)
    f1 = _vgg16_by_hand(dist.numpy().astype(np.float64), 4)
    pe = np.linspace(0.0, 1.0, 64) ** 2  # channel m has rank m
    top = np.arange(32, 64)  # H-50 of 64 distinct values: prc_50 lies between ranks 31 and 32
    sq = (f0 - f1) ** 2
    expected_top = sq[:, top].mean(axis=(1, 2, 3))
    w = 64 * pe / pe.sum()
    expected_weighted = (sq * w.reshape(1, -1, 1, 1)).mean(axis=(1, 2, 3))
    got_top = PerceptualDistance("vgg16", ["relu1_2"], select="H-50", pe={"relu1_2": pe}, allow_unverified=True)
    got_w = PerceptualDistance("vgg16", ["relu1_2"], channel_weights="pe", pe={"relu1_2": pe}, allow_unverified=True)
    np.testing.assert_allclose(got_top(ref, dist).double().numpy(), expected_top, rtol=2e-5)
    np.testing.assert_allclose(got_w(ref, dist).double().numpy(), expected_weighted, rtol=2e-5)
    with pytest.raises(UsageError, match="cosine"):
        PerceptualDistance("vgg16", ["relu1_2"], distance="cosine", channel_weights="pe", pe={"relu1_2": pe},
                           allow_unverified=True)


def test_vgg_aliases_and_lpips_channel_counts():
    assert backbones.resolve_layer("vgg16", "relu1_2") == "features.3"
    assert backbones.resolve_layer("vgg16", "relu2_2") == "features.8"
    assert backbones.resolve_layer("vgg16", "relu3_3") == "features.15"
    assert backbones.resolve_layer("vgg16", "relu4_3") == "features.22"
    assert backbones.resolve_layer("vgg16", "relu5_3") == "features.29"
    assert backbones.resolve_layer("vgg19", "conv5_4") == "features.34"  # BasicSR's name
    assert backbones.resolve_layer("resnet50", "layer3") == "layer3"
    assert backbones.channels("alexnet", backbones.LPIPS_TAPS["alexnet"]) == (64, 192, 384, 256, 256)
    assert backbones.channels("vgg16", backbones.LPIPS_TAPS["vgg16"]) == (64, 128, 256, 512, 512)
    assert backbones.channels("squeezenet1_1", backbones.LPIPS_TAPS["squeezenet1_1"]) == (
        64, 128, 256, 384, 384, 512, 512)
    assert backbones.channels("resnet50", ("layer4",)) == (2048,)
    assert backbones.min_side("alexnet", backbones.LPIPS_TAPS["alexnet"]) == 31  # METRICS.md section 4.7
    assert backbones.min_side("vgg16", backbones.LPIPS_TAPS["vgg16"]) == 16
    with pytest.raises(UsageError, match="relu9_9"):
        backbones.resolve_layer("vgg16", "relu9_9")


def test_missing_checkpoint_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        backbones.Backbone("resnet50", ["layer1"])
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message and "\n" not in message


def test_trained_checkpoints_of_other_nets_load_and_prefix_check(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    write_seeded_backbones(tmp_path, nets=("googlenet", "shufflenet_v2_x1_0"))
    with pytest.raises(WeightsError, match="expected 1378be20"):
        backbones.Backbone("googlenet", ["inception3a"])  # seeded file: sha256 does not start with the prefix
    x = torch.rand(1, 3, 64, 64)
    net = backbones.Backbone("googlenet", ["conv1", "inception3b"], allow_unverified=True)
    out = net(x)
    assert out["inception3b"].shape[1] == 480 and net.record is not None and not net.record.verified
    shuffle = backbones.Backbone("shufflenet_v2_x1_0", ["stage2"], allow_unverified=True)
    assert shuffle(x)["stage2"].shape[1] == 116


def test_random_weights_deterministic_rng_untouched_zero_mean_first():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, _ = backbones.load_model("squeezenet1_1", weights="random", seed=5, zero_mean_first=True)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream is not consumed
    b, _ = backbones.load_model("squeezenet1_1", weights="random", seed=5, zero_mean_first=True)
    c, _ = backbones.load_model("squeezenet1_1", weights="random", seed=6, zero_mean_first=True)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    first = a.features[0].weight.double()
    assert first.mean(dim=(2, 3)).abs().max() < 1e-6  # every (out, in) filter slice is zero-mean
    assert first.abs().mean() > 1e-3
    raw, _ = backbones.load_model("squeezenet1_1", weights="random", seed=5, zero_mean_first=False)
    assert raw.features[0].weight.double().mean(dim=(2, 3)).abs().max() > 1e-3
    torch.testing.assert_close(raw.features[0].weight - raw.features[0].weight.mean(dim=(2, 3), keepdim=True),
                               a.features[0].weight)
    # torchvision's own initialisation under torch.manual_seed(seed)
    torch.manual_seed(5)
    reference = torchvision.models.squeezenet1_1(weights=None)
    assert torch.equal(raw.features[0].weight, reference.features[0].weight)
    assert torch.equal(raw.features[12].expand3x3.weight, reference.features[12].expand3x3.weight)


def test_ensemble_is_mean_of_members(images):
    ref, dist = images
    ensemble = PerceptualDistance("squeeze", ["relu1", "fire3"], weights="random", seed=2, members=3)
    singles = [PerceptualDistance("squeeze", ["relu1", "fire3"], weights="random", seed=2 + k, members=1,
                                  zero_mean_first=True) for k in range(3)]
    with torch.no_grad():
        expected = torch.stack([s(ref, dist) for s in singles]).mean(dim=0)
        torch.testing.assert_close(ensemble(ref, dist), expected, rtol=1e-6, atol=0)
        votes = ensemble.member_distances(ref, dist)
    assert votes.shape == (3, 2)
    torch.testing.assert_close(votes.mean(dim=0), expected, rtol=1e-6, atol=0)


def test_frozen_eval_and_to_float64(images):
    ref, dist = images
    d = PerceptualDistance("squeeze", ["relu1", "fire3"], weights="random", members=1)
    d.train()
    assert not d.training and all(not m.training for m in d.modules())
    assert all(not p.requires_grad for p in d.parameters())
    d64 = d.to(torch.float64)
    value = d64(ref.double(), dist.double())
    assert value.dtype == torch.float64 and value.shape == (2,)
    assert float(d64(ref.double(), ref.double()).abs().max()) == 0.0


def test_random_resnet_and_googlenet_build_and_score(images):
    ref, dist = images
    for net, layers in (("resnet50", ["layer1"]), ("googlenet", ["conv2"]), ("shufflenet_v2_x1_0", ["stage2"])):
        d = PerceptualDistance(net, layers, weights="random", members=1)
        value = d(ref, dist)
        assert value.shape == (2,) and torch.isfinite(value).all() and float(value.min()) > 0, net


def test_ensemble_vote_counts_members():
    d0 = torch.tensor([[1.0, 2.0, 3.0], [1.0, 5.0, 3.0], [4.0, 5.0, 3.0], [1.0, 5.0, 3.0]])
    d1 = torch.tensor([[2.0, 1.0, 3.0], [2.0, 1.0, 3.0], [2.0, 9.0, 3.0], [2.0, 1.0, 3.0]])
    assert ensemble_vote(d0, d1).tolist() == [0.75, 0.25, 0.5]
    with pytest.raises(UsageError):
        ensemble_vote(d0, d1[:2])
