"""psnr_yuv / ssim_ffmpeg against FFmpeg's own psnr and ssim filters, frame by frame (8- and 10-bit).

Reference values come from FFmpeg: the filters run in PyAV's bundled FFmpeg on frames PyAV decodes
itself (no lpipscli code in the reference path), and, where the ``ffmpeg`` command is installed, from
``ffmpeg -lavfi "[0:v][1:v]psnr,metadata=print"`` on the same files. FFmpeg prints each value as a float32
with ``%f``: our float64 value, rounded to float32, must match within one float32 step plus 1e-6.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
from _video_clips import encode, synthetic_planes

from lpipscli.errors import MetricInputError
from lpipscli.io.av_video import open_video
from lpipscli.metrics.lavfi import filter_available, run_compare_filter
from lpipscli.metrics.vmaf import require_vmaf, vmaf_available
from lpipscli.metrics.yuv import integer_sse, psnr_yuv, ssim_db, ssim_ffmpeg, ssim_ffmpeg_plane

av = pytest.importorskip("av")
needs_filters = pytest.mark.skipif(not (filter_available("psnr") and filter_available("ssim")),
                                   reason="PyAV's FFmpeg lacks the psnr/ssim filters")

PSNR_KEYS = {"y": "lavfi.psnr.psnr.y", "u": "lavfi.psnr.psnr.u", "v": "lavfi.psnr.psnr.v",
             "avg": "lavfi.psnr.psnr_avg", "mse_y": "lavfi.psnr.mse.y", "mse_u": "lavfi.psnr.mse.u",
             "mse_v": "lavfi.psnr.mse.v", "mse_avg": "lavfi.psnr.mse_avg"}
SSIM_KEYS = {"y": "lavfi.ssim.Y", "u": "lavfi.ssim.U", "v": "lavfi.ssim.V", "all": "lavfi.ssim.All"}


def _close(ours: float, printed: str) -> bool:
    """Our float64 vs FFmpeg's ``%f`` of a float32: within one float32 step + 1e-6 (inf equals inf)."""
    theirs = float(printed)
    if math.isinf(theirs) or math.isinf(ours):
        return theirs == ours
    return abs(float(np.float32(ours)) - theirs) <= float(np.spacing(np.float32(theirs))) + 1e-6


def _clips(tmp_path, pix_fmt, width=70, height=54, n=4, codec="libx264"):
    """A reference (lossless FFV1) and a lossy encode of it; odd plane sizes (70x54 -> chroma 35x27)."""
    src = synthetic_planes(n, width, height, pix_fmt, noise=0.01)
    ref = encode(tmp_path / "ref.mkv", src, pix_fmt, codec="ffv1")
    dist = encode(tmp_path / "dist.mkv", src, pix_fmt, codec=codec, options={"crf": "35", "preset": "ultrafast"})
    return ref, dist


def _reader_planes(path):
    with open_video(path) as reader:
        frames = list(reader)
        bits = reader.info.bit_depth
    return [np.stack([f.planes[k] for f in frames]) for k in range(3)], bits


def _ffmpeg_in_pyav(ref, dist, name):
    with av.open(str(ref)) as rc, av.open(str(dist)) as dc:
        return list(run_compare_filter(rc.decode(video=0), dc.decode(video=0), name))


