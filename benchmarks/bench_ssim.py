"""SSIM throughput: lpipscli's `ssim` against a plain scikit-image loop (and torchmetrics, pytorch-msssim, FFmpeg).

Whole processes (issue 14, goal 4): the 540 pairs of ``bench_sweep.py`` (60 crops of 256x256 of DATA/ref,
nine distorted folders: JPEG q10/q30/q70, WebP q20/q50, blur 1/2, noise 4/8), ``python -m lpipscli compare
-m ssim REF DIST...`` (default workers and threads) against one Python process that decodes each pair with
Pillow and calls scikit-image's ``structural_similarity`` (same settings), in one thread. Runs alternate;
the table gives median wall seconds and CPU seconds (user + system of the process tree) and both ratios,
and the largest |lpipscli - scikit-image| over the 540 rows. ``--sweep-rounds 0`` skips it.
``--sweep-metric psnr`` runs the same comparison for ``-m psnr`` against scikit-image's
``peak_signal_noise_ratio`` (data_range 1.0 on the same float64 arrays).

In-process images: N pairs of 256x256 RGB crops of ../shared/data/ref and their JPEG-q30 copies (made in memory with
Pillow), or seeded synthetic photos when the folder is missing. Every contender gets the decoded 8-bit
arrays, so this measures the metric, not decoding:

* ``lpipscli ssim``: one batched call on float32 tensors in [0, 1] (as the engine passes them);
* ``scikit-image loop``: ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0, channel_axis=2)`` per pair on float64 arrays (same definition);
* ``pytorch-msssim`` (same definition) and ``torchmetrics`` (full-image mean, not the valid region: a
  different number, listed for speed only), when installed.

Contenders run in alternation (A B C A B C ...), ``--rounds`` times; the table shows median seconds, pairs/s
and the ratio to the scikit-image loop, and the largest |lpipscli - scikit-image| over the pairs.

Video: per-frame time of ``ssim`` on 640x360 and 1920x1080 RGB frames (synthetic, already decoded), and when
an ``ffmpeg`` command is on PATH, frames/s of FFmpeg's ``ssim`` filter on a synthetic clip of the same size
(decode included there, so the ratio flatters FFmpeg slightly less than it seems).

    python benchmarks/bench_ssim.py                      # 540-pair whole-process runs (3 rounds), then
                                                         # 60 pairs in-process, frames 640x360 and 1920x1080
    python benchmarks/bench_ssim.py --sweep-rounds 5 --pairs 0 --video-sizes   # the whole-process ratio only
    python benchmarks/bench_ssim.py --sweep-rounds 0 --pairs 0 --video-sizes --breakdown   # CPU per stage
    python benchmarks/bench_ssim.py --pairs 8 --rounds 1 --frames 2 --video-sizes 64x48   # smoke run
    python benchmarks/bench_ssim.py --threads 1          # single-threaded comparison
    python benchmarks/bench_ssim.py --sweep-metric psnr --pairs 0 --video-sizes   # PSNR, whole processes
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DEFAULT_DATA, REPO

SKIMAGE_LOOP = r"""
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
metric, out, ref_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
dist_dirs = [Path(p) for p in sys.argv[4:]]
refs = {p.stem: p for p in sorted(ref_dir.iterdir())}
scores = {}
for dist_dir in dist_dirs:
    for dist in sorted(dist_dir.iterdir()):
        a = np.asarray(Image.open(refs[dist.stem]).convert("RGB"), dtype=np.float64) / 255.0
        b = np.asarray(Image.open(dist).convert("RGB"), dtype=np.float64) / 255.0
        if metric == "psnr":
            scores[str(dist)] = peak_signal_noise_ratio(a, b, data_range=1.0)
        else:
            scores[str(dist)] = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                                      use_sample_covariance=False, data_range=1.0, channel_axis=-1)
