"""Video frames/s of `lpips compare` beside `ffmpeg -lavfi ssim/psnr`, on the same clips, in the same run.

Each measurement is one whole process: `python -m lpipscli compare REF DIST -m ... --quiet -o scores.csv`
(import, weights, decoding of both sides, metrics, CSV) against one `ffmpeg -i DIST -i REF -lavfi
"[0:v][1:v]ssim;[0:v][1:v]psnr" -f null -` (both filters in one filter graph, so each clip is decoded
once, as ours does; per-frame stats go to files so the means can be printed). Sizes: 640x360 (the
shared clip `video/ref/bottles.mp4` against `video/dist/x264_crf28/bottles.mp4`) and 1280x720 (made once
per run in a temporary folder from the shared reference with `ffmpeg -vf scale=1280:720 -c:v libx264`,
`-crf 18` for the reference and `-crf 35` for the distorted clip; without ffmpeg, the shared reference
and crf40 clips upscaled by OpenCV (bicubic) into mp4v files). Then frames/s with the three shared
encodes (crf18, crf28, crf40) in one run against three separate runs: in one run the reference is decoded
once and its LPIPS features are computed once per frame.

What each side computes (so the ratio compares tools, not identical arithmetic):
  ffmpeg ssim: on the 8-bit YUV 4:2:0 planes, 8x8 windows (sums of 4x4 blocks, stride 4, integer sums),
      Y/U/V and "All" (planes weighted by size).  ffmpeg psnr: MSE per 8-bit YUV plane, "psnr_avg" from
      their size-weighted mean.  ffmpeg has no LPIPS.  The "means" column averages the per-frame values
      of both (ffmpeg: SSIM All, psnr_avg), as a check that both scored the same clips.
  ours: decoded to RGB (OpenCV/FFmpeg, BGR->RGB), scaled to [0, 1]; psnr on RGB in float64; ssim is
      Wang et al.'s 11x11 Gaussian window (sigma 1.5) in float64 per RGB channel, valid region, channel
      mean; lpips_alex is LPIPS v0.1 with AlexNet, one forward pass per frame and side (the reference
      side's features are reused across encodes in a multi-encode run).

    python benchmarks/bench_video.py                        # ../shared/data/video, --repeat 2
    python benchmarks/bench_video.py --sizes 360 --repeat 1 --no-multi
    python benchmarks/bench_video.py --data DIR --workers 2
    python benchmarks/bench_video.py --bit-depths             # 8- and 10-bit synthetic clips, 360p and 1080p
    python benchmarks/bench_video.py --bit-depths --smoke     # 64x48, 5 frames: checks the script runs
    python benchmarks/bench_video.py --bit-depths --metric-sets psnr_yuv,ssim_ffmpeg   # only these

``--bit-depths`` (needs no shared data): 8-bit ``yuv420p`` and 10-bit ``yuv420p10le`` clips made with
PyAV (``bench_decode.make_clip``: x264 CRF 23 reference, CRF 35 distorted) at 360p and 1080p; per clip,
frames/s of frame pairs for: ``decode`` (the pipeline's PyAV decoder, ``io.video.iter_frame_groups``,
RGB at full precision, both sides, in-process), whole ``lpips compare`` processes with ``psnr``,
``ssim``, ``lpips_alex`` and the FFmpeg-equal ``psnr_yuv,ssim_ffmpeg``, and FFmpeg's own ``psnr`` and
``ssim`` filters on the same clips (PyAV's FFmpeg, decoding included; and the ``ffmpeg`` command where
installed).

Besides whole-process frames/s, "steady" is the slope between two runs of the same command: the whole
clip and its first half (`--max-frames N/2` for ours, `-frames:v N/2` for ffmpeg), (N - N/2) / (wall -
wall of the half run): the rate once start-up is paid. Both runs pay the same fixed costs (start-up,
decoder set-up, the first batch's warm-up), which a 1-frame baseline (used before) did not: one frame
can cost more or less than a frame in the stream, and its error went straight into the estimate. The
slope has noise of its own: at 360p a frame of psnr_yuv costs ~1 ms, so over N/2 = 375 frames the start-up's
run-to-run noise (about +-0.3 s) still moves the figure by tens of percent; trust whole-run fps there, or
raise --frames.
Every measurement runs --repeat times; the best wall time and the lowest peak memory are kept (peak =
proportional set size (PSS) of the process tree, decoding workers included, sampled every 50 ms, so for ffmpeg runs
of a fraction of a second it can under-read). Without real ImageNet weights in the torch cache it writes
seeded stand-ins into a temporary TORCH_HOME: same compute, so the timings hold; the LPIPS values are
then not meaningful. ffmpeg is not installed by this script: without it (Debian: `apt-get install
ffmpeg`) only our side runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lpipscli, not an installed one

from _common import DEFAULT_DATA, run_measured, torch_home_with_weights  # noqa: E402

CLIP = "bottles.mp4"
METRIC_SETS = {"psnr+ssim": "psnr,ssim", "lpips_alex": "lpips_alex"}
MULTI_ENCODES = ("x264_crf18", "x264_crf28", "x264_crf40")


def best_of(repeat: int, cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` ``repeat`` times; return (best wall s, lowest peak MiB, stdout of the best run)."""
    runs = [run_measured(cmd, env) for _ in range(repeat)]
    wall, _, out = min(runs, key=lambda r: r[0])
    return wall, min(r[1] for r in runs), out


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def ours(args, env: dict, ref: Path, dists: list[Path], metrics: str, tmp: Path,
         extra: tuple[str, ...] = (), repeat: int | None = None) -> tuple[float, float, list]:
    """Best wall s, lowest peak MiB and the rows of `lpips compare REF DIST... -m METRICS`."""
    out_csv = tmp / "scores.csv"
    cmd = [sys.executable, "-m", "lpipscli", "compare", str(ref), *map(str, dists), "--metric", metrics,
           "-o", str(out_csv), "--quiet", *extra]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    wall, peak, _ = best_of(args.repeat if repeat is None else repeat, cmd, env)
    rows = read_rows(out_csv)
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} rows not ok, first: {bad[0]}")
    return wall, peak, rows


