"""`lpips compare` on video decoded by PyAV, end to end through the command line (issue 13).

Clips are made here with PyAV (``_video_clips``: known planes written straight into frames, encoded by
FFmpeg), raw ``.yuv`` / ``.y4m`` files are written byte by byte. The oracles are independent of lpipscli:
PSNR written in NumPy on the stream's own sample values, FFmpeg's ``psnr`` / ``ssim`` filters (run by
PyAV's FFmpeg on frames PyAV decodes itself), and the frame lists the test built the clips from.
"""

from __future__ import annotations

import csv
import io
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from _video_clips import encode, synthetic_planes
from test_yuv_metrics import PSNR_KEYS, SSIM_KEYS, _close, _ffmpeg_in_pyav, needs_filters
from typer.testing import CliRunner

from lpipscli.cli import app

av = pytest.importorskip("av")

W, H = 64, 48
TOLERANCES = {
    # our PSNR (float64 on exact 10-bit values / 1023) vs NumPy's float64 formula on the 10-bit values
    "psnr_db": 1e-9,
}


def invoke(*args):
    return CliRunner().invoke(app, ["compare", *(str(a) for a in args)], env={"COLUMNS": "200", "NO_COLOR": "1"})


def run_ok(*args) -> tuple[list[str], list[dict], str]:
    result = invoke(*args, "-o", "-", "-q")
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    reader = csv.DictReader(io.StringIO(result.stdout))
    return list(reader.fieldnames or []), list(reader), result.stderr


def numpy_psnr(ref: np.ndarray, dist: np.ndarray, peak: float) -> float:
    mse = np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def raw_bytes(frames) -> bytes:
    return b"".join(p.astype(p.dtype.newbyteorder("<")).tobytes() for planes in frames for p in planes)


def write_y4m(path: Path, frames, chroma: str) -> Path:
    height, width = frames[0][0].shape
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C{chroma}\n".encode())
        for planes in frames:
            f.write(b"FRAME\n" + b"".join(p.astype(p.dtype.newbyteorder("<")).tobytes() for p in planes))
    return path


# --------------------------------------------------------------------------------------------------
# 10-bit precision


def test_lossless_10bit_ffv1_vs_its_raw_source_is_inf(tmp_path):
    src = synthetic_planes(3, W, H, "yuv420p10le", noise=0.02)
    raw = tmp_path / "src.yuv"
    raw.write_bytes(raw_bytes(src))
    ffv1 = encode(tmp_path / "enc.mkv", src, "yuv420p10le", codec="ffv1")
    # the raw file has no colour tags: the same matrix and range for both sides
    header, rows, _ = run_ok(raw, ffv1, "-m", "psnr,ssim,psnr_yuv", "--raw-size", f"{W}x{H}",
                             "--raw-format", "yuv420p10le", "--raw-fps", "25", "--colorspace", "bt709",
                             "--color-range", "limited")
    assert [int(r["frame"]) for r in rows] == [0, 1, 2]
    for r in rows:
        assert float(r["psnr"]) == math.inf and float(r["ssim"]) == 1.0
        assert all(float(r[c]) == math.inf for c in ("psnr_yuv_y", "psnr_yuv_u", "psnr_yuv_v", "psnr_yuv"))