out.write_text(json.dumps(scores))
"""

# One `lpips compare -m ssim` in this process (--workers 0, one thread), with process_time wrapped around
# the engine's stages; prints JSON {stage: CPU seconds}. Names of engine internals: update them if they move.
BREAKDOWN = r"""
import json, os, sys, time
t0 = time.process_time()
import torch
t1 = time.process_time()
import lpipscli.cli as cli
import lpipscli.engine as engine
import lpipscli.io.dataset as dataset
import lpipscli.metrics.ssim as ssim_module
parts = {"import torch": t1 - t0, "other imports": time.process_time() - t1}
def wrap(owner, name, label):
    fn = getattr(owner, name)
    def timed(*a, **k):
        start = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            parts[label] = parts.get(label, 0.0) + time.process_time() - start
    setattr(owner, name, timed)
wrap(dataset.PairDataset, "__getitem__", "decoding (dataset items)")
wrap(engine, "collate", "collate")
wrap(engine, "to_unit_float", "uint8 -> float64")
wrap(ssim_module, "_ssim_stats", "SSIM core")
wrap(engine.Engine, "_score", "_score")
wrap(engine, "drive", "drive")
sys.argv = ["lpips", "compare", "-m", "ssim", "-q", "--workers", "0", *sys.argv[1:]]
try:
    cli.main()
except SystemExit:
    pass
parts["total"] = time.process_time() - t0
print(json.dumps(parts))
"""

SKIMAGE_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _synthetic(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = [0.5 + 0.3 * np.sin(rng.uniform(3, 9) * xx + c) * np.cos(rng.uniform(3, 9) * yy) for c in range(3)]
    image = np.stack(planes, -1) + 0.05 * rng.standard_normal((size, size, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def load_pairs(n: int, size: int, data: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``(n, size, size, 3)`` uint8 references and JPEG-q30 copies."""
    from PIL import Image

    crops = []
    files = sorted((data / "ref").glob("*.png")) if (data / "ref").is_dir() else []
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        for top in range(0, height - size + 1, size):
            for left in range(0, width - size + 1, size):
                crops.append(np.ascontiguousarray(image[top:top + size, left:left + size]))
    source = f"{len(files)} photos of {data / 'ref'}"
    if not crops:
        crops, source = [_synthetic(size, s) for s in range(n)], "synthetic"
    refs = [crops[i % len(crops)] for i in range(n)]
    return np.stack(refs), np.stack([_jpeg(r, 30) for r in refs]), source


def contenders(refs: np.ndarray, dists: np.ndarray) -> dict:
    """name -> (callable returning one score per pair, same definition as scikit-image?)."""
    from skimage.metrics import structural_similarity

    from lpipscli.metrics.ssim import ssim, ssim_runner

    def ours():
        ref = torch.from_numpy(refs).permute(0, 3, 1, 2).float().div_(255)
        dist = torch.from_numpy(dists).permute(0, 3, 1, 2).float().div_(255)
        return ssim(ref, dist).numpy()

    runner, _ = ssim_runner(torch.device("cpu"))

    def ours_samples():  # the decoded uint8 samples as they are (the runner's scale: no float copy)
        ref = torch.from_numpy(refs).permute(0, 3, 1, 2)
        dist = torch.from_numpy(dists).permute(0, 3, 1, 2)
        return runner(ref, dist, None, scale=255.0).numpy()

    def skimage_loop():
        return np.array([
            structural_similarity(r / 255.0, d / 255.0, channel_axis=2, **SKIMAGE_KW)
            for r, d in zip(refs, dists, strict=True)
        ])

    out = {"lpipscli ssim": (ours, True), "lpipscli ssim (uint8 samples)": (ours_samples, True),
           "scikit-image loop": (skimage_loop, True)}
    try:
        import pytorch_msssim

        def msssim_pkg():
            ref = torch.from_numpy(refs).permute(0, 3, 1, 2).float().div_(255)
            dist = torch.from_numpy(dists).permute(0, 3, 1, 2).float().div_(255)
            return pytorch_msssim.ssim(ref, dist, data_range=1.0, size_average=False).numpy()

        out["pytorch-msssim"] = (msssim_pkg, True)
    except ImportError:
        pass
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure

        def torchmetrics_ssim():
            ref = torch.from_numpy(refs).permute(0, 3, 1, 2).float().div_(255)
            dist = torch.from_numpy(dists).permute(0, 3, 1, 2).float().div_(255)
            return structural_similarity_index_measure(ref, dist, data_range=1.0, reduction="none").numpy()

        out["torchmetrics (full-image mean)"] = (torchmetrics_ssim, False)
    except ImportError:
        pass
    return out


