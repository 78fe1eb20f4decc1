"""Start-up cost of scoring one pair, against `python -c "import torch"` (the floor of any torch program).

Each command is a whole process, run in alternation (A B C A B C ...) so that a change in machine load
hits every command alike; the table gives the median wall time, its difference from `import torch` and
the ratio. LPIPS uses seeded stand-in backbones in a temporary TORCH_HOME when the real ones are not
cached (the same files and the same loading path, so the same start-up cost).

    python benchmarks/bench_startup.py                 # 7 rounds
    python benchmarks/bench_startup.py --rounds 15 --metrics psnr,ssim,lpips_alex,lpips_vgg

Issue 14 targets: `-m psnr` within +0.5 s of `import torch`, `-m lpips_alex` within +1.0 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, torch_home_with_weights


def write_pair(folder: Path, size: int = 64) -> tuple[Path, Path]:
    """Two small seeded PNGs (a smooth image and a noisy copy)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ref = np.stack([0.5 + 0.4 * np.sin(7 * xx + c) * np.cos(5 * yy) for c in range(3)], -1)
    dist = np.clip(ref + rng.normal(0, 0.03, ref.shape), 0, 1)
    paths = []
    for name, image in (("a.png", ref), ("b.png", dist)):
        path = folder / name
        Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
        paths.append(path)
    return paths[0], paths[1]


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--metrics", default="psnr,lpips_alex", help="comma-separated metric keys, one command each")
    parser.add_argument("--size", type=int, default=64, help="side of the two test images")
    parser.add_argument("--no-torchvision", action="store_true", help="skip the `import torchvision` row")
    args = parser.parse_args()
    metrics = [m for m in args.metrics.split(",") if m]
    nets = tuple(m.split("_", 1)[1] for m in metrics if m.startswith("lpips_"))
    env = dict(os.environ)
    real = True
    if nets:
        home, real = torch_home_with_weights(nets)
        env["TORCH_HOME"] = home
        env["LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS"] = "0" if real else "1"

    with tempfile.TemporaryDirectory() as tmp:
        a, b = write_pair(Path(tmp), args.size)
        commands = {"python -c 'import torch'": [sys.executable, "-c", "import torch"]}
        if not args.no_torchvision:
            commands["python -c 'import torchvision'"] = [sys.executable, "-c", "import torchvision"]
        for metric in metrics:
            commands[f"compare a.png b.png -m {metric}"] = [
                sys.executable, "-m", "lpipscli", "compare", str(a), str(b), "--metric", metric, "--quiet",
            ]
        for cmd in commands.values():  # warm the page cache and write the bytecode once, untimed
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                times[name].append(timed(cmd, env))

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} alternating rounds, "
          f"{args.size}x{args.size} pair, weights: {'real' if real else 'seeded stand-ins'}")
    floor = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':40s}{'median s':>10s}{'min s':>8s}{'max s':>8s}{'- torch s':>11s}{'/ torch':>9s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:40s}{median:10.2f}{min(values):8.2f}{max(values):8.2f}{median - floor:+11.2f}"
              f"{median / floor:9.2f}")


if __name__ == "__main__":
    main()