def ffmpeg_side(args, ref: Path, dist: Path, tmp: Path, extra: tuple[str, ...] = ()
                ) -> tuple[float, float, int, float, float]:
    """Best wall s, lowest peak MiB, frames, mean SSIM All and mean per-frame PSNR average of ffmpeg."""
    ssim_log, psnr_log = tmp / "ssim.log", tmp / "psnr.log"
    graph = f"[0:v][1:v]ssim=stats_file={ssim_log};[0:v][1:v]psnr=stats_file={psnr_log}"
    cmd = ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-i", str(dist), "-i", str(ref),
           "-lavfi", graph, *extra, "-f", "null", "-"]
    wall, peak, _ = best_of(args.repeat, cmd)
    ssim = [float(m) for m in re.findall(r"All:([0-9.]+)", ssim_log.read_text())]
    psnr = [float(m) for m in re.findall(r"psnr_avg:([0-9.inf]+)", psnr_log.read_text())]
    if not ssim or len(ssim) != len(psnr):
        raise SystemExit(f"could not read ffmpeg's stats files ({len(ssim)} ssim, {len(psnr)} psnr lines)")
    return wall, peak, len(ssim), sum(ssim) / len(ssim), sum(psnr) / len(psnr)


def half(n: int) -> int:
    """Frames of the shorter run that "steady" subtracts."""
    return max(1, n // 2)


def steady(n: int, wall: float, n_part: int, wall_part: float) -> float | None:
    """Frames/s without the fixed cost: the slope (n - n_part) / (wall - wall_part) between a run of ``n``
    frames and one of its first ``n_part`` frames."""
    return (n - n_part) / (wall - wall_part) if wall > wall_part and n > n_part else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def make_720p(video: Path, tmp: Path, have_ffmpeg: bool) -> tuple[Path, Path, str]:
    """A 1280x720 reference and distorted clip from the shared reference; returns them and how."""
    ref, dist = tmp / "ref720" / CLIP, tmp / "dist720" / CLIP
    ref.parent.mkdir()
    dist.parent.mkdir()
    source = video / "ref" / CLIP
    if have_ffmpeg:
        for out, crf in ((ref, 18), (dist, 35)):
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                            "-vf", "scale=1280:720", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p",
                            "-an", str(out)], check=True)
        return ref, dist, "ffmpeg scale=1280:720, libx264 -crf 18 (ref) / -crf 35 (dist)"
    import cv2

    for src, out in ((source, ref), (video / "dist" / "x264_crf40" / CLIP, dist)):
        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_CUBIC))
        cap.release()
        writer.release()
    return ref, dist, "OpenCV bicubic upscale of the shared ref / x264_crf40 clips, mp4v"