def bench_images(args) -> None:
    refs, dists, source = load_pairs(args.pairs, args.size, args.data)
    runs = contenders(refs, dists)
    values = {name: fn() for name, (fn, _) in runs.items()}  # warm-up, and the values
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (fn, _) in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print(f"{args.pairs} pairs of {args.size}x{args.size} RGB ({source}; JPEG q30), {args.rounds} alternating "
          f"rounds, torch threads {torch.get_num_threads()}")
    base = statistics.median(times["scikit-image loop"])
    print(f"{'':34s}{'median s':>10s}{'pairs/s':>10s}{'vs skimage':>12s}{'max |diff|':>12s}")
    for name, (_, same) in runs.items():
        median = statistics.median(times[name])
        diff = np.abs(values[name] - values["scikit-image loop"]).max()
        print(f"{name:34s}{median:10.3f}{args.pairs / median:10.1f}{base / median:11.2f}x"
              f"{diff:12.1e}{'' if same else '  (other definition)'}")


def _ffmpeg_fps(width: int, height: int, frames: int) -> float | None:
    """Frames/s of `ffmpeg -lavfi ssim` on a synthetic clip and its noisy copy (None without ffmpeg)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        ref, dist = Path(tmp) / "ref.mkv", Path(tmp) / "dist.mkv"
        src = f"testsrc2=size={width}x{height}:rate=25:duration={frames / 25}"
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", src, "-c:v", "ffv1", str(ref)], check=True)
        subprocess.run([ffmpeg, "-v", "error", "-i", str(ref), "-vf", "noise=alls=12:allf=t", "-c:v", "ffv1",
                        str(dist)], check=True)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([ffmpeg, "-v", "error", "-i", str(ref), "-i", str(dist), "-lavfi", "ssim", "-f", "null",
                            "-"], check=True)
            best = min(best, time.perf_counter() - start)
        return frames / best


def bench_video(args) -> None:
    from lpipscli.metrics.ssim import ssim, ssim_runner

    runner, _ = ssim_runner(torch.device("cpu"))
    for spec in args.video_sizes:
        width, height = (int(v) for v in spec.split("x"))
        gen = torch.Generator().manual_seed(0)
        ref = torch.rand(1, 3, height, width, generator=gen).mul(255).round().div(255)
        dist = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1).mul(255).round().div(255)
        ssim(ref, dist)
        per_frame = []
        for _ in range(args.frames):
            start = time.perf_counter()
            ssim(ref, dist)
            per_frame.append(time.perf_counter() - start)
        ours = 1.0 / statistics.median(per_frame)
        samples = (ref.mul(255).round().to(torch.uint8), dist.mul(255).round().to(torch.uint8))
        per_frame = []
        for _ in range(args.frames):
            start = time.perf_counter()
            runner(*samples, None, scale=255.0)
            per_frame.append(time.perf_counter() - start)
        ours_samples = 1.0 / statistics.median(per_frame)
        ffmpeg = _ffmpeg_fps(width, height, max(args.frames, 25))
        line = (f"video {width}x{height}: lpipscli ssim {ours:8.1f} frames/s (metric only, RGB float), "
                f"{ours_samples:8.1f} (uint8 samples)")
        if ffmpeg is None:
            line += "; ffmpeg not on PATH: FFmpeg's ssim filter not measured"
        else:
            line += f"; ffmpeg -lavfi ssim {ffmpeg:8.1f} frames/s (decode included, YUV): {ours / ffmpeg:.2f}x"
        print(line)


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the whole process tree) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_sweep(args) -> None:
    """Whole processes on the 540 pairs: `lpips compare -m ssim` (or ``--sweep-metric``) against the Pillow +
    scikit-image loop."""
    import sys

    from bench_sweep import make_sweep

    with tempfile.TemporaryDirectory() as tmp:
        ref, dists = make_sweep(args.data, Path(tmp) / "sweep")
        ours_csv, theirs_json = Path(tmp) / "ours.csv", Path(tmp) / "skimage.json"
        metric = args.sweep_metric
        ours_name = f"lpips compare -m {metric}"
        commands = {
            ours_name: [sys.executable, "-m", "lpipscli", "compare", "-m", metric, "-o", str(ours_csv),
                        "-q", str(ref), *map(str, dists)],
            "scikit-image loop (Pillow, 1 thread)": [sys.executable, "-c", SKIMAGE_LOOP, metric, str(theirs_json),
                                                     str(ref), *map(str, dists)],
        }
        # --threads sets lpipscli's compute threads (the engine honours OMP_NUM_THREADS); the loop has one
        envs = {ours_name: {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.sweep_rounds):
            for name, cmd in commands.items():
                runs[name].append(_run(cmd, envs.get(name, {})))
        with ours_csv.open(newline="") as handle:
            ours = {row["dist"]: float(row[metric]) for row in csv.DictReader(handle)}
        theirs = json.loads(theirs_json.read_text())
    diff = max(abs(ours[k] - theirs[k]) for k in theirs)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(theirs)} pairs of 256x256 RGB (bench_sweep's 60 crops x 9 folders), whole processes, "
          f"{args.sweep_rounds} alternating rounds, {cores} cores; max |lpipscli - skimage| {diff:.1e}")
    print(f"{'':40s}{'wall s':>9s}{'pairs/s':>9s}{'CPU s':>9s}")
    medians = {}
    for name, values in runs.items():
        wall, cpu = (statistics.median(v[i] for v in values) for i in (0, 1))
        medians[name] = (wall, cpu)
        print(f"{name:40s}{wall:9.2f}{len(theirs) / wall:9.1f}{cpu:9.2f}")
    (our_wall, our_cpu), (their_wall, their_cpu) = medians.values()
    print(f"ratio (scikit-image loop / lpipscli): {their_wall / our_wall:.2f}x wall, {their_cpu / our_cpu:.2f}x CPU")


def bench_breakdown(args) -> None:
    """Where the CPU time of one whole run goes (one thread, decoding in the main process)."""
    import sys

    from bench_sweep import make_sweep

    with tempfile.TemporaryDirectory() as tmp:
        ref, dists = make_sweep(args.data, Path(tmp) / "sweep")
        cmd = [sys.executable, "-c", BREAKDOWN, "-o", str(Path(tmp) / "o.csv"), str(ref), *map(str, dists)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    parts = json.loads(done.stdout.strip().splitlines()[-1])
    parts.setdefault("uint8 -> float64", 0.0)  # SSIM reads the integer samples: no conversion at all
    score = parts["_score"] - parts["SSIM core"] - parts["uint8 -> float64"]
    loop = parts["drive"] - parts["_score"] - parts["decoding (dataset items)"] - parts["collate"]
    rows = [("import torch", parts["import torch"]), ("other imports", parts["other imports"]),
            ("decoding (Pillow, dataset items)", parts["decoding (dataset items)"]), ("collate", parts["collate"]),
            ("uint8 -> float64 [0, 1]", parts["uint8 -> float64"]), ("SSIM core", parts["SSIM core"]),
            ("rest of scoring (rows)", score), ("rest of the loop (batcher, CSV)", loop),
            ("CLI, planning, exit", parts["total"] - parts["drive"] - parts["import torch"] - parts["other imports"])]
    print(f"CPU seconds of one `lpips compare -m ssim` over the 540 pairs (--workers 0, one thread): "
          f"{parts['total']:.2f} s")
    for name, value in rows:
        print(f"  {name:36s}{value:7.2f} s{100 * value / parts['total']:6.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (lpipscli's SSIM uses as many)")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per video size")
    parser.add_argument("--video-sizes", nargs="*", default=["640x360", "1920x1080"])
    parser.add_argument("--sweep-rounds", type=int, default=3,
                        help="alternating whole-process rounds on the 540 pairs (0: skip)")
    parser.add_argument("--sweep-metric", choices=("ssim", "psnr"), default="ssim",
                        help="the metric of the whole-process runs")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print where one whole run's CPU time goes (engine stages, one thread)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep_rounds > 0:
        bench_sweep(args)
    if args.breakdown:
        bench_breakdown(args)
    if args.pairs > 0:
        bench_images(args)
    bench_video(args)


if __name__ == "__main__":
    main()
