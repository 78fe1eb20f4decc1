"""Perceptual Efficacy (Tariq, Tursun, Kim, Didyk, ECCV 2020): rank a layer's channels by CSF-weighted frequency
sensitivity and orientation selectivity (METRICS.md section 7).

For every channel ``m`` of a layer, with ``a_m(I)`` the spatial mean of its feature map for stimulus ``I``:

* ``mu1 = sum_f CSF(f) |d a_m(I_f) / d f|`` over radially symmetric gratings ``I_f`` (Eq. 2);
* ``mu2 = sum_theta (a_m(I_theta) - max_theta a_m(I_theta))^2`` over oriented gratings at the CSF peak (Eqs. 3-4);
* ``PE_m = mu1_m mu2_m / (sum_m mu1 * sum_m mu2)`` (Eq. 5), so ``PE >= 0`` and ``sum_m PE_m <= 1``;
* ``H-x = {m : PE_m >= prc_(100-x)}`` and ``L-x = {m : PE_m <= prc_x}`` (Eqs. 7-8).

There is no official code. Everything the paper leaves open is a **DECISION** below, a module constant, and
every output records :data:`DECISIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from lpipscli.errors import UsageError

# ---- DECISIONS (the paper does not say; recorded in every output) -----------------------------------------
#: CSF: Mannos & Sakrison (1974), ``2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1)``, f in cycles/degree.
CSF_MODEL = "Mannos-Sakrison 1974: 2.6*(0.0192+0.114f)*exp(-(0.114f)^1.1)"
#: Viewing geometry: pixels per degree of visual angle.
PIXELS_PER_DEGREE = 60.0
#: Stimulus side in pixels (square), the networks' ImageNet input size.
STIMULUS_SIZE = 224
#: Gratings ``mean + amplitude cos(...)`` on [0, 1] RGB (gray replicated), before the network's own
#: input normalisation: mean 0.5, amplitude 0.5 (Michelson contrast 1).
MEAN_LUMINANCE = 0.5
AMPLITUDE = 0.5
#: A single phase (cosine phase 0 at the centre); no window (the grating fills the stimulus).
PHASE = 0.0
#: Radial gratings: frequencies 0.5, 1.0, ... c/deg up to the Nyquist limit ``ppd / 2`` (30 at 60 ppd).
def frequencies_for(ppd: float) -> tuple[float, ...]:
    """The radial gratings' frequencies at ``ppd`` pixels per degree: 0.5 c/deg steps up to ``ppd / 2``."""
    return tuple(0.5 * k for k in range(1, int(ppd) + 1))


FREQUENCIES = frequencies_for(PIXELS_PER_DEGREE)
#: Oriented gratings: 0, 7.5, ..., 172.5 degrees (a half turn); theta = 0 varies along x (vertical bars),
#: angles grow clockwise on screen (image y points down).
ORIENTATIONS = tuple(7.5 * k for k in range(24))
#: Derivative of Eq. 2: forward differences between consecutive sampled frequencies, the CSF taken at the
#: midpoint of each interval.
DERIVATIVE = "forward differences over consecutive frequencies, CSF at the interval midpoint"
#: Activations: the output of the named node as it is (after ReLU for ``relu*`` aliases).
ACTIVATION = "the named node's output as is (post-ReLU for relu* aliases), spatial mean over the whole map"
#: Percentiles: NumPy's default linear interpolation; ties all included (``>=`` / ``<=``), so a subset can be
#: larger than x% of the channels; it is never empty (the maximum / minimum always qualifies).
PERCENTILE = "numpy.percentile method='linear'; ties included (>=, <=); never empty"
#: A layer whose sum of mu1 or of mu2 is zero (e.g. dead channels only) gets PE = 0 everywhere.
ZERO_SUMS = "PE = 0 for every channel when sum(mu1) or sum(mu2) is 0"
#: PE-proportional channel weights: ``w_m = M PE_m / sum PE`` over the kept channels (mean 1); uniform when
#: the sum is 0.
WEIGHTS = "w_m = M * PE_m / sum(PE) over the kept channels (mean 1); uniform if sum(PE) = 0"


def csf(freq) -> np.ndarray:
    """Mannos-Sakrison contrast sensitivity at ``freq`` cycles/degree (array in, float64 array out)."""
    f = np.asarray(freq, dtype=np.float64)
    return 2.6 * (0.0192 + 0.114 * f) * np.exp(-((0.114 * f) ** 1.1))


def csf_peak() -> float:
    """The frequency (c/deg) where :func:`csf` peaks (about 7.9), by bisection to 1e-12.

    ``d CSF / d f = 0`` where ``1.1 (0.0192 + 0.114 f) (0.114 f)^0.1 = 1`` (left side increasing in ``f``).
    """
    lo, hi = 1.0, 20.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 1.1 * (0.0192 + 0.114 * mid) * (0.114 * mid) ** 0.1 < 1.0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


