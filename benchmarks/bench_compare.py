"""`lpips compare` against the official LPIPS two-folder loop, on the same pairs, in the same run.

The official `lpips_2dirs.py` scores one pair at a time: `lpips.load_image` (OpenCV; its non-OpenCV
fallback, used for .webp, needs matplotlib, so the OpenCV branch is used for every file), `im2tensor`, one
forward pass per pair, reference features recomputed for every distorted folder. This script runs that loop
(pairing files by stem, since the shared data's distorted files change extension) and `lpips compare` over
all distorted folders at once, each as its own process, and prints pairs/s, the ratio and peak memory
(proportional set size of the process tree, decoding workers included, shared pages counted once).

    python benchmarks/bench_compare.py                       # ../shared/data, LPIPS-alex, every folder
    python benchmarks/bench_compare.py --folders 'jpeg*,blur*,noise*,shift*'   # issue 14's 72-pair sweep
    python benchmarks/bench_compare.py --net vgg --data DIR  # DIR/ref and DIR/dist/*/

The two sides run alternately (official, ours, official, ours...) ``--repeat`` times; medians are printed.

Without real ImageNet weights in the torch cache it writes seeded stand-ins into a temporary TORCH_HOME:
same compute, so the timings hold; the LPIPS values are then not meaningful.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _common import DEFAULT_DATA, run_measured, torch_home_with_weights

OFFICIAL_LOOP = r"""
import json, sys, time, os
from pathlib import Path
t0 = time.perf_counter()
import cv2, lpips, torch
def load_image(path):  # lpips.load_image's OpenCV branch (its fallback for .webp needs matplotlib)
    return cv2.imread(path)[:, :, ::-1]
net, ref_dir, dist_dirs = sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
loss_fn = lpips.LPIPS(net=net, version="0.1", verbose=False)
t1 = time.perf_counter()
refs = {p.stem: p for p in sorted(ref_dir.iterdir())}
n, total = 0, 0.0
for dist_dir in dist_dirs:
    for dist in sorted(dist_dir.iterdir()):
        if dist.stem not in refs:
            continue
        img0 = lpips.im2tensor(load_image(str(refs[dist.stem])))
        img1 = lpips.im2tensor(load_image(str(dist)))
        total += loss_fn.forward(img0, img1).item()
        n += 1
t2 = time.perf_counter()
print(json.dumps({"pairs": n, "setup_s": t1 - t0, "loop_s": t2 - t1, "mean": total / n}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--net", default="alex", choices=["alex", "vgg", "squeeze"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--folders", default="*", help="comma-separated glob patterns of distorted folders")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per side; medians are printed")
    args = parser.parse_args()
    ref_dir = args.data / "ref"
    patterns = [p.strip() for p in args.folders.split(",") if p.strip()]
    dist_dirs = sorted(p for p in (args.data / "dist").iterdir()
                       if p.is_dir() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns))
    if not ref_dir.is_dir() or not dist_dirs:
        raise SystemExit(f"{args.data}: expected ref/ and dist/<name>/ folders")
    home, real = torch_home_with_weights((args.net,))
    env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1"}
    print(f"data: {args.data} ({len(dist_dirs)} distorted folders), net: {args.net}, "
          f"weights: {'real ImageNet' if real else 'seeded stand-ins (timing only)'}")

    official_cmd = [sys.executable, "-c", OFFICIAL_LOOP, args.net, str(ref_dir), *map(str, dist_dirs)]
    walls: dict[str, list[float]] = {"official": [], "ours": []}
    mems: dict[str, list[float]] = {"official": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        out_csv = Path(tmp) / "scores.csv"
        cmd = [sys.executable, "-m", "lpipscli", "compare", str(ref_dir), *map(str, dist_dirs),
               "--metric", f"lpips_{args.net}", "-o", str(out_csv), "--quiet", "--alpha", "drop"]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        for _ in range(args.repeat):  # A B A B: drifts of the machine hit both sides alike
            wall, mem, out = run_measured(official_cmd, env)
            official = json.loads(out)
            walls["official"].append(wall)
            mems["official"].append(mem)
            wall, mem, _ = run_measured(cmd, env)
            walls["ours"].append(wall)
            mems["ours"].append(mem)
        rows = out_csv.read_text().splitlines()[1:]
    n = official["pairs"]
    if len(rows) != n:
        raise SystemExit(f"pair counts differ: official {n}, lpips compare {len(rows)}")
    wall_off, wall_ours = statistics.median(walls["official"]), statistics.median(walls["ours"])
    mem_off, mem_ours = max(mems["official"]), max(mems["ours"])
    ratios = [a / b for a, b in zip(walls["official"], walls["ours"], strict=True)]
    print(f"{'':28s}{'wall s':>9s}{'pairs/s':>10s}{'peak MiB':>10s}")
    print(f"{'official lpips_2dirs loop':28s}{wall_off:9.2f}{n / wall_off:10.2f}{mem_off:10.0f}"
          f"   (import+build {official['setup_s']:.2f} s, loop {official['loop_s']:.2f} s)")
    print(f"{'lpips compare':28s}{wall_ours:9.2f}{n / wall_ours:10.2f}{mem_ours:10.0f}")
    print(f"ratio (official wall / ours): {wall_off / wall_ours:.2f}x over {n} pairs, whole processes, median of "
          f"{args.repeat} alternating runs (per round: {', '.join(f'{r:.2f}' for r in ratios)})")
    reuse(ref_dir, dist_dirs, args.net, env)


def reuse(ref_dir: Path, dist_dirs: list[Path], net: str, env: dict) -> None:
    """In-process: one run over every distorted folder (each reference's features computed once) against
    one run per folder (features recomputed), scoring time only (no imports, no weight loading)."""
    import os
    import time

    os.environ.update(env)
    from lpipscli.config import RunConfig
    from lpipscli.engine import Engine

    def score(dists: list[Path]) -> float:
        engine = Engine(RunConfig(ref=ref_dir, dists=tuple(dists), metrics=(f"lpips_{net}",), workers=0,
                                  allow_unverified_weights=True))
        engine.build()
        work = engine.plan(engine.pair())
        start = time.perf_counter()
        engine.execute(work, lambda rows: None)
        return time.perf_counter() - start

    together = score(dist_dirs)
    separate = sum(score([d]) for d in dist_dirs)
    print(f"reference features reused: one run over {len(dist_dirs)} folders {together:.2f} s, "
          f"{len(dist_dirs)} runs of one folder {separate:.2f} s (scoring only): {separate / together:.2f}x")


if __name__ == "__main__":
    main()
