"""The Simple-CNN of Amir & Weiss: defaults, shapes, determinism, ensemble, and the distance recomputed by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lpipscli.errors import UsageError
from lpipscli.features.scnn import SCNN_DECISIONS, SCNN_DEFAULTS, SCNNDistance, SimpleCNN


def test_paper_defaults():
    assert {k: SCNN_DEFAULTS[k] for k in ("patch_size", "depth", "width", "window", "stride")} == {
        "patch_size": 3, "depth": 6, "width": 1024, "window": 32, "stride": 16}
    net = SimpleCNN()
    assert len(net.convs) == 7  # one PxP + D = 6 1x1 convolutions
    assert tuple(net.convs[0].weight.shape) == (1024, 3, 3, 3)
    assert all(tuple(c.weight.shape) == (1024, 1024, 1, 1) for c in net.convs[1:])
    assert {"init", "padding", "pooling", "normalization", "distance"} <= set(SCNN_DECISIONS)
    # He-normal weights: standard deviation sqrt(2 / fan_in)
    assert float(net.convs[0].weight.std()) == pytest.approx((2 / 27) ** 0.5, rel=0.02)
    assert float(net.convs[3].weight.std()) == pytest.approx((2 / 1024) ** 0.5, rel=0.01)
    assert all(c.bias is None for c in net.convs)


def test_shapes_unit_norm_and_small_sides():
    net = SimpleCNN(width=16, depth=2)
    out = net(torch.rand(2, 3, 40, 72))
    # windows that fit: (40 - 32) // 16 + 1 = 1 row, (72 - 32) // 16 + 1 = 3 columns
    assert out.shape == (2, 16, 1, 3)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 1, 3))
    assert net(torch.rand(1, 1, 20, 48)).shape == (1, 16, 1, 2)  # gray; a side < W is one window
    with pytest.raises(UsageError):
        SimpleCNN(patch_size=4)


def test_distance_recomputed_by_hand():
    gen = torch.Generator().manual_seed(0)
    ref, dist = torch.rand(2, 3, 36, 36, generator=gen), torch.rand(2, 3, 36, 36, generator=gen)
    d = SCNNDistance(width=8, depth=2, window=16, stride=8, seed=4)
    net = d.nets[0]

    def by_hand(x):
        h = F.pad(2 * x - 1, (1, 1, 1, 1), mode="reflect")
        for conv in net.convs:
            h = torch.relu(F.conv2d(h, conv.weight))
        pooled = torch.stack([h[:, :, i:i + 16, j:j + 16].mean(dim=(2, 3))
                              for i in range(0, 36 - 16 + 1, 8) for j in range(0, 36 - 16 + 1, 8)], dim=-1)
        return pooled / (pooled.norm(dim=1, keepdim=True) + 1e-10)

    expected = ((by_hand(ref) - by_hand(dist)) ** 2).sum(dim=1).mean(dim=1)
    torch.testing.assert_close(d(ref, dist), expected, rtol=1e-5, atol=1e-7)
    assert float(d(ref, ref).abs().max()) == 0.0


def test_determinism_seed_and_ensemble_mean():
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    a = SCNNDistance(width=8, depth=1, seed=1)
    b = SCNNDistance(width=8, depth=1, seed=1)
    c = SCNNDistance(width=8, depth=1, seed=2)
    assert torch.equal(a(x, y), b(x, y)) and not torch.equal(a(x, y), c(x, y))
    ensemble = SCNNDistance(width=8, depth=1, seed=1, members=2)
    torch.testing.assert_close(ensemble(x, y), (a(x, y) + c(x, y)) / 2)
    zero = SCNNDistance(width=8, depth=1, zero_mean_first=True).nets[0].convs[0].weight
    assert zero.mean(dim=(2, 3)).abs().max() < 1e-6


def test_runner_gathers_references_and_maps():
    d = SCNNDistance(width=8, depth=1, window=8, stride=4)
    ref, dist = torch.rand(2, 3, 24, 24), torch.rand(3, 3, 24, 24)
    index = torch.tensor([1, 0, 1])
    scores, maps = d.runner(ref, dist, index, with_map=True)
    torch.testing.assert_close(scores, d(ref[index], dist))
    assert maps.shape == (3, 1, 24, 24)
