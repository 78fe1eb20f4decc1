"""PyAV / raw / Y4M readers: full precision, colour by the stream's own matrix, timestamps, seeking.

Clips are made here with PyAV (FFV1 lossless, x264 lossless ``qp=0`` and lossy), tiny (64x48, a few
frames). Expected planes are the ones written; expected RGB comes from a NumPy conversion written in
this file (the inverse of the ITU RGB->YPbPr matrix, in float64).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from _video_clips import decode_planes, encode, synthetic_planes

from lpipscli.errors import DecodeError, UsageError
from lpipscli.io.av_video import RawSpec, open_video, probe, read_frames, yuv_to_rgb
from lpipscli.metrics.yuv import psnr_yuv

av = pytest.importorskip("av")

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}  # ITU-R BT.601-7 / BT.709-6


def reference_rgb(planes, bits, matrix, full_range=False):
    """Independent conversion: invert RGB->(Y, Pb, Pr), nearest-neighbour chroma, float64."""
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    forward = np.array([[kr, kg, kb],
                        [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                        [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
    inverse = np.linalg.inv(forward)
    y, u, v = (p.astype(np.float64) for p in planes)
    h, w = y.shape
    fy, fx = -(-h // u.shape[0]), -(-w // u.shape[1])  # odd sizes: the last chroma sample covers what is left
    u = u.repeat(fy, axis=0).repeat(fx, axis=1)[:h, :w]
    v = v.repeat(fy, axis=0).repeat(fx, axis=1)[:h, :w]
    top = 2**bits - 1
    if full_range:
        ypbpr = np.stack([y / top, (u - 2 ** (bits - 1)) / top, (v - 2 ** (bits - 1)) / top], axis=-1)
    else:
        s = 2 ** (bits - 8)
        ypbpr = np.stack([(y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)], axis=-1)
    rgb = ypbpr @ inverse.T
    return np.clip(np.rint(rgb * top), 0, top)


def assert_rgb_close(ours, expected):
    diff = np.abs(ours.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1, diff.max()  # float32 in the module vs float64 here: a .5 may round apart
    assert (diff == 0).mean() >= 0.99


# ---------------------------------------------------------------------------------------------- precision


def test_ffv1_10bit_is_lossless_and_scores_inf(tmp_path):
    src = synthetic_planes(5, 64, 48, "yuv420p10le")
    path = encode(tmp_path / "a.mkv", src, "yuv420p10le", codec="ffv1")
    with open_video(path) as reader:
        frames = list(reader)
        assert reader.info.bit_depth == 10 and reader.info.pix_fmt == "yuv420p10le"
    assert len(frames) == 5
    for frame, planes in zip(frames, src, strict=True):
        assert frame.planes[0].dtype == np.uint16 and frame.planes[0].max() > 255  # not shifted to 8 bits
        for ours, written in zip(frame.planes, planes, strict=True):
            np.testing.assert_array_equal(ours, written)
    ref = [np.stack([p[k] for p in src]) for k in range(3)]
    dist = [np.stack([f.planes[k] for f in frames]) for k in range(3)]
    out = psnr_yuv(ref, dist, 10)
    assert all(np.all(np.isinf(out[key])) for key in ("y", "u", "v", "avg"))


def test_10bit_low_bits_change_is_seen_that_8bit_cannot(tmp_path):
    src = synthetic_planes(3, 64, 48, "yuv420p10le")
    changed = [tuple(p ^ np.uint16(1) for p in planes) for planes in src]  # flip bit 0 of every sample
    a = encode(tmp_path / "a.mkv", src, "yuv420p10le", codec="ffv1")
    b = encode(tmp_path / "b.mkv", changed, "yuv420p10le", codec="ffv1")
    with open_video(a) as ra, open_video(b) as rb:
        fa, fb = list(ra), list(rb)
    ref = [np.stack([f.planes[k] for f in fa]) for k in range(3)]
    dist = [np.stack([f.planes[k] for f in fb]) for k in range(3)]
    ten = psnr_yuv(ref, dist, 10)
    # every sample differs by exactly 1 of 1023: MSE 1, PSNR = 20 log10(1023)
    np.testing.assert_allclose(ten["avg"], 20 * np.log10(1023), rtol=1e-12)
    eight = psnr_yuv([p >> 2 for p in ref], [p >> 2 for p in dist], 8)  # what an 8-bit path would see
    assert np.all(np.isinf(eight["avg"]))
    rgb_a, rgb_b = fa[0].rgb, fb[0].rgb
    assert rgb_a.dtype == np.uint16 and rgb_a.max() <= 1023
    assert not np.array_equal(rgb_a, rgb_b)


# ---------------------------------------------------------------------------------------------- colour


@pytest.mark.parametrize(("tag", "matrix"), [("bt709", "bt709"), ("smpte170m", "bt601"), ("bt470bg", "bt601")])
def test_tagged_matrix_is_used(tmp_path, tag, matrix):
    src = synthetic_planes(2, 64, 48, "yuv420p")
    path = encode(tmp_path / "c.mp4", src, "yuv420p", codec="libx264", options={"qp": "0"}, colorspace=tag,
                  color_range="limited")
    with open_video(path) as reader:
        assert reader.colorspace == matrix and reader.color_range == "limited"
        assert reader.warnings == [] and reader.info.metadata_missing == ()
        frame = next(reader)
    for ours, written in zip(frame.planes, src[0], strict=True):
        np.testing.assert_array_equal(ours, written)  # x264 qp=0 is lossless
    assert frame.rgb.dtype == np.uint8
    assert_rgb_close(frame.rgb, reference_rgb(src[0], 8, matrix))
    other = "bt601" if matrix == "bt709" else "bt709"
    assert np.abs(frame.rgb.astype(int) - reference_rgb(src[0], 8, other)).max() > 3  # the tag matters


def test_10bit_rgb_by_matrix_at_stream_scale():
    src = synthetic_planes(1, 64, 48, "yuv420p10le")[0]
    for matrix in ("bt601", "bt709"):
        ours = yuv_to_rgb(src, bit_depth=10, colorspace=matrix, color_range="limited")
        assert ours.dtype == np.uint16
        assert_rgb_close(ours, reference_rgb(src, 10, matrix))


@pytest.mark.parametrize(("width", "height", "sx", "sy"), [(64, 48, 2, 2), (53, 37, 2, 2), (53, 37, 2, 1),
                                                        (50, 35, 1, 1), (21, 33, 1, 2)])
@pytest.mark.parametrize("bits", [8, 10, 16])
def test_rgb_of_every_subsampling_and_odd_size(width, height, sx, sy, bits):
    """Chroma replicated to odd sizes (4:2:0, 4:2:2, 4:4:4 and 4:4:0), every range, against the float64 oracle."""
    rng = np.random.default_rng(width * bits + sy)
    dtype = np.uint8 if bits == 8 else np.uint16
    scale = 1 << (bits - 8)
    ch, cw = -(-height // sy), -(-width // sx)
    planes = [rng.integers(16 * scale, 235 * scale + 1, size=(height, width)).astype(dtype),
              rng.integers(16 * scale, 240 * scale + 1, size=(ch, cw)).astype(dtype),
              rng.integers(16 * scale, 240 * scale + 1, size=(ch, cw)).astype(dtype)]
    for full in (False, True):
        ours = yuv_to_rgb(planes, bit_depth=bits, colorspace="bt709", color_range="full" if full else "limited")
        assert ours.shape == (height, width, 3) and ours.dtype == dtype
        assert_rgb_close(ours, reference_rgb(planes, bits, "bt709", full_range=full))


def test_full_range_tag(tmp_path):
    src = synthetic_planes(1, 64, 48, "yuv420p")
    path = encode(tmp_path / "f.mkv", src, "yuv420p", codec="ffv1", colorspace="bt709", color_range="full")
    with open_video(path) as reader:
        assert (reader.colorspace, reader.color_range) == ("bt709", "full")
        assert_rgb_close(next(reader).rgb, reference_rgb(src[0], 8, "bt709", full_range=True))


def test_missing_metadata_warns_and_override_wins(tmp_path):
    src = synthetic_planes(1, 64, 48, "yuv420p")
    path = encode(tmp_path / "n.mkv", src, "yuv420p", codec="ffv1")
    with open_video(path) as reader:
        assert reader.info.metadata_missing == ("colorspace", "color_range")
        assert (reader.colorspace, reader.color_range) == ("bt601", "limited")
        assert any("assuming BT.601" in w and "--colorspace" in w for w in reader.warnings)
        assert any("assuming limited" in w for w in reader.warnings)
    with open_video(path, colorspace="bt709", color_range="limited") as reader:
        assert reader.warnings == [] and reader.colorspace == "bt709"
        assert_rgb_close(next(reader).rgb, reference_rgb(src[0], 8, "bt709"))
    with pytest.raises(UsageError, match="--colorspace"):
        open_video(path, colorspace="srgb")


# ---------------------------------------------------------------------------------------------- raw / y4m


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le"])
def test_raw_yuv_and_y4m_twin_identical(tmp_path, pix_fmt):
    src = synthetic_planes(4, 64, 48, pix_fmt)
    raw = tmp_path / "clip.yuv"
    with open(raw, "wb") as file:
        for planes in src:
            for plane in planes:
                file.write(plane.astype(plane.dtype.newbyteorder("<")).tobytes())
    y4m = tmp_path / "clip.y4m"
    with av.open(str(y4m), "w", format="yuv4mpegpipe", options={"strict": "-1"}) as container:
        stream = container.add_stream("wrapped_avframe", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        from _video_clips import make_frame

        for k, planes in enumerate(src):
            frame = make_frame(planes, pix_fmt)
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with open_video(raw, raw=RawSpec.parse("64x48", pix_fmt, "25")) as r1, open_video(y4m) as r2:
        assert r1.info.frame_count == r2.info.frame_count == 4
        assert r1.info.pix_fmt == r2.info.pix_fmt == pix_fmt and r2.info.fps == 25
        raw_frames, y4m_frames = list(r1), list(r2)
    by_ffmpeg = decode_planes(y4m)  # FFmpeg's own Y4M demuxer, for an independent check of the parser
    for a, b, c, written in zip(raw_frames, y4m_frames, by_ffmpeg, src, strict=True):
        assert a.index == b.index and a.pts_time == b.pts_time
        for pa, pb, pc, pw in zip(a.planes, b.planes, c, written, strict=True):
            np.testing.assert_array_equal(pa, pw)
            np.testing.assert_array_equal(pb, pw)
            np.testing.assert_array_equal(pc, pw)
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_raw_needs_spec_and_whole_frames(tmp_path):
    raw = tmp_path / "x.yuv"
    raw.write_bytes(bytes(64 * 48 * 3 // 2 * 2 + 5))
    with pytest.raises(UsageError, match="--raw-size"):
        open_video(raw)
    with pytest.raises(DecodeError, match="whole number"):
        open_video(raw, raw=RawSpec(64, 48, "yuv420p", 25))
    with pytest.raises(UsageError, match="WIDTHxHEIGHT"):
        RawSpec.parse("64by48")


# ---------------------------------------------------------------------------------------------- time


def test_variable_frame_rate_timestamps(tmp_path):
    src = synthetic_planes(5, 64, 48, "yuv420p")
    pts = [0, 40, 50, 130, 170]
    path = encode(tmp_path / "vfr.mkv", src, "yuv420p", codec="ffv1", pts=pts, time_base=Fraction(1, 1000))
    with open_video(path) as reader:
        times = [f.pts_time for f in reader]
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-9)
    with open_video(path) as reader:
        frame = reader.read(3)  # a seek that must land on the right frame whatever the method
    assert frame.index == 3 and frame.pts_time == pytest.approx(0.130)
    np.testing.assert_array_equal(frame.planes[0], src[3][0])


def test_seek_skips_decoding(tmp_path):
    src = synthetic_planes(60, 64, 48, "yuv420p")
    path = encode(tmp_path / "s.mp4", src, "yuv420p", codec="libx264",
                  options={"qp": "0", "g": "10", "keyint_min": "10", "sc_threshold": "0", "bf": "0"})
    with open_video(path) as reader:
        report = reader.seek_to(45)
        frame = next(reader)
        assert report.method == "seek" and report.decoded <= 9  # from the keyframe at 40, not from 0
        assert reader.decoded <= 12  # the first frame (probe) + the GOP up to 45
        assert frame.index == 45 and frame.pts_time == pytest.approx(45 / 25)
        np.testing.assert_array_equal(frame.planes[0], src[45][0])
        back = reader.read(5)  # backwards
        np.testing.assert_array_equal(back.planes[0], src[5][0])
        assert next(reader).index == 6
        short = reader.seek_to(9)  # a short forward jump decodes through frames 7 and 8
        assert (short.method, short.decoded) == ("sequential", 2) and next(reader).index == 9
    warnings: list[str] = []
    picked = list(read_frames(path, range(5, 100, 20), warnings=warnings))
    assert [f.index for f in picked] == [5, 25, 45]  # stops quietly at the end of the source
    for frame in picked:
        np.testing.assert_array_equal(frame.planes[1], src[frame.index][1])
    assert any("assuming BT.601" in w for w in warnings)
    raw = tmp_path / "s.yuv"
    with open(raw, "wb") as file:
        for planes in src:
            for plane in planes:
                file.write(plane.tobytes())
    with open_video(raw, raw=RawSpec(64, 48, "yuv420p", 25)) as reader:
        report = reader.seek_to(50)
        frame = next(reader)
        assert report.method == "offset" and reader.decoded == 1  # nothing read but frame 50
        np.testing.assert_array_equal(frame.planes[2], src[50][2])


def test_probe(tmp_path):
    src = synthetic_planes(6, 64, 48, "yuv420p10le")
    path = encode(tmp_path / "p.mp4", src, "yuv420p10le", codec="libx264", options={"crf": "30"},
                  colorspace="bt709", color_range="limited")
    info = probe(path)
    assert (info.width, info.height, info.bit_depth, info.codec) == (64, 48, 10, "h264")
    assert info.frame_count == 6 and info.frame_count_exact and info.fps == 25
    assert info.colorspace == "bt709" and info.color_range == "limited" and info.max_value == 1023
    with pytest.raises(DecodeError, match="no such file"):
        probe(tmp_path / "missing.mkv")
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DecodeError, match="cannot open as a video"):
        probe(bad)


def test_unsupported_matrix_keeps_planes_and_refuses_rgb(tmp_path):
    src = synthetic_planes(1, 64, 48, "yuv420p")
    path = encode(tmp_path / "m.mkv", src, "yuv420p", codec="ffv1", colorspace="smpte240m", color_range="limited")
    with open_video(path) as reader:
        assert reader.info.colorspace == "smpte240m" and reader.colorspace is None
        assert any("smpte240m" in w and "--colorspace" in w for w in reader.warnings)
        frame = next(reader)
    np.testing.assert_array_equal(frame.planes[0], src[0][0])
    with pytest.raises(UsageError, match="--colorspace"):
        _ = frame.rgb
    with open_video(path, colorspace="bt709") as reader:
        assert_rgb_close(next(reader).rgb, reference_rgb(src[0], 8, "bt709"))