def test_changed_low_bits_give_the_10bit_psnr(tmp_path):
    rng = np.random.default_rng(3)
    src = [(rng.integers(64, 940, size=(H, W)).astype(np.uint16),) for _ in range(3)]
    # flip bit 0 of a random third of the samples: invisible at 8 bits (>> 2), visible at 10 bits
    dist = [(p ^ (rng.random(p.shape) < 1 / 3).astype(np.uint16),) for (p,) in src]
    assert all(np.array_equal(a >> 2, b >> 2) for (a,), (b,) in zip(src, dist, strict=True))
    ref_clip = encode(tmp_path / "ref.mkv", src, "gray10le", codec="ffv1")
    dist_clip = encode(tmp_path / "dist.mkv", dist, "gray10le", codec="ffv1")
    _, rows, _ = run_ok(ref_clip, dist_clip, "-m", "psnr")
    for r, (a,), (b,) in zip(rows, src, dist, strict=True):
        want = numpy_psnr(a, b, 1023.0)
        assert math.isfinite(want) and want > 60  # one-LSB errors at 10 bits
        assert abs(float(r["psnr"]) - want) <= TOLERANCES["psnr_db"], (r["psnr"], want)
    # and on YUV planes: psnr_yuv_y is the same NumPy formula on the Y plane
    yuv = synthetic_planes(2, W, H, "yuv420p10le")
    yuv_dist = [(y ^ np.uint16(1), u, v) for y, u, v in yuv]
    ref_yuv = encode(tmp_path / "ref_yuv.mkv", yuv, "yuv420p10le", codec="ffv1")
    dist_yuv = encode(tmp_path / "dist_yuv.mkv", yuv_dist, "yuv420p10le", codec="ffv1")
    _, rows, _ = run_ok(ref_yuv, dist_yuv, "-m", "psnr_yuv")
    for r in rows:
        assert abs(float(r["psnr_yuv_y"]) - 20 * math.log10(1023)) <= TOLERANCES["psnr_db"]
        assert float(r["psnr_yuv_u"]) == math.inf and float(r["psnr_yuv_v"]) == math.inf


# --------------------------------------------------------------------------------------------------
# FFmpeg-equal columns


@needs_filters
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_plane_columns_equal_ffmpeg_filters_frame_by_frame(tmp_path, pix_fmt):
    src = synthetic_planes(4, 70, 54, pix_fmt, noise=0.01)
    ref = encode(tmp_path / "ref.mkv", src, pix_fmt, codec="ffv1")
    dist = encode(tmp_path / "dist.mkv", src, pix_fmt, codec="libx264", options={"crf": "35", "preset": "ultrafast"})
    header, rows, _ = run_ok(ref, dist, "-m", "psnr_yuv,ssim_ffmpeg,psnr")
    assert header[8:17] == ["psnr_yuv_y", "psnr_yuv_u", "psnr_yuv_v", "psnr_yuv", "ssim_ffmpeg_y", "ssim_ffmpeg_u",
                            "ssim_ffmpeg_v", "ssim_ffmpeg", "psnr"]
    ff_psnr = _ffmpeg_in_pyav(ref, dist, "psnr")
    ff_ssim = _ffmpeg_in_pyav(ref, dist, "ssim")
    assert len(rows) == len(ff_psnr) == len(ff_ssim) == 4
    columns = {**{f"psnr_yuv_{k}": PSNR_KEYS[k] for k in "yuv"}, "psnr_yuv": PSNR_KEYS["avg"]}
    ssim_columns = {**{f"ssim_ffmpeg_{k}": SSIM_KEYS[k] for k in "yuv"}, "ssim_ffmpeg": SSIM_KEYS["all"]}
    for r, fp, fs in zip(rows, ff_psnr, ff_ssim, strict=True):
        for column, key in columns.items():
            assert _close(float(r[column]), fp[key]), (pix_fmt, r["frame"], column, r[column], fp[key])
        for column, key in ssim_columns.items():
            assert _close(float(r[column]), fs[key]), (pix_fmt, r["frame"], column, r[column], fs[key])
        assert 20 < float(r["psnr_yuv"]) < 60


