"""Perceptual Efficacy (Tariq et al. 2020): only invariants can be checked (there is no official code).

Stimuli are checked with NumPy's FFT; PE with synthetic one-layer "networks" built from Gabor and isotropic
filters whose tuning is known by construction; the CLI end to end on a tiny random backbone.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.errors import UsageError
from lpipscli.features import pe

SMALL = {"size": 64, "ppd": 32.0, "frequencies": tuple(0.5 * k for k in range(1, 33))}  # up to Nyquist 16 c/deg


def test_csf_values_and_peak():
    # METRICS.md section 7: f=1 -> 0.3160, 2 -> 0.5280, 4 -> 0.8105, 8 -> 0.9808, 16 -> 0.6908, 32 -> 0.1500
    np.testing.assert_allclose(pe.csf([1, 2, 4, 8, 16, 32]), [0.3160, 0.5280, 0.8105, 0.9808, 0.6908, 0.1500],
                               atol=6e-5)
    fine = np.linspace(1, 20, 190001)
    assert abs(pe.PEAK_FREQUENCY - fine[np.argmax(pe.csf(fine))]) < 1e-3


@pytest.mark.parametrize(("cycles", "theta"), [(8, 0.0), (5, 90.0), (6, 45.0)])
def test_oriented_grating_frequency_and_orientation_by_fft(cycles, theta):
    size, ppd = 64, 32.0
    # a grating with an integer number of cycles along each axis is periodic on the grid
    kx, ky = (cycles, 0) if theta == 0 else ((0, cycles) if theta == 90 else (cycles, cycles))
    freq_cpp = math.hypot(kx, ky) / size  # cycles per pixel
    img = pe.oriented_grating(freq_cpp * ppd, theta, size=size, ppd=ppd)
    spectrum = np.abs(np.fft.fft2(img - img.mean()))
    peak_y, peak_x = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    fy = peak_y if peak_y <= size // 2 else peak_y - size
    fx = peak_x if peak_x <= size // 2 else peak_x - size
    assert {(fx, fy), (-fx, -fy)} == {(kx, ky), (-kx, -ky)}
    assert img.min() >= 0 and img.max() <= 1 and img.mean() == pytest.approx(0.5, abs=1e-9)


def test_radial_grating_frequency_by_fft():
    size, ppd, cycles = 128, 32.0, 10
    img = pe.radial_grating(cycles / 64 * ppd, size=size, ppd=ppd)  # 10 cycles per 64 px of radius
    # profile along a ray from the centre: cos(2 pi f r), so its spectrum peaks at f (cycles per pixel)
    assert np.allclose(img, img.T) and np.allclose(img, img[::-1, ::-1])  # radially symmetric
    centre = (size - 1) / 2
    r = np.arange(256) / 4.0
    profile = np.interp(r, np.arange(size // 2) + 0.5, img[size // 2 - 1, size // 2:])
    spectrum = np.abs(np.fft.rfft((profile - profile.mean()) * np.hanning(r.size)))
    peak = np.argmax(spectrum) / (r.size / 4.0)  # cycles per pixel
    assert peak == pytest.approx(cycles / 64, abs=1 / 64)
    assert centre == 63.5


def _gabor(freq_cpd: float, theta_deg: float, ppd: float, size: int = 31, sigma: float = 6.0) -> torch.Tensor:
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    t = math.radians(theta_deg)
    carrier = np.cos(2 * math.pi * freq_cpd / ppd * (x * math.cos(t) + y * math.sin(t)))
    kernel = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * carrier
    return torch.as_tensor(kernel - kernel.mean())


def _isotropic(freq_cpd: float, ppd: float, size: int = 31, sigma: float = 6.0) -> torch.Tensor:
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    kernel = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * np.cos(2 * math.pi * freq_cpd / ppd * np.hypot(x, y))
    return torch.as_tensor(kernel - kernel.mean())


def _filter_bank(kernels: list[torch.Tensor], scale: float = 1.0):
    """A one-layer 'network': each channel = ReLU of a gray filter (the same on R, G, B divided by 3)."""
    weight = torch.stack(kernels).unsqueeze(1).float().expand(-1, 3, -1, -1) / 3

    def feature_fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"layer": scale * F.relu(F.conv2d(x - 0.5, weight))}

    return feature_fn


def test_oriented_channel_ranks_above_isotropic_and_csf_peak_above_far():
    ppd = SMALL["ppd"]
    peak = pe.PEAK_FREQUENCY
    kernels = [_gabor(peak, 0.0, ppd), _isotropic(peak, ppd), _gabor(2.0, 0.0, ppd), _gabor(peak, 60.0, ppd)]
    result = pe.perceptual_efficacy(_filter_bank(kernels), ["layer"], **SMALL)["layer"]
    score = result["pe"]
    assert score[0] > score[1]  # orientation-selective beats isotropic at the same frequency
    assert result["mu2"][1] < 0.05 * result["mu2"][0]  # the isotropic channel barely depends on orientation
    assert score[0] > score[2]  # tuned near the CSF peak beats tuned to 2 c/deg
    assert score[3] > score[1] and score[3] > score[2]
    assert np.all(score >= 0) and score.sum() <= 1 + 1e-12


def test_pe_invariants_scaling_determinism_and_sum():
    gen = torch.Generator().manual_seed(0)
    kernels = [torch.randn(7, 7, generator=gen, dtype=torch.float64) for _ in range(12)]
    base = pe.perceptual_efficacy(_filter_bank(kernels), ["layer"], **SMALL)["layer"]
    again = pe.perceptual_efficacy(_filter_bank(kernels), ["layer"], **SMALL)["layer"]
    scaled = pe.perceptual_efficacy(_filter_bank(kernels, scale=37.5), ["layer"], **SMALL)["layer"]
    assert np.array_equal(base["pe"], again["pe"])  # deterministic
    np.testing.assert_allclose(scaled["pe"], base["pe"], rtol=1e-5)  # invariant to a positive rescaling
    np.testing.assert_allclose(scaled["mu1"], 37.5 * base["mu1"], rtol=1e-5)
    np.testing.assert_allclose(scaled["mu2"], 37.5 ** 2 * base["mu2"], rtol=1e-5)
    assert np.all(base["pe"] >= 0) and base["pe"].sum() <= 1 + 1e-12 and base["pe"].sum() > 0
    # Eq. 5 written out
    mu1, mu2 = base["mu1"], base["mu2"]
    np.testing.assert_allclose(base["pe"], mu1 * mu2 / (mu1.sum() * mu2.sum()), rtol=1e-12)


def test_mu_formulas_on_given_curves():
    freqs = (1.0, 2.0, 4.0)
    freq_resp = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    orient_resp = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    mu1, mu2, score = pe.pe_from_curves(freq_resp, orient_resp, freqs)
    c = pe.csf
    # |1-0|/1 * CSF(1.5) + |3-1|/2 * CSF(3)
    assert mu1[0] == pytest.approx(float(c(1.5) + c(3.0)))
    assert mu1[1] == 0.0
    assert mu2.tolist() == [(1 - 3) ** 2 + 0 + (2 - 3) ** 2, 0.0]
    assert score.tolist() == [1.0, 0.0]  # Eq. 5: channel 1 scores 0, so channel 0 takes the whole layer
    _, _, zero = pe.pe_from_curves(np.ones((3, 3)), np.ones((3, 3)), freqs)
    assert zero.tolist() == [0.0, 0.0, 0.0]


def test_subset_sizes_and_ties():
    values = np.random.default_rng(0).permutation(100) / 100.0
    assert pe.select_channels(values, "H", 10).size == 10
    assert pe.select_channels(values, "L", 10).size == 10
    assert set(pe.select_channels(values, "H", 10)) == set(np.argsort(values)[-10:])
    assert set(pe.select_channels(values, "L", 10)) == set(np.argsort(values)[:10])
    v64 = np.arange(64.0)
    # prc_90 of 0..63 (linear) = 56.7 -> channels 57..63
    assert pe.select_channels(v64, "H", 10).tolist() == list(range(57, 64))
    assert pe.select_channels(v64, "L", 10).tolist() == list(range(0, 7))  # prc_10 = 6.3
    ties = np.array([0.1, 0.2, 0.2, 0.2, 0.2, 0.9])
    assert pe.select_channels(ties, "L", 50).tolist() == [0, 1, 2, 3, 4]  # prc_50 = 0.2: every tie included
    assert pe.select_channels(np.zeros(8), "H", 1).size == 8  # all equal: all kept
    assert pe.select_channels(np.arange(3.0), "H", 1).tolist() == [2]  # never empty
    assert pe.parse_selection("H-2.5") == ("H", 2.5)
    for bad in ("X-10", "H-0", "H-101", "H-ten"):
        with pytest.raises(UsageError):
            pe.parse_selection(bad)
    np.testing.assert_allclose(pe.pe_weights(np.array([1.0, 3.0])), [0.5, 1.5])
    np.testing.assert_allclose(pe.pe_weights(np.zeros(3)), [1.0, 1.0, 1.0])


def test_pe_rank_cli_writes_json(tmp_path):
    out = tmp_path / "pe.json"
    result = CliRunner().invoke(app, [
        "pe-rank", "--net", "squeezenet1_1", "--weights", "random", "--seed", "3", "--layers", "relu1,fire3",
        "--size", "32", "--ppd", "16", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["net"] == "squeezenet1_1" and data["weights"] == {
        "kind": "random", "seed": 3, "init": data["weights"]["init"], "zero_mean_first": False}
    assert data["decisions"]["stimulus_size"] == 32 and data["decisions"]["csf"].startswith("Mannos")
    assert data["layers"]["relu1"]["node"] == "features.1" and data["layers"]["relu1"]["channels"] == 64
    assert data["layers"]["fire3"]["channels"] == 128
    for entry in data["layers"].values():
        score = np.asarray(entry["pe"])
        assert score.size == entry["channels"] and np.all(score >= 0) and score.sum() <= 1 + 1e-9
        assert np.asarray(entry["freq_response"]).shape == (entry["channels"], 16)  # 0.5 .. 8 c/deg at 16 ppd
    assert data["decisions"]["frequencies_cpd"][-1] == 8.0
    again = tmp_path / "again.json"
    CliRunner().invoke(app, ["pe-rank", "--net", "squeeze", "--weights", "random", "--seed", "3", "--layers",
                             "relu1,fire3", "--size", "32", "--ppd", "16", "-o", str(again)])
    assert json.loads(again.read_text())["layers"] == data["layers"]  # deterministic for a seed


def test_pe_rank_plots(tmp_path):
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(app, [
        "pe-rank", "--net", "squeeze", "--weights", "random", "--layers", "relu1,fire3", "--size", "32",
        "-o", str(tmp_path / "pe.json"), "--plot", str(tmp_path / "plots"),
    ])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["pe_fire3.png", "pe_relu1.png"]
    assert (tmp_path / "plots" / "pe_relu1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pe_rank_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(app, ["pe-rank", "--net", "squeeze", "--weights", "random", "--layers", "relu1",
                                      "-o", str(tmp_path / "pe.json"), "--plot", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "needs matplotlib" in result.output and "lpipscli[report]" in result.output
    assert not (tmp_path / "pe.json").exists()


def test_pe_rank_refuses_a_ppd_that_aliases_the_csf_peak(tmp_path):
    result = CliRunner().invoke(app, ["pe-rank", "--net", "squeeze", "--weights", "random", "--layers", "relu1",
                                      "--ppd", "12", "-o", str(tmp_path / "pe.json")])
    assert result.exit_code == 2 and "Nyquist" in result.output
