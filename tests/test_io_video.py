"""Video sources, alignment plans and concurrent frame decoding (lpipscli.io.video).

Every clip is written in ``tmp_path`` with OpenCV's VideoWriter, using the first codec of
``CODEC_CANDIDATES`` that this OpenCV build writes and reads back losslessly (or nearly, for MJPG).
Each frame encodes its own index (red = 8 * index + 4), so alignment is checked on content, not only
on the indices the module reports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from _helpers import read_video_rgb

import lpipscli.io.video as video
from lpipscli.errors import DecodeError, PairingError, UsageError
from lpipscli.io.video import (
    VIDEO_EXTENSIONS,
    SourceInfo,
    frame_sequence_files,
    is_frame_sequence,
    is_video,
    iter_frame_groups,
    natural_sort_key,
    plan_video,
    probe_source,
)

W, H, N, FPS = 64, 48, 24, 25.0

# Largest absolute difference (0..255) allowed between a written and a decoded pixel, by codec class.
# near_lossless: MJPG at quality 100 keeps 4:2:0 chroma, about 14 on these frames; time in seconds.
TOLERANCES = {"lossless": 0, "near_lossless": 16, "time_s": 1e-6}

CODEC_CANDIDATES = [("FFV1", ".mkv"), ("FFV1", ".avi"), ("HFYU", ".avi"), ("png ", ".avi"), ("MJPG", ".avi")]


def make_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """RGB frame whose red channel is 8 * i + 4 (so i survives mild compression), plus a smooth pattern."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 8 * i + 4
    frame[..., 1] = 250 - 8 * i
    frame[..., 2] = np.round(110 + 60 * np.sin(xx / 5.0) * np.cos(yy / 4.0)).astype(np.uint8)
    return frame


def frame_id(rgb: np.ndarray) -> int:
    """The index make_frame encoded (read from the red channel's mean)."""
    return int(round((float(rgb[..., 0].mean()) - 4) / 8))


def open_writer(path: Path, fourcc: str, fps: float, size) -> cv2.VideoWriter:
    if fourcc == "MJPG":  # OpenCV's own MJPEG writer honours the quality setting; FFmpeg's ignores it
        return cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size,
                               [cv2.VIDEOWRITER_PROP_QUALITY, 100])
    return cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)


def write_clip(path: Path, ids, fourcc: str, *, size=(W, H), fps: float = FPS) -> Path:
    writer = open_writer(path, fourcc, fps, size)
    assert writer.isOpened(), f"VideoWriter refused {fourcc!r} for {path.name}"
    for i in ids:
        writer.write(np.ascontiguousarray(make_frame(i, *size)[..., ::-1]))  # VideoWriter takes BGR
    writer.release()
    return path


read_all_cv2 = read_video_rgb  # every frame as RGB, read with OpenCV directly


@dataclass(frozen=True)
class Codec:
    fourcc: str
    ext: str
    tol: int

    def clip(self, folder: Path, name: str, ids, **kwargs) -> Path:
        return write_clip(folder / f"{name}{self.ext}", list(ids), self.fourcc, **kwargs)


@pytest.fixture(scope="session")
def codec(tmp_path_factory) -> Codec:
    folder = tmp_path_factory.mktemp("codec_probe")
    tried = []
    for fourcc, ext in CODEC_CANDIDATES:
        path = folder / f"probe_{fourcc.strip()}{ext}"
        writer = open_writer(path, fourcc, FPS, (W, H))
        if not writer.isOpened():
            tried.append(f"{fourcc.strip()}{ext}: writer not opened")
            continue
        for i in range(3):
            writer.write(np.ascontiguousarray(make_frame(i)[..., ::-1]))
        writer.release()
        decoded = read_all_cv2(path)
        if len(decoded) != 3:
            tried.append(f"{fourcc.strip()}{ext}: read back {len(decoded)} of 3 frames")
            continue
        err = max(int(np.abs(d.astype(int) - make_frame(i).astype(int)).max()) for i, d in enumerate(decoded))
        if err == 0:
            return Codec(fourcc, ext, TOLERANCES["lossless"])
        if err <= TOLERANCES["near_lossless"]:
            return Codec(fourcc, ext, TOLERANCES["near_lossless"])
        tried.append(f"{fourcc.strip()}{ext}: max error {err}")
    pytest.skip("no lossless or near-lossless VideoWriter codec in this OpenCV build: " + "; ".join(tried))


