"""Peak memory of whole `lpips compare` runs as the number of pairs grows (issue 14, goal 5).

Goal: an image run at 256x256 peaks at <= 1 GB for the whole process tree (decoding workers included) and
stays flat from 100 to 10,000 pairs. Inputs are made in a temporary folder: ``--images`` distinct 256x256
crops of the shared photos (or seeded noise without them) as PNG references, each with a JPEG q30 copy, then
the pair list repeats them up to N pairs (a `--pairs` CSV, one group per repetition), so that 10,000
pairs need no 10,000 files.
Peak = proportional set size (PSS) of the process tree, sampled every 50 ms (``_common.run_measured``).

    python benchmarks/bench_memory.py                                  # -m psnr at 100, 1000, 10000 pairs
    python benchmarks/bench_memory.py --metrics lpips_alex --counts 100,1000,3000
    python benchmarks/bench_memory.py --smoke                          # 20 and 60 pairs: checks the script
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATA, run_measured, torch_home_with_weights
from PIL import Image


def make_images(folder: Path, count: int, data: Path) -> list[tuple[Path, Path]]:
    """``count`` 256x256 PNG references and their JPEG q30 copies."""
    sources = sorted(p for p in (data / "ref").glob("*.png")) if (data / "ref").is_dir() else []
    rng = np.random.default_rng(0)
    pairs = []
    for k in range(count):
        if sources:
            image = Image.open(sources[k % len(sources)]).convert("RGB")
            x = (37 * k) % max(1, image.width - 256)
            y = (53 * k) % max(1, image.height - 256)
            image = image.crop((x, y, x + 256, y + 256)).resize((256, 256))
        else:
            image = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
        ref, dist = folder / f"ref_{k:03d}.png", folder / f"dist_{k:03d}.jpg"
        image.save(ref)
        image.save(dist, quality=30)
        pairs.append((ref, dist))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--metrics", default="psnr")
    parser.add_argument("--counts", default="100,1000,10000", help="comma-separated pair counts")
    parser.add_argument("--images", type=int, default=50, help="distinct image pairs the list repeats")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    counts = [20, 60] if args.smoke else [int(c) for c in args.counts.split(",") if c.strip()]
    nets = tuple(m.removeprefix("lpips_") for m in args.metrics.split(",") if m.startswith("lpips_"))
    env = {}
    if nets:
        home, real = torch_home_with_weights(nets)
        env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = make_images(folder, min(args.images, max(counts)), args.data)
        print(f"-m {args.metrics}, 256x256 pairs (a pair list over {len(images)} distinct pairs); peak = PSS of "
              "the process tree")
        print(f"{'pairs':>8s}{'wall s':>9s}{'pairs/s':>9s}{'peak MiB':>10s}")
        peaks = []
        for n in counts:
            listing = folder / f"pairs_{n}.csv"
            with listing.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["ref", "dist", "group"])
                for k in range(n):  # each repetition of the image pairs is its own group
                    ref, dist = images[k % len(images)]
                    writer.writerow([ref, dist, f"round{k // len(images):03d}"])
            out = folder / "scores.csv"
            cmd = [sys.executable, "-m", "lpipscli", "compare", "--pairs", str(listing), "-m", args.metrics,
                   "-o", str(out), "--quiet"]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            wall, peak, _ = run_measured(cmd, env)
            rows = sum(1 for _ in out.open()) - 1
            if rows != n:
                raise SystemExit(f"{n} pairs listed, {rows} rows written")
            peaks.append(peak)
            print(f"{n:8d}{wall:9.2f}{n / wall:9.1f}{peak:10.0f}")
        print(f"peak at {counts[-1]} pairs / peak at {counts[0]}: {peaks[-1] / peaks[0]:.2f}x "
              f"(flat = 1.00x; goal: <= 1024 MiB throughout)")


if __name__ == "__main__":
    main()
