"""Per-pair time of the exact O(N k^2) LASI at 256x256 and 512x512 RGB, against an exact NumPy version.

Run: ``.venv/bin/python benchmarks/bench_lasi.py [--sizes 256 512] [--content textured|flat|both] [--repeats 1]
[--threads 1] [--device cpu] [--no-numpy]`` (from a git worktree, prefix ``PYTHONPATH=.`` so that the
worktree's ``lpipscli`` is measured, not the installed one: the header prints which).

Times are CPU seconds of this process (``time.process_time``), on one torch thread unless ``--threads`` says
otherwise, so that a shared machine does not skew the ratio; on CUDA, wall-clock seconds. Content:

* ``textured``: a smooth pattern plus noise; nearly every ``A_i`` keeps all its singular values (certified
  Cholesky path).
* ``flat``: (a) the same pattern without noise, rounded to 8 bits: smooth regions where the pinv cut-off drops
  a few eigenvalues of most ``A_i`` (eigendecomposition path); (b) large uniform regions (a gray background
  and flat coloured rectangles, 8-bit), the distorted image a brightness shift of the rectangles: gray regions
  keep one eigenvalue (rank-one path), coloured ones several (eigendecomposition path).

The NumPy reference below evaluates the same definition with the same O(N k^2) factorisation, written the
plain way: float64 feature arrays for the whole image, the first-order recursions as Python loops over
columns and rows (vectorised over the rest), and ``numpy.linalg.pinv(hermitian=True)`` with JAX's
cut-off for every element. Its value is printed next to ours (they agree to ~1e-13 relative). Issue 14
asks lpipscli's ``lasi`` to be >= 10x faster than it at 512x512. The neighbourhood table comes from
``lpipscli.metrics.lasi.causal_neighbourhood``, which the tests check against a brute-force argsort.

For scale: the official JAX code (dsevero/Linear-Autoregressive-Similarity-Index) materialises every
element pair, O(N^2 k^2) memory: about 3.5 s per 32x32 RGB pair, about 20 GB at 48x48, and out of memory
at 64x64 (it requests 63 GB), per the measurements in the project's metric specification.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

# One BLAS thread for the NumPy reference: idle OpenBLAS workers spin after each call, and process_time
# counts them, in the reference's time and in lasi's time measured after it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lpipscli.metrics.lasi import causal_neighbourhood, lasi  # noqa: E402

OFFICIAL_NOTE = (
    "official JAX code: ~3.5 s per 32x32 RGB pair, O(N^2 k^2) memory (~20 GB at 48x48), OOM at 64x64 (63 GB)"
)


def numpy_embeddings(image: np.ndarray, k: int = 10, coef: float = 1.0, omega: float = 0.8) -> np.ndarray:
    """``(H*W*C, k)`` unit LASI embeddings of an ``(H, W, C)`` float64 image on [0, 255] (NumPy, exact)."""
    height, width, channels = image.shape
    offsets, found = (t.numpy() for t in causal_neighbourhood(height, width, channels, k))
    hh, ww, cc = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing="ij")
    nh = np.clip(hh[..., None] + offsets[..., 0], 0, height - 1)
    nw = np.clip(ww[..., None] + offsets[..., 1], 0, width - 1)
    nc = np.clip(cc[..., None] + offsets[..., 2], 0, channels - 1)
    neigh = np.where(found, image[nh, nw, nc], 0.0)  # (H, W, C, k); missing neighbours are 0
    iu = np.triu_indices(k)
    feats = np.concatenate([(neigh[..., :, None] * neigh[..., None, :])[..., iu[0], iu[1]],
                            image[..., None] * neigh], axis=-1)  # (H, W, C, F)
    gap = np.arange(channels)[:, None] - np.arange(channels)[None, :]
    mix_all = omega ** np.abs(gap)
    mix_before = np.where(gap > 0, omega ** np.abs(gap), 0.0)
    pix = np.einsum("cd,hwdf->hwcf", mix_all, feats)  # every channel of a pixel
    same = np.einsum("cd,hwdf->hwcf", mix_before, feats)  # earlier channels of the same pixel
    left = np.zeros_like(pix)
    right = np.zeros_like(pix)
    for w in range(1, width):
        left[:, w] = omega * (left[:, w - 1] + pix[:, w - 1])
    for w in range(width - 2, -1, -1):
        right[:, w] = omega * (right[:, w + 1] + pix[:, w + 1])
    row_total = left + right + pix
    above = np.zeros_like(pix)
    for h in range(1, height):
        above[h] = omega * (above[h - 1] + row_total[h - 1])
    sums = (above + left + same).reshape(-1, feats.shape[-1])
    n_tri = len(iu[0])
    mats = np.zeros((sums.shape[0], k, k))
    mats[:, iu[0], iu[1]] = sums[:, :n_tri]
    mats[:, iu[1], iu[0]] = sums[:, :n_tri]
    mats += coef * 80.0 / 127.5 * np.eye(k)
    pinv = np.linalg.pinv(mats, rcond=10 * k * 2.0**-23, hermitian=True)
    params = np.einsum("nab,nb->na", pinv, sums[:, n_tri:]) + 1e-6
    return params / np.linalg.norm(params, axis=1, keepdims=True)


def numpy_lasi(ref: torch.Tensor, dist: torch.Tensor) -> float:
    """LASI of one ``(1, C, H, W)`` pair in [0, 1] with :func:`numpy_embeddings`."""
    to = lambda t: t[0].permute(1, 2, 0).double().numpy() * 255.0  # noqa: E731
    gaps = np.linalg.norm(numpy_embeddings(to(ref)) - numpy_embeddings(to(dist)), axis=1)
    return float(gaps.mean())


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


def uniform_regions(size: int, seed: int) -> torch.Tensor:
    """A seeded ``(1, 3, size, size)`` 8-bit image: gray background and six flat coloured rectangles."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.full((1, 3, size, size), 128 / 255)
    for _ in range(6):
        top, left = (torch.randint(0, size * 3 // 4, (2,), generator=gen)).tolist()
        height, width = (torch.randint(size // 8, size // 3, (2,), generator=gen)).tolist()
        img[..., top : top + height, left : left + width] = torch.randint(20, 236, (1, 3, 1, 1), generator=gen) / 255
    return img


def make_pair(content: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference and distorted image of one benchmark case, float64 (so the printed agreement is not float32's)."""
    if content == "uniform, 8-bit":
        ref = uniform_regions(size, seed=0)
        shifted = ((ref * 255 + 10).clamp(0, 255) / 255)
        dist = torch.where(ref == 128 / 255, ref, shifted)
        return ref.double(), dist.double()
    ref = smooth_plus_noise(size, seed=0, noise=0.02 if content == "smooth+noise" else 0.0)
    if content == "smooth, 8-bit":
        ref = (ref * 255).round() / 255
    dist = (ref + 0.03 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    return ref.double(), dist.double()


CONTENT = {
    "textured": ["smooth+noise"],  # most A_i keep every singular value: certified Cholesky path
    "flat": ["smooth, 8-bit", "uniform, 8-bit"],  # the pinv cut-off drops values: rank-one / eigh paths
}


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: CPU time per pair)")
    parser.add_argument("--content", choices=["textured", "flat", "both"], default="both")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference (slow: ~1 min at 512)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = "wall-clock" if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, {clock} seconds; "
          f"lpipscli from {Path(lasi.__code__.co_filename).parent.parent}")
    print(OFFICIAL_NOTE)
    cases = CONTENT["textured"] * (args.content != "flat") + CONTENT["flat"] * (args.content != "textured")
    for size in args.sizes:
        for name in cases:
            ref, dist = make_pair(name, size)
            ref, dist = ref.to(device), dist.to(device)
            times = []
            for _ in range(args.repeats):
                start = _clock(device)
                value = lasi(ref, dist)
                times.append(_clock(device) - start)
            line = f"{size}x{size} RGB {name:15s} lasi={value.item():.6f}  per pair: best {min(times):.2f} s"
            if not args.no_numpy:
                start = time.process_time()
                reference = numpy_lasi(ref.cpu(), dist.cpu())
                numpy_s = time.process_time() - start
                line += (f"; NumPy reference {numpy_s:.2f} s (lasi={reference:.6f}, rel. diff "
                         f"{abs(reference - value.item()) / reference:.1e}): {numpy_s / min(times):.2f}x")
            print(line, flush=True)


if __name__ == "__main__":
    main()
