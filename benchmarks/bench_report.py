"""Time `lpips report` on a synthetic results file of N rows and print the page size.

    python benchmarks/bench_report.py --rows 100000             # image pairs, 2 distorted inputs, 3 metrics
    python benchmarks/bench_report.py --rows 100000 --video     # per-frame rows: curves are decimated

The rows point at a dozen real 320x240 PNGs (written to a temporary folder), so the gallery embeds thumbnails as
it would for a real run. Stages timed: reading the file (read_results), rendering the page (build_report,
reading included), writing it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def make_results(folder: Path, rows: int, video: bool, seed: int = 0) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for k in range(12):
        yy, xx = np.mgrid[0:240, 0:320] / 320
        ref = (np.stack([np.sin(6 * xx + k), np.cos(5 * yy + k), np.sin(3 * (xx + yy))], -1) * 0.4 + 0.5) * 255
        dist = np.clip(ref + rng.normal(0, 15, ref.shape), 0, 255)
        Image.fromarray(ref.astype(np.uint8)).save(folder / f"r{k}.png")
        Image.fromarray(dist.astype(np.uint8)).save(folder / f"d{k}.png")
        files.append((str(folder / f"r{k}.png"), str(folder / f"d{k}.png")))
    idx = np.arange(rows) % len(files)
    columns = {
        "ref": [files[i][0] for i in idx], "dist": [files[i][1] for i in idx],
        "dist_root": np.where(np.arange(rows) % 2 == 0, "enc/a", "enc/b").tolist(),
    }
    if video:
        columns["frame"] = np.arange(rows) // 2
        columns["dist_frame"] = np.arange(rows) // 2
    columns.update({
        "width": np.full(rows, 320), "height": np.full(rows, 240),
        "psnr": rng.normal(31, 3, rows), "ssim": rng.uniform(0.5, 1, rows), "lpips_alex": rng.uniform(0, 0.6, rows),
        "status": ["ok"] * rows, "error": [""] * rows,
    })
    path = folder / "results.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--video", action="store_true", help="rows with a frame column (per-frame curves)")
    parser.add_argument("--worst", type=int, default=8)
    args = parser.parse_args()

    from lpipscli.report import build_report
    from lpipscli.results import read_results

    with tempfile.TemporaryDirectory(prefix="lpipscli-bench-report-") as tmp:
        folder = Path(tmp)
        path = make_results(folder, args.rows, args.video)
        t0 = time.perf_counter()
        read_results(path)
        t1 = time.perf_counter()
        report = build_report(path, out_dir=folder, worst=args.worst)
        t2 = time.perf_counter()
        out = folder / "report.html"
        out.write_text(report.html, encoding="utf-8")
        t3 = time.perf_counter()
        size = out.stat().st_size
    print(f"rows {args.rows} ({'video' if args.video else 'images'}): read {t1 - t0:.2f} s, "
          f"build (read included) {t2 - t1:.2f} s, write {t3 - t2:.3f} s, page {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