#: ours -> the FFmpeg filter it is compared with in the --bit-depths ratios
FFMPEG_EQUIVALENT = {"psnr_yuv": "psnr", "psnr": "psnr", "ssim_ffmpeg": "ssim", "ssim": "ssim", "vmaf": "libvmaf"}


def ffmpeg_filter_process(args, ref: Path, dist: Path, filt: str, frames: int | None = None
                          ) -> tuple[float, float]:
    """Best wall s and lowest peak MiB of `ffmpeg -i DIST -i REF -lavfi FILTER -f null -` (the first
    ``frames`` only, when given)."""
    cmd = ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-i", str(dist), "-i", str(ref),
           "-lavfi", f"[0:v][1:v]{filt}", *(["-frames:v", str(frames)] if frames else []), "-f", "null", "-"]
    wall, peak, _ = best_of(args.repeat, cmd)
    return wall, peak


def bit_depth_section(args, env: dict, tmp: Path, have_ffmpeg: bool) -> None:
    """Decode-only, PSNR, SSIM, LPIPS (and VMAF) frames/s of 8- and 10-bit clips beside FFmpeg's filters.

    Whole processes on both sides; "steady" removes each side's fixed cost (the slope against a run of the
    same command over the first half of the clip), and the ratio column is ours / FFmpeg in steady frames/s
    against the filter that computes the same thing (``FFMPEG_EQUIVALENT``; ``psnr`` and ``ssim`` on RGB are
    compared with the YUV filters too).
    """
    import time

    from bench_decode import make_clip

    from lpipscli.io.video import iter_frame_groups, plan_video
    from lpipscli.metrics.vmaf import vmaf_available

    sizes = {"48": (64, 48), "360": (640, 360), "1080": (1920, 1080)}
    chosen = ["48"] if args.smoke else [s.strip() for s in args.bit_sizes.split(",") if s.strip()]
    # small clips get more frames, so that their steady rate stands out of the start-up's noise
    frames_of = {"48": 5, "360": args.frames * 5, "1080": args.frames}
    metric_sets = [m.strip() for m in args.metric_sets.split(",") if m.strip()]
    if "vmaf" in metric_sets and not vmaf_available():
        metric_sets.remove("vmaf")
    print(f"\nbit depths: x264 clips made here, {args.frames} frames at 1080p, {args.frames * 5} at 360p; "
          f"frames/s of frame pairs (best of {args.repeat}); "
          "steady = without the fixed cost (slope against a half-length run); peak = PSS of the process tree")
    print(f"{'clip':16s}{'measure':30s}{'wall s':>8s}{'fps':>8s}{'steady':>8s}{'peak MiB':>9s}"
          f"{'vs ffmpeg':>10s}   check")
    for size in chosen:
        width, height = sizes[size]
        frames = 5 if args.smoke else frames_of[size]
        for label, pix_fmt in (("8-bit", "yuv420p"), ("10-bit", "yuv420p10le")):
            name = f"{height}p {label}"
            ref = make_clip(tmp / f"ref_{size}_{pix_fmt}.mp4", width, height, frames, pix_fmt, 23)
            dist = make_clip(tmp / f"dist_{size}_{pix_fmt}.mp4", width, height, frames, pix_fmt, 35)
            for rgb in (False, True):
                walls = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    stream = iter_frame_groups(plan_video(ref, [dist]), planes=not rgb, rgb=rgb)
                    n = sum(1 for _ in stream)
                    walls.append(time.perf_counter() - start)
                what = "decode (in-process, " + ("RGB)" if rgb else "planes)")
                print(f"{name:16s}{what:30s}{min(walls):8.2f}{n / min(walls):8.1f}")
            theirs: dict[str, tuple[float, float | None, float]] = {}
            if have_ffmpeg:
                for filt in sorted(set(FFMPEG_EQUIVALENT.values()) - ({"libvmaf"} if "vmaf" not in metric_sets
                                                                      else set())):
                    if filt == "libvmaf" and not _ffmpeg_has(filt):
                        continue
                    wall, peak = ffmpeg_filter_process(args, ref, dist, filt)
                    part, _ = ffmpeg_filter_process(args, ref, dist, filt, half(frames))
                    theirs[filt] = (wall, steady(frames, wall, half(frames), part), peak)
                    print(f"{name:16s}{'ffmpeg -lavfi ' + filt:30s}{wall:8.2f}{frames / wall:8.1f}"
                          f"{fmt(theirs[filt][1], '8.1f'):>8s}{peak:9.0f}")
            # one untimed run first: the first process after making the clips paid for cold caches (measured:
            # 360p 8-bit, the first clip, took 1.8 s longer than the same 300 frames at 10 bits)
            ours(args, env, ref, [dist], metric_sets[0], tmp, extra=("--max-frames", "1"), repeat=1)
            for metrics in metric_sets:
                wall, peak, rows = ours(args, env, ref, [dist], metrics, tmp)
                part, _, part_rows = ours(args, env, ref, [dist], metrics, tmp,
                                          extra=("--max-frames", str(half(len(rows)))))
                fps_steady = steady(len(rows), wall, len(part_rows), part)
                ff = theirs.get(FFMPEG_EQUIVALENT.get(metrics, ""))
                ratio = fmt(fps_steady / ff[1] if ff and ff[1] and fps_steady else None, ".2f")
                mean = sum(float(r[metrics]) for r in rows) / len(rows)
                print(f"{name:16s}{'ours -m ' + metrics:30s}{wall:8.2f}{len(rows) / wall:8.1f}"
                      f"{fmt(fps_steady, '8.1f'):>8s}{peak:9.0f}{ratio:>10s}   mean {mean:.4f}")


