"""Tests for lpipscli.engine: batching, workers, ordering, reference reuse, decoding policies, failures.

Inputs are small PNGs written in tmp_path. Expected scores come from scikit-image (PSNR, SSIM) on the
arrays that were written, or from the LPIPS module called directly on those arrays; batch-invariance
tests compare the engine with itself under different batch compositions.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import shutil
import sys
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _helpers import distort, smooth_image
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lpipscli.config import RunConfig
from lpipscli.engine import Engine, RunResult

TOLERANCES = {
    # |engine - skimage| in dB on 8-bit files; the engine's float32 [0,1] input costs ~2e-7 dB
    "psnr_8bit": 1e-6,
    # |engine - skimage| in dB on 16-bit files (samples travel exact, PSNR in float64); also for a
    # near-lossless pair (+-1 step), where float32 inputs would be ~4.5e-5 dB off; truncating to
    # 8 bits would be off by several dB
    "psnr_16bit": 1e-6,
    # |engine - skimage| for SSIM (gaussian 11/1.5, population moments, valid region)
    "ssim": 1e-5,
    # the same pair scored in different batches: pure float64 metrics
    "batch_exact": 1e-12,
    # the same pair scored in different batches / with reused reference features: LPIPS (float32 convs)
    "batch_lpips": 1e-6,
    # engine LPIPS against the LPIPS module called directly on the decoded arrays
    "lpips_direct": 1e-6,
}

SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


# --------------------------------------------------------------------------------------------------
# helpers


def save(path: Path, array: np.ndarray) -> Path:
    """uint8 through Pillow (gray, RGB, RGBA), uint16 through OpenCV (RGB given, BGR written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint16:
        bgr = array[:, :, ::-1] if array.ndim == 3 else array
        assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))
    else:
        Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array).save(path)
    return path


def make_pairs(ref_dir: Path, out_dir: Path, keys, size=(48, 48), seed=0, sigma=12.0) -> dict:
    """Write smooth reference images and noisy distorted versions; key -> (ref array, dist array)."""
    arrays = {}
    for n, key in enumerate(keys):
        h, w = size(n) if callable(size) else size
        ref = smooth_image(h, w, 3, seed=seed + 7 * n)
        dist = distort(ref, seed=seed + 7 * n + 1, sigma=sigma)
        save(ref_dir / f"{key}.png", ref)
        save(out_dir / f"{key}.png", dist)
        arrays[key] = (ref, dist)
    return arrays


def run(ref, dists, metrics=("psnr", "ssim"), *, collect_batches=False, **options):
    options.setdefault("workers", 0)
    options.setdefault("device", "cpu")
    dists = tuple(Path(d) for d in (dists if isinstance(dists, (list, tuple)) else [dists]))
    engine = Engine(RunConfig(ref=Path(ref), dists=dists, metrics=tuple(metrics), **options))
    batches: list[list[dict]] = []
    result = engine.execute(engine.plan(engine.pair()), batches.append)
    rows = [r for b in batches for r in b]
    if collect_batches:
        return rows, result, batches
    return rows, result


def by_dist(rows) -> dict[str, dict]:
    return {r["dist"]: r for r in rows}


def key_of(row) -> str:
    return Path(row["dist"]).stem


def skimage_psnr(ref, dist, data_range=255):
    return peak_signal_noise_ratio(ref, dist, data_range=data_range)


def skimage_ssim(ref, dist, data_range=255):
    return structural_similarity(ref, dist, data_range=data_range, channel_axis=2, **SSIM_KW)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return torch.from_numpy(array.astype(np.float64) / scale).float().permute(2, 0, 1)[None]