@needs_filters
def test_plane_columns_of_two_encodes_in_shared_batches_equal_ffmpeg(tmp_path):
    """Two encodes in one run, batches of 6 pairs: a batch holds three reference frames, each shared by
    both encodes (the plane runner pairs each distorted frame with its own reference frame)."""
    src = synthetic_planes(5, 70, 54, "yuv420p", noise=0.01)
    ref = encode(tmp_path / "ref.mkv", src, "yuv420p", codec="ffv1")
    encodes = [encode(tmp_path / f"d{crf}.mkv", src, "yuv420p", codec="libx264",
                      options={"crf": str(crf), "preset": "ultrafast"}) for crf in (30, 45)]
    _, rows, _ = run_ok(ref, *encodes, "-m", "psnr_yuv,ssim_ffmpeg", "--batch-size", "6")
    assert len(rows) == 10
    for dist in encodes:
        mine = sorted((r for r in rows if Path(r["dist"]) == dist), key=lambda r: int(r["frame"]))
        ff_psnr = _ffmpeg_in_pyav(ref, dist, "psnr")
        ff_ssim = _ffmpeg_in_pyav(ref, dist, "ssim")
        assert len(mine) == len(ff_psnr) == 5
        for r, fp, fs in zip(mine, ff_psnr, ff_ssim, strict=True):
            assert _close(float(r["psnr_yuv"]), fp[PSNR_KEYS["avg"]]), (dist.name, r["frame"])
            assert _close(float(r["psnr_yuv_v"]), fp[PSNR_KEYS["v"]]), (dist.name, r["frame"])
            assert _close(float(r["ssim_ffmpeg"]), fs[SSIM_KEYS["all"]]), (dist.name, r["frame"])
    means = [np.mean([float(r["psnr_yuv"]) for r in rows if Path(r["dist"]) == d]) for d in encodes]
    assert means[0] > means[1] + 1  # crf 45 is visibly worse: the encodes were not mixed up


@needs_filters
def test_plane_metrics_alone_convert_nothing_to_rgb(tmp_path, monkeypatch):
    """A run of plane metrics only skips the YUV->RGB conversion and scores as FFmpeg's filters do."""
    from lpipscli.io import av_video

    src = synthetic_planes(3, 70, 54, "yuv420p10le", noise=0.01)
    ref = encode(tmp_path / "ref.mkv", src, "yuv420p10le", codec="ffv1")
    dist = encode(tmp_path / "dist.mkv", src, "yuv420p10le", codec="libx264",
                  options={"crf": "35", "preset": "ultrafast"})

    def no_rgb(*args, **kwargs):
        raise AssertionError("converted to RGB")

    monkeypatch.setattr(av_video, "yuv_to_rgb", no_rgb)
    _, rows, _ = run_ok(ref, dist, "-m", "psnr_yuv,ssim_ffmpeg", "--workers", "0")
    ff_psnr = _ffmpeg_in_pyav(ref, dist, "psnr")
    ff_ssim = _ffmpeg_in_pyav(ref, dist, "ssim")
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for r, fp, fs in zip(rows, ff_psnr, ff_ssim, strict=True):
        assert _close(float(r["psnr_yuv"]), fp[PSNR_KEYS["avg"]]) and _close(float(r["psnr_yuv_u"]), fp[PSNR_KEYS["u"]])
        assert _close(float(r["ssim_ffmpeg"]), fs[SSIM_KEYS["all"]])
    failed = invoke(ref, dist, "-m", "psnr_yuv,psnr", "--workers", "0", "-o", "-", "-q")
    assert failed.exit_code != 0  # a pixel metric needs RGB: the patched conversion is reached


def test_colour_assumptions_are_noted_only_when_rgb_is_made(tmp_path):
    """An untagged stream's assumed matrix/range matter for RGB metrics only; plane metrics read the planes."""
    src = synthetic_planes(2, W, H, "yuv420p")
    ref = encode(tmp_path / "ref.mkv", src, "yuv420p", codec="ffv1")  # no colour tags
    planes_only = invoke(ref, ref, "-m", "psnr_yuv", "-o", "-", "-q")
    with_rgb = invoke(ref, ref, "-m", "psnr_yuv,psnr", "-o", "-", "-q")
    assert planes_only.exit_code == 0 and with_rgb.exit_code == 0, (planes_only.stderr, with_rgb.stderr)
    text = " ".join(with_rgb.stderr.split())
    assert "no colour matrix in the stream; assuming BT.601" in text and "assuming limited (TV) range" in text
    assert "colour" not in planes_only.stderr


