"""VMAF (issue 13): libvmaf through its C API, frame by frame, against FFmpeg's own ``libvmaf`` filter.

The reference is FFmpeg's ``libvmaf`` filter in PyAV's bundled FFmpeg reading the two files itself
(``movie`` sources: the equivalent of ``ffmpeg -i dist -i ref -lavfi libvmaf=log_fmt=json``), so no
lpipscli code is on the reference side. The filter's JSON log prints each frame's score with ``%.6f``:
ours must be within half a unit of that last digit (5e-7). These tests run where libvmaf is installed
(PyAV >= 19 wheels, Python >= 3.12: CI's second leg); elsewhere the usage-error tests run instead.
"""

from __future__ import annotations

import csv
import gc
import io
import json

import numpy as np
import pytest
from _video_clips import decode_planes, encode, synthetic_planes
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.metrics.lavfi import filter_available
from lpipscli.metrics.vmaf import VmafSequences, VmafStream, vmaf_available

av = pytest.importorskip("av")
pytestmark = pytest.mark.skipif(not (vmaf_available() and filter_available("libvmaf")),
                                reason="no libvmaf here (PyAV >= 19 on Python >= 3.12 bundles it)")

#: FFmpeg's JSON log has 6 decimals
LOG_ROUNDING = 5e-7


def _clips(tmp_path, pix_fmt="yuv420p", n=8, width=96, height=64, crf="38", name="dist"):
    src = synthetic_planes(n, width, height, pix_fmt, noise=0.02)
    ref = tmp_path / "ref.mkv"
    if not ref.exists():
        encode(ref, src, pix_fmt, codec="ffv1")
    dist = encode(tmp_path / f"{name}.mkv", src, pix_fmt, codec="libx264",
                  options={"crf": crf, "preset": "ultrafast"})
    return ref, dist


def ffmpeg_vmaf(ref, dist, log) -> np.ndarray:
    """Per-frame VMAF from FFmpeg's libvmaf filter reading both files (no lpipscli code)."""
    graph = av.filter.Graph()
    main = graph.add("movie", str(dist))
    reference = graph.add("movie", str(ref))
    vmaf = graph.add("libvmaf", f"log_path={log}:log_fmt=json")
    sink = graph.add("buffersink")
    main.link_to(vmaf, 0, 0)
    reference.link_to(vmaf, 0, 1)
    vmaf.link_to(sink)
    graph.configure()
    while True:
        try:
            sink.pull()
        except (av.BlockingIOError, av.EOFError):
            break
    del graph, main, reference, vmaf, sink
    gc.collect()  # the filter writes its log when freed
    return np.array([f["metrics"]["vmaf"] for f in json.loads(log.read_text())["frames"]])


@pytest.mark.parametrize("pix_fmt,bits", [("yuv420p", 8), ("yuv420p10le", 10), ("yuv444p", 8)])
def test_stream_equals_ffmpeg_filter_frame_by_frame(tmp_path, pix_fmt, bits):
    ref, dist = _clips(tmp_path, pix_fmt)
    theirs = ffmpeg_vmaf(ref, dist, tmp_path / "log.json")
    ours = {}
    with VmafStream() as stream:
        for k, (a, b) in enumerate(zip(decode_planes(ref), decode_planes(dist), strict=True)):
            ready = stream.push(a, b, bits)
            # frame 0 has no motion; frame k > 0 needs frame k + 1: after frame k >= 2, frame k - 1 is scored
            assert [i for i, _ in ready] == {0: [0], 1: []}.get(k, [k - 1])
            ours.update(ready)
        ours.update(stream.flush())
    assert sorted(ours) == list(range(len(theirs))) and len(theirs) == 8
    values = np.array([ours[i] for i in sorted(ours)])
    np.testing.assert_allclose(values, theirs, rtol=0, atol=LOG_ROUNDING)
    assert values.std() > 0.1  # the clip is not trivially constant


def test_filter_path_equals_ffmpeg_reading_the_files(tmp_path):
    """vmaf_planes (our decoded planes pushed through FFmpeg's filter) equals the filter reading the files."""
    from lpipscli.metrics.vmaf import vmaf_planes

    ref, dist = _clips(tmp_path, n=3, width=64, height=48)
    ours = vmaf_planes(decode_planes(ref), decode_planes(dist), "yuv420p")
    np.testing.assert_allclose(ours, ffmpeg_vmaf(ref, dist, tmp_path / "log.json"), rtol=0, atol=LOG_ROUNDING)