def _ffmpeg_has(filt: str) -> bool:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    return f" {filt} " in out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "video",
                        help="folder with ref/bottles.mp4 and dist/<variant>/bottles.mp4")
    parser.add_argument("--sizes", default="360,720", help="comma-separated: 360 and/or 720")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--workers", type=int, default=None, help="passed to lpips compare --workers")
    parser.add_argument("--no-multi", action="store_true", help="skip the 3-encodes measurement")
    parser.add_argument("--bit-depths", action="store_true",
                        help="8- and 10-bit synthetic clips instead of the shared data (see the module doc)")
    parser.add_argument("--bit-sizes", default="360,1080", help="--bit-depths: comma-separated 360 and/or 1080")
    parser.add_argument("--frames", type=int, default=60, help="--bit-depths: frames per 1080p clip (5x at 360p)")
    parser.add_argument("--smoke", action="store_true", help="--bit-depths at 64x48, 5 frames")
    parser.add_argument("--metric-sets", default="psnr_yuv,psnr,ssim_ffmpeg,ssim,lpips_alex,vmaf",
                        help="--bit-depths: the metrics timed, one run each (vmaf only where libvmaf is)")
    args = parser.parse_args()
    if args.bit_depths or args.smoke:
        if args.smoke:
            args.repeat = 1
        home, real = torch_home_with_weights(("alex",))
        env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        try:
            with tempfile.TemporaryDirectory(prefix="lpipscli-bench-bits-") as name:
                bit_depth_section(args, env, Path(name), shutil.which("ffmpeg") is not None)
        finally:
            if not real:
                shutil.rmtree(home, ignore_errors=True)
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not (args.data / "ref" / CLIP).is_file() or set(sizes) - {"360", "720"}:
        raise SystemExit(f"{args.data}: expected ref/{CLIP}; --sizes takes 360 and/or 720")

    have_ffmpeg = shutil.which("ffmpeg") is not None
    version = ""
    if have_ffmpeg:
        version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    home, real = torch_home_with_weights(("alex",))
    env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1"}
    print(f"data: {args.data}, weights: {'real ImageNet' if real else 'seeded stand-ins (timing only)'}, "
          f"CPU cores: {os.cpu_count()}, best of {args.repeat}")
    print(f"ffmpeg: {version}" if have_ffmpeg else
          "ffmpeg: not found; only our side runs (Debian/Ubuntu: apt-get install ffmpeg)")

    try:
        with tempfile.TemporaryDirectory(prefix="lpipscli-bench-video-") as name:
            tmp = Path(name)
            clips = {}
            if "360" in sizes:
                clips["640x360"] = (args.data / "ref" / CLIP, args.data / "dist" / "x264_crf28" / CLIP,
                                    "shared ref vs x264_crf28")
            if "720" in sizes:
                ref720, dist720, how = make_720p(args.data, tmp, have_ffmpeg)
                clips["1280x720"] = (ref720, dist720, how)

            print(f"\n{'clip':10s}{'tool, metrics':27s}{'wall s':>8s}{'frames':>7s}{'fps':>8s}{'steady':>8s}"
                  f"{'peak MiB':>9s}{'ours/ffmpeg':>12s}{'steady':>8s}   means")
            for size, (ref, dist, how) in clips.items():
                print(f"{size:10s}({how})")
                ff_fps = ff_steady = None
                if have_ffmpeg:
                    wall, peak, n, ssim, psnr = ffmpeg_side(args, ref, dist, tmp)
                    wall_part = ffmpeg_side(args, ref, dist, tmp, ("-frames:v", str(half(n))))[0]
                    ff_fps, ff_steady = n / wall, steady(n, wall, half(n), wall_part)
                    print(f"{'':10s}{'ffmpeg ssim+psnr (YUV)':27s}{wall:8.2f}{n:7d}{ff_fps:8.1f}"
                          f"{fmt(ff_steady, '8.1f'):>8s}{peak:9.0f}{'':20s}   "
                          f"ssim All {ssim:.4f}, psnr_avg {psnr:.4f}")
                for label, metrics in METRIC_SETS.items():
                    wall, peak, rows = ours(args, env, ref, [dist], metrics, tmp)
                    wall_part, _, part_rows = ours(args, env, ref, [dist], metrics, tmp,
                                                   ("--max-frames", str(half(len(rows)))))
                    fps, fps_steady = len(rows) / wall, steady(len(rows), wall, len(part_rows), wall_part)
                    ratio = fmt(fps / ff_fps if ff_fps else None, ".3f")
                    ratio_steady = fmt(fps_steady / ff_steady if ff_steady and fps_steady else None, ".3f")
                    means = ", ".join(f"{m} {sum(float(r[m]) for r in rows) / len(rows):.4f}"
                                      for m in metrics.split(","))
                    print(f"{'':10s}{'ours ' + label + ' (RGB)':27s}{wall:8.2f}{len(rows):7d}{fps:8.1f}"
                          f"{fmt(fps_steady, '8.1f'):>8s}{peak:9.0f}{ratio:>12s}{ratio_steady:>8s}   {means}")

            if not args.no_multi:
                dists = [args.data / "dist" / v / CLIP for v in MULTI_ENCODES]
                ref = args.data / "ref" / CLIP
                print(f"\n640x360, reference vs {', '.join(MULTI_ENCODES)}: one run with 3 encodes vs 3 runs")
                print(f"{'metrics':12s}{'mode':22s}{'wall s':>8s}{'frames':>7s}{'fps':>8s}{'peak MiB':>9s}"
                      f"{'speed-up':>10s}")
                for label, metrics in METRIC_SETS.items():
                    wall_one, peak_one, rows = ours(args, env, ref, dists, metrics, tmp)
                    walls, peaks, n_sep = [], [], 0
                    for dist in dists:
                        wall, peak, rows_sep = ours(args, env, ref, [dist], metrics, tmp)
                        walls.append(wall)
                        peaks.append(peak)
                        n_sep += len(rows_sep)
                    wall_sep = sum(walls)
                    print(f"{label:12s}{'3 separate runs':22s}{wall_sep:8.2f}{n_sep:7d}{n_sep / wall_sep:8.1f}"
                          f"{max(peaks):9.0f}")
                    print(f"{'':12s}{'one run, 3 encodes':22s}{wall_one:8.2f}{len(rows):7d}"
                          f"{len(rows) / wall_one:8.1f}{peak_one:9.0f}{wall_sep / wall_one:9.2f}x")
    finally:
        if not real:
            shutil.rmtree(home, ignore_errors=True)
    print("\nfps = compared frame pairs / whole-process wall time (start-up, import and weights included); "
          "steady = (frames - frames/2) / (wall - wall of the same command\nlimited to the first half of the "
          "frames), i.e. without the fixed cost; ours/ffmpeg = ratio of the fps columns; peak of the 3 separate "
          "runs = the largest.")


if __name__ == "__main__":
    main()
