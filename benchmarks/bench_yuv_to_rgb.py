"""In-process time of ``yuv_to_rgb`` per frame against the former NumPy code, and a check that they agree.

For each bit depth (8-bit and 10-bit 4:2:0, random planes, BT.709 limited range) and each OpenCV thread
setting (1, and OpenCV's default), both functions are called alternately ``--calls`` times and each one's
median ``time.perf_counter`` is kept; this is repeated ``--rounds`` times and the median of the rounds'
medians and of their ratios is printed. Every call's output is compared bit for bit with the old one's.

    python benchmarks/bench_yuv_to_rgb.py                    # 1080p, 25 calls, 3 rounds
    python benchmarks/bench_yuv_to_rgb.py --size 2160 --rounds 1
    python benchmarks/bench_yuv_to_rgb.py --smoke            # 64x48, 3 calls: checks the script runs

Timings on a loaded machine mean little: run it on an idle one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lpipscli, not an installed one
from lpipscli.io.av_video import yuv_to_rgb
from lpipscli.testing import reference_yuv_to_rgb as old_yuv_to_rgb  # the former NumPy code


def planes_420(bits: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bits == 8 else np.uint16
    ch, cw = -(-height // 2), -(-width // 2)
    return [rng.integers(0, 1 << bits, size=shape, dtype=dtype) for shape in ((height, width), (ch, cw), (ch, cw))]


def one_round(planes, bits: int, calls: int) -> tuple[float, float]:
    """Median seconds per call of the old and the new function, called alternately."""
    kwargs = {"bit_depth": bits, "colorspace": "bt709", "color_range": "limited"}
    old_t, new_t = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        old = old_yuv_to_rgb(planes, **kwargs)
        t1 = time.perf_counter()
        new = yuv_to_rgb(planes, **kwargs)
        t2 = time.perf_counter()
        if not (new.dtype == old.dtype and np.array_equal(new, old)):
            raise SystemExit(f"yuv_to_rgb differs from the old NumPy code ({bits}-bit)")
        old_t.append(t1 - t0)
        new_t.append(t2 - t1)
    return statistics.median(old_t), statistics.median(new_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1080, help="frame height; width = 16/9 of it (default 1080)")
    parser.add_argument("--calls", type=int, default=25, help="calls per function per round (default 25)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--smoke", action="store_true", help="64x48, 3 calls, 1 round")
    args = parser.parse_args()
    import cv2

    height, width = (48, 64) if args.smoke else (args.size, args.size * 16 // 9)
    calls, rounds = (3, 1) if args.smoke else (args.calls, args.rounds)
    default_threads = cv2.getNumThreads()
    print(f"yuv_to_rgb, {width}x{height} 4:2:0, median of {calls} calls, {rounds} round(s); ms per frame")
    for threads in (1, default_threads):
        cv2.setNumThreads(threads)
        for bits in (8, 10):
            planes = planes_420(bits, height, width)
            results = [one_round(planes, bits, calls) for _ in range(rounds)]
            old = statistics.median(r[0] for r in results) * 1e3
            new = statistics.median(r[1] for r in results) * 1e3
            ratio = statistics.median(r[0] / r[1] for r in results)
            print(f"  cv2 threads {threads}  {bits:2d}-bit  old {old:7.2f}  new {new:7.2f}  speed-up x{ratio:.2f}"
                  f"  (rounds: {', '.join(f'x{r[0] / r[1]:.2f}' for r in results)})", flush=True)
    cv2.setNumThreads(default_threads)


if __name__ == "__main__":
    main()