@needs_filters
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv444p10le"])
def test_psnr_ssim_equal_ffmpeg_filters(tmp_path, pix_fmt):
    ref, dist = _clips(tmp_path, pix_fmt)
    ref_planes, bits = _reader_planes(ref)
    dist_planes, _ = _reader_planes(dist)
    assert bits == (8 if pix_fmt == "yuv420p" else 10)
    ours_psnr = psnr_yuv(ref_planes, dist_planes, bits)
    ours_ssim = ssim_ffmpeg(ref_planes, dist_planes, bits)
    ff_psnr = _ffmpeg_in_pyav(ref, dist, "psnr")
    ff_ssim = _ffmpeg_in_pyav(ref, dist, "ssim")
    assert len(ff_psnr) == len(ff_ssim) == ref_planes[0].shape[0] == 4
    for k in range(4):
        for ours, ff, keys in ((ours_psnr, ff_psnr, PSNR_KEYS), (ours_ssim, ff_ssim, SSIM_KEYS)):
            for key, meta in keys.items():
                assert _close(ours[key][k], ff[k][meta]), (pix_fmt, k, key, ours[key][k], ff[k][meta])
        assert _close(ssim_db(ours_ssim["all"])[k], ff_ssim[k]["lavfi.ssim.dB"])
    # the lossy encode really is lossy, at a sensible level
    assert np.all((ours_psnr["y"] > 20) & (ours_psnr["y"] < 60))
    assert np.all((ours_ssim["y"] > 0.5) & (ours_ssim["y"] < 1))


@needs_filters
def test_identical_planes_give_inf_psnr_and_ssim_one_like_ffmpeg(tmp_path):
    src = synthetic_planes(2, 64, 48, "yuv420p10le")
    ref = encode(tmp_path / "ref.mkv", src, "yuv420p10le", codec="ffv1")
    planes, bits = _reader_planes(ref)
    ours = psnr_yuv(planes, planes, bits)
    ff = _ffmpeg_in_pyav(ref, ref, "psnr")
    ff_ssim = _ffmpeg_in_pyav(ref, ref, "ssim")
    for k in range(2):
        for key in ("y", "u", "v", "avg"):
            assert ours[key][k] == math.inf and ff[k][PSNR_KEYS[key]] == "inf"
        assert ff_ssim[k]["lavfi.ssim.All"] == "1.000000" and ff_ssim[k]["lavfi.ssim.dB"] == "inf"
    ssim = ssim_ffmpeg(planes, planes, bits)
    assert all(np.all(ssim[key] == 1.0) for key in "yuv")  # each window's num == den exactly
    np.testing.assert_allclose(ssim["all"], 1.0, atol=1e-12)  # plane weights sum to 1 up to rounding, as FFmpeg's
    assert np.all(np.isinf(ssim_db(ssim["all"])))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg command installed (apt-get install ffmpeg)")
def test_psnr_ssim_equal_ffmpeg_command_10bit(tmp_path):
    ref, dist = _clips(tmp_path, "yuv420p10le", n=3)
    ref_planes, bits = _reader_planes(ref)
    dist_planes, _ = _reader_planes(dist)
    ours_psnr = psnr_yuv(ref_planes, dist_planes, bits)
    ours_ssim = ssim_ffmpeg(ref_planes, dist_planes, bits)
    for name, ours, keys in (("psnr", ours_psnr, PSNR_KEYS), ("ssim", ours_ssim, SSIM_KEYS)):
        out = tmp_path / f"{name}.txt"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(dist), "-i", str(ref), "-lavfi",
                        f"[0:v][1:v]{name},metadata=print:file={out}", "-f", "null", "-"], check=True, timeout=60)
        frames = [dict(line.split("=", 1) for line in block.strip().splitlines()[1:])
                  for block in out.read_text().split("frame:")[1:]]
        assert len(frames) == 3
        for k, meta in enumerate(frames):
            for key, name_ff in keys.items():
                assert _close(ours[key][k], meta[name_ff]), (name, k, key, ours[key][k], meta[name_ff])