def test_streamed_motion_equals_libvmafs_own_flush(tmp_path):
    """Scores streamed one frame late equal libvmaf's own end-of-stream values bit for bit."""
    ref, dist = _clips(tmp_path, n=6)
    pairs = list(zip(decode_planes(ref), decode_planes(dist), strict=True))
    streamed, flushed = [], []
    with VmafStream() as a, VmafStream() as b:
        b._stream_motion = False  # libvmaf computes motion2 itself, at the flush
        for x, y in pairs:
            streamed += a.push(x, y, 8)
            assert not b.push(x, y, 8) or len(flushed) == 0
        streamed += a.flush()
        flushed += b.flush()
    assert [i for i, _ in flushed] == list(range(6))
    assert [v for _, v in streamed] == [v for _, v in flushed]


def test_sequences_keep_streams_apart_and_report_failures():
    rng = np.random.default_rng(0)
    frames = [tuple(rng.integers(0, 256, s, dtype=np.uint8) for s in [(64, 64), (32, 32), (32, 32)])
              for _ in range(4)]
    noisy = [tuple(np.clip(p.astype(int) + rng.integers(-20, 21, p.shape), 0, 255).astype(np.uint8) for p in f)
             for f in frames]
    seq = VmafSequences()
    tickets = {}
    for k in range(4):  # two streams interleaved, as the engine pushes them
        tickets[("a", k)] = seq.push("a", frames[k], noisy[k], 8)
        tickets[("b", k)] = seq.push("b", frames[k], frames[k], 8)
    tickets[("c", 0)] = seq.push("c", frames[0], (frames[0][0][:32],) * 3, 8)  # wrong plane sizes
    got = dict(seq.collect())
    got.update(seq.finish())
    assert sorted(got) == sorted(tickets.values())
    alone = VmafStream()
    solo = [v for f, g in zip(frames, noisy, strict=True) for _, v in alone.push(f, g, 8)] + \
        [v for _, v in alone.flush()]
    assert [got[tickets[("a", k)]] for k in range(4)] == solo
    assert all(got[tickets[("b", k)]] > 95 for k in range(4))  # identical frames: VMAF near its top
    assert isinstance(got[tickets[("c", 0)]], str) and "differ in size" in got[tickets[("c", 0)]]


def test_unknown_model_is_a_usage_error():
    from lpipscli.errors import UsageError

    with pytest.raises(UsageError, match="no built-in model 'vmaf_v9'"):
        VmafStream(model="vmaf_v9")


def _compare(*args):
    return CliRunner().invoke(app, ["compare", *(str(a) for a in args)], env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_compare_rows_carry_vmaf_equal_to_ffmpeg(tmp_path):
    """Two encodes, batches that cut streams mid-way (3 pairs), vmaf beside psnr_yuv in the same rows."""
    ref, dist = _clips(tmp_path, "yuv420p10le", n=7)
    _, dist2 = _clips(tmp_path, "yuv420p10le", n=7, crf="28", name="dist2")
    result = _compare(ref, dist, dist2, "-m", "psnr_yuv,vmaf", "--batch-size", "3", "-o", "-",
                      "--summary-json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["dist_root"], int(r["frame"])) for r in rows] == [(str(d), k) for k in range(7) for d in (dist, dist2)]
    assert all(r["status"] == "ok" and r["psnr_yuv"] for r in rows)
    for d in (dist, dist2):
        theirs = ffmpeg_vmaf(ref, d, tmp_path / f"{d.stem}.json")
        ours = np.array([float(r["vmaf"]) for r in rows if r["dist_root"] == str(d)])
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=LOG_ROUNDING)
    summary = json.loads((tmp_path / "s.json").read_text())
    stats = summary["per_dist_root"][str(dist)]["metrics"]["vmaf"]
    values = [float(r["vmaf"]) for r in rows if r["dist_root"] == str(dist)]
    assert stats["hmean"] == pytest.approx(len(values) / sum(1 / v for v in values), rel=1e-12)
    assert "hmean" in result.stderr  # the summary table shows the VMAF pooling


def test_compare_vmaf_on_images_is_a_usage_error(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 32)).save(tmp_path / name)
    result = _compare(tmp_path / "a.png", tmp_path / "b.png", "-m", "vmaf", "-o", "-")
    assert result.exit_code == 2 and "YUV planes" in result.stderr
