"""Heatmap sink: colormap, scales, formats, paths, worst-K, the writer thread and its errors.

Expected colours come from matplotlib's published magma table (``matplotlib/_cm_listed.py``), not from
the module under test; lightness is computed here from the sRGB/CIELAB definitions.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lpipscli.errors import OutputError, UsageError
from lpipscli.sinks import heatmap as hm
from lpipscli.sinks.heatmap import (
    LEGEND_HEIGHT,
    MAGMA_LUT,
    NODATA_RGB,
    NODATA_U16,
    PANEL_GAP,
    HeatmapWriter,
    MapSpec,
    check_maps_root,
    dist_root_names,
    has_map,
    heatmap_path,
    map_scale,
    register_map,
)

TOLERANCES = {
    # LUT entries vs round(255 * published float): exact
    "lut_levels": 0,
    # matplotlib renders bytes by truncation (int(255 * v)); ours rounds: at most one level apart
    "lut_vs_matplotlib_bytes": 1,
    # CIE L* may dip by rounding to 8 bits only; magma's L* rises from ~0 to ~99
    "lightness_dip": 0.5,
    # png16: one quantisation step of the scale
    "png16_steps": 1.0,
    # map mean vs score: float32 map storage against float64 references
    "ssim_mean": 1e-6,
    "psnr_db": 1e-4,
    # the writer returns from a submit with room in the queue at once (generous for a loaded CI box)
    "submit_seconds": 0.5,
}

# matplotlib 3.11 ``_cm_listed.py::_magma_data`` entries 0, 128 and 255 (CC0), as floats.
MAGMA_PUBLISHED = {
    0: (0.001462, 0.000466, 0.013866),
    128: (0.716387, 0.214982, 0.475290),
    255: (0.987053, 0.991438, 0.749504),
}


def _rgb(index: int) -> np.ndarray:
    return np.rint(np.array(MAGMA_PUBLISHED[index]) * 255).astype(np.uint8)


def _bin_centre(lo: float, hi: float, index: int) -> float:
    """A map value that falls in the middle of colormap bin ``index`` (matplotlib: floor(256 t))."""
    return lo + (hi - lo) * (index + 0.5) / 256


def _lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* of sRGB colours (IEC 61966-2-1 linearisation, Rec. 709 luminance, CIE 1976 L*)."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    f = np.where(y > (6 / 29) ** 3, np.cbrt(y), y / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f - 16


def _write_one(tmp_path, metric, values, score=0.5, **kwargs) -> Path:
    submit_kwargs = {k: kwargs.pop(k) for k in ("ref", "dist", "image_hw") if k in kwargs}
    with HeatmapWriter(tmp_path / "maps", **kwargs) as writer:
        path = writer.submit(metric, "out", "img", np.asarray(values, dtype=np.float32), score, **submit_kwargs)
    return Path(path)


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode in ("RGB", "P")  # a palette PNG when the map has no NaN and no panel/legend
        return np.asarray(image.convert("RGB"))


# ---------------------------------------------------------------------------------------------------
# colormap
# ---------------------------------------------------------------------------------------------------


def test_lut_has_256_entries_and_matches_published_magma():
    assert MAGMA_LUT.shape == (256, 3) and MAGMA_LUT.dtype == np.uint8
    for index in MAGMA_PUBLISHED:
        assert np.abs(MAGMA_LUT[index].astype(int) - _rgb(index)).max() <= TOLERANCES["lut_levels"]


def test_lut_lightness_rises_monotonically():
    lightness = _lightness(MAGMA_LUT)
    assert np.diff(lightness).min() >= -TOLERANCES["lightness_dip"]
    assert lightness[0] < 5 and lightness[-1] > 95


def test_lut_matches_matplotlib_when_installed():
    mpl = pytest.importorskip("matplotlib")
    expected = mpl.colormaps["magma"](np.linspace(0, 1, 256), bytes=True)[:, :3]
    assert np.abs(MAGMA_LUT.astype(int) - expected.astype(int)).max() <= TOLERANCES["lut_vs_matplotlib_bytes"]


# ---------------------------------------------------------------------------------------------------
# scales
# ---------------------------------------------------------------------------------------------------


def test_map_scale_registry():
    assert map_scale("lpips_alex")[:2] == (0.0, 1.0)
    assert map_scale("ssim")[:2] == (0.0, 1.0)
    assert map_scale("psnr")[:2] == (0.0, 0.01)
    assert isinstance(map_scale("mse")[2], str) and "squared error" in map_scale("mse")[2]
    assert not has_map("mmd")
    with pytest.raises(UsageError, match="mmd"):
        map_scale("mmd")
    spec = register_map(MapSpec(key="_test_absdiff", lo=0.0, hi=0.5, higher_is_worse=True, units="abs",
                                description="test", relation="mean = score"))
    try:
        assert has_map("_test_absdiff") and map_scale("_test_absdiff") == (0.0, 0.5, "test")
        with pytest.raises(ValueError, match="twice"):
            register_map(spec)
    finally:
        hm.MAP_SPECS.pop("_test_absdiff")


@pytest.mark.parametrize(("metric", "lo", "hi", "inverted"), [
    ("lpips_vgg", 0.0, 1.0, False), ("ssim", 0.0, 1.0, True), ("psnr", 0.0, 0.01, False),
])
def test_fixed_scale_colours_and_clipping(tmp_path, metric, lo, hi, inverted):
    # bright = worse: for SSIM the best value is hi (SSIM 1), so the scale is walked backwards
    def value(index):
        v = _bin_centre(lo, hi, index)
        return lo + hi - v if inverted else v

    beyond_worst = lo - 0.5 * (hi - lo) if inverted else hi + 2.0 * (hi - lo)
    beyond_best = hi + 0.5 * (hi - lo) if inverted else lo - 0.5 * (hi - lo)
    values = np.array([[value(0), value(128), value(255), beyond_worst, beyond_best]])
    rgb = _read_rgb(_write_one(tmp_path, metric, values))
    expected = [_rgb(0), _rgb(128), _rgb(255), _rgb(255), _rgb(0)]
    np.testing.assert_array_equal(rgb[0], np.stack(expected))


def test_auto_scale_stretches_each_map(tmp_path):
    lo, hi = 0.2, 0.4  # far inside the fixed [0, 1]: the fixed scale would draw it dark purple
    values = np.array([[lo, _bin_centre(lo, hi, 128), hi]])
    path = _write_one(tmp_path, "lpips_alex", values, scale="auto")
    np.testing.assert_array_equal(_read_rgb(path)[0], np.stack([_rgb(0), _rgb(128), _rgb(255)]))
    with Image.open(path) as image:
        assert float(image.text["lo"]) == pytest.approx(lo) and float(image.text["hi"]) == pytest.approx(hi)
        assert image.text["scale"] == "auto"
        # issue 11 point 7: the text describes this map's own range, not the fixed scale
        text = image.text["description"]
        assert "clipped" not in text.replace("nothing is clipped", "") and "[0, 1]" not in text.split(",")[-1]
        assert "auto" in text and f"[{lo:g}, {hi:g}]" in text and "not comparable" in text
    # SSIM keeps its direction: the highest SSIM of the map is black
    path = _write_one(tmp_path, "ssim", np.array([[0.9, 0.5]]), scale="auto")
    np.testing.assert_array_equal(_read_rgb(path)[0], np.stack([_rgb(0), _rgb(255)]))


def test_constant_map_auto_scale_is_black(tmp_path):
    path = _write_one(tmp_path, "mse", np.full((3, 4), 0.25), scale="auto")
    assert (_read_rgb(path) == _rgb(0)).all()


# ---------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------


def test_png_metadata_round_trips(tmp_path):
    score = 0.123456789012345
    with HeatmapWriter(tmp_path / "maps") as writer:
        path = writer.submit("lpips_alex", "données/out put", "ordner/bild ä", np.zeros((4, 5), np.float32), score)
    with Image.open(path) as image:
        text = dict(image.text)
        assert image.size == (5, 4)
    assert text["metric"] == "lpips_alex"
    assert float(text["score"]) == score  # repr round-trips exactly
    assert (float(text["lo"]), float(text["hi"])) == (0.0, 1.0)
    assert text["scale"] == "fixed"
    assert text["key"] == "ordner/bild ä" and text["dist_root"] == "données/out put"
    assert "bright = worse" in text["direction"] and text["units"]
    assert "magma" in text["colormap"]


def test_png_infinite_score_is_written(tmp_path):
    path = _write_one(tmp_path, "psnr", np.zeros((2, 2)), score=math.inf)
    with Image.open(path) as image:
        assert float(image.text["score"]) == math.inf


@pytest.mark.parametrize(("metric", "values"), [
    ("lpips_squeeze", np.random.default_rng(0).uniform(0.0, 1.0, (7, 9))),
    ("ssim", np.random.default_rng(1).uniform(0.0, 1.0, (7, 9))),
    ("psnr", np.random.default_rng(2).uniform(0.0, 0.01, (7, 9))),
])
def test_png16_round_trips_within_one_step(tmp_path, metric, values):
    values = values.astype(np.float32)
    values[0, 0] = np.nan
    path = _write_one(tmp_path, metric, values, fmt="png16")
    q = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # independent reader
    assert q.dtype == np.uint16 and q.shape == values.shape
    with Image.open(path) as image:
        meta = image.text
    v0, v1 = float(meta["value_at_0"]), float(meta["value_at_65534"])
    assert int(meta["nodata"]) == NODATA_U16 and q[0, 0] == NODATA_U16
    decoded = v0 + q.astype(np.float64) / 65534 * (v1 - v0)
    step = abs(v1 - v0) / 65534
    valid = ~np.isnan(values)
    assert np.abs(decoded[valid] - values[valid]).max() <= TOLERANCES["png16_steps"] * step
    lo, hi, _ = map_scale(metric)
    assert {v0, v1} == {lo, hi}
    # bright = worse in 16 bits too: the worst value of the map has the highest code
    worse = np.nanargmax(values) if metric != "ssim" else np.nanargmin(values)
    assert q.flat[worse] == q[valid].max()


def test_npy_is_exact(tmp_path):
    values = np.random.default_rng(3).normal(size=(6, 8)).astype(np.float32)
    path = _write_one(tmp_path, "lpips_alex", values, fmt="npy")
    assert path.suffix == ".npy"
    loaded = np.load(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values)


def test_torch_map_with_leading_axes_is_accepted(tmp_path):
    values = torch.linspace(0, 1, 12, dtype=torch.float64).reshape(1, 1, 3, 4)
    loaded = np.load(_write_one(tmp_path, "lpips_alex", values, fmt="npy"))
    np.testing.assert_array_equal(loaded, values[0, 0].numpy().astype(np.float32))


def test_panel_layout_and_image_conversion(tmp_path):
    rng = np.random.default_rng(4)
    height, width = 6, 5
    ref = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    dist16 = rng.integers(0, 65536, (height, width), dtype=np.uint16)  # 16-bit gray
    values = rng.uniform(0, 1, (height, width)).astype(np.float32)
    path = _write_one(tmp_path, "lpips_alex", values, ref=ref, dist=dist16, panel=True)
    panel = _read_rgb(path)
    assert panel.shape == (height, 3 * width + 2 * PANEL_GAP, 3)
    np.testing.assert_array_equal(panel[:, :width], ref)
    dist8 = np.rint(dist16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    x = width + PANEL_GAP
    np.testing.assert_array_equal(panel[:, x: x + width], np.repeat(dist8[:, :, None], 3, axis=2))
    assert (panel[:, width: width + PANEL_GAP] == 255).all()
    plain = _read_rgb(_write_one(tmp_path / "plain", "lpips_alex", values))
    np.testing.assert_array_equal(panel[:, 2 * x:], plain)
    # float images in [0, 1]
    floats = np.clip(rng.normal(0.5, 0.5, (height, width, 3)), -0.2, 1.2)
    path = _write_one(tmp_path / "float", "lpips_alex", values, ref=floats, dist=floats, panel=True)
    np.testing.assert_array_equal(_read_rgb(path)[:, :width],
                                  np.rint(np.clip(floats, 0, 1) * 255).astype(np.uint8))


def test_panel_needs_png_and_images(tmp_path):
    with pytest.raises(UsageError, match="png"):
        HeatmapWriter(tmp_path, fmt="npy", panel=True)
    with HeatmapWriter(tmp_path / "m", panel=True) as writer, pytest.raises(ValueError, match="ref and dist"):
        writer.submit("ssim", "out", "a", np.zeros((4, 4)), 1.0)


def test_legend_strip(tmp_path):
    values = np.zeros((40, 120), np.float32)
    rgb = _read_rgb(_write_one(tmp_path, "psnr", values, legend=True))
    assert rgb.shape == (40 + LEGEND_HEIGHT, 120, 3)
    bar = rgb[40 + 4]  # a row through the colour bar
    np.testing.assert_array_equal(bar[0], _rgb(0))
    np.testing.assert_array_equal(bar[-1], _rgb(255))


# ---------------------------------------------------------------------------------------------------
# SSIM border
# ---------------------------------------------------------------------------------------------------


def test_ssim_valid_map_is_centred_with_a_gray_nan_border(tmp_path):
    height, width, border = 24, 30, 5
    values = np.full((height - 2 * border, width - 2 * border), 0.8, np.float32)
    rgb = _read_rgb(_write_one(tmp_path, "ssim", values, image_hw=(height, width)))
    assert rgb.shape == (height, width, 3)
    gray = (rgb == np.array(NODATA_RGB)).all(axis=2)
    expected = np.ones((height, width), bool)
    expected[border:-border, border:-border] = False
    np.testing.assert_array_equal(gray, expected)
    raw = np.load(_write_one(tmp_path / "npy", "ssim", values, image_hw=(height, width), fmt="npy"))
    np.testing.assert_array_equal(np.isnan(raw), expected)
    np.testing.assert_array_equal(raw[border:-border, border:-border], values)
    with pytest.raises(ValueError, match="centred"):
        _write_one(tmp_path / "odd", "ssim", values, image_hw=(height + 1, width))


def test_map_mean_relates_to_the_score():
    """The engine-facing contract: what the npy holds reproduces the score (independent references)."""
    skm = pytest.importorskip("skimage.metrics")
    from skimage import data

    from lpipscli.metrics.psnr import psnr
    from lpipscli.metrics.ssim import ssim

    ref = data.astronaut()[100:164, 200:264]
    dist = np.clip(ref.astype(int) + np.random.default_rng(5).integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    _, ssim_map = ssim(to_t(ref), to_t(dist), return_map=True)
    padded = hm.pad_to_image(hm.as_map(ssim_map), ref.shape[:2])
    expected = skm.structural_similarity(ref / 255, dist / 255, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1.0, channel_axis=2)
    assert abs(float(np.nanmean(padded.astype(np.float64))) - expected) <= TOLERANCES["ssim_mean"]
    _, se_map = psnr(to_t(ref), to_t(dist), return_map=True)
    db = -10 * math.log10(float(hm.as_map(se_map).astype(np.float64).mean()))
    assert abs(db - skm.peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOLERANCES["psnr_db"]


# ---------------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------------


def test_paths_mirror_the_input_tree(tmp_path):
    maps = tmp_path / "maps"
    expected = maps / "out" / "sub dir" / "ä b.lpips_alex.png"
    assert heatmap_path(maps, "data/out/", "sub dir/ä b", "lpips_alex") == expected
    assert heatmap_path(maps, "out", "a.b", "ssim", "npy") == maps / "out" / "a.b.ssim.npy"
    assert heatmap_path(maps, "out", "clip/frame_000123", "psnr", "png16").name == "frame_000123.psnr.png"
    assert heatmap_path(maps, ".", "a", "mse").parent.name == Path.cwd().name
    assert heatmap_path(maps, 'we:ird*"name', "a", "mse").parent.name == "we_ird__name"
    for bad in ("../escape", "/abs", "a/./b", "a//b", "", "a\0b"):
        with pytest.raises(ValueError):
            heatmap_path(maps, "out", bad, "mse")
    with pytest.raises(UsageError):
        heatmap_path(maps, "out", "a", "mse", "jpg")


def test_equal_root_names_are_disambiguated_by_their_folders(tmp_path, monkeypatch):
    """Issue 11 point 7: inputs with the same name are told apart by their parent folders, not -2."""
    monkeypatch.chdir(tmp_path)
    roots = ["x/out", "y/out/", "z/OUT", "out-2", "w/heatmaps.json"]
    names = dist_root_names(roots)
    assert names == {"x/out": "x_out", "y/out/": "y_out", "z/OUT": "z_OUT", "out-2": "out-2",
                     "w/heatmaps.json": "w_heatmaps.json"}
    assert dist_root_names(["v1/jpeg_q30", "v2/jpeg_q30", "v1/jpeg_q70"]) == {
        "v1/jpeg_q30": "v1_jpeg_q30", "v2/jpeg_q30": "v2_jpeg_q30", "v1/jpeg_q70": "jpeg_q70"}
    # same last two folders: a third one is needed
    assert dist_root_names(["a/v1/q", "b/v1/q"]) == {"a/v1/q": "a_v1_q", "b/v1/q": "b_v1_q"}
    assert heatmap_path(tmp_path, "y/out/", "a", "ssim", dist_roots=roots) == tmp_path / "y_out" / "a.ssim.png"
    with HeatmapWriter(tmp_path / "maps", fmt="npy", dist_roots=roots[:2]) as writer:
        second = writer.submit("mse", "y/out/", "a", np.zeros((2, 2)), 0.0)  # arrives first, keeps its name
        first = writer.submit("mse", "x/out", "a", np.ones((2, 2)), 1.0)
        late = writer.submit("mse", "q/out", "a", np.ones((2, 2)), 1.0)  # not announced: shortest free name
    assert Path(first).parent.name == "x_out" and Path(second).parent.name == "y_out"
    assert Path(late).parent.name == "out"
    assert np.load(first)[0, 0] == 1.0 and np.load(second)[0, 0] == 0.0
    manifest = json.loads((tmp_path / "maps" / "heatmaps.json").read_text(encoding="utf-8"))
    assert manifest["dist_roots"] == {"x/out": "x_out", "y/out/": "y_out", "q/out": "out"}


# ---------------------------------------------------------------------------------------------------
# worst-K
# ---------------------------------------------------------------------------------------------------


def _expected_worst(scores, k, higher_is_better):
    finite = [i for i, s in enumerate(scores) if not math.isnan(s)]
    return set(sorted(finite, key=lambda i: (scores[i] if higher_is_better else -scores[i], i))[:k])


def test_worst_k_keeps_the_k_worst_per_metric(tmp_path):
    rng = np.random.default_rng(6)
    k, n = 3, 12
    lpips_scores = list(np.round(rng.uniform(0, 1, n), 1))  # rounding to 0.1 makes ties likely
    lpips_scores[4] = float("nan")
    ssim_scores = list(np.round(rng.uniform(0, 1, n), 1))
    hib = {"lpips_alex": False, "ssim": True}
    maps = tmp_path / "maps"
    with HeatmapWriter(maps, worst=k, higher_is_better=hib, fmt="npy") as writer:
        for i in range(n):
            assert writer.submit("lpips_alex", "out", f"p{i:02d}", np.full((2, 2), i, np.float32),
                                 lpips_scores[i]) == ""
            assert writer.submit("ssim", "out", f"p{i:02d}", np.full((2, 2), i, np.float32), ssim_scores[i]) == ""
        assert not maps.exists()  # nothing is written before close
    written = writer.close()  # idempotent: the same result again
    for metric, scores in (("lpips_alex", lpips_scores), ("ssim", ssim_scores)):
        expected = _expected_worst(scores, k, hib[metric])
        got = {int(key[1:]) for (m, _, key) in written if m == metric}
        assert got == expected, (metric, scores)
        for i in expected:
            path = written[(metric, "out", f"p{i:02d}")]
            assert np.load(path)[0, 0] == i  # the map that belongs to that pair
    on_disk = sorted(p.name for p in maps.rglob("*.npy"))
    assert len(on_disk) == 2 * k == len(written)
    manifest = json.loads((maps / "heatmaps.json").read_text(encoding="utf-8"))
    assert {(m["metric"], m["key"]) for m in manifest["maps"]} == {(m, key) for (m, _, key) in written}


@pytest.mark.parametrize(("metric", "higher_is_better", "scores", "kept"), [
    ("lpips_alex", False, [0.5, 0.9, 0.5, 0.5, 0.1, 0.5], {1, 0}),  # highest; the first 0.5 wins the tie
    ("ssim", True, [0.5, 0.1, 0.5, 0.9, 0.5], {1, 0}),  # lowest; the first 0.5 wins the tie
    ("psnr", True, [math.inf, 30.0, 20.0, 20.0], {2, 3}),  # inf (identical) is the best PSNR
])
def test_worst_k_ties_keep_the_earlier_arrival(tmp_path, metric, higher_is_better, scores, kept):
    with HeatmapWriter(tmp_path, worst=2, higher_is_better={metric: higher_is_better}, fmt="npy") as writer:
        for i, score in enumerate(scores):
            writer.submit(metric, "out", f"p{i}", np.zeros((2, 2)), score)
    assert {int(key[1:]) for (_, _, key) in writer.close()} == kept


def test_worst_k_needs_directions(tmp_path):
    with HeatmapWriter(tmp_path, worst=2) as writer, pytest.raises(ValueError, match="higher_is_better"):
        writer.submit("ssim", "out", "a", np.zeros((2, 2)), 0.5)
    with pytest.raises(UsageError):
        HeatmapWriter(tmp_path, worst=0)


# ---------------------------------------------------------------------------------------------------
# the writer thread
# ---------------------------------------------------------------------------------------------------


def test_submit_does_not_block_with_room_and_blocks_when_full(tmp_path, monkeypatch):
    queue_size = 3
    started, release = threading.Event(), threading.Event()
    real_write = hm._write_item
    written = []

    def slow_write(item, *args):
        started.set()
        assert release.wait(10)
        real_write(item, *args)
        written.append(item.key)

    monkeypatch.setattr(hm, "_write_item", slow_write)
    writer = HeatmapWriter(tmp_path / "maps", fmt="npy", queue_size=queue_size, threads=1)
    values = np.zeros((8, 8), np.float32)
    writer.submit("mse", "out", "k0", values, 0.0)
    assert started.wait(5)  # the thread holds k0 and is stuck writing it
    t0 = time.perf_counter()
    for i in range(1, queue_size + 1):  # exactly fills the queue
        writer.submit("mse", "out", f"k{i}", values, 0.0)
    assert time.perf_counter() - t0 < TOLERANCES["submit_seconds"]
    assert writer._queue.qsize() == queue_size
    extra = threading.Thread(target=writer.submit, args=("mse", "out", "kx", values, 0.0))
    extra.start()
    extra.join(0.3)
    assert extra.is_alive()  # blocked: memory stays bounded
    assert writer._queue.qsize() == queue_size
    release.set()
    extra.join(5)
    assert not extra.is_alive()
    writer.close()
    assert written == [f"k{i}" for i in range(queue_size + 1)] + ["kx"]
    assert len(list((tmp_path / "maps" / "out").glob("*.npy"))) == queue_size + 2


def test_write_error_surfaces_from_close_as_output_error(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("a file, not a folder")
    with pytest.raises(OutputError):
        check_maps_root(maps)
    writer = HeatmapWriter(maps)
    writer.submit("ssim", "out", "a", np.ones((4, 4)), 1.0)
    with pytest.raises(OutputError) as info:
        writer.close()
    message = str(info.value)
    assert "\n" not in message and str(maps) in message
    assert writer.close() == {}  # idempotent: no second raise


def test_write_error_fails_fast_in_submit(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("a file")
    writer = HeatmapWriter(maps, fmt="npy")
    deadline = time.monotonic() + 10
    with pytest.raises(OutputError, match="cannot write"):  # noqa: PT012
        while time.monotonic() < deadline:
            writer.submit("mse", "out", "a", np.ones((2, 2)), 1.0)
            time.sleep(0.01)
    writer.close()  # already reported: does not raise again


def test_exception_in_with_block_is_not_masked(tmp_path):
    maps = tmp_path / "maps"
    with pytest.raises(KeyError), HeatmapWriter(maps, worst=1, higher_is_better={"mse": False}) as writer:
        writer.submit("mse", "out", "a", np.ones((2, 2)), 1.0)
        raise KeyError("engine failure")
    assert not any(maps.rglob("*.png"))  # aborted: worst-K maps are not written


def test_check_maps_root_accepts_new_and_existing_folders(tmp_path):
    check_maps_root(tmp_path / "new" / "maps")
    check_maps_root(tmp_path)
    assert os.path.isdir(tmp_path)


def test_several_writer_threads_write_every_map(tmp_path):
    n = 40
    with HeatmapWriter(tmp_path / "maps", fmt="npy", queue_size=2, threads=3) as writer:
        paths = [writer.submit("mse", "out", f"d{i % 4}/k{i}", np.full((3, 3), i, np.float32), float(i))
                 for i in range(n)]
    assert len(set(paths)) == n
    for i, path in enumerate(paths):
        assert np.load(path)[0, 0] == i
    manifest = json.loads((tmp_path / "maps" / "heatmaps.json").read_text(encoding="utf-8"))
    assert manifest["written"] == {"mse": n}