def corrupt_png_data(path: Path) -> None:
    """Flip bytes inside the first IDAT chunk: the header still probes, decoding must fail (CRC)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 4
    for k in range(8, 16):
        data[at + k] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------------
# scores equal independent references


def test_psnr_ssim_equal_skimage_on_decoded_arrays(tmp_path):
    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", [f"p{i}" for i in range(4)], size=(45, 52))
    rows, result = run(tmp_path / "ref", tmp_path / "out")
    assert result.n_scored == 4 and result.n_failed == 0 and result.first_error is None
    assert [key_of(r) for r in rows] == ["p0", "p1", "p2", "p3"]
    for row in rows:
        ref, dist = arrays[key_of(row)]
        assert (row["width"], row["height"]) == (52, 45)
        assert row["status"] == "ok" and row["error"] == ""
        assert row["dist_root"] == str(tmp_path / "out")
        assert abs(row["psnr"] - skimage_psnr(ref, dist)) <= TOLERANCES["psnr_8bit"]
        assert abs(row["ssim"] - skimage_ssim(ref, dist)) <= TOLERANCES["ssim"]


def test_lpips_equals_module_called_directly(tmp_path, torch_home):
    from lpipscli.metrics.lpips import LPIPS

    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c"], size=(40, 44))
    rows, _ = run(tmp_path / "ref", tmp_path / "out", ("lpips_alex",), allow_unverified_weights=True)
    module = LPIPS("alex", allow_unverified=True)
    with torch.inference_mode():
        for row in rows:
            ref, dist = arrays[key_of(row)]
            expected = module(to_tensor(ref), to_tensor(dist)).item()
            assert expected > 0
            assert abs(row["lpips_alex"] - expected) <= TOLERANCES["lpips_direct"]


# --------------------------------------------------------------------------------------------------
# batch composition, workers, order


def test_scores_do_not_depend_on_batch_composition(tmp_path, torch_home):
    metrics = ("lpips_alex", "psnr", "ssim")
    own = [f"k{i}" for i in range(3)]
    make_pairs(tmp_path / "ref", tmp_path / "out", own, size=(40, 40))
    # the same three pairs mixed with four other pairs of the same size, sorting between them
    shutil.copytree(tmp_path / "ref", tmp_path / "mixed_ref")
    shutil.copytree(tmp_path / "out", tmp_path / "mixed_out")
    make_pairs(tmp_path / "mixed_ref", tmp_path / "mixed_out", [f"k{i}x" for i in range(4)], size=(40, 40),
               seed=100)

    def scores(rows):
        return {key_of(r): {m: r[m] for m in metrics} for r in rows if key_of(r) in own}

    one, _ = run(tmp_path / "ref", tmp_path / "out", metrics, batch_size=1, allow_unverified_weights=True)
    sixteen, _ = run(tmp_path / "ref", tmp_path / "out", metrics, batch_size=16, allow_unverified_weights=True)
    mixed, _, batches = run(tmp_path / "mixed_ref", tmp_path / "mixed_out", metrics, batch_size=3,
                            collect_batches=True, allow_unverified_weights=True)
    assert len(batches) >= 3  # the mixed run really used other batch compositions
    reference = scores(one)
    assert set(reference) == set(own)
    for other in (scores(sixteen), scores(mixed)):
        assert set(other) == set(own)
        for key in own:
            for metric in ("psnr", "ssim"):
                assert abs(other[key][metric] - reference[key][metric]) <= TOLERANCES["batch_exact"]
            assert abs(other[key]["lpips_alex"] - reference[key]["lpips_alex"]) <= TOLERANCES["batch_lpips"]


def test_workers_0_and_2_give_identical_rows_in_identical_order(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", [f"w{i}" for i in range(7)],
               size=lambda n: (48, 48) if n % 3 else (40, 56))
    rows0, _, batches0 = run(tmp_path / "ref", tmp_path / "out", batch_size=2, workers=0, collect_batches=True)
    rows2, _ = run(tmp_path / "ref", tmp_path / "out", batch_size=2, workers=2)
    assert len(batches0) >= 3  # enough batches for two workers to take part
    assert len(rows0) == 7
    assert rows0 == rows2


@pytest.fixture
def forkserver_default():
    """Python 3.14's default start method on Linux (forkserver), for the length of a test."""
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("forkserver", force=True)
    yield
    multiprocessing.set_start_method(before, force=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the loader asks for fork on Linux only")
def test_decoding_workers_fork_on_linux_whatever_the_default_start_method(tmp_path, forkserver_default):
    make_pairs(tmp_path / "ref", tmp_path / "out", [f"f{i}" for i in range(3)])
    engine = Engine(RunConfig(ref=tmp_path / "ref", dists=(tmp_path / "out",), metrics=("psnr",),
                              workers=1, device="cpu"))
    loader = engine.loader(engine.plan(engine.pair()))
    assert loader.num_workers == 1
    assert loader.multiprocessing_context.get_start_method() == "fork"
    rows0, _ = run(tmp_path / "ref", tmp_path / "out", metrics=("psnr",), workers=0)
    rows1, _ = run(tmp_path / "ref", tmp_path / "out", metrics=("psnr",), workers=1)
    assert rows1 == rows0 and len(rows1) == 3


def test_forking_workers_from_a_threaded_process_raises_no_warning(tmp_path):
    """Python 3.12+ warns when a multi-threaded process forks; the engine silences that one message
    (the workers only decode). On older Pythons there is no such warning to see."""
    make_pairs(tmp_path / "ref", tmp_path / "out", [f"t{i}" for i in range(3)])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # a second thread, as torch's pool makes one
    other.start()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            rows, _ = run(tmp_path / "ref", tmp_path / "out", metrics=("psnr",), workers=1)
    finally:
        stop.set()
        other.join()
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert not [w for w in seen if "use of fork()" in str(w.message)]


def test_row_order_is_deterministic_and_streams_per_batch(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", [f"r{i}" for i in range(6)],
               size=lambda n: (48, 48) if n % 2 else (44, 40))
    first, _, batches = run(tmp_path / "ref", tmp_path / "out", batch_size=2, collect_batches=True)
    second, _ = run(tmp_path / "ref", tmp_path / "out", batch_size=2)
    assert [(r["ref"], r["dist"]) for r in first] == [(r["ref"], r["dist"]) for r in second]
    assert first == second
    # emitted batch by batch: each shape in batches of at most two pairs
    assert len(batches) == 4 and [len(b) for b in batches] == [2, 2, 1, 1]
    assert all(len({(r["width"], r["height"]) for r in b}) == 1 for b in batches)


def test_mixed_sizes_interleaved_all_pairs_scored(tmp_path):
    keys = [f"m{i}" for i in range(8)]
    sizes = {k: ((48, 48) if i % 2 == 0 else (40, 56)) for i, k in enumerate(keys)}
    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", keys, size=lambda n: sizes[keys[n]])
    rows, result = run(tmp_path / "ref", tmp_path / "out", batch_size=16)
    assert sorted(key_of(r) for r in rows) == keys
    assert result.n_scored == 8 and result.n_failed == 0
    for row in rows:
        h, w = sizes[key_of(row)]
        assert (row["width"], row["height"]) == (w, h)
        ref, dist = arrays[key_of(row)]
        assert abs(row["psnr"] - skimage_psnr(ref, dist)) <= TOLERANCES["psnr_8bit"]


def test_reference_features_reused_across_three_dist_roots(tmp_path, torch_home):
    keys = ["a", "b", "c"]
    roots = [tmp_path / f"q{q}" for q in (10, 30, 70)]
    for n, root in enumerate(roots):
        make_pairs(tmp_path / "ref", root, keys, sigma=4.0 + 8 * n)  # same references, other distortions
    metrics = ("lpips_alex", "psnr")
    together, result = run(tmp_path / "ref", roots, metrics, allow_unverified_weights=True)
    assert result.n_scored == 9
    assert {r["dist_root"] for r in together} == {str(r) for r in roots}
    combined = by_dist(together)
    for root in roots:
        alone, _ = run(tmp_path / "ref", root, metrics, allow_unverified_weights=True)
        assert len(alone) == 3
        for row in alone:
            other = combined[row["dist"]]
            assert other["dist_root"] == str(root) and other["ref"] == row["ref"]
            assert abs(other["lpips_alex"] - row["lpips_alex"]) <= TOLERANCES["batch_lpips"]
            assert abs(other["psnr"] - row["psnr"]) <= TOLERANCES["batch_exact"]


# --------------------------------------------------------------------------------------------------
# decoding policies seen through the engine


def _pair16(seed: int, amplitude: int, size=(40, 48)):
    rng = np.random.default_rng(seed)
    ref = (smooth_image(*size, 3, seed=seed).astype(np.uint32) * 257
           + rng.integers(0, 257, (*size, 3))).clip(0, 65535).astype(np.uint16)
    dist = np.clip(ref.astype(np.int64) + rng.integers(-amplitude, amplitude + 1, ref.shape), 0, 65535)
    return ref, dist.astype(np.uint16)


def test_16bit_png_is_scored_at_16bit_precision(tmp_path):
    ref, dist = _pair16(3, 60)
    save(tmp_path / "ref" / "s.png", ref)
    save(tmp_path / "out" / "s.png", dist)
    (row,), _ = run(tmp_path / "ref", tmp_path / "out")
    expected = skimage_psnr(ref, dist, data_range=65535)
    truncated = skimage_psnr((ref >> 8).astype(np.uint8), (dist >> 8).astype(np.uint8))
    assert abs(expected - truncated) > 1.0  # the check below can tell 16-bit from 8-bit decoding
    assert abs(row["psnr"] - expected) <= TOLERANCES["psnr_16bit"]
    assert abs(row["ssim"] - skimage_ssim(ref, dist, data_range=65535)) <= TOLERANCES["ssim"]


@pytest.mark.parametrize("depth", [8, 16])
def test_ssim_reads_the_decoded_integer_samples_and_equals_skimage(tmp_path, monkeypatch, depth):
    """SSIM runners that take samples get the batch's integer pixels with their full scale (no float64 copy
    of the batch), and the score still equals scikit-image's on the decoded arrays."""
    from lpipscli.metrics import ssim as ssim_module

    seen = []
    build = ssim_module.ssim_runner

    def spying(*args, **kwargs):
        runner, records = build(*args, **kwargs)

        def run(ref, dist, ref_index, *, with_map=False, scale=None):
            seen.append((ref.dtype, dist.dtype, scale))
            return runner(ref, dist, ref_index, with_map=with_map, scale=scale)

        run.takes_samples = runner.takes_samples
        return run, records

    from lpipscli.metrics import REGISTRY

    monkeypatch.setattr(REGISTRY["ssim"].build, "_obj", functools.partial(spying, key="ssim"))
    if depth == 16:
        ref, dist = _pair16(5, 900)
        expected_dtype, full = torch.int32, 65535
    else:
        ref, dist = smooth_image(40, 48, seed=5), None
        dist = distort(ref, seed=6, sigma=12.0)
        expected_dtype, full = torch.uint8, 255
    save(tmp_path / "ref" / "s.png", ref)
    save(tmp_path / "out" / "s.png", dist)
    (row,), _ = run(tmp_path / "ref", tmp_path / "out", metrics=("ssim", "psnr"))
    assert seen and all(s == (expected_dtype, expected_dtype, float(full)) for s in seen), seen
    assert abs(row["ssim"] - skimage_ssim(ref, dist, data_range=full)) <= TOLERANCES["ssim"]
    assert abs(row["psnr"] - skimage_psnr(ref, dist, data_range=full)) <= TOLERANCES["psnr_16bit"]


@pytest.mark.parametrize("depth", [8, 16])
def test_psnr_and_mse_read_the_decoded_samples_of_several_references(tmp_path, monkeypatch, depth):
    """PSNR and MSE get the batch's integer pixels (no float64 copy of the batch, each reference once),
    never the float path, and still equal scikit-image on the decoded arrays."""
    from lpipscli.metrics import REGISTRY
    from lpipscli.metrics import psnr as psnr_module

    seen = []
    for key in ("psnr", "mse"):
        spec = REGISTRY[key]
        samples_fn = getattr(psnr_module, f"{key}_samples")

        def spying(ref, dist, ref_index, *, _fn=samples_fn, **kw):
            seen.append((ref.dtype, ref.shape[0], dist.shape[0], kw["scale"]))
            return _fn(ref, dist, ref_index, **kw)

        def refuse(*args, **kwargs):
            raise AssertionError("the float path ran")

        monkeypatch.setattr(spec.samples_fn, "_obj", spying)
        monkeypatch.setattr(spec.fn, "_obj", refuse)
    pairs = {}
    for n, key in enumerate("abc"):
        ref, dist = _pair16(10 + n, 900) if depth == 16 else (smooth_image(40, 48, seed=n), None)
        if depth == 8:
            dist = distort(ref, seed=20 + n, sigma=9.0)
        save(tmp_path / "ref" / f"{key}.png", ref)
        save(tmp_path / "out" / f"{key}.png", dist)
        pairs[key] = (ref, dist)
    rows, _ = run(tmp_path / "ref", tmp_path / "out", metrics=("psnr", "mse"), batch_size=3)
    full = 65535 if depth == 16 else 255
    expected = torch.int32 if depth == 16 else torch.uint8
    assert seen and all(s[0] == expected and s[3] == float(full) for s in seen), seen
    assert any(s[1] > 1 for s in seen), seen  # several references in one batch
    assert len(rows) == 3
    for row in rows:
        ref, dist = pairs[key_of(row)]
        assert abs(row["psnr"] - skimage_psnr(ref, dist, data_range=full)) <= TOLERANCES["psnr_16bit"]
        want_mse = np.mean((ref / full - dist / full) ** 2)
        assert row["mse"] == pytest.approx(want_mse, rel=1e-13, abs=0)


def test_16bit_near_lossless_psnr_matches_skimage_to_1e6(tmp_path):
    ref, dist = _pair16(3, 1)
    save(tmp_path / "ref" / "s.png", ref)
    save(tmp_path / "out" / "s.png", dist)
    (row,), _ = run(tmp_path / "ref", tmp_path / "out", ("psnr",))
    assert abs(row["psnr"] - skimage_psnr(ref, dist, data_range=65535)) <= TOLERANCES["psnr_16bit"]


def test_16bit_ref_against_8bit_dist_uses_each_files_bit_depth(tmp_path):
    ref16, _ = _pair16(7, 0)
    dist8 = distort((ref16 >> 8).astype(np.uint8), seed=8, sigma=3.0)
    save(tmp_path / "ref" / "m.png", ref16)
    save(tmp_path / "out" / "m.png", dist8)
    (row,), _ = run(tmp_path / "ref", tmp_path / "out", ("psnr",))
    mse = np.mean((ref16.astype(np.float64) / 65535 - dist8.astype(np.float64) / 255) ** 2)
    assert abs(row["psnr"] - 10 * np.log10(1.0 / mse)) <= TOLERANCES["psnr_16bit"]


def test_mixed_bit_depths_in_one_batch_do_not_change_scores(tmp_path, torch_home):
    """An 8-bit pair batched with a 16-bit pair of the same size scores as when it is alone."""
    arrays = make_pairs(tmp_path / "ref8", tmp_path / "out8", ["e"], size=(40, 48))
    ref16, dist16 = _pair16(11, 300, size=(40, 48))
    shutil.copytree(tmp_path / "ref8", tmp_path / "ref_mixed")
    shutil.copytree(tmp_path / "out8", tmp_path / "out_mixed")
    save(tmp_path / "ref_mixed" / "s.png", ref16)
    save(tmp_path / "out_mixed" / "s.png", dist16)
    metrics = ("lpips_alex", "psnr", "ssim")
    alone, _ = run(tmp_path / "ref8", tmp_path / "out8", metrics, allow_unverified_weights=True)
    mixed, _, batches = run(tmp_path / "ref_mixed", tmp_path / "out_mixed", metrics, batch_size=16,
                            collect_batches=True, allow_unverified_weights=True)
    assert len(batches) == 1 and len(mixed) == 2  # both pairs were scored in one batch
    got = {key_of(r): r for r in mixed}
    for metric in ("psnr", "ssim"):
        assert abs(got["e"][metric] - alone[0][metric]) <= TOLERANCES["batch_exact"]
    assert abs(got["e"]["lpips_alex"] - alone[0]["lpips_alex"]) <= TOLERANCES["batch_lpips"]
    assert abs(got["e"]["psnr"] - skimage_psnr(*arrays["e"])) <= TOLERANCES["psnr_8bit"]
    assert abs(got["s"]["psnr"] - skimage_psnr(ref16, dist16, data_range=65535)) <= TOLERANCES["psnr_16bit"]


def test_gray_vs_rgb_promotes_gray(tmp_path):
    gray = smooth_image(48, 48, 1, seed=4)
    rgb = distort(np.repeat(gray, 3, axis=2), seed=5)
    rgb[:, :, 0] = np.clip(rgb[:, :, 0].astype(int) + 20, 0, 255)  # colour the distorted side
    save(tmp_path / "ref" / "g.png", gray)
    save(tmp_path / "out" / "g.png", rgb)
    assert Image.open(tmp_path / "ref" / "g.png").mode == "L"
    (row,), _ = run(tmp_path / "ref", tmp_path / "out")
    promoted = np.repeat(gray, 3, axis=2)
    assert row["status"] == "ok"
    assert abs(row["psnr"] - skimage_psnr(promoted, rgb)) <= TOLERANCES["psnr_8bit"]
    assert abs(row["ssim"] - skimage_ssim(promoted, rgb)) <= TOLERANCES["ssim"]


def test_rgba_with_alpha_drop_equals_the_rgb_pair(tmp_path, torch_home):
    ref = smooth_image(40, 40, 3, seed=8)
    dist = distort(ref, seed=9)
    alpha = np.random.default_rng(1).integers(0, 256, (40, 40, 1), dtype=np.uint8)
    save(tmp_path / "ref" / "x.png", ref)
    save(tmp_path / "rgb" / "x.png", dist)
    save(tmp_path / "rgba" / "x.png", np.concatenate([dist, alpha], axis=2))
    assert Image.open(tmp_path / "rgba" / "x.png").mode == "RGBA"
    metrics = ("lpips_alex", "psnr", "ssim")
    (plain,), _ = run(tmp_path / "ref", tmp_path / "rgb", metrics, allow_unverified_weights=True)
    (dropped,), _ = run(tmp_path / "ref", tmp_path / "rgba", metrics, alpha="drop", allow_unverified_weights=True)
    for metric in metrics:
        assert dropped[metric] == plain[metric]
    assert dropped["status"] == "ok"


def test_size_mismatch_fails_naming_both_sizes_and_resize_scores_it(tmp_path):
    ref = smooth_image(48, 48, 3, seed=2)
    save(tmp_path / "ref" / "s.png", ref)
    save(tmp_path / "out" / "s.png", distort(smooth_image(40, 56, 3, seed=2), seed=3))  # 56 wide, 40 high
    make_pairs(tmp_path / "ref", tmp_path / "out", ["t"])

    rows, result = run(tmp_path / "ref", tmp_path / "out")
    assert rows == [] and result.first_error is not None
    assert "56x40" in result.first_error and "48x48" in result.first_error

    rows, result = run(tmp_path / "ref", tmp_path / "out", on_error="skip")
    (bad,) = [r for r in rows if key_of(r) == "s"]
    assert bad["status"] == "failed" and "56x40" in bad["error"] and "48x48" in bad["error"]
    assert math.isnan(bad["psnr"])
    assert [r["status"] for r in rows if key_of(r) == "t"] == ["ok"]

    rows, result = run(tmp_path / "ref", tmp_path / "out", resize="dist-to-ref")
    assert result.n_failed == 0
    got = {key_of(r): r for r in rows}
    assert got["s"]["status"] == "ok" and got["s"]["resized_from"] == "56x40"
    assert (got["s"]["width"], got["s"]["height"]) == (48, 48)
    assert math.isfinite(got["s"]["psnr"]) and -1 <= got["s"]["ssim"] <= 1
    assert got["t"]["resized_from"] == ""


def test_too_small_for_lpips_alex_names_metric_size_and_minimum(tmp_path, torch_home):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["tiny"], size=(20, 20))
    make_pairs(tmp_path / "ref", tmp_path / "out", ["big"], size=(40, 40), seed=50)
    rows, result = run(tmp_path / "ref", tmp_path / "out", ("lpips_alex", "psnr"), on_error="skip",
                       allow_unverified_weights=True)
    got = {key_of(r): r for r in rows}
    assert got["big"]["status"] == "ok" and got["big"]["lpips_alex"] > 0
    message = got["tiny"]["error"]
    # per metric: lpips_alex cannot score the tiny pair, psnr still does
    assert got["tiny"]["status"] == "partial" and math.isnan(got["tiny"]["lpips_alex"])
    assert math.isfinite(got["tiny"]["psnr"]) and message.startswith("lpips_alex: ")
    assert "lpips_alex" in message and "20x20" in message and "31" in message
    # psnr alone has no minimum that matters here
    rows, _ = run(tmp_path / "ref", tmp_path / "out", ("psnr",))
    assert [r["status"] for r in rows] == ["ok", "ok"]