#: The oriented gratings' frequency: the CSF peak (paper section 4.1).
PEAK_FREQUENCY = round(csf_peak(), 6)

DECISIONS: dict[str, object] = {
    "csf": CSF_MODEL,
    "pixels_per_degree": PIXELS_PER_DEGREE,
    "stimulus_size": STIMULUS_SIZE,
    "mean_luminance": MEAN_LUMINANCE,
    "amplitude": AMPLITUDE,
    "color": "gray replicated to RGB, [0,1] before the network's input normalisation",
    "phase": PHASE,
    "window": "none",
    "radial_centre": "((W-1)/2, (H-1)/2)",
    "frequencies_cpd": list(FREQUENCIES),
    "orientations_deg": list(ORIENTATIONS),
    "orientation_convention": "theta=0 varies along x; clockwise on screen (y down)",
    "oriented_frequency_cpd": PEAK_FREQUENCY,
    "derivative": DERIVATIVE,
    "activation": ACTIVATION,
    "percentile": PERCENTILE,
    "zero_sums": ZERO_SUMS,
    "pe_weights": WEIGHTS,
}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return x - centre, y - centre


def radial_grating(freq: float, *, size: int = STIMULUS_SIZE, ppd: float = PIXELS_PER_DEGREE,
                   phase: float = PHASE, mean: float = MEAN_LUMINANCE, amplitude: float = AMPLITUDE) -> np.ndarray:
    """Concentric sinusoidal grating ``(size, size)``: ``mean + amplitude cos(2 pi freq r / ppd + phase)``."""
    x, y = _grid(size)
    return mean + amplitude * np.cos(2 * math.pi * freq * np.hypot(x, y) / ppd + phase)


def oriented_grating(freq: float, theta_deg: float, *, size: int = STIMULUS_SIZE, ppd: float = PIXELS_PER_DEGREE,
                     phase: float = PHASE, mean: float = MEAN_LUMINANCE,
                     amplitude: float = AMPLITUDE) -> np.ndarray:
    """Plane sinusoidal grating varying along ``(cos theta, sin theta)`` (x right, y down)."""
    x, y = _grid(size)
    theta = math.radians(theta_deg)
    return mean + amplitude * np.cos(2 * math.pi * freq * (x * math.cos(theta) + y * math.sin(theta)) / ppd + phase)


FeatureFn = Callable[[Tensor], Mapping[str, Tensor]]


def _mean_activations(feature_fn: FeatureFn, layers: Sequence[str], stimuli: Sequence[np.ndarray],
                      device: torch.device, dtype: torch.dtype, batch: int) -> dict[str, np.ndarray]:
    """``{layer: (M, S)}`` spatial-mean activations, float64, for gray stimuli replicated to RGB."""
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for start in range(0, len(stimuli), batch):
        chunk = np.stack(stimuli[start:start + batch])[:, None]
        x = torch.as_tensor(chunk, dtype=dtype, device=device).expand(-1, 3, -1, -1)
        with torch.inference_mode():
            feats = feature_fn(x)
        for layer in layers:
            out[layer].append(feats[layer].double().mean(dim=(2, 3)).cpu().numpy().T)
    return {layer: np.concatenate(parts, axis=1) for layer, parts in out.items()}


