"""Per-pair time of every metric at 256x256 and 512x512 RGB on this machine (CPU unless --device cuda).

Pairs are crops of a real photo and its JPEG-q30 version from ../shared/data (synthetic smooth images when the
folder is missing). LPIPS runs with seeded stand-in backbones when the real ones are not cached (same compute).
Each metric is timed on a batch of one pair, best of --repeat runs after a warm-up, under inference_mode.

    python benchmarks/bench_metrics.py
    python benchmarks/bench_metrics.py --metrics lpips_alex,ssim --sizes 256,512,1024
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _common import DEFAULT_DATA, torch_home_with_weights


def load_pair(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref_path = DEFAULT_DATA / "ref" / "kodim23_parrots.png"
    dist_path = DEFAULT_DATA / "dist" / "jpeg_q30" / "kodim23_parrots.jpg"
    if ref_path.is_file() and dist_path.is_file():
        from lpipscli.io.decoding import decode_image, to_float

        ref, dist = (to_float(decode_image(p)) for p in (ref_path, dist_path))
        reps = -(-size // min(ref.shape[:2]))
        ref, dist = (np.tile(a, (reps, reps, 1))[:size, :size] for a in (ref, dist))
    else:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:size, 0:size] / size
        ref = np.stack([0.5 + 0.4 * np.sin(7 * xx + c) * np.cos(5 * yy) for c in range(3)], -1)
        dist = np.clip(ref + rng.normal(0, 0.03, ref.shape), 0, 1)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()  # noqa: E731
    return to(ref), to(dist)


def main() -> None:
    from lpipscli.metrics import REGISTRY, resolve_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default=",".join(REGISTRY))
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    keys = [k for k in args.metrics.split(",") if k]
    nets = tuple(k.split("_", 1)[1] for k in keys if k.startswith("lpips_"))
    if nets:
        home, real = torch_home_with_weights(nets)
        os.environ["TORCH_HOME"] = home
        if not real:
            os.environ["LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS"] = "1"
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; seconds per pair "
          f"(best of {args.repeat})")
    print(f"{'metric':16s}" + "".join(f"{f'{s}x{s}':>12s}" for s in sizes))
    pairs = {s: tuple(t.to(device) for t in load_pair(s)) for s in sizes}
    for key in keys:
        spec = REGISTRY[key]
        params = resolve_params(key)
        if spec.build is not None:
            runner, _ = spec.build(device, **params)
        else:
            def runner(r, d, i, fn=spec.fn, params=params):
                return fn(r.index_select(0, i), d, **params)
        cells = []
        for size in sizes:
            dtype = torch.float64 if spec.input_dtype == "float64" else torch.float32
            ref, dist = (t.to(dtype) for t in pairs[size])
            index = torch.zeros(1, dtype=torch.long, device=device)
            best = float("inf")
            with torch.inference_mode():
                runner(ref, dist, index)  # warm-up
                for _ in range(args.repeat):
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    runner(ref, dist, index)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - start)
            cells.append(f"{best:12.4f}")
        print(f"{key:16s}" + "".join(cells), flush=True)
    print("official LASI code (METRICS.md, measured on this machine class): ~3.5 s per 32x32 RGB pair, "
          "out of memory at 64x64 (it materialises O(N^2 k^2)).")


if __name__ == "__main__":
    main()