# --------------------------------------------------------------------------------------------------
# failures


def test_on_error_skip_turns_corrupt_files_into_error_rows(tmp_path):
    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c", "d"])
    (tmp_path / "out" / "b.png").write_bytes(b"this is not a png at all")  # fails when probed
    corrupt_png_data(tmp_path / "out" / "c.png")  # probes fine, fails when decoded
    rows, result = run(tmp_path / "ref", tmp_path / "out", on_error="skip", batch_size=16)
    got = {key_of(r): r for r in rows}
    assert set(got) == {"a", "b", "c", "d"}
    for key in ("b", "c"):
        assert got[key]["status"] == "failed"
        assert str(tmp_path / "out" / f"{key}.png") in got[key]["error"]
        assert "\n" not in got[key]["error"]
        assert math.isnan(got[key]["psnr"]) and math.isnan(got[key]["ssim"])
    for key in ("a", "d"):
        assert got[key]["status"] == "ok" and got[key]["error"] == ""
        assert abs(got[key]["psnr"] - skimage_psnr(*arrays[key])) <= TOLERANCES["psnr_8bit"]
    assert result.n_scored == 2 and result.n_failed == 2
    assert isinstance(result, RunResult) and result.failed_per_root == {str(tmp_path / "out"): 2}


def test_on_error_fail_keeps_rows_before_the_bad_batch(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c", "d"])
    corrupt_png_data(tmp_path / "out" / "c.png")
    rows, result, batches = run(tmp_path / "ref", tmp_path / "out", on_error="fail", batch_size=1,
                                collect_batches=True)
    assert [key_of(r) for r in rows] == ["a", "b"]
    assert all(r["status"] == "ok" for r in rows)
    assert result.first_error is not None and str(tmp_path / "out" / "c.png") in result.first_error
    assert [len(b) for b in batches if b] == [1, 1]  # the two good batches went out before the bad one


def test_on_error_fail_counts_the_failed_pair_per_root(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c"])
    corrupt_png_data(tmp_path / "out" / "b.png")
    _, result = run(tmp_path / "ref", tmp_path / "out", on_error="fail", batch_size=1)
    assert result.n_failed == 1
    assert result.failed_per_root == {str(tmp_path / "out"): 1}


def test_on_error_fail_with_unprobeable_file_computes_nothing(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    (tmp_path / "out" / "b.png").write_bytes(b"")
    rows, result = run(tmp_path / "ref", tmp_path / "out", on_error="fail")
    assert rows == []
    assert result.first_error is not None and "b.png" in result.first_error


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.int32, torch.float32, torch.float64, torch.bool,
                                   torch.bfloat16])
def test_batch_stack_equals_torch_stack_and_owns_its_memory(dtype):
    """The batcher's stack (NumPy's copy, no OpenMP region) gives torch.stack's tensor, in fresh memory;
    dtypes NumPy lacks (bfloat16) go through torch.stack."""
    from lpipscli.io.dataset import stack

    gen = torch.Generator().manual_seed(3)
    items = [torch.randint(0, 200, (3, 5, 7), generator=gen).to(dtype) for _ in range(4)]
    items.append(torch.randint(0, 200, (7, 5, 3), generator=gen).to(dtype).permute(2, 1, 0))  # a strided view
    out = stack(items)
    expected = torch.stack(items)
    assert out.dtype == expected.dtype and out.shape == expected.shape and out.is_contiguous()
    assert torch.equal(out, expected)
    out.zero_()  # the inputs are not views of the batch
    assert torch.equal(torch.stack(items), expected)


def test_batch_stack_of_one_tensor_is_a_view_and_a_strided_one_is_copied():
    """A batch of one image per side (1080p frames) reads the item's pixels in place; a strided tensor
    is still copied."""
    from lpipscli.io.dataset import stack

    one = torch.arange(3 * 5 * 7, dtype=torch.int32).reshape(3, 5, 7)
    out = stack([one])
    assert out.shape == (1, 3, 5, 7) and torch.equal(out, torch.stack([one]))
    assert out.data_ptr() == one.data_ptr()
    strided = one.permute(0, 2, 1)
    copied = stack([strided])
    assert torch.equal(copied, torch.stack([strided]))
    assert copied.data_ptr() != strided.data_ptr()


@pytest.mark.parametrize(("dtype", "top", "scale"), [(torch.uint8, 255, None), (torch.int32, 65535, None),
                                                     (torch.int32, 1023, 1023.0), (torch.int32, 4095, 4095.0)])
@pytest.mark.parametrize("out", [torch.float32, torch.float64])
@pytest.mark.parametrize("into", ["fresh", "given array"])
def test_unit_float_is_the_correctly_rounded_quotient(dtype, top, scale, out, into):
    """Every sample value becomes value / full scale, correctly rounded in the target precision (the
    CPU path divides in NumPy, without an OpenMP region; also into an array the caller gives, as the
    engine's reused buffers): checked against exact rational arithmetic."""
    from fractions import Fraction

    from lpipscli.io.dataset import to_unit_float

    values = torch.arange(top + 1, dtype=dtype).reshape(1, 1, 1, -1)
    given = None
    if into == "given array":
        def given(shape, np_dtype):
            return np.full(shape, np.nan, np_dtype)  # garbage the conversion must overwrite
    got = to_unit_float(values, out, scale, out=given).reshape(-1).tolist()
    full = top if scale is None else int(scale)
    cast = np.float32 if out == torch.float32 else np.float64
    for v in range(0, full + 1, 1 if full < 1100 else 7):
        exact = Fraction(v, full)
        nearest = cast(float(exact))  # float() rounds the exact quotient once, to float64
        if cast is np.float32:  # round the exact quotient to float32 directly (no double rounding)
            below = np.float32(float(exact))
            candidates = [np.nextafter(below, np.float32(-1)), below, np.nextafter(below, np.float32(2))]
            nearest = min(candidates, key=lambda c: abs(Fraction(float(c)) - exact))
        assert got[v] == float(nearest), (v, got[v], float(nearest))
    assert got[0] == 0.0 and got[full] == 1.0
