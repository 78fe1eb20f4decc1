"""`lpips compare --heatmaps`, end to end through the command line (issue 7).

Inputs are small PNGs in a nested tree in a temporary folder, with two distorted roots. Oracles: the official
``lpips.LPIPS(spatial=True)`` on the same seeded backbone weights (fixture ``torch_home``), squared errors
and scores written here from the definitions, the rows of the same run, and the documented fixed scales of
``lpipscli.sinks.heatmap`` (black = 0 for LPIPS/squared error, inverted SSIM on [0, 1]).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _helpers import distort, smooth_image
from PIL import Image
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.sinks.heatmap import MAGMA_LUT

TOLERANCES = {
    # our spatial LPIPS map vs lpips.LPIPS(spatial=True), same weights and pixels (issue 7: <= 1e-5)
    "lpips_map_vs_official": 1e-5,
    # our row score vs the official scalar lpips.LPIPS() (float32, different reduction order)
    "lpips_score_vs_official": 1e-5,
    # mean of the LPIPS map vs the row's score, relative to the score. Upsampling each layer bilinearly
    # (align_corners=False) to a size that is not a multiple of the layer's is not exactly mean-preserving,
    # so the map mean differs from the scalar: measured up to 1.7e-4 x score here (2.5e-8 .. 6.2e-6
    # absolute for scores 0.004 .. 0.037), the same gap as the official code's own map; 5e-4 x score bounds it.
    "lpips_map_mean_rel": 5e-4,
    # ...and that gap equals the official code's own (map mean - scalar), up to float32 noise
    "lpips_gap_vs_official": 1e-7,
    # SSIM: nanmean of the float32 map vs the float64 score
    "ssim_map_mean": 1e-6,
    # squared-error map (float32) vs (ref - dist)^2 computed here in float64, mean over channels
    "se_map": 1e-7,
    # PSNR from the map mean (dB) and MSE (relative)
    "psnr_db": 1e-4,
    "mse_rel": 1e-6,
    # png16: one quantisation step of the scale
    "png16_steps": 1.0,
}

# documented fixed scales (lo, hi) in map units, from the module documentation / issue 7
FIXED_SCALES = {"lpips_alex": (0.0, 1.0), "ssim": (0.0, 1.0), "psnr": (0.0, 0.01), "mse": (0.0, 0.01)}
# (height, width) per relative key: nested folders, odd and non-square sizes
SIZES = {"a": (48, 64), "sub/b": (53, 70), "sub/deep/c": (40, 56)}
ROOTS = ("noisy", "noisier")
SIGMA = {("noisy", "a"): 6, ("noisy", "sub/b"): 14, ("noisy", "sub/deep/c"): 9,
         ("noisier", "a"): 22, ("noisier", "sub/b"): 11, ("noisier", "sub/deep/c"): 30}

lpips_official = pytest.importorskip("lpips")


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, ["compare", *(str(a) for a in args)], env={"COLUMNS": "200", "NO_COLOR": "1"})

    return invoke


@pytest.fixture
def tree(tmp_path) -> dict:
    """ref/<key>.png and <root>/<key>.png for both distorted roots; returns {(root, key): (ref, dist)}."""
    arrays = {}
    for n, (key, (height, width)) in enumerate(SIZES.items()):
        ref = smooth_image(height, width, 3, seed=10 + n)
        (tmp_path / "ref" / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ref).save(tmp_path / "ref" / f"{key}.png")
        for m, root in enumerate(ROOTS):
            dist = distort(ref, seed=100 * m + n, sigma=SIGMA[(root, key)])
            (tmp_path / root / key).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(dist).save(tmp_path / root / f"{key}.png")
            arrays[(root, key)] = (ref, dist)
    return arrays


def run(cli, tmp_path, metrics, *extra, out="res.csv") -> tuple[list[str], list[dict]]:
    args = [tmp_path / "ref", *(tmp_path / r for r in ROOTS), "-m", metrics, "-o", tmp_path / out, "-q",
            "--workers", "0", *extra]
    if "lpips" in metrics:
        args.append("--allow-unverified-weights")
    result = cli(*args)
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    with open(tmp_path / out, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def root_key(row: dict) -> tuple[str, str]:
    """(root folder name, relative key without extension) of a row."""
    root = Path(row["dist_root"])
    return root.name, Path(row["dist"]).relative_to(root).with_suffix("").as_posix()


def one_error_line(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def squared_error(ref: np.ndarray, dist: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """Per-pixel squared error of [0, 1] values, mean over channels, float64 (the documented psnr/mse map)."""
    diff = ref.astype(np.float64) / peak - dist.astype(np.float64) / peak
    diff = diff if diff.ndim == 3 else diff[:, :, None]
    return np.mean(diff ** 2, axis=2)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def png_text(path: Path) -> dict:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


def png_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------------------------------
# paths and columns


def test_maps_mirror_the_tree_per_root_and_metric_and_fill_the_map_columns(cli, tmp_path, tree, torch_home):
    metrics = ("lpips_alex", "ssim", "psnr", "mse")
    maps = tmp_path / "maps"
    header, rows = run(cli, tmp_path, ",".join(metrics), "--heatmaps", maps)
    assert header[header.index("height") + 1:] == [*metrics, *(f"{m}_map" for m in metrics), "status", "error"]
    assert len(rows) == len(tree)
    expected = set()
    for row in rows:
        root, key = root_key(row)
        height, width = SIZES[key]
        for m in metrics:
            path = maps / root / f"{key}.{m}.png"
            assert row[f"{m}_map"] == str(path)
            with Image.open(path) as image:
                assert image.size == (width, height)  # SSIM too: the valid region is padded back
            expected.add(f"{root}/{key}.{m}.png")
    assert files_under(maps) == expected | {"heatmaps.json"}
    manifest = json.loads((maps / "heatmaps.json").read_text())
    assert manifest["dist_roots"] == {str(tmp_path / r): r for r in ROOTS}
    assert manifest["written"] == {m: len(tree) for m in metrics}


def test_distorted_roots_with_the_same_name_are_told_apart_by_their_parents(cli, tmp_path):
    ref = smooth_image(40, 48, 3, seed=5)
    roots = [tmp_path / "enc_a" / "out", tmp_path / "enc_b" / "out"]
    for folder, image in zip([tmp_path / "ref", *roots], [ref, distort(ref, seed=6), distort(ref, seed=7)],
                             strict=True):
        (folder / "sub").mkdir(parents=True)
        Image.fromarray(image).save(folder / "sub" / "x.png")
    maps, out = tmp_path / "maps", tmp_path / "res.csv"
    result = cli(tmp_path / "ref", *roots, "-m", "psnr", "-o", out, "-q", "--workers", "0", "--heatmaps", maps)
    assert result.exit_code == 0, result.stderr
    with open(out, newline="") as handle:
        paths = {r["dist_root"]: r["psnr_map"] for r in csv.DictReader(handle)}
    assert paths == {str(roots[0]): str(maps / "enc_a_out" / "sub" / "x.psnr.png"),
                     str(roots[1]): str(maps / "enc_b_out" / "sub" / "x.psnr.png")}
    assert files_under(maps) == {"enc_a_out/sub/x.psnr.png", "enc_b_out/sub/x.psnr.png", "heatmaps.json"}
    assert json.loads((maps / "heatmaps.json").read_text())["dist_roots"] == {
        str(roots[0]): "enc_a_out", str(roots[1]): "enc_b_out"}


def test_single_file_run_names_the_map_after_the_distorted_file(cli, tmp_path):
    """Issue 11 point 7: `compare ref.png dist.png --heatmaps maps` writes maps/dist.psnr.png (no folder
    named like a file); the map holds the squared error of the two images (NumPy)."""
    ref = smooth_image(40, 48, 3, seed=8)
    dist = distort(ref, seed=9)
    Image.fromarray(ref).save(tmp_path / "photo.png")
    Image.fromarray(dist).save(tmp_path / "photo_q30.png")
    maps, out = tmp_path / "maps", tmp_path / "res.csv"
    result = cli(tmp_path / "photo.png", tmp_path / "photo_q30.png", "-m", "psnr", "-o", out, "-q", "--workers",
                 "0", "--heatmaps", maps, "--heatmap-format", "npy")
    assert result.exit_code == 0, result.stderr
    assert files_under(maps) == {"photo_q30.psnr.npy", "heatmaps.json"}
    expected = ((ref.astype(np.float64) - dist.astype(np.float64)) / 255.0) ** 2
    np.testing.assert_allclose(np.load(maps / "photo_q30.psnr.npy"), expected.mean(axis=2), atol=1e-6)


@pytest.mark.parametrize("other, size", [("ms_ssim", 168), ("lasi", 48)])  # ms_ssim needs 161 px
def test_metrics_without_a_map_get_no_column(cli, tmp_path, other, size):
    ref = smooth_image(size, size, 3, seed=3)
    for name, image in (("ref", ref), ("out", distort(ref, seed=4))):
        (tmp_path / name).mkdir()
        Image.fromarray(image).save(tmp_path / name / "x.png")
    maps, out = tmp_path / "maps", tmp_path / "res.csv"
    result = cli(tmp_path / "ref", tmp_path / "out", "-o", out, "-q", "--workers", "0", "--heatmaps", maps,
                 "-m", f"ssim,{other}")
    assert result.exit_code == 0, result.stderr
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    assert "ssim_map" in header and f"{other}_map" not in header
    assert all(math.isfinite(float(rows[0][m])) for m in ("ssim", other))
    assert rows[0]["ssim_map"] == str(maps / "out" / "x.ssim.png")
    assert files_under(maps) == {"out/x.ssim.png", "heatmaps.json"}


def test_heatmaps_with_only_map_less_metrics_is_refused(cli, tmp_path, tree):
    out, maps = tmp_path / "res.csv", tmp_path / "maps"
    result = cli(tmp_path / "ref", tmp_path / "noisy", "-o", out, "--heatmaps", maps, "-m", "lasi,ms_ssim")
    one_error_line(result, 2, "--heatmaps", "lasi", "ms_ssim")
    assert not out.exists() and not maps.exists()


# --------------------------------------------------------------------------------------------------
# raw values


def test_lpips_npy_map_equals_official_spatial_lpips(cli, tmp_path, tree, torch_home):
    maps = tmp_path / "maps"
    _, rows = run(cli, tmp_path, "lpips_alex", "--heatmaps", maps, "--heatmap-format", "npy")
    official_map = lpips_official.LPIPS(net="alex", spatial=True, verbose=False)
    official = lpips_official.LPIPS(net="alex", verbose=False)
    to_t = lambda a: torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255 * 2 - 1  # noqa: E731
    for row in rows:
        root, key = root_key(row)
        ref, dist = tree[(root, key)]
        ours = np.load(maps / root / f"{key}.lpips_alex.npy")
        assert row["lpips_alex_map"] == str(maps / root / f"{key}.lpips_alex.npy")
        assert ours.dtype == np.float32 and ours.shape == SIZES[key]
        with torch.no_grad():
            expected = official_map(to_t(ref), to_t(dist))[0, 0].double().numpy()
            expected_score = float(official(to_t(ref), to_t(dist)).flatten()[0])
        score = float(row["lpips_alex"])
        assert np.abs(ours - expected).max() <= TOLERANCES["lpips_map_vs_official"]
        assert abs(score - expected_score) <= TOLERANCES["lpips_score_vs_official"]
        gap = float(ours.astype(np.float64).mean()) - score
        assert abs(gap) <= TOLERANCES["lpips_map_mean_rel"] * score
        assert abs(gap - (expected.mean() - expected_score)) <= TOLERANCES["lpips_gap_vs_official"]


def test_ssim_psnr_mse_npy_maps_reproduce_the_scores(cli, tmp_path, tree):
    maps = tmp_path / "maps"
    _, rows = run(cli, tmp_path, "ssim,psnr,mse", "--heatmaps", maps, "--heatmap-format", "npy")
    border = 5  # Gaussian 11x11 window: the valid region is 5 px smaller on every side
    for row in rows:
        root, key = root_key(row)
        ref, dist = tree[(root, key)]
        ssim_map = np.load(maps / root / f"{key}.ssim.npy")
        assert ssim_map.shape == SIZES[key]
        nan = np.ones(SIZES[key], bool)
        nan[border:-border, border:-border] = False
        np.testing.assert_array_equal(np.isnan(ssim_map), nan)
        valid = ssim_map[border:-border, border:-border].astype(np.float64)
        assert abs(valid.mean() - float(row["ssim"])) <= TOLERANCES["ssim_map_mean"]

        se = squared_error(ref, dist)
        for metric in ("psnr", "mse"):
            values = np.load(maps / root / f"{key}.{metric}.npy")
            assert values.shape == SIZES[key] and np.isfinite(values).all()
            assert np.abs(values - se).max() <= TOLERANCES["se_map"]
        mean = float(np.load(maps / root / f"{key}.mse.npy").astype(np.float64).mean())
        assert abs(mean - float(row["mse"])) <= TOLERANCES["mse_rel"] * float(row["mse"])
        psnr_mean = float(np.load(maps / root / f"{key}.psnr.npy").astype(np.float64).mean())
        assert abs(-10 * math.log10(psnr_mean) - float(row["psnr"])) <= TOLERANCES["psnr_db"]


def test_png_metadata_holds_scale_and_score_and_pixels_follow_the_scale(cli, tmp_path, tree, torch_home):
    metrics = ("lpips_alex", "ssim", "psnr", "mse")
    maps = tmp_path / "maps"
    _, rows = run(cli, tmp_path, ",".join(metrics), "--heatmaps", maps)
    for row in rows:
        for m in metrics:
            text = png_text(Path(row[f"{m}_map"]))
            assert text["metric"] == m and text["scale"] == "fixed"
            assert (float(text["lo"]), float(text["hi"])) == FIXED_SCALES[m]
            assert float(text["score"]) == float(row[m])
            assert text["description"] and text["units"]

    # the pixels: magma index floor(256 t), t = squared error / 0.01 clipped (black = 0)
    _, npy_rows = run(cli, tmp_path, "psnr", "--heatmaps", tmp_path / "raw", "--heatmap-format", "npy",
                      out="raw.csv")
    raw = {root_key(r): np.load(r["psnr_map"]) for r in npy_rows}
    for row in rows:
        lo, hi = FIXED_SCALES["psnr"]
        t = np.clip((raw[root_key(row)].astype(np.float64) - lo) / (hi - lo), 0, 1)
        expected = MAGMA_LUT[np.clip(np.floor(t * 256), 0, 255).astype(int)]
        np.testing.assert_array_equal(png_rgb(Path(row["psnr_map"])), expected)

    # --heatmap-scale auto: each map over its own min..max, recorded in the metadata
    _, auto_rows = run(cli, tmp_path, "psnr", "--heatmaps", tmp_path / "auto", "--heatmap-scale", "auto",
                       out="auto.csv")
    for row in auto_rows:
        text = png_text(Path(row["psnr_map"]))
        values = raw[root_key(row)]
        assert text["scale"] == "auto"
        assert (float(text["lo"]), float(text["hi"])) == (float(values.min()), float(values.max()))


# --------------------------------------------------------------------------------------------------
# worst-K, panels, png16


def test_heatmap_worst_writes_the_k_worst_per_metric_in_the_metric_direction(cli, tmp_path, tree):
    metrics = {"psnr": True, "mse": False, "ssim": True}  # higher is better?
    maps, summary = tmp_path / "maps", tmp_path / "summary.json"
    _, rows = run(cli, tmp_path, ",".join(metrics), "--heatmaps", maps, "--heatmap-worst", "2",
                  "--summary-json", summary)
    assert all(row[f"{m}_map"] == "" for row in rows for m in metrics)  # known only at the end
    expected = set()
    for m, higher_is_better in metrics.items():
        ranked = sorted(rows, key=lambda r, m=m: float(r[m]), reverse=not higher_is_better)
        worst = {root_key(r) for r in ranked[:2]}
        best = {root_key(r) for r in ranked[-2:]}
        assert worst.isdisjoint(best)
        for root, key in worst:
            expected.add((m, str(tmp_path / root), key, str(maps / root / f"{key}.{m}.png")))
    assert files_under(maps) == {Path(p).relative_to(maps).as_posix() for *_, p in expected} | {"heatmaps.json"}
    written = json.loads(summary.read_text())["heatmaps_written"]
    assert len(written) == 6
    assert {(w["metric"], w["dist_root"], w["key"], w["path"]) for w in written} == expected
    manifest = json.loads((maps / "heatmaps.json").read_text())
    assert {(w["metric"], w["dist_root"], w["key"], w["path"]) for w in manifest["maps"]} == expected
    by_pair = {(m, str(tmp_path / root_key(r)[0]), root_key(r)[1]): float(r[m]) for r in rows for m in metrics}
    for w in manifest["maps"]:
        assert w["score"] == by_pair[(w["metric"], w["dist_root"], w["key"])]


def test_panel_is_ref_gap_dist_gap_map(cli, tmp_path, tree):
    _, plain = run(cli, tmp_path, "psnr,ssim", "--heatmaps", tmp_path / "maps", out="plain.csv")
    _, rows = run(cli, tmp_path, "psnr,ssim", "--heatmaps", tmp_path / "panels", "--heatmap-panel")
    single = {root_key(r): r for r in plain}
    gap = 4
    for row in rows:
        ref, dist = tree[root_key(row)]
        height, width = ref.shape[:2]
        for m in ("psnr", "ssim"):
            panel = png_rgb(Path(row[f"{m}_map"]))
            assert panel.shape == (height, 3 * width + 8, 3)
            np.testing.assert_array_equal(panel[:, :width], ref)
            np.testing.assert_array_equal(panel[:, width + gap: 2 * width + gap], dist)
            heat = png_rgb(Path(single[root_key(row)][f"{m}_map"]))
            np.testing.assert_array_equal(panel[:, 2 * (width + gap):], heat)
            assert (panel[:, width: width + gap] == 255).all()
            assert (panel[:, 2 * width + gap: 2 * (width + gap)] == 255).all()


def test_png16_round_trips_within_one_step(cli, tmp_path, tree, torch_home):
    metrics = ("lpips_alex", "ssim", "psnr", "mse")
    _, rows = run(cli, tmp_path, ",".join(metrics), "--heatmaps", tmp_path / "p16", "--heatmap-format", "png16")
    _, raw_rows = run(cli, tmp_path, ",".join(metrics), "--heatmaps", tmp_path / "raw", "--heatmap-format", "npy",
                      out="raw.csv")
    raw = {root_key(r): r for r in raw_rows}
    for row in rows:
        for m in metrics:
            path = Path(row[f"{m}_map"])
            text = png_text(path)
            with Image.open(path) as image:
                q = np.asarray(image).astype(np.int64)
            assert q.shape == SIZES[root_key(row)[1]]
            values = np.load(raw[root_key(row)][f"{m}_map"]).astype(np.float64)
            v0, v1 = float(text["value_at_0"]), float(text["value_at_65534"])
            assert {v0, v1} == set(FIXED_SCALES[m])
            np.testing.assert_array_equal(q == 65535, np.isnan(values))
            decoded = v0 + q / 65534 * (v1 - v0)
            lo, hi = FIXED_SCALES[m]
            ok = ~np.isnan(values)
            step = (hi - lo) / 65534
            error = np.abs(decoded[ok] - np.clip(values[ok], lo, hi)).max()
            assert error <= TOLERANCES["png16_steps"] * step, (m, error / step)


# --------------------------------------------------------------------------------------------------
# errors, bit depths


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_unwritable_heatmap_folder_fails_before_compute(cli, tmp_path, tree, where):
    blocker = tmp_path / "maps"
    blocker.write_text("a file where the maps folder should be")
    target = blocker if where == "file" else blocker / "sub"
    out = tmp_path / "res.csv"
    result = cli(tmp_path / "ref", tmp_path / "noisy", "-m", "psnr", "-o", out, "--heatmaps", target)
    one_error_line(result, 2, "--heatmaps", str(target))
    assert not out.exists() and not Path(f"{out}.meta.json").exists()
    assert blocker.read_text() == "a file where the maps folder should be"


def test_sixteen_bit_and_gray_inputs(cli, tmp_path, torch_home):
    rng = np.random.default_rng(7)
    base = smooth_image(40, 56, 3, seed=21).astype(np.uint16) * 257
    rgb16 = np.clip(base + rng.integers(-900, 900, base.shape), 0, 65535).astype(np.uint16)
    gray = smooth_image(44, 60, 1, seed=22)[:, :, 0]
    gray_dist = distort(gray, seed=23)
    for name in ("ref", "out"):
        (tmp_path / name).mkdir()
    assert cv2.imwrite(str(tmp_path / "ref" / "deep.png"), base[:, :, ::-1].copy())
    assert cv2.imwrite(str(tmp_path / "out" / "deep.png"), rgb16[:, :, ::-1].copy())
    Image.fromarray(gray).save(tmp_path / "ref" / "gray.png")
    Image.fromarray(gray_dist).save(tmp_path / "out" / "gray.png")
    cases = {"deep": (base, rgb16, 65535.0), "gray": (gray, gray_dist, 255.0)}

    common = [tmp_path / "ref", tmp_path / "out", "-m", "lpips_alex,ssim,psnr", "-q", "--workers", "0",
              "--allow-unverified-weights"]
    result = cli(*common, "-o", tmp_path / "raw.csv", "--heatmaps", tmp_path / "raw", "--heatmap-format", "npy")
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "raw.csv", newline="") as handle:
        rows = {Path(r["dist"]).stem: r for r in csv.DictReader(handle)}
    for name, (ref, dist, peak) in cases.items():
        row = rows[name]
        se = np.load(row["psnr_map"]).astype(np.float64)
        assert np.abs(se - squared_error(ref, dist, peak)).max() <= TOLERANCES["se_map"]
        assert abs(-10 * math.log10(se.mean()) - float(row["psnr"])) <= TOLERANCES["psnr_db"]
        assert abs(np.nanmean(np.load(row["ssim_map"]).astype(np.float64)) - float(row["ssim"])) \
            <= TOLERANCES["ssim_map_mean"]
        lp = np.load(row["lpips_alex_map"]).astype(np.float64)
        assert lp.shape == ref.shape[:2]
        score = float(row["lpips_alex"])
        assert abs(lp.mean() - score) <= TOLERANCES["lpips_map_mean_rel"] * score

    result = cli(*common, "-o", tmp_path / "panel.csv", "--heatmaps", tmp_path / "panels", "--heatmap-panel")
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "panel.csv", newline="") as handle:
        rows = {Path(r["dist"]).stem: r for r in csv.DictReader(handle)}
    for name, (ref, _, peak) in cases.items():
        panel = png_rgb(Path(rows[name]["psnr_map"]))
        height, width = ref.shape[:2]
        assert panel.shape == (height, 3 * width + 8, 3)
        shown = np.rint(ref.astype(np.float64) / peak * 255).astype(np.uint8)  # 8-bit display of the reference
        shown = shown if shown.ndim == 3 else np.repeat(shown[:, :, None], 3, axis=2)
        assert np.abs(panel[:, :width].astype(int) - shown.astype(int)).max() <= 1
