"""LPIPS in float32 against `precision="bf16"` (bfloat16 autocast for the backbone): throughput and difference.

1. Difference: every pair of ../shared/data (each ref/<name>.png against dist/<kind>/<name>.*, decoded with
   Pillow as RGB, alpha dropped, 16-bit scaled by 65535) is scored in both precisions, one pair per call;
   the largest |bf16 - float32| (absolute and relative) is printed with the pair it comes from.
2. Throughput: a batch of ``--batch`` 256x256 crop pairs scored in float32 and bf16 in alternation,
   ``--rounds`` times; median pairs/s and the ratio (issue 14 asks >= 1.6x on a CPU with bfloat16 support).
3. The hardware's own ceiling for that ratio: a 2048x2048 matrix product (torch's best kernels, MKL/oneDNN)
   in float32 and in bfloat16, GFLOP/s and their ratio. Without AMX (``amx_bf16`` in /proc/cpuinfo) a CPU
   does bfloat16 through AVX512-BF16 dot products, at best the float32 rate: LPIPS cannot gain there.

Without real ImageNet backbones in the torch cache, seeded stand-ins are used (same compute, so timings
hold; the differences are then those of random weights, not of LPIPS proper: say so when quoting them).

    python benchmarks/bench_precision.py                       # alex, ../shared/data
    python benchmarks/bench_precision.py --nets alex,vgg --batch 32 --rounds 7
    python benchmarks/bench_precision.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import DEFAULT_DATA, torch_home_with_weights


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    image = Image.open(path)
    if image.mode in ("I;16", "I;16B", "I"):
        return np.asarray(image, dtype=np.float32)[..., None].repeat(3, -1) / 65535.0
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def data_pairs(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, ref, dist) float32 ``(H, W, 3)`` arrays in [0, 1], same size only."""
    pairs = []
    if not (data / "ref").is_dir():
        return pairs
    for ref_path in sorted((data / "ref").glob("*.png")):
        ref = _read(ref_path)
        for dist_path in sorted((data / "dist").glob(f"*/{ref_path.stem}.*")):
            dist = _read(dist_path)
            if dist.shape == ref.shape and min(ref.shape[:2]) >= 32:
                pairs.append((f"{dist_path.parent.name}/{dist_path.name}", ref, dist))
    return pairs


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device)


def crops(pairs, n: int, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` 256x256 crop pairs (tiled when the images are small; seeded noise when there is no data)."""
    refs, dists = [], []
    for i in range(n):
        if pairs:
            _, ref, dist = pairs[i % len(pairs)]
            reps = -(-size // min(ref.shape[:2]))
            ref, dist = (np.tile(a, (reps, reps, 1))[:size, :size] for a in (ref, dist))
        else:
            rng = np.random.default_rng(i)
            ref = rng.random((size, size, 3), dtype=np.float32)
            dist = np.clip(ref + rng.normal(0, 0.05, ref.shape).astype(np.float32), 0, 1)
        refs.append(ref)
        dists.append(dist)
    to = lambda arrays: torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())  # noqa: E731
    return to(refs), to(dists)


def gemm_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, rounds: int = 5) -> float:
    """Median GFLOP/s of an ``n x n`` matrix product in ``dtype`` (the hardware ceiling for conv layers)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for _ in range(rounds + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--nets", default="alex")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-pairs", type=int, default=None, help="score only the first N data pairs")
    args = parser.parse_args()
    device = torch.device(args.device)
    nets = tuple(n for n in args.nets.split(",") if n)
    home, real = torch_home_with_weights(nets)
    os.environ["TORCH_HOME"] = home
    if not real:
        os.environ["LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS"] = "1"
    from lpipscli.metrics.lpips import LPIPS

    gemm = {dt: gemm_gflops(dt, device) for dt in (torch.float32, torch.bfloat16)}
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "no bfloat16 instructions listed"
    print(f"matrix product 2048x2048 on {device}: float32 {gemm[torch.float32]:.0f} GFLOP/s, bfloat16 "
          f"{gemm[torch.bfloat16]:.0f} GFLOP/s ({gemm[torch.bfloat16] / gemm[torch.float32]:.2f}x; CPU flags: {isa})")
    pairs = data_pairs(args.data)[: args.max_pairs]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"weights: {'real ImageNet' if real else 'seeded stand-ins (differences not LPIPS proper)'}, "
          f"{len(pairs)} data pairs from {args.data}")
    for net in nets:
        exact = LPIPS(net, allow_unverified=not real).to(device)
        fast = LPIPS(net, allow_unverified=not real, precision="bf16").to(device)
        worst_abs, worst_rel, where = 0.0, 0.0, "-"
        with torch.inference_mode():
            for label, ref, dist in pairs:
                r, d = _tensor(ref, device), _tensor(dist, device)
                a, b = exact(r, d).item(), fast(r, d).item()
                if abs(b - a) > worst_abs:
                    worst_abs, where = abs(b - a), f"{label} (float32 {a:.6f}, bf16 {b:.6f})"
                worst_rel = max(worst_rel, abs(b - a) / max(abs(a), 1e-12))
            ref, dist = (t.to(device) for t in crops(pairs, args.batch))
            times = {"float32": [], "bf16": []}
            for module in (exact, fast):
                module(ref, dist)  # warm-up
            for _ in range(args.rounds):
                for name, module in (("float32", exact), ("bf16", fast)):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    module(ref, dist)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - start)
        f32, b16 = (args.batch / statistics.median(times[k]) for k in ("float32", "bf16"))
        print(f"lpips_{net}: float32 {f32:.1f} pairs/s, bf16 {b16:.1f} pairs/s ({b16 / f32:.2f}x) on "
              f"{args.batch} 256x256 pairs, median of {args.rounds}")
        if pairs:
            print(f"lpips_{net}: largest |bf16 - float32| over {len(pairs)} pairs {worst_abs:.2e} "
                  f"(relative {worst_rel:.2e}) at {where}")


if __name__ == "__main__":
    main()