def test_plane_metrics_are_refused_for_images(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / name)
    result = invoke(tmp_path / "a.png", tmp_path / "b.png", "-m", "psnr_yuv", "-o", "-")
    assert result.exit_code != 0 and "YUV planes" in result.stderr and "image inputs" in result.stderr


# --------------------------------------------------------------------------------------------------
# raw and y4m


@pytest.mark.parametrize("pix_fmt, chroma", [("yuv420p", "420jpeg"), ("yuv422p10le", "422p10")])
def test_yuv_and_its_y4m_twin_give_identical_rows(tmp_path, pix_fmt, chroma):
    src = synthetic_planes(3, W, H, pix_fmt, noise=0.01)
    raw = tmp_path / "src.yuv"
    raw.write_bytes(raw_bytes(src))
    y4m = write_y4m(tmp_path / "src.y4m", src, chroma)
    dist = encode(tmp_path / "dist.mkv", synthetic_planes(3, W, H, pix_fmt, noise=0.03, seed=1), pix_fmt,
                  codec="ffv1")
    metrics = ("-m", "psnr,ssim,psnr_yuv")
    h1, rows_raw, _ = run_ok(raw, dist, *metrics, "--raw-size", f"{W}x{H}", "--raw-format", pix_fmt,
                             "--raw-fps", "25")
    h2, rows_y4m, _ = run_ok(y4m, dist, *metrics)
    assert h1 == h2 and len(rows_raw) == 3
    for a, b in zip(rows_raw, rows_y4m, strict=True):
        assert {k: v for k, v in a.items() if k != "ref"} == {k: v for k, v in b.items() if k != "ref"}
        assert math.isfinite(float(a["psnr"]))


