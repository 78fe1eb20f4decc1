"""Per-pair time of the exact O(N k^2) LASI at 256x256 and 512x512 RGB (a benchmark, not a test).

Run: ``.venv/bin/python benchmarks/bench_lasi.py [--sizes 256 512] [--repeats 1] [--device cpu]``

For scale: the official JAX code (dsevero/Linear-Autoregressive-Similarity-Index) materialises every
element pair, O(N^2 k^2) memory: about 3.5 s per 32x32 RGB pair, about 20 GB at 48x48, and out of memory
at 64x64 (it requests 63 GB), per the measurements in the project's metric specification.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from lpipscli.metrics.lasi import lasi

OFFICIAL_NOTE = (
    "official JAX code: ~3.5 s per 32x32 RGB pair, O(N^2 k^2) memory (~20 GB at 48x48), OOM at 64x64 (63 GB)"
)


def smooth_plus_noise(size: int, seed: int, noise: float) -> torch.Tensor:
    """A seeded ``(1, 3, size, size)`` image in [0, 1]: low-frequency pattern per channel plus noise."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.linspace(0.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    chans = []
    for c in range(3):
        phase = torch.rand(2, generator=gen) * 2 * math.pi
        chans.append(
            0.5
            + 0.2 * torch.sin(2 * math.pi * (3 + c) * xx + phase[0])
            + 0.15 * torch.cos(2 * math.pi * (2 + c) * yy + phase[1])
        )
    img = torch.stack(chans)[None]
    img = img + noise * torch.randn(img.shape, generator=gen)
    return img.clamp(0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads")
    print(OFFICIAL_NOTE)
    cases = {
        "smooth+noise": 0.02,  # most A_i keep every singular value: Cholesky path
        "smooth, 8-bit": 0.0,  # flat neighbourhoods: the pinv cut-off drops values, eigh path
    }
    for size in args.sizes:
        for name, noise in cases.items():
            ref = smooth_plus_noise(size, seed=0, noise=noise)
            if noise == 0.0:
                ref = (ref * 255).round() / 255
            dist = (ref + 0.03 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
            ref, dist = ref.to(device), dist.to(device)
            times = []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                value = lasi(ref, dist)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            print(
                f"{size}x{size} RGB {name:14s} lasi={value.item():.6f}  "
                f"per pair: best {min(times):.2f} s (of {len(times)})"
            )


if __name__ == "__main__":
    main()
