"""Peak memory of whole `lpips compare` runs as the number of pairs grows (issue 14, goal 5).

Goal: an image run at 256x256 peaks at <= 1 GB for the whole process tree (decoding workers included) and
stays flat from 100 to 10,000 pairs. Inputs are made in a temporary folder: ``--images`` distinct 256x256
crops of the shared photos (or seeded noise without them) as PNG references, each with a JPEG q30 copy, then
the pair list repeats them up to N pairs (a `--pairs` CSV, one group per repetition), so that 10,000
pairs need no 10,000 files. More pairs therefore also means more distorted versions per reference (2 at 100
pairs, 200 at 10,000), so work items grow from 2 to a whole batch of pairs.

Every 50 ms the process tree is sampled (Linux /proc) and three peaks are printed, in MiB:
* ``PSS``: proportional set size of the tree (``_common.run_measured``'s measure). It includes the file pages
  of torch's libraries (about 240 MiB, split with any other torch program running on the machine, so it moves
  by up to ~100 MiB with what else runs, and it jumps by ~100 MiB in the last 0.2 s of a run, when the
  interpreter's exit touches libtorch_cuda's pages).
* ``private``: what the tree itself allocated: anonymous and shared-memory pages (PSS, shared within the tree
  only) of the main process and the decoding workers, plus ``in flight``. Not reclaimable, not affected by
  other processes: flatness is judged on this one.
* ``in flight``: shared-memory segments that a process of the tree holds open but none maps: decoded items a
  worker has sent towards the main process that it has not taken yet (torch's ``file_descriptor`` sharing).
  They are in no process's PSS.
The parts of ``private`` at its peak are printed too (main + workers + in flight).

    python benchmarks/bench_memory.py                                  # -m psnr at 100, 1000, 10000 pairs
    python benchmarks/bench_memory.py --metrics lpips_alex --counts 100,1000
    python benchmarks/bench_memory.py --smoke                          # 20 and 60 pairs: checks the script
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATA, process_tree, run_polled, torch_home_with_weights
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


def _fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """``Name: value kB`` lines of a /proc file, in KiB."""
    out = {}
    with open(path) as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in names:
                out[key] = int(rest.split()[0])
    return out


def _shared_segments(pid: int) -> tuple[set[int], dict[int, int]]:
    """Inodes of the shared-memory segments a process maps, and ``{inode: KiB}`` of those it holds open."""
    mapped = set()
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith(("/dev/shm/", "/memfd:")):
                mapped.add(int(parts[4]))
    held = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(("/dev/shm/", "/memfd:")):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                held[st.st_ino] = st.st_blocks // 2
        except OSError:
            continue
    return mapped, held


def sample(root: int) -> dict[str, int]:
    """One sample of the tree under ``root`` in KiB: ``pss``, ``private`` and ``in_flight`` (see the module doc),
    and the parts of ``private``: ``main`` and ``workers`` (anonymous and shared-memory PSS)."""
    out = dict.fromkeys(("pss", "main", "workers"), 0)
    mapped: set[int] = set()
    held: dict[int, int] = {}
    for pid in process_tree(root):
        try:
            rollup = _fields(f"/proc/{pid}/smaps_rollup", ("Pss", "Pss_Anon", "Pss_Shmem"))
            maps, fds = _shared_segments(pid)
        except OSError:  # the process ended meanwhile
            continue
        out["pss"] += rollup.get("Pss", 0)
        out["main" if pid == root else "workers"] += rollup.get("Pss_Anon", 0) + rollup.get("Pss_Shmem", 0)
        mapped |= maps
        held.update(fds)
    out["in_flight"] = sum(kib for inode, kib in held.items() if inode not in mapped)
    out["private"] = out["main"] + out["workers"] + out["in_flight"]
    return out


def run_sampled(cmd: list[str], env: dict | None = None) -> tuple[float, dict[str, float], dict[str, float]]:
    """Run ``cmd``; return (wall seconds, the peak of each measure, the sample at the peak of ``private``), in MiB."""
    peaks: dict[str, int] = {}
    at_peak: dict[str, int] = {"private": 0}

    def poll(pid: int) -> None:
        nonlocal at_peak
        now = sample(pid)
        for key, value in now.items():
            peaks[key] = max(peaks.get(key, 0), value)
        if now["private"] > at_peak["private"]:
            at_peak = now

    wall, _ = run_polled(cmd, env, poll)
    return wall, {k: v / 1024 for k, v in peaks.items()}, {k: v / 1024 for k, v in at_peak.items()}


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
        print(f"-m {args.metrics}, 256x256 pairs (a pair list over {len(images)} distinct pairs); peaks in MiB: "
              "PSS of the process tree, private memory of the tree (items in flight included), items in flight")
        print(f"{'pairs':>8s}{'wall s':>9s}{'pairs/s':>9s}{'PSS':>8s}{'private':>9s}{'in flight':>11s}   "
              "at the peak of private: main + workers + in flight")
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
            wall, peak, at = run_sampled(cmd, env)
            rows = sum(1 for _ in out.open()) - 1
            if rows != n:
                raise SystemExit(f"{n} pairs listed, {rows} rows written")
            peaks.append(peak["private"])
            print(f"{n:8d}{wall:9.2f}{n / wall:9.1f}{peak['pss']:8.0f}{peak['private']:9.0f}"
                  f"{peak['in_flight']:11.0f}   {at['main']:.0f} + {at['workers']:.0f} + {at['in_flight']:.0f}")
        print(f"private peak at {counts[-1]} pairs / at {counts[0]}: {peaks[-1] / peaks[0]:.2f}x "
              f"(flat = 1.00x; goal: within 5 %, <= 1024 MiB throughout)")


if __name__ == "__main__":
    main()