def test_raw_yuv_without_its_size_is_a_usage_error(tmp_path):
    raw = tmp_path / "src.yuv"
    raw.write_bytes(b"\x80" * (W * H * 3 // 2))
    result = invoke(raw, raw, "-m", "psnr", "-o", "-")
    assert result.exit_code != 0 and "--raw-size" in result.stderr


# --------------------------------------------------------------------------------------------------
# alignment


N_ALIGN = 12


@pytest.fixture(scope="module")
def align_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    ref = synthetic_planes(N_ALIGN, W, H, "yuv420p")
    ids = {
        "clean": list(range(N_ALIGN)),
        "dropped": [i for i in range(N_ALIGN) if i != 5],
        "repeated": list(range(6)) + [5] + list(range(6, N_ALIGN)),
        "offset": list(range(3, N_ALIGN)),
    }
    paths = {"ref": encode(root / "ref.mkv", ref, "yuv420p", codec="ffv1")}
    for name, frames in ids.items():
        paths[name] = encode(root / f"{name}.mkv", [ref[i] for i in frames], "yuv420p", codec="ffv1")
    return paths, ids


@pytest.mark.parametrize("case", ["clean", "dropped", "repeated", "offset"])
def test_align_auto_repairs_dropped_repeated_and_shifted_frames(align_clips, case):
    paths, ids = align_clips
    _, rows, stderr = run_ok(paths["ref"], paths[case], "-m", "psnr_yuv,psnr", "--align", "auto")
    shown = ids[case]  # distorted frame j shows reference frame shown[j]
    want = {}
    for j, i in enumerate(shown):
        want.setdefault(i, j)  # a repeated frame: the first of the identical ones
    assert [(int(r["frame"]), int(r["dist_frame"])) for r in rows] == sorted(want.items())
    assert all(float(r["psnr_yuv"]) == math.inf and float(r["psnr"]) == math.inf for r in rows)
    if case == "clean":
        assert "dropped" not in stderr and "repeats" not in stderr and "shift" not in stderr
    elif case == "dropped":
        assert "reference frame 5 has no distorted counterpart (dropped)" in " ".join(stderr.split())
    elif case == "repeated":
        assert "distorted frame 6 repeats reference frame 5" in " ".join(stderr.split())
    # without --align the dropped and offset clips do not pair frame by frame
    if case in ("dropped", "offset"):
        assert invoke(paths["ref"], paths[case], "-m", "psnr", "-o", "-", "-q").exit_code != 0


def test_align_auto_is_in_the_settings_and_pairs_in_the_provenance(align_clips, tmp_path):
    paths, _ = align_clips
    out = tmp_path / "rows.jsonl"
    result = invoke(paths["ref"], paths["dropped"], "-m", "psnr", "--align", "auto", "-o", out, "-q",
                    "--summary-json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    prov = json.loads((tmp_path / "s.json").read_text())["provenance"]
    assert prov["settings"]["alignment"]["align"] == "auto"
    pairs = prov["video"]["pairs"][0]["pairs"]
    assert [5, 5] not in pairs and [6, 5] in pairs
    assert prov["video"]["ref"]["colorspace"] == "bt601" and prov["video"]["ref"]["color_range"] == "limited"


# --------------------------------------------------------------------------------------------------
# presentation time


def test_pair_by_time_on_a_variable_frame_rate_clip(tmp_path):
    ref_planes = synthetic_planes(8, W, H, "yuv420p")
    tb = Fraction(1, 1000)
    ref = encode(tmp_path / "ref.mkv", ref_planes, "yuv420p", codec="ffv1", pts=[40 * k for k in range(8)],
                 time_base=tb)
    shown = [0, 1, 3, 4, 7]  # a VFR encode that kept 5 of the 8 frames, at their own times
    dist = encode(tmp_path / "vfr.mkv", [ref_planes[i] for i in shown], "yuv420p", codec="ffv1",
                  pts=[40 * i for i in shown], time_base=tb)
    _, rows, _ = run_ok(ref, dist, "-m", "psnr_yuv", "--pair-by", "time")
    # the distorted frame on screen at each reference frame's time
    want = [(0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 3), (7, 4)]
    assert [(int(r["frame"]), int(r["dist_frame"])) for r in rows] == want
    for r in rows:
        same = shown[int(r["dist_frame"])] == int(r["frame"])
        assert (float(r["psnr_yuv"]) == math.inf) == same
        assert float(r["time"]) == pytest.approx(0.04 * int(r["frame"]), abs=1e-6)


# --------------------------------------------------------------------------------------------------
# resume


def test_resume_with_another_colorspace_is_refused(align_clips, tmp_path):
    paths, _ = align_clips
    out = tmp_path / "rows.csv"
    first = invoke(paths["ref"], paths["clean"], "-m", "psnr", "--max-frames", "4", "-o", out, "-q")
    assert first.exit_code == 0, first.stderr
    again = invoke(paths["ref"], paths["clean"], "-m", "psnr", "--colorspace", "bt709", "-o", out, "--resume", "-q")
    assert again.exit_code != 0
    assert "colorspace" in again.stderr and "bt709" in again.stderr
    same = invoke(paths["ref"], paths["clean"], "-m", "psnr", "-o", out, "--resume", "-q")
    assert same.exit_code == 0, same.stderr
    with open(out) as f:
        assert len(list(csv.DictReader(f))) == N_ALIGN


def test_resume_does_not_decode_the_frames_it_skips(align_clips):
    from lpipscli.config import RunConfig, VideoOptions
    from lpipscli.sources.base import PlanContext
    from lpipscli.sources.video import VideoSource

    paths, _ = align_clips
    config = RunConfig(ref=paths["ref"], dists=(paths["clean"],), metrics=("psnr",), video=VideoOptions(step=2))
    ctx = PlanContext(min_sides={"psnr": 1}, batch_size=4, max_batch_pixels=1 << 20, max_pixels=None)
    label = str(paths["clean"])
    done = {(label, str(paths["ref"]), label, k) for k in (0, 2, 4, 8)}  # 8 is not part of the leading run
    plan = VideoSource(config).plan(ctx, done=done)
    assert plan.n_pairs == 6 - 4
    video_plan = plan.dataset.plan
    assert list(video_plan.ref_indices) == [6, 8, 10] and list(video_plan.dists[0].ref_indices) == [6, 8, 10]
    items = [i for i in plan.dataset if "chunk" in i]
    assert [p.frame for i in items for p in i["chunk"].pairs] == [6, 10]


def test_shortest_reports_where_a_dropped_frame_breaks_the_scores(tmp_path):
    src = synthetic_planes(24, W, H, "yuv420p")
    ref = encode(tmp_path / "ref.mkv", src, "yuv420p", codec="ffv1")
    dropped = encode(tmp_path / "dropped.mkv", src[:10] + src[11:], "yuv420p", codec="ffv1")
    result = invoke(ref, dropped, "-m", "psnr", "--frames", "shortest", "-o", tmp_path / "rows.csv",
                    "--summary-json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    warnings = json.loads((tmp_path / "s.json").read_text())["warnings"]
    notes = [w for w in warnings if "--align auto" in w]
    assert len(notes) == 1 and "at frames 10-" in notes[0] and "--align auto" in " ".join(result.stderr.split())
    clean = invoke(ref, ref, "-m", "psnr", "--frames", "shortest", "-o", tmp_path / "clean.csv",
                   "--summary-json", tmp_path / "c.json")
    assert clean.exit_code == 0
    assert not [w for w in json.loads((tmp_path / "c.json").read_text()).get("warnings", []) if "--align" in w]


def test_vmaf_without_libvmaf_is_a_usage_error_at_parse_time(tmp_path):
    from lpipscli.metrics.vmaf import vmaf_available

    if vmaf_available():
        pytest.skip("this PyAV has libvmaf")
    result = invoke(tmp_path / "missing.mkv", tmp_path / "missing2.mkv", "-m", "psnr,vmaf", "-o", "-")
    assert result.exit_code == 2, (result.exit_code, result.stderr)  # before any file is looked at
    assert "libvmaf" in result.stderr and "av>=19" in result.stderr and "missing" not in result.stderr


def _decoded_counts(monkeypatch) -> list[tuple[str, int]]:
    from lpipscli.io.av_video import AVVideoReader

    counts: list[tuple[str, int]] = []
    real_close = AVVideoReader.close

    def close(self):
        if getattr(self, "_container", None) is not None:
            counts.append((self.path.name, self.decoded))
        real_close(self)

    monkeypatch.setattr(AVVideoReader, "close", close)
    return counts


def test_start_seeks_instead_of_decoding_the_skipped_frames(tmp_path, monkeypatch):
    from lpipscli.io.video import iter_frame_groups, plan_video

    src = synthetic_planes(60, 32, 32, "yuv420p")
    clip = encode(tmp_path / "gop.mp4", src, "yuv420p", codec="libx264",
                  options={"g": "10", "keyint_min": "10", "sc_threshold": "0", "bf": "0", "preset": "ultrafast"})
    plan = plan_video(clip, [clip], start=45, max_frames=3)
    counts = _decoded_counts(monkeypatch)
    groups = list(iter_frame_groups(plan, planes=True))
    assert [g.index for g in groups] == [45, 46, 47]
    ref_y = [g.ref_planes[0].astype(float) for g in groups]
    # x264 is lossy: each decoded frame is closest to its own source frame (the seek landed right)
    for g, y in zip(groups, ref_y, strict=True):
        errors = [np.abs(y - src[k][0]).mean() for k in range(40, 50)]
        assert 40 + int(np.argmin(errors)) == g.index
    readers = [n for name, n in counts if name == "gop.mp4"]
    assert len(readers) == 2 and all(n <= 10 for n in readers), counts  # from keyframe 40, not from frame 0
    assert not [w for w in plan.warnings if "cannot seek" in w]


def test_start_on_a_stream_that_cannot_seek_is_reported(tmp_path):
    from lpipscli.io.video import iter_frame_groups, plan_video

    src = synthetic_planes(50, 32, 32, "yuv420p")
    pts = [40 * k + (10 if k % 3 == 0 and k else 0) for k in range(50)]  # jittered: variable frame rate
    clip = encode(tmp_path / "vfr.mkv", src, "yuv420p", codec="ffv1", pts=pts, time_base=Fraction(1, 1000))
    plan = plan_video(clip, [clip], start=40, max_frames=2)
    groups = list(iter_frame_groups(plan, planes=True))
    assert [g.index for g in groups] == [40, 41]
    assert all(np.array_equal(g.ref_planes[k], src[g.index][k]) for g in groups for k in range(3))  # lossless
    assert any("cannot seek" in w for w in plan.warnings), plan.warnings


def test_8bit_against_10bit_scores_rgb_at_each_own_scale_and_refuses_plane_metrics(tmp_path):
    # a gray clip: its RGB is the gray plane repeated, so NumPy's PSNR on [0, 1] values is the oracle
    rng = np.random.default_rng(5)
    ten = [(rng.integers(0, 1024, size=(H, W)).astype(np.uint16),) for _ in range(2)]
    eight = [((p >> 2).astype(np.uint8),) for (p,) in ten]
    ref = encode(tmp_path / "ref10.mkv", ten, "gray10le", codec="ffv1")
    dist = encode(tmp_path / "dist8.mkv", eight, "gray", codec="ffv1")
    result = invoke(ref, dist, "-m", "psnr,psnr_yuv", "-o", "-", "-q", "--on-error", "skip")
    assert result.exit_code == 4, result.stderr  # pairs scored only in part
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    for r, (a,), (b,) in zip(rows, ten, eight, strict=True):
        want = numpy_psnr(a / 1023.0, b / 255.0, 1.0)
        assert abs(float(r["psnr"]) - want) <= TOLERANCES["psnr_db"]
        assert r["status"] == "partial" and "psnr_yuv: bit depths differ" in r["error"]
        assert r["psnr_yuv"] == r["psnr_yuv_y"] == ""  # not scored


@pytest.mark.parametrize("args, needle", [
    (("--pair-by", "time", "--align", "auto"), "give one"),
    (("--align", "auto", "--offset", "2"), "--offset applies to index pairing"),
    (("--colorspace", "bt2020"), None),  # accepted on video
])
def test_pairing_option_conflicts(align_clips, args, needle):
    paths, _ = align_clips
    result = invoke(paths["ref"], paths["clean"], "-m", "psnr", "-o", "-", "-q", *args)
    if needle is None:
        assert result.exit_code == 0, result.stderr
    else:
        assert result.exit_code == 2 and needle in result.stderr, (result.exit_code, result.stderr)


def test_video_decoding_options_are_refused_on_images(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / name)
    for option in (("--colorspace", "bt709"), ("--align", "auto"), ("--raw-size", "20x20")):
        result = invoke(tmp_path / "a.png", tmp_path / "b.png", "-m", "psnr", "-o", "-", *option)
        assert result.exit_code == 2 and option[0] in result.stderr and "video" in result.stderr


def test_colorspace_override_changes_rgb_scores_not_plane_scores(tmp_path):
    src = synthetic_planes(2, W, H, "yuv444p", noise=0.01)
    noisy = synthetic_planes(2, W, H, "yuv444p", noise=0.04, seed=9)
    ref = encode(tmp_path / "ref.mkv", src, "yuv444p", codec="ffv1", colorspace="bt709", color_range="limited")
    dist = encode(tmp_path / "dist.mkv", noisy, "yuv444p", codec="ffv1", colorspace="bt709", color_range="limited")
    runs = {cs: run_ok(ref, dist, "-m", "psnr,psnr_yuv", "--colorspace", cs)[1] for cs in ("auto", "bt709", "bt2020")}
    for a, b, c in zip(runs["auto"], runs["bt709"], runs["bt2020"], strict=True):
        assert a["psnr"] == b["psnr"]  # the stream says BT.709
        assert abs(float(a["psnr"]) - float(c["psnr"])) > 1e-3  # another matrix, other RGB
        assert a["psnr_yuv"] == b["psnr_yuv"] == c["psnr_yuv"]  # planes do not depend on the matrix
