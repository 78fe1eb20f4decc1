"""Scaling out on one machine: 1 process vs G processes (torchrun, and G `--shard` processes + `lpips merge`).

Writes seeded synthetic images (or uses ``--data DIR`` with DIR/ref and DIR/dist/*/), then times on the CPU:

1. one `lpips compare` process (its default decoding workers and threads);
2. ``torchrun --standalone --nproc-per-node G -m lpipscli compare ...`` (each rank a shard, rank 0 merges);
3. G `lpips compare --shard I/G` processes started together (a job array on one machine), then `lpips merge`.

and checks that the three results hold the same rows. Each process gets its share of the cores
(OMP_NUM_THREADS = cores / G, as torchrun would otherwise set it to 1). Timings mean something only on
an idle machine.

    python benchmarks/bench_scaleout.py                     # 64 pairs of 256x256, lpips_alex,ssim,psnr, G=2
    python benchmarks/bench_scaleout.py --images 8 --size 64 --metrics psnr,ssim    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, torch_home_with_weights


def make_images(root: Path, n: int, size: int) -> tuple[Path, list[Path]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    dists = [root / "dist" / name for name in ("noise", "blur")]
    for folder in [root / "ref", *dists]:
        folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        ref = Image.fromarray(base).resize((size, size), Image.BICUBIC)
        ref.save(root / "ref" / f"{k:05d}.png")
        noisy = np.clip(np.asarray(ref, dtype=np.float64) + rng.normal(0, 8, (size, size, 3)), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(dists[0] / f"{k:05d}.png")
        ref.resize((size // 2, size // 2), Image.BILINEAR).resize((size, size), Image.BICUBIC).save(
            dists[1] / f"{k:05d}.png")
    return root / "ref", dists


def timed(cmd: list, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 4):
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--metrics", default="lpips_alex,ssim,psnr")
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lpipscli-scaleout-"))
    if args.data is not None:
        ref, dists = args.data / "ref", sorted(p for p in (args.data / "dist").iterdir() if p.is_dir())
    else:
        ref, dists = make_images(work / "data", args.images, args.size)
    home, real = torch_home_with_weights(("alex",) if "lpips_alex" in args.metrics else ())
    cores = len(os.sched_getaffinity(0))
    g = args.procs
    env = {**os.environ, "TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "1", "CUDA_VISIBLE_DEVICES": ""}
    share = {**env, "OMP_NUM_THREADS": str(max(1, cores // g))}
    base = [sys.executable, "-m", "lpipscli", "compare", ref, *dists, "-m", args.metrics, "-q", "--device", "cpu",
            "--on-error", "skip", "--allow-failed"]
    one = timed([*base, "-o", work / "one.parquet"], env)
    tr = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", g, "-m",
                "lpipscli", *base[3:], "-o", work / "torchrun.parquet"], share)
    (work / "shards").mkdir()
    start = time.perf_counter()
    procs = [subprocess.Popen([str(c) for c in [*base, "--shard", f"{i}/{g}", "-o", work / "shards" / f"{i}.parquet"]],
                              cwd=REPO, env=share, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(g)]
    codes = [p.wait() for p in procs]
    if any(c not in (0, 4) for c in codes):
        sys.exit(f"a shard failed: {codes}")
    timed([sys.executable, "-m", "lpipscli", "merge", work / "merged.parquet", work / "shards", "-q",
           "--allow-failed"], env)
    array = time.perf_counter() - start

    sys.path.insert(0, str(REPO))
    from lpipscli.results import read_results
    from lpipscli.sources.base import row_key

    tables = [read_results(work / f) for f in ("one.parquet", "torchrun.parquet", "merged.parquet")]
    rows = [sorted(t.rows, key=row_key) for t in tables]
    pairs = len(rows[0])

    def close(a: dict, b: dict) -> bool:  # float32 networks: batch composition moves the last bits (README: 1e-6)
        if a.keys() != b.keys():
            return False
        for k, va in a.items():
            vb = b[k]
            if isinstance(va, float) and isinstance(vb, float):
                if not (va == vb or abs(va - vb) <= 1e-6 * max(1.0, abs(va))):
                    return False
            elif va != vb:
                return False
        return True

    same = all(len(r) == pairs and all(close(x, y) for x, y in zip(rows[0], r, strict=True)) for r in rows[1:])
    print(json.dumps({
        "pairs": pairs, "size": args.size, "metrics": args.metrics, "cores": cores, "procs": g,
        "real_weights": real if "lpips" in args.metrics else None, "same_rows_within_1e-6": same,
        "one_process_s": round(one, 2), "torchrun_s": round(tr, 2), "shards_and_merge_s": round(array, 2),
        "pairs_per_s": {"one": round(pairs / one, 2), "torchrun": round(pairs / tr, 2),
                        "shards": round(pairs / array, 2)},
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