def tuning_curves(
    feature_fn: FeatureFn, layers: Sequence[str], *, frequencies: Sequence[float] = FREQUENCIES,
    orientations: Sequence[float] = ORIENTATIONS, peak: float = PEAK_FREQUENCY, size: int = STIMULUS_SIZE,
    ppd: float = PIXELS_PER_DEGREE, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
    batch: int = 8,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Frequency ``(M, F)`` and orientation ``(M, T)`` tuning curves of every channel of each layer."""
    device = torch.device(device)
    radial = [radial_grating(f, size=size, ppd=ppd) for f in frequencies]
    oriented = [oriented_grating(peak, t, size=size, ppd=ppd) for t in orientations]
    freq = _mean_activations(feature_fn, layers, radial, device, dtype, batch)
    orient = _mean_activations(feature_fn, layers, oriented, device, dtype, batch)
    return {layer: (freq[layer], orient[layer]) for layer in layers}


def pe_from_curves(freq_resp: np.ndarray, orient_resp: np.ndarray,
                   frequencies: Sequence[float] = FREQUENCIES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu1, mu2, PE)``, each ``(M,)`` float64, from tuning curves ``(M, F)`` and ``(M, T)`` (Eqs. 2-5)."""
    f = np.asarray(frequencies, dtype=np.float64)
    a = np.asarray(freq_resp, dtype=np.float64)
    slope = np.abs(np.diff(a, axis=1)) / np.diff(f)
    mu1 = (slope * csf((f[:-1] + f[1:]) / 2)).sum(axis=1)
    o = np.asarray(orient_resp, dtype=np.float64)
    mu2 = ((o - o.max(axis=1, keepdims=True)) ** 2).sum(axis=1)
    s1, s2 = mu1.sum(), mu2.sum()
    pe = mu1 * mu2 / (s1 * s2) if s1 > 0 and s2 > 0 else np.zeros_like(mu1)
    return mu1, mu2, pe


def perceptual_efficacy(feature_fn: FeatureFn, layers: Sequence[str], **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {"mu1", "mu2", "pe", "freq_response", "orient_response"}}`` for every channel.

    ``feature_fn`` maps ``(N, 3, H, W)`` [0, 1] images to ``{layer: (N, M, h, w)}`` (a
    :class:`~lpipscli.features.backbones.Backbone` does); ``kwargs`` go to :func:`tuning_curves`. When
    ``device`` is not given, the device of ``feature_fn``'s parameters is used.
    """
    frequencies = kwargs.get("frequencies", FREQUENCIES)
    if "device" not in kwargs and isinstance(feature_fn, torch.nn.Module):
        param = next(iter(feature_fn.parameters()), None)
        if param is not None:
            kwargs["device"] = param.device
    curves = tuning_curves(feature_fn, layers, **kwargs)
    out = {}
    for layer, (freq_resp, orient_resp) in curves.items():
        mu1, mu2, pe = pe_from_curves(freq_resp, orient_resp, frequencies)
        out[layer] = {"mu1": mu1, "mu2": mu2, "pe": pe, "freq_response": freq_resp, "orient_response": orient_resp}
    return out


def parse_selection(text: str) -> tuple[str, float]:
    """``"all"`` -> ``("all", 100)``; ``"H-10"`` -> ``("H", 10.0)``; ``"L-2.5"`` -> ``("L", 2.5)``."""
    text = str(text).strip()
    if text == "all":
        return "all", 100.0
    mode, _, value = text.partition("-")
    try:
        percent = float(value)
    except ValueError:
        percent = math.nan
    if mode not in ("H", "L") or not (0 < percent <= 100):
        raise UsageError(f"channel selection must be 'all', 'H-x' or 'L-x' with 0 < x <= 100, got {text!r}")
    return mode, percent


def select_channels(pe: np.ndarray, mode: str, percent: float) -> np.ndarray:
    """Sorted channel indices of ``H-x`` (``PE >= prc_(100-x)``) or ``L-x`` (``PE <= prc_x``), Eqs. 7-8."""
    pe = np.asarray(pe, dtype=np.float64)
    if mode == "all":
        return np.arange(pe.size)
    if mode == "H":
        return np.flatnonzero(pe >= np.percentile(pe, 100.0 - percent))
    if mode == "L":
        return np.flatnonzero(pe <= np.percentile(pe, percent))
    raise UsageError(f"selection mode must be 'all', 'H' or 'L', got {mode!r}")


def pe_weights(pe: np.ndarray) -> np.ndarray:
    """PE-proportional channel weights with mean 1 (uniform when all PE are 0)."""
    pe = np.asarray(pe, dtype=np.float64)
    total = pe.sum()
    return pe.size * pe / total if total > 0 else np.ones_like(pe)


def rank(
    net: str, layers: Sequence[str], *, weights: str = "imagenet", seed: int = 0, zero_mean_first: bool = False,
    normalize: str = "imagenet", device: str = "cpu", allow_unverified: bool = False,
    size: int = STIMULUS_SIZE, ppd: float = PIXELS_PER_DEGREE,
) -> dict:
    """PE of every channel of ``layers`` of a backbone, as a JSON-ready dict (what ``lpips pe-rank`` writes).

    Keys: ``net``, ``weights`` (file and sha256, or the seed), ``normalize``, ``decisions`` (every stimulus
    parameter), ``layers``: ``{layer: {node, channels, mu1, mu2, pe, freq_response, orient_response}}``.
    """
    from lpipscli.features.backbones import RANDOM_INIT, ZERO_MEAN_FIRST, Backbone

    if ppd / 2 <= PEAK_FREQUENCY:
        raise UsageError(f"--ppd {ppd} puts the CSF peak ({PEAK_FREQUENCY:.2f} c/deg) above the Nyquist limit "
                         f"({ppd / 2:g} c/deg): use more than {2 * PEAK_FREQUENCY:.1f} pixels per degree")
    frequencies = frequencies_for(ppd)
    backbone = Backbone(net, layers, weights=weights, seed=seed, zero_mean_first=zero_mean_first,
                        normalize=normalize, allow_unverified=allow_unverified).to(device)
    from lpipscli.features.backbones import resolve_layer

    nodes = [resolve_layer(backbone.arch, layer) for layer in layers]
    result = perceptual_efficacy(backbone, list(dict.fromkeys(nodes)), size=size, ppd=ppd, device=device,
                                 frequencies=frequencies)
    if backbone.record is not None:
        weights_info = {"kind": "imagenet", **backbone.record.as_dict()}
    else:
        weights_info = {"kind": "random", "seed": seed, "init": RANDOM_INIT,
                        "zero_mean_first": ZERO_MEAN_FIRST if zero_mean_first else False}
    decisions = {**DECISIONS, "stimulus_size": size, "pixels_per_degree": ppd, "frequencies_cpd": list(frequencies)}
    return {
        "net": backbone.arch,
        "weights": weights_info,
        "normalize": normalize,
        "decisions": decisions,
        "layers": {
            layer: {
                "node": node, "channels": int(result[node]["pe"].size),
                **{key: result[node][key].tolist() for key in ("mu1", "mu2", "pe", "freq_response",
                                                               "orient_response")},
            }
            for layer, node in zip(layers, nodes, strict=True)
        },
    }


def check_pe_weights(path, info: Mapping | None, *, sha256: str | None, seed: int | None) -> None:
    """Refuse a ``pe-rank`` file made with other weights than the network it is applied to.

    Args:
        path: the file (for the message).
        info: its ``weights`` entry (None when the file has none: nothing to check).
        sha256: the applied network's checkpoint digest (trained weights), else None.
        seed: the applied network's seed (random weights), else None.
    """
    if not info:
        return
    if sha256 is not None and info.get("sha256") not in (None, sha256):
        raise UsageError(f"{path} ranks the channels of weights with sha256 {str(info.get('sha256'))[:16]}..., "
                         f"not of the checkpoint in use ({sha256[:16]}...): run `lpips pe-rank` again")
    if seed is not None and (info.get("kind") != "random" or info.get("seed") != seed):
        raise UsageError(f"{path} was not made with random weights of seed {seed}: run `lpips pe-rank` again")


def load_pe_file(path, net: str, *, with_weights: bool = False):
    """``{layer or node: PE list}`` from a ``pe-rank`` JSON file, checked to describe ``net``; with
    ``with_weights`` also the file's ``weights`` entry (or None)."""
    import json
    from pathlib import Path

    from lpipscli.features.backbones import canonical_arch

    try:
        data = json.loads(Path(path).read_text())
        layers = data["layers"]
        file_net = data["net"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a `lpips pe-rank` file ({type(exc).__name__}: {exc})") from None
    if file_net != canonical_arch(net):
        raise UsageError(f"{path} ranks {file_net} channels, not {canonical_arch(net)}")
    out = {}
    for layer, entry in layers.items():
        out[layer] = entry["pe"]
        out[entry["node"]] = entry["pe"]
    return (out, data.get("weights")) if with_weights else out


def plot(result: dict, folder) -> list:
    """One PNG per layer: frequency and orientation tuning of the 5 highest- and 5 lowest-PE channels (the
    paper's Figs. 2-3) and the PE distribution. Needs matplotlib (``pip install matplotlib``)."""
    from pathlib import Path

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install 'lpipscli[report]'") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    freqs = np.asarray(result["decisions"]["frequencies_cpd"])
    thetas = np.asarray(result["decisions"]["orientations_deg"])
    written = []
    for layer, entry in result["layers"].items():
        pe = np.asarray(entry["pe"])
        order = np.argsort(pe)
        picks = [("high PE", order[::-1][:5], "tab:red"), ("low PE", order[:5], "tab:blue")]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        fr, orr = np.asarray(entry["freq_response"]), np.asarray(entry["orient_response"])
        for label, idx, colour in picks:
            for n, m in enumerate(idx):
                axes[0].plot(freqs, fr[m], color=colour, alpha=0.7, label=label if n == 0 else None)
                axes[1].plot(thetas, orr[m], color=colour, alpha=0.7, label=label if n == 0 else None)
        ax_csf = axes[0].twinx()
        ax_csf.plot(freqs, csf(freqs), color="black", linestyle="--", label="CSF")
        ax_csf.set_ylabel("CSF")
        axes[0].set(xlabel="spatial frequency (c/deg)", ylabel="mean activation", title=f"{layer}: frequency")
        axes[1].set(xlabel="orientation (deg)", ylabel="mean activation",
                    title=f"orientation at {result['decisions']['oriented_frequency_cpd']:.2f} c/deg")
        axes[2].hist(pe, bins=min(50, max(5, pe.size // 4)))
        axes[2].set(xlabel="PE", ylabel="channels", title=f"PE distribution ({pe.size} channels)")
        axes[0].legend(loc="upper left")
        axes[1].legend()
        fig.tight_layout()
        path = folder / f"pe_{layer.replace('/', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