def write_frames(folder: Path, ids, names=None, *, size=(W, H)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        name = names[k] if names else f"{k + 1}.png"  # unpadded 1..n: natural order differs from text order
        assert cv2.imwrite(str(folder / name), np.ascontiguousarray(make_frame(i, *size)[..., ::-1]))
    return folder


def video_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lpipscli-video")]


def expected_pairs(n_ref, n_dist, *, start=0, step=1, max_frames=None, offset=0):
    """(ref, dist) pairs straight from the definition: dist frame i + offset is compared with ref frame i."""
    selected = []
    i = start
    while i < n_ref and (max_frames is None or len(selected) < max_frames):
        selected.append(i)
        i += step
    return [(i, i + offset) for i in selected if 0 <= i + offset < n_dist]


# --------------------------------------------------------------------------------------------------
# Names, frame sequences


def test_video_extensions_are_case_insensitive():
    wanted = {"mp4", "mkv", "webm", "avi", "mov", "y4m", "m4v", "mpg", "mpeg", "ts", "yuv"}
    assert {e.lstrip(".") for e in VIDEO_EXTENSIONS} == wanted
    for ext in wanted:
        assert is_video(f"clip.{ext}") and is_video(f"dir/CLIP.{ext.upper()}")
    assert not is_video("frame.png") and not is_video("mp4") and not is_video(Path("a.mp4.txt"))


def test_natural_sort_key():
    names = ["10.png", "2.png", "1.png", "frame_10.png", "frame_9.png", "Frame_11.png"]
    assert sorted(names, key=natural_sort_key) == [
        "1.png", "2.png", "10.png", "frame_9.png", "frame_10.png", "Frame_11.png"
    ]


def test_frame_sequence_accepts_padded_and_unpadded_names(tmp_path):
    padded = write_frames(tmp_path / "padded", range(12), [f"{k:05d}.png" for k in range(12)])
    (padded / "notes.txt").write_text("not an image: ignored")
    (padded / "empty_subfolder").mkdir()
    assert is_frame_sequence(padded)
    assert [p.name for p in frame_sequence_files(padded)] == [f"{k:05d}.png" for k in range(12)]
    unpadded = write_frames(tmp_path / "unpadded", range(12))
    assert [p.name for p in frame_sequence_files(unpadded)] == [f"{k}.png" for k in range(1, 13)]


@pytest.mark.parametrize("case, reason", [
    ("subfolder", "subfolder"),
    ("no_number", "no frame number"),
    ("mixed", "mixed extensions"),
    ("empty", "no image files"),
    ("same_number", "same frame number"),
])
def test_frame_sequence_refusals_say_why(tmp_path, case, reason):
    folder = tmp_path / case
    if case == "subfolder":
        write_frames(folder, range(3))
        write_frames(folder / "more", range(2))
    elif case == "no_number":
        write_frames(folder, range(3), ["a.png", "b1.png", "c2.png"])
    elif case == "mixed":
        write_frames(folder, range(3), ["1.png", "2.png", "3.bmp"])
    elif case == "empty":
        folder.mkdir()
        (folder / "readme.txt").write_text("x")
    else:
        write_frames(folder, range(3), ["1.png", "01.png", "2.png"])
    assert not is_frame_sequence(folder)
    with pytest.raises(PairingError, match=reason):
        frame_sequence_files(folder)
    with pytest.raises(PairingError, match=reason):
        probe_source(folder)


# --------------------------------------------------------------------------------------------------
# Probing and decoding


def test_probe_video(codec, tmp_path):
    info = probe_source(codec.clip(tmp_path, "ref", range(N)))
    assert (info.kind, info.width, info.height, info.frame_count) == ("video", W, H, N)
    assert info.fps == pytest.approx(FPS)
    assert info.codec and info.channels == 3 and info.bit_depth == 8


def test_decoded_frames_equal_written_frames(codec, tmp_path):
    clip = codec.clip(tmp_path, "ref", range(N))
    plan = plan_video(clip, [clip])
    groups = list(iter_frame_groups(plan))
    assert [g.index for g in groups] == list(range(N))
    for g in groups:
        assert g.ref.dtype == np.uint8 and g.ref.shape == (H, W, 3)
        assert g.ref.transpose(2, 0, 1).flags.c_contiguous  # channel-planar memory: the tensor needs no copy
        error = np.abs(g.ref.astype(int) - make_frame(g.index).astype(int)).max()
        assert int(error) <= codec.tol  # also checks the RGB channel order
        assert np.array_equal(g.dists[0], g.ref)
        assert g.time == pytest.approx(g.index / FPS, abs=TOLERANCES["time_s"])
        assert g.dist_indices == [g.index] and g.errors == [None]
    assert plan.warnings == [] and plan.ref_actual_frame_count is None


@pytest.mark.parametrize("offset, start, step, max_frames", [
    (0, 0, 1, None), (2, 0, 1, None), (-3, 0, 1, None), (1, 5, 3, 4), (-2, 1, 4, None), (0, 3, 2, 5),
])
def test_alignment_offset_start_step_max_frames(codec, tmp_path, offset, start, step, max_frames):
    ref = codec.clip(tmp_path, "ref", range(N))
    # offset > 0: the dist has extra leading frames; offset < 0: it lacks the first ones. Either way its
    # frame i + offset shows reference frame i, and D - offset == R.
    dist_ids = [31] * offset + list(range(N)) if offset >= 0 else list(range(-offset, N))
    dist = codec.clip(tmp_path, "dist", dist_ids)
    plan = plan_video(ref, [dist], start=start, step=step, max_frames=max_frames, offset=offset)
    want = expected_pairs(N, len(dist_ids), start=start, step=step, max_frames=max_frames, offset=offset)
    assert list(plan.dists[0].pairs()) == want
    groups = list(iter_frame_groups(plan, queue_size=2))
    assert [(g.index, g.dist_indices[0]) for g in groups] == want
    for g in groups:
        assert frame_id(g.ref) == g.index
        assert frame_id(g.dists[0]) == g.index  # content: the dist frame shows the same reference frame


@pytest.mark.parametrize("seek_works", [True, False])
def test_seeking_gives_the_same_frames_as_sequential_reading(codec, tmp_path, monkeypatch, seek_works):
    # reworded for PyAV (the seeking moved to lpipscli.io.av_video.AVVideoReader.seek_to)
    from lpipscli.io.av_video import AVVideoReader

    ref = codec.clip(tmp_path, "ref", range(N))
    dist = codec.clip(tmp_path, "dist", [31] + list(range(N)))
    plan = plan_video(ref, [dist], start=5, step=6, offset=1)
    sequential = [(g.index, g.time, g.ref, g.dists[0]) for g in iter_frame_groups(plan)]
    seeks = []
    real_try_seek = AVVideoReader._try_seek

    def try_seek(self, index):
        seeks.append(index)
        return real_try_seek(self, index) if seek_works else "refused by the test"

    monkeypatch.setattr(AVVideoReader, "_try_seek", try_seek)
    monkeypatch.setattr(video, "SEEK_MIN_GAP", 2)  # every jump of 2+ frames now seeks
    plan = plan_video(ref, [dist], start=5, step=6, offset=1)
    seeked = [(g.index, g.time, g.ref, g.dists[0]) for g in iter_frame_groups(plan)]
    assert [s[0] for s in seeked] == [5, 11, 17, 23]
    # both sources seek every jump; after a failed seek a source decodes forward from then on, and says so
    assert sorted(seeks) == (sorted([5, 11, 17, 23, 6, 12, 18, 24]) if seek_works else [5, 6])
    assert any("cannot seek" in w for w in plan.warnings) == (not seek_works)
    for (i, t, r, d), (i2, t2, r2, d2) in zip(sequential, seeked, strict=True):
        assert i == i2 and t2 == pytest.approx(i / FPS, abs=TOLERANCES["time_s"]) and t == t2
        assert np.array_equal(r, r2) and np.array_equal(d, d2) and frame_id(d2) == i


def test_plan_is_ranges_and_selects_reference_frames():
    two_hours = 2 * 3600 * 60
    ref = SourceInfo(Path("ref.mp4"), "video", 1920, 1080, 60.0, two_hours, "h264")
    dist = SourceInfo(Path("enc.mp4"), "video", 1920, 1080, 60.0, two_hours, "h264")
    plan = plan_video(ref, [dist])  # SourceInfo in: nothing is opened
    assert isinstance(plan.ref_indices, range) and isinstance(plan.dists[0].ref_indices, range)
    assert plan.n_groups == two_hours == plan.n_pairs
    plan = plan_video(ref, [dist], start=100, max_frames=500, step=2, offset=1, frames="shortest")
    want = expected_pairs(two_hours, two_hours, start=100, step=2, max_frames=500, offset=1)
    assert list(plan.dists[0].pairs()) == want
    assert plan.ref_indices[0] == 100 and plan.ref_indices[-1] == 1098 and len(plan.ref_indices) == 500


# --------------------------------------------------------------------------------------------------
# Alignment errors and warnings


def test_dropped_frame_is_a_count_mismatch_unless_shortest(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    dropped_ids = [i for i in range(N) if i != 10]
    dist = codec.clip(tmp_path, "dropped", dropped_ids)
    with pytest.raises(PairingError, match=r"frame counts differ") as err:
        plan_video(ref, [dist])
    assert f"has {N} frames" in str(err.value) and f"has {N - 1}" in str(err.value)

    plan = plan_video(ref, [dist], frames="shortest")
    groups = list(iter_frame_groups(plan))
    assert plan.n_pairs == len(groups) == min(N, len(dropped_ids))
    # frames pair by index: from frame 10 on, the dist shows the next reference frame
    assert [frame_id(g.dists[0]) for g in groups] == dropped_ids


def test_shortest_scores_each_dist_over_its_own_overlap(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    full = codec.clip(tmp_path, "full", range(N))
    short = codec.clip(tmp_path, "short", range(N - 4))
    plan = plan_video(ref, [full, short], frames="shortest")
    assert [len(d) for d in plan.dists] == [N, N - 4]
    groups = list(iter_frame_groups(plan))
    assert len(groups) == N
    for g in groups:
        assert frame_id(g.dists[0]) == g.index
        if g.index < N - 4:
            assert frame_id(g.dists[1]) == g.index and g.dist_indices[1] == g.index
        else:
            assert g.dists[1] is None and g.dist_indices[1] is None and g.errors[1] is None


def test_resolution_mismatch_names_both_sizes(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    small = codec.clip(tmp_path, "small", range(N), size=(32, 24))
    with pytest.raises(PairingError, match=r"64x48.*32x24"):
        plan_video(ref, [small])
    plan = plan_video(ref, [small], resize="dist-to-ref")
    assert plan.dists[0].needs_resize
    first = next(iter(iter_frame_groups(plan)))
    assert first.ref.shape == (H, W, 3) and first.dists[0].shape == (24, 32, 3)  # not resized here


def test_frame_rate_difference_is_a_warning(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    slow = codec.clip(tmp_path, "slow", range(N), fps=10.0)
    plan = plan_video(ref, [slow])
    assert len(plan.warnings) == 1 and "25" in plan.warnings[0] and "10" in plan.warnings[0]


@pytest.mark.parametrize("kwargs, error", [
    ({"step": 0}, UsageError), ({"start": -1}, UsageError), ({"max_frames": 0}, UsageError),
    ({"frames": "longest"}, UsageError), ({"resize": "both"}, UsageError), ({"start": N}, UsageError),
    ({"offset": N, "frames": "shortest"}, PairingError),
])
def test_invalid_settings(kwargs, error):
    ref = SourceInfo(Path("ref.mp4"), "video", W, H, FPS, N, "FFV1")
    with pytest.raises(error):
        plan_video(ref, [ref], **kwargs)


# --------------------------------------------------------------------------------------------------
# Frame folders


def test_frame_folder_against_video_pairs_by_index(codec, tmp_path):
    clip = codec.clip(tmp_path, "ref", range(N))
    folder = write_frames(tmp_path / "frames", range(N))  # 1.png .. 24.png: frame k is file k + 1
    info = probe_source(folder)
    assert (info.kind, info.frame_count, info.fps, info.width, info.height) == ("frames", N, None, W, H)

    groups = list(iter_frame_groups(plan_video(clip, [folder])))
    assert len(groups) == N
    for g in groups:
        assert np.array_equal(g.dists[0], make_frame(g.index))  # PNG is lossless
        assert g.time == pytest.approx(g.index / FPS, abs=TOLERANCES["time_s"])

    groups = list(iter_frame_groups(plan_video(folder, [clip])))
    for g in groups:
        assert g.time is None and np.array_equal(g.ref, make_frame(g.index))
        assert int(np.abs(g.dists[0].astype(int) - g.ref.astype(int)).max()) <= codec.tol


def test_frame_folders_pair_by_position_and_gaps_are_reported(tmp_path):
    ref = write_frames(tmp_path / "ref", range(6), [f"ref_{k:04d}.png" for k in range(1, 7)])
    dist = write_frames(tmp_path / "dist", [0, 1, 2, 4, 5], ["out1.png", "out2.png", "out3.png", "out5.png",
                                                             "out6.png"])
    with pytest.raises(PairingError, match="6 frames.*5"):
        plan_video(ref, [dist])
    plan = plan_video(ref, [dist], frames="shortest")
    assert any("out3.png is followed by out5.png" in w for w in plan.warnings)
    assert [frame_id(g.dists[0]) for g in iter_frame_groups(plan)] == [0, 1, 2, 4, 5]


def test_frame_folder_16bit_and_gray_are_kept(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (H, W), dtype=np.uint16) for _ in range(3)]
    for k, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{k:03d}.png"), f)
    info = probe_source(folder)
    assert (info.bit_depth, info.channels) == (16, 1)
    groups = list(iter_frame_groups(plan_video(folder, [folder])))
    for g, f in zip(groups, frames, strict=True):
        assert g.ref.dtype == np.uint16 and np.array_equal(g.ref[..., 0], f)


# --------------------------------------------------------------------------------------------------
# Broken inputs, early ends, threads


def test_unreadable_videos_raise_decode_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), make_frame(0))
    cases = [(empty, "empty"), (garbage, "cannot open|no decodable"), (image, "image file"),
             (tmp_path / "missing.mp4", "no such")]
    for path, cause in cases:
        with pytest.raises(DecodeError, match=cause) as err:
            probe_source(path)
        assert err.value.path == str(path)
    with pytest.raises(DecodeError):
        plan_video(garbage, [garbage])


def _truncated(codec, tmp_path, name) -> tuple[Path, int]:
    """A clip whose container still says N frames but whose data ends early, and its real frame count."""
    full = codec.clip(tmp_path, f"{name}_full", range(N))
    data = full.read_bytes()
    cut = tmp_path / f"{name}{codec.ext}"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    real = len(read_all_cv2(cut))
    if probe_source(cut).frame_count != N or not 0 < real < N:
        pytest.skip(f"a truncated {codec.fourcc}{codec.ext} clip does not still report {N} frames")
    return cut, real


def test_dist_ending_early_gives_error_entries(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    cut, real = _truncated(codec, tmp_path, "dist")
    plan = plan_video(ref, [cut])
    groups = list(iter_frame_groups(plan))
    assert len(groups) == N  # the reference goes on
    for g in groups:
        if g.index < real:
            assert g.dists[0] is not None and g.errors == [None]
        else:
            assert g.dists[0] is None and g.dist_indices == [g.index]
            assert f"dist ended after {real} frames" in g.errors[0] and f"reference has {N}" in g.errors[0]
    assert plan.dists[0].actual_frame_count == real
    assert any("ended after" in w for w in plan.warnings)


def test_reference_ending_early_ends_iteration(codec, tmp_path):
    cut, real = _truncated(codec, tmp_path, "ref")
    dist = codec.clip(tmp_path, "dist", range(N))
    baseline = threading.active_count()
    plan = plan_video(cut, [dist])
    groups = list(iter_frame_groups(plan))
    assert [g.index for g in groups] == list(range(real))
    assert plan.ref_actual_frame_count == real
    assert threading.active_count() == baseline and not video_threads()


def test_closing_early_joins_threads_and_releases_sources(codec, tmp_path):
    ref = codec.clip(tmp_path, "ref", range(N))
    dists = [codec.clip(tmp_path, f"d{k}", range(N)) for k in range(2)]
    plan = plan_video(ref, dists)
    baseline = threading.active_count()

    stream = iter_frame_groups(plan, queue_size=1)
    assert threading.active_count() == baseline  # nothing starts before the first next()
    first = next(stream)
    assert first.index == 0 and len(video_threads()) == 3  # one per source, blocked on full queues
    stream.close()
    assert threading.active_count() == baseline and not video_threads()

    with iter_frame_groups(plan, queue_size=1) as stream:
        for g in stream:
            if g.index == 3:
                break
    assert threading.active_count() == baseline and not video_threads()

    assert len(list(iter_frame_groups(plan))) == N
    assert threading.active_count() == baseline and not video_threads()


@pytest.mark.parametrize("damage", ["corrupt", "other_size"])
def test_decode_error_in_a_thread_reaches_the_consumer(codec, tmp_path, damage):
    clip = codec.clip(tmp_path, "ref", range(N))
    folder = write_frames(tmp_path / "frames", range(N))
    bad = folder / "8.png"  # frame 7
    if damage == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    else:
        cv2.imwrite(str(bad), make_frame(7, 32, 24))
    plan = plan_video(clip, [folder])
    baseline = threading.active_count()
    seen = []
    with pytest.raises(DecodeError) as err:
        for g in iter_frame_groups(plan):
            seen.append(g.index)
    assert seen == list(range(7)) and err.value.path == str(bad)
    if damage == "other_size":
        assert "32x24" in str(err.value) and "64x48" in str(err.value)
    assert threading.active_count() == baseline and not video_threads()


def test_under_reported_count_is_noticed_and_exact_count_fixes_it(tmp_path):
    path = tmp_path / "clip.mpg"  # MPEG program stream: no frame count stored, OpenCV estimates one
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MPEG"), FPS, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MPEG-1/2 program streams")
    for i in range(30):
        writer.write(np.ascontiguousarray(make_frame(i)[..., ::-1]))
    writer.release()
    real = len(read_all_cv2(path))
    reported = probe_source(path)
    if reported.frame_count >= real:
        pytest.skip(f"the container reports {reported.frame_count} of {real} frames: nothing under-reported")
    exact = probe_source(path, exact_count=True)
    assert exact.frame_count == real and exact.frame_count_exact and not reported.frame_count_exact
    plan = plan_video(reported, [reported])
    assert len(list(iter_frame_groups(plan))) == reported.frame_count
    # reworded for PyAV: the clip has no colour tags, so the assumed matrix/range is noted too
    counts = [w for w in plan.warnings if "colour" not in w]
    assert len(counts) == 1 and "more frames than its container reported" in counts[0]