def test_psnr_yuv_definition_numpy():
    """psnr_yuv against the definition written out here: weighted MSE, max 1023 for 10-bit."""
    rng = np.random.default_rng(1)
    ref = [rng.integers(0, 1024, size=(2, h, w), dtype=np.uint16) for h, w in ((8, 12), (4, 6), (4, 6))]
    dist = [np.clip(p.astype(np.int64) + rng.integers(-3, 4, size=p.shape), 0, 1023).astype(np.uint16) for p in ref]
    out = psnr_yuv(ref, dist, 10)
    mse = [((a.astype(float) - b.astype(float)) ** 2).mean(axis=(1, 2)) for a, b in zip(ref, dist, strict=True)]
    for name, m in zip("yuv", mse, strict=True):
        np.testing.assert_allclose(out[name], 10 * np.log10(1023.0**2 / m), rtol=1e-12)
    weighted = (96 * mse[0] + 24 * mse[1] + 24 * mse[2]) / 144
    np.testing.assert_allclose(out["avg"], 10 * np.log10(1023.0**2 / weighted), rtol=1e-12)
    assert not np.allclose(out["avg"], (out["y"] + out["u"] + out["v"]) / 3)  # not a mean of dB values


@pytest.mark.parametrize("bits", [8, 9, 10, 12, 15, 16])
def test_psnr_yuv_mse_exact_at_the_extremes_of_every_depth(bits):
    """The sum of squares is exact integer arithmetic at every depth (8-bit in int16, 9-15 bits through an int16
    view of uint16, 16 bits in int32): full-scale differences of both signs, checked against Python integers."""
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    shape = (2, 64, 96)
    ref = rng.choice(np.array([0, top, top // 2], dtype=dtype), size=shape)
    dist = rng.choice(np.array([top, 0, 1], dtype=dtype), size=shape)
    ref[0, 0, 0], dist[0, 0, 0] = 0, top  # -top and +top both present
    ref[0, 0, 1], dist[0, 0, 1] = top, 0
    out = psnr_yuv([ref], [dist], bits)
    for n in range(2):
        sse = sum((int(a) - int(b)) ** 2 for a, b in zip(ref[n].ravel().tolist(), dist[n].ravel().tolist(),
                                                          strict=True))
        assert out["mse_y"][n] == sse / (64 * 96)  # exact: the same float64 division of the same integer


@pytest.mark.parametrize(("bits", "width"), [(8, 66051), (8, 66052), (10, 2052), (10, 2053), (12, 128), (12, 129)])
def test_psnr_yuv_rows_of_full_scale_differences_at_the_narrow_sum_limits(bits, width):
    """A row's sum of squares is taken in uint32 (8-bit) or int32 (9-15 bits) only while it cannot overflow:
    rows of full-scale differences just inside and just past that width give the exact integer SSE."""
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    ref = np.zeros((1, 2, width), dtype=dtype)
    dist = np.full((1, 2, width), top, dtype=dtype)
    dist[0, 1, ::2] = 0
    ref[0, 1, ::2] = top  # the other sign
    out = psnr_yuv([ref], [dist], bits)
    assert out["mse_y"][0] == (2 * width * top * top) / (2 * width)  # every squared difference is top^2


def _ssim_ffmpeg_oracle(a: np.ndarray, b: np.ndarray, bits: int) -> float:
    """FFmpeg's vf_ssim.c for one plane, written out plainly: int64 4x4 sums by reshaping, 8x8 windows from 2x2
    of them, ssim_end1 in float32, windows summed in double (8-bit) or float32 per row (more bits)."""
    top = 255 if bits == 8 else (1 << bits) - 1
    c1 = int(0.01 * 0.01 * top * top * 64 + 0.5)
    c2 = int(0.03 * 0.03 * top * top * 64 * 63 + 0.5)
    bh, bw = a.shape[0] // 4, a.shape[1] // 4
    x = a[: bh * 4, : bw * 4].astype(np.int64).reshape(bh, 4, bw, 4)
    y = b[: bh * 4, : bw * 4].astype(np.int64).reshape(bh, 4, bw, 4)
    sums = [q.sum(axis=(1, 3)) for q in (x, y, x * x + y * y, x * y)]
    total = 0.0
    for i in range(bh - 1):
        row = np.float32(0)
        for j in range(bw - 1):
            s1, s2, ss, s12 = (int(q[i:i + 2, j:j + 2].sum()) for q in sums)
            var, cov = ss * 64 - s1 * s1 - s2 * s2, s12 * 64 - s1 * s2
            f32 = np.float32
            w = (f32(2 * s1 * s2 + c1) * f32(2 * cov + c2)) / (f32(s1 * s1 + s2 * s2 + c1) * f32(var + c2))
            if bits == 8:
                total += float(w)
            else:
                row = np.float32(row + w)
        total += float(row)
    return total / ((bh - 1) * (bw - 1))


@pytest.mark.parametrize("bits", [8, 10, 12, 13, 14, 16])
def test_ssim_ffmpeg_plane_equals_the_definition_at_full_scale(bits):
    """The int32 block sums (up to 13 bits) and int64 ones (above) stay exact at full-scale samples."""
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    a = rng.choice(np.array([0, top, top - 1], dtype=dtype), size=(2, 22, 30))
    b = rng.choice(np.array([top, 0, 1], dtype=dtype), size=(2, 22, 30))
    a[1, :8, :8] = b[1, :8, :8] = top  # a flat full-scale window: the largest sums of squares
    ours = ssim_ffmpeg_plane(a, b, bits)
    for n in range(2):
        assert ours[n] == pytest.approx(_ssim_ffmpeg_oracle(a[n], b[n], bits), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("bits", [8, 10, 13, 16])
def test_ssim_ffmpeg_plane_in_strips_equals_the_definition(monkeypatch, bits):
    """Block sums taken strip by strip (here 2 rows of blocks per strip, a last strip of 1, leftover pixels
    past the last multiple of 4) give the same value as the plain definition."""
    from lpipscli.metrics import yuv

    monkeypatch.setattr(yuv, "_STRIP_SAMPLES", 16 * 7 * 2)  # 7 blocks per row (30 px wide): 2 block rows a strip
    rng = np.random.default_rng(100 + bits)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    a = rng.integers(0, top + 1, size=(2, 23, 30)).astype(dtype)  # 5 rows of blocks, 3 pixel rows left over
    b = np.clip(a.astype(np.int64) + rng.integers(-40, 41, size=a.shape), 0, top).astype(dtype)
    b[1, 4:12] = top  # full-scale rows across a strip boundary
    ours = ssim_ffmpeg_plane(a, b, bits)
    for n in range(2):
        assert ours[n] == pytest.approx(_ssim_ffmpeg_oracle(a[n], b[n], bits), rel=1e-12, abs=1e-12)


def test_batched_equals_per_frame_and_shapes():
    frames = synthetic_planes(3, 40, 32, "yuv420p")
    noisy = synthetic_planes(3, 40, 32, "yuv420p", noise=0.05, seed=9)
    ref = [np.stack([f[k] for f in frames]) for k in range(3)]
    dist = [np.stack([f[k] for f in noisy]) for k in range(3)]
    batched_p, batched_s = psnr_yuv(ref, dist, 8), ssim_ffmpeg(ref, dist, 8)
    for n in range(3):
        single_p = psnr_yuv([p[n] for p in ref], [p[n] for p in dist], 8)
        single_s = ssim_ffmpeg([p[n] for p in ref], [p[n] for p in dist], 8)
        assert single_p["avg"].shape == (1,) and single_s["all"].shape == (1,)
        assert single_p["avg"][0] == batched_p["avg"][n]
        assert single_s["all"][0] == batched_s["all"][n]
    assert batched_p["y"].shape == (3,) and batched_p["y"].dtype == np.float64


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_columns_on_frame_lists_equal_the_stacked_functions(pix_fmt):
    """The engine's call (one plane tuple per pair, a reference shared by two pairs, CPU tensors) gives exactly
    the values of psnr_yuv / ssim_ffmpeg on stacked frames."""
    import torch

    from lpipscli.metrics.yuv import psnr_yuv_columns, ssim_ffmpeg_columns

    bits = 8 if pix_fmt == "yuv420p" else 10
    refs = synthetic_planes(2, 40, 36, pix_fmt)
    dists = synthetic_planes(3, 40, 36, pix_fmt, noise=0.05, seed=5)
    pair_refs = [refs[0], refs[0], refs[1]]
    stacked = [[np.stack([f[k] for f in frames]) for k in range(3)] for frames in (pair_refs, dists)]
    as_tensors = [tuple(torch.from_numpy(np.ascontiguousarray(p)) for p in f) for f in dists]
    p_cols, s_cols = psnr_yuv_columns(pair_refs, as_tensors, bits), ssim_ffmpeg_columns(pair_refs, dists, bits)
    p_ref, s_ref = psnr_yuv(*stacked, bits), ssim_ffmpeg(*stacked, bits)
    for name in ("y", "u", "v"):
        assert np.array_equal(p_cols[f"psnr_yuv_{name}"], p_ref[name])
        assert np.array_equal(s_cols[f"ssim_ffmpeg_{name}"], s_ref[name])
    assert np.array_equal(p_cols["psnr_yuv"], p_ref["avg"]) and np.array_equal(s_cols["ssim_ffmpeg"], s_ref["all"])
    assert p_cols["psnr_yuv"].shape == (3,) and p_cols["psnr_yuv"].dtype == np.float64
    with pytest.raises(MetricInputError, match="differ"):
        psnr_yuv_columns(pair_refs, [dists[0], dists[1], tuple(p[:-2] for p in dists[2])], bits)


def test_input_errors():
    a = np.zeros((1, 16, 16), np.uint8)
    with pytest.raises(MetricInputError, match="shapes differ"):
        psnr_yuv([a], [np.zeros((1, 16, 8), np.uint8)], 8)
    with pytest.raises(MetricInputError, match="integer"):
        psnr_yuv([a.astype(np.float32)], [a.astype(np.float32)], 8)
    with pytest.raises(MetricInputError, match="bit_depth"):
        psnr_yuv([a], [a], 7)
    with pytest.raises(MetricInputError, match="at least 8x8"):
        ssim_ffmpeg_plane(np.zeros((1, 7, 16), np.uint8), np.zeros((1, 7, 16), np.uint8), 8)


def test_vmaf_unavailable_is_usage_error_naming_what_to_install():
    if vmaf_available():
        pytest.skip("this PyAV has libvmaf (tests/test_vmaf.py compares it with FFmpeg)")
    from lpipscli.errors import UsageError

    with pytest.raises(UsageError) as info:
        require_vmaf()
    message = str(info.value)
    assert "Python >= 3.12" in message and "av>=19" in message and "libvmaf" in message


@pytest.mark.parametrize(("dtype", "bits", "width"), [
    (np.uint8, 8, 1920),  # uint8 |a - b|, uint16 squares, uint32 rows
    (np.uint16, 10, 1920), (np.uint16, 15, 7), (np.uint16, 16, 33),  # int16 view; >15 bits: the wide path
    (np.int32, 8, 1920), (np.int32, 10, 1920), (np.int32, 10, 2100), (np.int32, 15, 7),  # int32 rows / int64
    (np.int32, 16, 33),
])
def test_integer_sse_is_the_exact_sum_of_squares_in_every_branch(dtype, bits, width):
    """Each narrow-type branch (uint8; uint16 <= 15 bits; int32 <= 15 bits with int32 or int64 row sums)
    gives the sum of squared differences computed in Python integers, extremes included."""
    rng = np.random.default_rng(bits * 1000 + width)
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, (2, 3, width)).astype(dtype)
    b = rng.integers(0, top + 1, (2, 3, width)).astype(dtype)
    a[0, 0, :4], b[0, 0, :4] = top, 0  # the largest differences, both signs
    a[1, 1, :4], b[1, 1, :4] = 0, top
    want = [sum((int(x) - int(y)) ** 2 for x, y in zip(a[n].ravel(), b[n].ravel(), strict=True)) for n in range(2)]
    assert integer_sse(a, b, bits).tolist() == want
