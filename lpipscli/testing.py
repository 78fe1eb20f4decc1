"""Test and benchmark support: seeded stand-ins for the torchvision backbones; the reference YUV-to-RGB.

ImageNet weights cannot be downloaded everywhere (CI, air-gapped machines). These helpers write seeded random
state dicts under torchvision's exact file names into a ``TORCH_HOME``, so the real loading path (cache
folder, sha256 check, ``weights_only=True``) runs unchanged; such files do not verify, so runs need
``allow_unverified_weights``. Scores computed with them are only meaningful for parity and timing, never as
LPIPS values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


#: ITU-R BT.601 / BT.709 / BT.2020 ``(Kr, Kb)``, written out independently of ``lpipscli.io.av_video``.
REFERENCE_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def reference_yuv_to_rgb(planes, *, bit_depth: int, colorspace: str, color_range: str) -> np.ndarray:
    """The definition of :func:`lpipscli.io.av_video.yuv_to_rgb`: its plain NumPy float32 body as it was
    before the OpenCV rewrite (whole planes), with its own copy of the ITU-R ``Kr``/``Kb`` constants
    (:data:`REFERENCE_MATRICES`), so that it shares nothing with the code it checks. The tests compare
    ``yuv_to_rgb`` with it bit for bit; ``benchmarks/bench_yuv_to_rgb.py`` times the two."""
    y, u, v = planes[0], planes[1], planes[2]
    height, width = y.shape
    ch, cw = u.shape
    fy, fx = -(-height // ch), -(-width // cw)
    kr, kb = REFERENCE_MATRICES[colorspace]
    kg = 1.0 - kr - kb
    top = (1 << bit_depth) - 1
    if color_range == "limited":
        scale = 1 << (bit_depth - 8)
        y_off, y_span, c_off, c_span = 16 * scale, 219 * scale, 128 * scale, 224 * scale
    else:
        y_off, y_span, c_off, c_span = 0, top, 1 << (bit_depth - 1), top
    f32 = np.float32
    yy = y.astype(f32)
    yy -= f32(y_off)
    yy *= f32(top / y_span)
    pb = (u.astype(f32) - f32(c_off)) * f32(top / c_span)
    pr = (v.astype(f32) - f32(c_off)) * f32(top / c_span)
    rgb = np.empty((3, height, width), dtype=f32)

    def combine(op, out, base, term):
        if fx > 1:
            term = np.repeat(term, fx, axis=1)[:, :width]
        if fy == 1:
            op(base, term, out=out)
        elif height == ch * fy:
            op(base.reshape(ch, fy, width), term[:, None, :], out=out.reshape(ch, fy, width))
        else:
            op(base, np.repeat(term, fy, axis=0)[:height], out=out)

    combine(np.add, rgb[0], yy, f32(2 * (1 - kr)) * pr)
    combine(np.subtract, rgb[1], yy, f32(2 * kb * (1 - kb) / kg) * pb)
    combine(np.subtract, rgb[1], rgb[1], f32(2 * kr * (1 - kr) / kg) * pr)
    combine(np.add, rgb[2], yy, f32(2 * (1 - kb)) * pb)
    np.rint(rgb, out=rgb)
    np.clip(rgb, 0, top, out=rgb)
    return rgb.astype(np.uint8 if bit_depth == 8 else np.uint16).transpose(1, 2, 0)
