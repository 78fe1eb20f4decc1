"""`lpips compare` on video inputs, end to end through the command line (issue 4).

Small clips are written in a temporary folder with OpenCV's VideoWriter (FFV1 in Matroska, lossless).
Every clip is decoded here again with OpenCV directly and its frames saved as PNG folders, so the oracle
for the video path is the image path (`compare` on those PNG folders) on the very same pixels; a few
checks use an independent float64 PSNR written from the definition.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from _helpers import distort, read_video_rgb, smooth_image, write_ffv1_clip
from typer.testing import CliRunner

from lpipscli.cli import app

W, H, N, FPS = 64, 48, 12, 25.0
BIG = (96, 64)  # (width, height) of the clip that needs --resize dist-to-ref

TOLERANCES = {
    # video path vs image path on the same decoded pixels: same float64 code, same inputs
    "psnr": 1e-9,
    "ssim": 1e-9,
    # LPIPS runs in float32; batch composition differs between the two paths
    "lpips_alex": 1e-6,
    # our PSNR vs an independent float64 formula (dB)
    "psnr_formula": 1e-9,
    # the time column vs frame index / fps of the reference (seconds)
    "time_s": 1e-6,
}

# per-frame noise of the first encode: distinct, so that the worst frames are unambiguous
SIGMAS = [4.0, 9.0, 6.0, 15.0, 5.0, 8.0, 12.0, 7.0, 20.0, 10.0, 3.0, 11.0]
VIDEO_COLUMNS = ["ref", "dist", "dist_root", "frame", "dist_frame", "time", "width", "height"]
TAIL = ["status", "error"]


# --------------------------------------------------------------------------------------------------
# clips


def write_clip(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    return write_ffv1_clip(path, frames, fps)


decode_cv2 = read_video_rgb  # every frame as RGB, read with OpenCV directly


def save_frames(folder: Path, frames: list[np.ndarray], names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    for k, frame in enumerate(frames):
        name = names[k] if names else f"frame_{k:06d}.png"
        assert cv2.imwrite(str(folder / name), np.ascontiguousarray(frame[..., ::-1]))
    return folder


@dataclass(frozen=True)
class Clips:
    root: Path
    ref: Path
    d1: Path
    d2: Path
    drop: Path  # d1 without its frame 5 (11 frames)
    extra: Path  # one extra frame, then d1 (13 frames)
    big: Path  # d1 at 96x64
    fps30: Path  # d1 at 30 fps
    ref_png: Path
    d1_png: Path
    d2_png: Path
    big_png: Path
    d1_idx: Path  # d1's decoded frames named img1.png .. img12.png
    frames: dict  # name -> decoded RGB frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    root = tmp_path_factory.mktemp("clips")
    ref = [smooth_image(H, W, 3, seed=i) for i in range(N)]
    d1 = [distort(f, seed=100 + i, sigma=s) for i, (f, s) in enumerate(zip(ref, SIGMAS, strict=True))]
    d2 = [distort(f, seed=200 + i, sigma=2 * s) for i, (f, s) in enumerate(zip(ref, SIGMAS, strict=True))]
    extra = distort(smooth_image(H, W, 3, seed=99), seed=5)
    paths = {
        "ref": write_clip(root / "ref.mkv", ref),
        "d1": write_clip(root / "d1.mkv", d1),
        "d2": write_clip(root / "d2.mkv", d2),
        "drop": write_clip(root / "drop.mkv", d1[:5] + d1[6:]),
        "extra": write_clip(root / "extra.mkv", [extra] + d1),
        "big": write_clip(root / "big.mkv", [cv2.resize(f, BIG, interpolation=cv2.INTER_CUBIC) for f in d1]),
        "fps30": write_clip(root / "fps30.mkv", d1, fps=30.0),
    }
    frames = {name: decode_cv2(path) for name, path in paths.items()}
    if any(not np.array_equal(a, b) for a, b in zip(frames["ref"], ref, strict=True)):
        pytest.skip("FFV1 is not lossless in this OpenCV build")  # the tests below need exact pixels
    assert [len(frames[k]) for k in ("ref", "drop", "extra")] == [N, N - 1, N + 1]
    return Clips(
        root=root, **paths,
        ref_png=save_frames(root / "ref_png", frames["ref"]),
        d1_png=save_frames(root / "d1_png", frames["d1"]),
        d2_png=save_frames(root / "d2_png", frames["d2"]),
        big_png=save_frames(root / "big_png", frames["big"]),
        d1_idx=save_frames(root / "d1_idx", frames["d1"], [f"img{k + 1}.png" for k in range(N)]),
        frames=frames,
    )


# --------------------------------------------------------------------------------------------------
# running the command


def invoke(*args):
    runner = CliRunner()
    return runner.invoke(app, ["compare", *(str(a) for a in args)], env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    return invoke


def read_csv(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def run_ok(*args) -> tuple[list[str], list[dict]]:
    result = invoke(*args, "-o", "-", "-q")
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return read_csv(result.stdout)


def one_error_line(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def image_frame(row: dict) -> int:
    """The frame index of an image-path row (files are frame_000123.png)."""
    return int(Path(row["dist"]).stem.split("_")[1])


def scores(rows, metrics, key=lambda r: int(r["frame"])) -> dict:
    return {(r["dist_root"], key(r)): {m: float(r[m]) for m in metrics} for r in rows}


def assert_close(got: dict, want: dict, metrics) -> None:
    for m in metrics:
        diff = abs(got[m] - want[m])
        assert diff <= TOLERANCES[m], (m, got[m], want[m], diff)


def psnr_formula(ref: np.ndarray, dist: np.ndarray) -> float:
    """PSNR in dB of [0, 1] values over all channels, from the definition (float64)."""
    mse = np.mean((ref.astype(np.float64) / 255 - dist.astype(np.float64) / 255) ** 2)
    return 10 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def d1_image(clips) -> dict[int, dict]:
    """psnr and ssim of d1 per frame through the image path (PNG folders of the decoded frames)."""
    _, rows = run_ok(clips.ref_png, clips.d1_png, "-m", "psnr,ssim", "--workers", "0")
    assert len(rows) == N
    return {image_frame(r): {m: float(r[m]) for m in ("psnr", "ssim")} for r in rows}


# --------------------------------------------------------------------------------------------------
# scores and rows


def test_video_equals_image_path_and_several_encodes_equal_separate_runs(clips, cli, torch_home):
    metrics = ("psnr", "ssim", "lpips_alex")
    opts = ("-m", ",".join(metrics), "--allow-unverified-weights")
    header, rows = run_ok(clips.ref, clips.d1, clips.d2, *opts)
    assert header == VIDEO_COLUMNS + list(metrics) + TAIL
    assert len(rows) == 2 * N
    for dist in (clips.d1, clips.d2):
        mine = [r for r in rows if r["dist_root"] == str(dist)]
        assert [int(r["frame"]) for r in mine] == list(range(N))
        for r in mine:
            frame = int(r["frame"])
            assert (r["ref"], r["dist"], r["status"], r["error"]) == (str(clips.ref), str(dist), "ok", "")
            assert int(r["dist_frame"]) == frame and (r["width"], r["height"]) == (str(W), str(H))
            assert abs(float(r["time"]) - frame / FPS) <= TOLERANCES["time_s"]

    _, image_rows = run_ok(clips.ref_png, clips.d1_png, clips.d2_png, *opts, "--workers", "0")
    image = scores(image_rows, metrics, key=image_frame)
    video = scores(rows, metrics)
    for (root, frame), got in video.items():
        png_root = str(clips.d1_png if root == str(clips.d1) else clips.d2_png)
        assert_close(got, image[(png_root, frame)], metrics)

    # one reference, several encodes == one run per encode
    for dist in (clips.d1, clips.d2):
        _, alone = run_ok(clips.ref, dist, *opts)
        separate = scores(alone, metrics)
        assert set(separate) == {k for k in video if k[0] == str(dist)}
        for key, got in separate.items():
            assert_close(got, video[key], metrics)


def test_time_comes_from_the_reference_and_frame_rate_difference_is_reported(clips, cli, d1_image):
    result = cli(clips.ref, clips.fps30, "-m", "psnr", "-o", "-")
    assert result.exit_code == 0, result.stderr
    _, rows = read_csv(result.stdout)
    assert [int(r["frame"]) for r in rows] == list(range(N))
    for r in rows:  # 25 fps reference, 30 fps distorted: times are the reference's
        assert abs(float(r["time"]) - int(r["frame"]) / FPS) <= TOLERANCES["time_s"]
        assert abs(float(r["psnr"]) - d1_image[int(r["frame"])]["psnr"]) <= TOLERANCES["psnr"]
    warning = " ".join(result.stderr.split())
    assert "frame rates differ" in warning and "25 fps" in warning and "30 fps" in warning


def test_dropped_frame_is_detected_and_shortest_scores_the_overlap(clips, cli):
    result = cli(clips.ref, clips.drop, "-m", "psnr", "-o", "-")
    line = one_error_line(result, 2, "ref.mkv", "drop.mkv", "--frames shortest")
    assert f"has {N} frames" in line and f"has {N - 1}" in line
    assert result.stdout == ""

    _, rows = run_ok(clips.ref, clips.drop, "-m", "psnr", "--frames", "shortest")
    assert [(int(r["frame"]), int(r["dist_frame"])) for r in rows] == [(i, i) for i in range(N - 1)]
    ref, drop = clips.frames["ref"], clips.frames["drop"]
    for r in rows:
        i = int(r["frame"])
        assert abs(float(r["psnr"]) - psnr_formula(ref[i], drop[i])) <= TOLERANCES["psnr_formula"]


def test_offset_aligns_a_distorted_clip_with_an_extra_first_frame(clips, cli, d1_image):
    result = cli(clips.ref, clips.extra, "-m", "psnr", "-o", "-")
    line = one_error_line(result, 2, "extra.mkv")
    assert f"has {N} frames" in line and f"has {N + 1}" in line

    _, rows = run_ok(clips.ref, clips.extra, "-m", "psnr,ssim", "--offset", "1")
    assert [(int(r["frame"]), int(r["dist_frame"])) for r in rows] == [(i, i + 1) for i in range(N)]
    for r in rows:
        assert_close({m: float(r[m]) for m in ("psnr", "ssim")}, d1_image[int(r["frame"])], ("psnr", "ssim"))


def selected(start: int, step: int, max_frames: int | None, n: int = N) -> list[int]:
    """Reference frames start, start + step, ... below n, at most max_frames (the documented rule)."""
    frames = list(range(start, n, step))
    return frames if max_frames is None else frames[:max_frames]


@pytest.mark.parametrize("start, step, max_frames, offset", [
    (2, 3, 3, 0), (1, 4, None, 0), (0, 5, 2, 0), (3, 2, 4, 1),
])
def test_start_step_max_frames_select_frames(clips, cli, d1_image, start, step, max_frames, offset):
    dist = clips.extra if offset else clips.d1
    args = ["--start", start, "--step", step, "--offset", offset]
    if max_frames is not None:
        args += ["--max-frames", max_frames]
    _, rows = run_ok(clips.ref, dist, "-m", "psnr,ssim", *args)
    want = selected(start, step, max_frames)
    assert [int(r["frame"]) for r in rows] == want
    assert [int(r["dist_frame"]) for r in rows] == [i + offset for i in want]
    for r in rows:
        frame = int(r["frame"])
        assert abs(float(r["time"]) - frame / FPS) <= TOLERANCES["time_s"]
        assert_close({m: float(r[m]) for m in ("psnr", "ssim")}, d1_image[frame], ("psnr", "ssim"))


def test_resolution_mismatch_is_an_error_unless_resized(clips, cli):
    result = cli(clips.ref, clips.big, "-m", "psnr", "-o", "-")
    one_error_line(result, 2, f"{W}x{H}", f"{BIG[0]}x{BIG[1]}", "--resize dist-to-ref")

    metrics = ("psnr", "ssim")
    header, rows = run_ok(clips.ref, clips.big, "-m", ",".join(metrics), "--resize", "dist-to-ref")
    assert "resized_from" in header
    assert len(rows) == N and all(r["resized_from"] == f"{BIG[0]}x{BIG[1]}" for r in rows)
    assert all((r["width"], r["height"]) == (str(W), str(H)) for r in rows)
    _, image_rows = run_ok(clips.ref_png, clips.big_png, "-m", ",".join(metrics), "--resize", "dist-to-ref",
                           "--workers", "0")
    image = {image_frame(r): {m: float(r[m]) for m in metrics} for r in image_rows}
    for r in rows:
        assert_close({m: float(r[m]) for m in metrics}, image[int(r["frame"])], metrics)


def test_video_against_a_frame_folder(clips, cli, d1_image):
    _, rows = run_ok(clips.ref, clips.d1_png, "-m", "psnr,ssim")
    assert [(int(r["frame"]), int(r["dist_frame"])) for r in rows] == [(i, i) for i in range(N)]
    assert all(r["dist_root"] == str(clips.d1_png) for r in rows)
    for r in rows:
        assert_close({m: float(r[m]) for m in ("psnr", "ssim")}, d1_image[int(r["frame"])], ("psnr", "ssim"))


def test_pair_by_index_pairs_frame_folders_with_different_names(clips, cli, d1_image):
    # by path nothing pairs (frame_000000.png vs img1.png)
    result = cli(clips.ref_png, clips.d1_idx, "-m", "psnr", "-o", "-", "--workers", "0")
    assert result.exit_code == 2, result.stderr
    # by index: natural order, so img10.png is frame 9 (after img9.png, not after img1.png)
    _, rows = run_ok(clips.ref_png, clips.d1_idx, "-m", "psnr,ssim", "--pair-by", "index")
    assert [int(r["frame"]) for r in rows] == list(range(N))
    for r in rows:
        assert_close({m: float(r[m]) for m in ("psnr", "ssim")}, d1_image[int(r["frame"])], ("psnr", "ssim"))


@pytest.mark.parametrize("case, reason", [("nested", "subfolder"), ("no_number", "no frame number")])
def test_pair_by_index_refuses_a_folder_that_is_not_a_frame_sequence(clips, cli, tmp_path, case, reason):
    frames = clips.frames["d1"][:N]
    if case == "nested":
        save_frames(tmp_path / "bad", frames[:6])
        save_frames(tmp_path / "bad" / "more", frames[6:])
    else:
        save_frames(tmp_path / "bad", frames[:3], ["cat.png", "dog.png", "owl.png"])
    result = cli(clips.ref_png, tmp_path / "bad", "-m", "psnr", "-o", "-", "--pair-by", "index")
    one_error_line(result, 2, "not a frame sequence", reason)


@pytest.mark.parametrize("option", [
    ("--start", "1"), ("--max-frames", "3"), ("--step", "2"), ("--offset", "1"), ("--frames", "shortest"),
    ("--heatmap-video", "maps.mkv"),
    ("--heatmap-every", "5"),
])
def test_video_only_options_are_refused_on_images(clips, cli, tmp_path, option):
    args = [clips.ref_png, clips.d1_png, "-m", "psnr", "-o", tmp_path / "x.csv", *option]
    if option[0] in ("--heatmap-video", "--heatmap-every"):
        args += ["--heatmaps", tmp_path / "maps"]
    one_error_line(cli(*args), 2, option[0])
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("content", [b"", b"\x1aE\xdf\xa3 definitely not a matroska file" * 50])
def test_corrupt_video_is_a_one_line_error(clips, cli, tmp_path, content):
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(content)
    for args in ((clips.ref, bad), (bad, clips.d1)):
        one_error_line(cli(*args, "-m", "psnr", "-o", "-"), 2, "broken.mkv")


@pytest.fixture
def truncated(clips, tmp_path) -> tuple[Path, int]:
    """d1.mkv cut at 60 % of its bytes (its header still says 12 frames) and how many frames OpenCV reads."""
    path = tmp_path / "trunc.mkv"
    data = clips.d1.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    readable = len(decode_cv2(path))
    assert 0 < readable < N
    return path, readable


def test_truncated_encode_fails_or_is_skipped_frame_by_frame(clips, cli, tmp_path, truncated, d1_image):
    trunc, readable = truncated
    line = one_error_line(cli(clips.ref, clips.d1, trunc, "-m", "psnr", "-o", tmp_path / "x.csv", "-q"), 2)
    assert f"ended after {readable} frames" in line

    result = cli(clips.ref, clips.d1, trunc, "-m", "psnr", "-o", "-", "--on-error", "skip")
    assert result.exit_code == 4, result.stderr  # failed frames: rows written, the run is not green
    _, rows = read_csv(result.stdout)
    assert all(r["status"] == "ok" for r in rows if r["dist_root"] == str(clips.d1))
    cut = [r for r in rows if r["dist_root"] == str(trunc)]
    assert [int(r["frame"]) for r in cut] == list(range(N))
    for r in cut:
        frame = int(r["frame"])
        if frame < readable:  # a byte prefix of d1: the frames it has are d1's
            assert r["status"] == "ok"
            assert abs(float(r["psnr"]) - d1_image[frame]["psnr"]) <= TOLERANCES["psnr"]
        else:
            assert r["status"] == "failed" and r["psnr"] == "" and f"after {readable} frames" in r["error"]
    assert f"{N - readable} pair(s) failed" in " ".join(result.stderr.split())


def test_truncated_encode_error_names_the_file(clips, cli, tmp_path, truncated):
    trunc, _ = truncated
    one_error_line(cli(clips.ref, clips.d1, trunc, "-m", "psnr", "-o", tmp_path / "x.csv", "-q"), 2, "trunc.mkv")
    result = cli(clips.ref, clips.d1, trunc, "-m", "psnr", "-o", "-", "--on-error", "skip")
    _, rows = read_csv(result.stdout)
    assert all("trunc.mkv" in r["error"] for r in rows if r["status"] == "failed")


def test_summary_json_per_encode_with_worst_frames_and_gates(clips, cli, tmp_path):
    summary = tmp_path / "summary.json"
    header, rows = run_ok(clips.ref, clips.d1, clips.d2, "-m", "psnr", "--summary-json", summary, "--worst", "3")
    data = json.loads(summary.read_text())
    assert set(data["per_dist_root"]) == {str(clips.d1), str(clips.d2)}
    for dist in (clips.d1, clips.d2):
        values = {int(r["frame"]): float(r["psnr"]) for r in rows if r["dist_root"] == str(dist)}
        stats = data["per_dist_root"][str(dist)]["metrics"]["psnr"]
        v = np.array([values[i] for i in range(N)])
        assert stats["count"] == N
        assert stats["mean"] == pytest.approx(v.mean(), abs=1e-12)
        assert stats["min"] == v.min() and stats["median"] == pytest.approx(np.median(v), abs=1e-12)
        assert stats["hmean"] == pytest.approx(N / np.sum(1 / v), abs=1e-12)
        for key, q in (("p1", 1), ("p5", 5)):
            assert stats[key] == pytest.approx(np.percentile(v, q), abs=1e-12)
        worst = sorted(values, key=values.get)[:3]  # lowest PSNR first
        assert [w["pair"] for w in stats["worst"]] == [f"{dist}#{i}" for i in worst]
        assert [w["value"] for w in stats["worst"]] == [values[i] for i in worst]
    assert sorted(values, key=values.get)[0] == int(np.argmax(SIGMAS))  # the noisiest frame is the worst

    lowest = min(float(r["psnr"]) for r in rows)
    fail = cli(clips.ref, clips.d1, clips.d2, "-m", "psnr", "-o", "-", "-q",
               "--fail-if", f"min(psnr) < {lowest + 0.01}")
    assert fail.exit_code == 1, fail.stderr
    ok = cli(clips.ref, clips.d1, clips.d2, "-m", "psnr", "-o", "-", "-q",
             "--fail-if", f"min(psnr) < {lowest - 0.01}")
    assert ok.exit_code == 0, ok.stderr


def test_parquet_output_has_frame_and_time_columns(clips, cli, tmp_path, d1_image):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "frames.parquet"
    result = cli(clips.ref, clips.d1, "-m", "psnr,ssim", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(out)
    assert table.column_names == VIDEO_COLUMNS + ["psnr", "ssim"] + TAIL
    assert str(table.schema.field("frame").type).startswith("int")
    assert str(table.schema.field("time").type) == "double"
    data = table.to_pydict()
    assert data["frame"] == list(range(N)) and data["dist_frame"] == list(range(N))
    for frame, time, psnr in zip(data["frame"], data["time"], data["psnr"], strict=True):
        assert abs(time - frame / FPS) <= TOLERANCES["time_s"]
        assert abs(psnr - d1_image[frame]["psnr"]) <= TOLERANCES["psnr"]


# --------------------------------------------------------------------------------------------------
# heatmaps on video


def test_heatmap_every_writes_maps_for_every_nth_frame(clips, cli, tmp_path):
    maps = tmp_path / "maps"
    header, rows = run_ok(clips.ref, clips.d1, "-m", "psnr,ssim", "--heatmaps", maps, "--heatmap-every", "5")
    assert header[-4:] == ["psnr_map", "ssim_map"] + TAIL
    want = [i for i in range(N) if i % 5 == 0]
    folder = maps / clips.d1.stem
    written = sorted(p.name for p in folder.iterdir())
    assert written == sorted(f"frame_{i:06d}.{m}.png" for i in want for m in ("psnr", "ssim"))
    for r in rows:
        frame = int(r["frame"])
        for m in ("psnr", "ssim"):
            assert r[f"{m}_map"] == (str(folder / f"frame_{frame:06d}.{m}.png") if frame in want else "")


def test_heatmap_every_counts_scored_frames(clips, cli, tmp_path):
    maps = tmp_path / "maps"
    _, rows = run_ok(clips.ref, clips.d1, "-m", "psnr", "--heatmaps", maps, "--start", "1", "--step", "2",
                     "--heatmap-every", "2")
    scored = [int(r["frame"]) for r in rows]
    assert scored == selected(1, 2, None)
    want = scored[::2]  # every 2nd scored frame: 1, 5, 9
    folder = maps / clips.d1.stem
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == [f"frame_{i:06d}.psnr.png" for i in want]


def read_video(path: Path) -> list[np.ndarray]:
    frames = decode_cv2(path)
    assert frames, f"{path} has no readable frame"
    return frames


@pytest.mark.parametrize("suffix, panel", [(".mkv", False), (".avi", True)])
def test_heatmap_video_has_one_frame_per_scored_frame(clips, cli, tmp_path, suffix, panel):
    maps, movie = tmp_path / "maps", tmp_path / f"maps{suffix}"
    args = [clips.ref, clips.d1, clips.d2, "-m", "psnr", "--heatmaps", maps, "--heatmap-video", movie,
            "--step", "2"]
    if panel:
        args.append("--heatmap-panel")
    _, rows = run_ok(*args)
    scored_first = [int(r["frame"]) for r in rows if r["dist_root"] == str(clips.d1)]
    assert scored_first == selected(0, 2, None)
    frames = read_video(movie)
    assert len(frames) == len(scored_first)
    assert frames[0].shape == ((H, 3 * W + 8, 3) if panel else (H, W, 3))
    if not panel:  # FFV1 is lossless: each video frame is the PNG map of the first encode
        from PIL import Image

        for frame, index in zip(frames, scored_first, strict=True):
            with Image.open(maps / clips.d1.stem / f"frame_{index:06d}.psnr.png") as image:
                assert np.array_equal(frame, np.asarray(image.convert("RGB")))


@pytest.mark.parametrize("case, needle", [
    ("no_heatmaps", "--heatmaps"), ("suffix", ".mkv"), ("no_folder", "does not exist"),
])
def test_heatmap_video_errors_before_compute(clips, cli, tmp_path, case, needle):
    movie = {"no_heatmaps": tmp_path / "m.mkv", "suffix": tmp_path / "m.gif",
             "no_folder": tmp_path / "missing" / "m.mkv"}[case]
    args = [clips.ref, clips.d1, "-m", "psnr", "-o", tmp_path / "x.csv", "--heatmap-video", movie]
    if case != "no_heatmaps":
        args += ["--heatmaps", tmp_path / "maps"]
    one_error_line(cli(*args), 2, "--heatmap-video", needle)
    assert not (tmp_path / "x.csv").exists() and not movie.exists()
