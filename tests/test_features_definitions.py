"""Named metric definitions: parsing, one MetricSpec per name, shared forward passes, parity with per-definition
computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lpipscli.errors import UsageError
from lpipscli.features import backbones
from lpipscli.features.definitions import definition_specs, parse_define
from lpipscli.features.perceptual import PerceptualDistance
from lpipscli.features.scnn import SCNNDistance

TOML = """
[metrics.sq_all]
net = "squeeze"
layers = ["relu1", "fire3", "fire5"]
distance = "l2"

[metrics.sq_top]
net = "squeezenet1_1"
layers = ["fire3"]
select = "H-25"
pe_file = "{pe}"

[metrics.sq_style]
net = "squeeze"
layers = ["relu1"]
layer_weights = [0.5]
style_weight = 2.0
style_layers = ["fire3"]
"""


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(5)
    ref = torch.rand(2, 3, 32, 40, generator=gen)
    dist = torch.rand(3, 3, 32, 40, generator=gen)
    return ref, dist, torch.tensor([0, 1, 1])


@pytest.fixture
def pe_file(tmp_path):
    scores = np.random.default_rng(1).random(128)
    path = tmp_path / "pe.json"
    path.write_text(json.dumps({"net": "squeezenet1_1", "layers": {"fire3": {"node": "features.4",
                                                                             "pe": scores.tolist()}}}))
    return path, scores


def test_parse_define_and_errors():
    assert parse_define("a=net=vgg16,layers=relu1_2+relu2_2,distance=l1") == (
        "a", {"net": "vgg16", "layers": "relu1_2+relu2_2", "distance": "l1"})
    with pytest.raises(UsageError, match="NAME=key=value"):
        parse_define("novalue")
    bad = [
        (["x=net=vgg16,colour=red"], "unknown setting colour"),
        (["x=layers=relu1_2"], "net is required"),
        (["x=net=vgg16", "x=net=alexnet"], "given twice"),
        (["ssim=net=vgg16"], "shadow"),
        (["x=net=vgg16,layers=relu1_2+relu2_2,layer_weights=1"], "1 values for 2 layers"),
        (["x=net=vgg16,layers=relu9_1"], "no layer 'relu9_1'"),
        (["x=net=vgg16,members=3"], "members must be 1"),
        (["x=net=vgg16,select=top10"], "H-x"),
        (["1x=net=vgg16"], "must start with a letter"),
        (["x=net=vgg16,seed=1.5"], "seed must be int"),
        (["x=kind=scnn,layers=a"], "unknown setting layers"),
    ]
    for define, message in bad:
        with pytest.raises(UsageError, match=message):
            definition_specs(define, None)


def test_specs_carry_settings_and_defaults(tmp_path, pe_file):
    path = tmp_path / "m.toml"
    path.write_text(TOML.format(pe=pe_file[0]))
    specs = definition_specs(["rnd=net=vgg16,weights=random", "sc=kind=scnn,width=64"], path)
    assert [s.key for s in specs] == ["sq_all", "sq_top", "sq_style", "rnd", "sc"]
    conv = {s.key: s.conventions for s in specs}
    assert conv["sq_all"]["weights_file"] == "squeezenet1_1-b8a52dc0.pth"
    assert conv["sq_all"]["nodes"] == ("features.1", "features.4", "features.7")
    assert conv["sq_top"]["select"] == "H-25" and len(conv["sq_top"]["pe_file_sha256"]) == 64
    # Amir & Weiss defaults for random networks: K = 20, zero-mean first layer
    assert conv["rnd"]["members"] == 20 and conv["rnd"]["zero_mean_first"] is True and conv["rnd"]["seed"] == 0
    assert conv["rnd"]["layers"] == backbones.LPIPS_TAPS["vgg16"]
    assert conv["sc"]["width"] == 64 and conv["sc"]["depth"] == 6
    assert {s.key: s.min_side for s in specs}["sq_all"] == 9
    assert all(not s.higher_is_better for s in specs)
    json.dumps([s.conventions for s in specs])  # provenance must serialise


def test_runners_equal_per_definition_computations(torch_home, tmp_path, batch, pe_file):
    ref, dist, index = batch
    path = tmp_path / "m.toml"
    path.write_text(TOML.format(pe=pe_file[0]))
    specs = definition_specs(["sc=kind=scnn,width=16,depth=2,window=16,stride=8"], path)
    runners = {s.key: s.build("cpu", allow_unverified=True)[0] for s in specs}
    expected = {
        "sq_all": PerceptualDistance("squeeze", ["relu1", "fire3", "fire5"], distance="l2", allow_unverified=True),
        "sq_top": PerceptualDistance("squeeze", ["fire3"], select="H-25", pe={"fire3": pe_file[1]},
                                     allow_unverified=True),
        "sq_style": PerceptualDistance("squeeze", ["relu1"], layer_weights=[0.5], style_weight=2.0,
                                       style_layers=["fire3"], allow_unverified=True),
        "sc": SCNNDistance(width=16, depth=2, window=16, stride=8),
    }
    with torch.inference_mode():
        for key, module in expected.items():
            got = runners[key](ref, dist, index)
            loop = torch.cat([module(ref[i:i + 1], dist[p:p + 1]) for p, i in enumerate(index.tolist())])
            torch.testing.assert_close(got, loop, rtol=1e-5, atol=1e-7, msg=key)
        # ref_index None: ref[p] pairs with dist[p]
        torch.testing.assert_close(runners["sq_all"](dist, ref[index], None), expected["sq_all"](dist, ref[index]))
    # H-25 of 128 distinct scores keeps 32 channels: the distance is Eq. 1 over them
    assert runners["sq_top"].head.channel_index[0]["features.4"].numel() == 32


def test_definitions_on_one_backbone_share_one_forward_pass(torch_home, batch):
    ref, dist, index = batch
    specs = definition_specs(["a=net=squeeze,layers=relu1", "b=net=squeeze,layers=fire3,distance=cosine",
                              "c=net=squeeze,layers=relu1,normalize=lpips"], None)
    built = {s.key: s.build("cpu", allow_unverified=True)[0] for s in specs}
    assert built["a"].shared is built["b"].shared and built["c"].shared is not built["a"].shared
    seen = []
    member = built["a"].shared.ensemble.members[0]
    handle = member.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        with torch.inference_mode():
            for key in ("a", "b"):
                built[key](ref, dist, index)
            built["a"](ref.clone(), dist.clone(), index)  # equal content: still cached
    finally:
        handle.remove()
    assert seen == [2, 3]  # each reference once (R = 2), each distorted image once (P = 3), for both
    assert built["a"].shared.forward_passes == 1
    assert set(built["a"].shared.ensemble.nodes) == {"features.1", "features.4"}


def test_pe_file_of_other_weights_is_refused(torch_home, tmp_path):
    scores = np.linspace(0, 1, 64).tolist()
    layers = {"relu1": {"node": "features.1", "pe": scores}}
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"net": "squeezenet1_1", "weights": {"kind": "imagenet", "sha256": "0" * 64},
                                 "layers": layers}))
    spec = definition_specs([f"a=net=squeeze,layers=relu1,select=H-10,pe_file={wrong}"], None)[0]
    with pytest.raises(UsageError, match="sha256"):
        spec.build("cpu", allow_unverified=True)
    other_net = tmp_path / "alex.json"
    other_net.write_text(json.dumps({"net": "alexnet", "layers": layers}))
    spec = definition_specs([f"b=net=squeeze,layers=relu1,select=H-10,pe_file={other_net}"], None)[0]
    with pytest.raises(UsageError, match="alexnet"):
        spec.build("cpu", allow_unverified=True)
