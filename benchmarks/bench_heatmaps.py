"""Cost of `lpips compare --heatmaps` against the same run without it, on the shared image data.

Runs `python -m lpipscli compare REF DIST1 DIST2 DIST3 -m lpips_alex,ssim,psnr --quiet -o scores.csv`
(whole process: import, weights, decoding, metrics, CSV) once without heatmaps and then with each heatmap
mode, writing into a fresh temporary folder each time:

    none          no heatmaps (the baseline)
    png           --heatmaps DIR                       (magma PNG per pair and metric, fixed scale)
    npy           --heatmaps DIR --heatmap-format npy  (float32 raw maps)
    panel         --heatmaps DIR --heatmap-panel       (ref | dist | heatmap PNG panels)
    worst5        --heatmaps DIR --heatmap-worst 5     (only the 5 worst maps per metric, written at the end)

and prints wall time, peak memory (proportional set size of the process tree, decoding workers included,
shared pages counted once), the number and total size of the files written, and each mode's ratio against
the baseline.

    python benchmarks/bench_heatmaps.py                                  # ../shared/data, best of 2
    python benchmarks/bench_heatmaps.py --dists jpeg_q10,webp_q20 --repeat 3
    python benchmarks/bench_heatmaps.py --data DIR --workers 1           # DIR/ref and DIR/dist/<name>/

Every mode runs --repeat times; the best wall time and the lowest peak memory are kept. The modes are
interleaved (none, png, npy, ..., then again) so that a change in machine load hits them alike. Without
real ImageNet weights in the torch cache it writes seeded stand-ins into a temporary TORCH_HOME: same
compute, so the timings hold; the LPIPS values (and the LPIPS maps) are then not meaningful.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import DEFAULT_DATA, run_measured, torch_home_with_weights

MODES = {
    "none": None,
    "png": [],
    "npy": ["--heatmap-format", "npy"],
    "panel": ["--heatmap-panel"],
    "worst5": ["--heatmap-worst", "5"],
}


def folder_stats(folder: Path) -> tuple[int, int]:
    """Number of files and total bytes under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dists", default="jpeg_q30,webp_q20,blur_gauss_s1.5",
                        help="comma-separated distortion folders under DATA/dist")
    parser.add_argument("--metric", default="lpips_alex,ssim,psnr")
    parser.add_argument("--repeat", type=int, default=2, help="runs per mode; the best is kept")
    parser.add_argument("--workers", type=int, default=None, help="passed to lpips compare --workers")
    args = parser.parse_args()
    ref_dir = args.data / "ref"
    dist_dirs = [args.data / "dist" / name.strip() for name in args.dists.split(",") if name.strip()]
    missing = [str(p) for p in [ref_dir, *dist_dirs] if not p.is_dir()]
    if missing or not dist_dirs:
        raise SystemExit(f"missing folders: {', '.join(missing) or 'no --dists'}")
    nets = tuple(m.split("_", 1)[1] for m in args.metric.split(",") if m.startswith("lpips_"))
    home, real = torch_home_with_weights(nets or ("alex",))
    env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1"}
    print(f"data: {args.data}, ref + {', '.join(p.name for p in dist_dirs)}, metrics: {args.metric}, "
          f"weights: {'real ImageNet' if real else 'seeded stand-ins (timing only)'}, "
          f"CPU cores: {os.cpu_count()}, best of {args.repeat}")

    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    written: dict[str, tuple[int, int]] = {}
    pairs: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lpipscli-bench-heatmaps-") as name:
            tmp = Path(name)
            for _ in range(args.repeat):
                for mode, extra in MODES.items():
                    out_csv, maps = tmp / "scores.csv", tmp / "maps"
                    shutil.rmtree(maps, ignore_errors=True)
                    cmd = [sys.executable, "-m", "lpipscli", "compare", str(ref_dir), *map(str, dist_dirs),
                           "--metric", args.metric, "-o", str(out_csv), "--quiet", "--alpha", "drop"]
                    if extra is not None:
                        cmd += ["--heatmaps", str(maps), *extra]
                    if args.workers is not None:
                        cmd += ["--workers", str(args.workers)]
                    wall, peak, _ = run_measured(cmd, env)
                    results[mode].append((wall, peak))
                    written[mode] = folder_stats(maps)
                    pairs[mode] = len(out_csv.read_text().splitlines()) - 1
    finally:
        if not real:
            shutil.rmtree(home, ignore_errors=True)
    if len(set(pairs.values())) != 1:
        raise SystemExit(f"row counts differ between modes: {pairs}")

    base_wall = min(w for w, _ in results["none"])
    base_peak = min(p for _, p in results["none"])
    n = pairs["none"]
    print(f"{n} pairs\n")
    print(f"{'mode':8s}{'wall s':>9s}{'pairs/s':>9s}{'x wall':>8s}{'peak MiB':>10s}{'x peak':>8s}"
          f"{'files':>7s}{'MiB written':>13s}   runs (wall s)")
    for mode, runs in results.items():
        wall, peak = min(w for w, _ in runs), min(p for _, p in runs)
        files, size = written[mode]
        print(f"{mode:8s}{wall:9.2f}{n / wall:9.2f}{wall / base_wall:8.2f}{peak:10.0f}{peak / base_peak:8.2f}"
              f"{files:7d}{size / 2**20:13.1f}   {', '.join(f'{w:.2f}' for w, _ in runs)}")
    print("\nx wall / x peak: ratio against 'none' (best wall, lowest peak of each mode); files include "
          "heatmaps.json.")


if __name__ == "__main__":
    main()
