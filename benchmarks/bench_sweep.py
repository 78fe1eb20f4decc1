"""The issue-14 sweep: `lpips compare` against the official one-pair-at-a-time loop, whole processes.

Data: 60 crops of 256x256 from ``DATA/ref`` and nine distorted folders made from them (JPEG q10/q30/q70,
WebP q20/q50, Gaussian blur 1/2, Gaussian noise 4/8): 540 pairs. Runs alternate (A B A B ...) and the
medians are compared, as the machine is shared by nothing else only if you make it so.

Each configuration reports wall seconds, pairs/s, CPU seconds per pair (user + system of the whole process
tree, decoding workers included) and peak memory (PSS of the tree):

* one distorted folder (60 pairs, no reference reuse): the per-image floor;
* all nine folders (540 pairs): what reference reuse adds;
* ``lpips compare`` with the default workers, with ``--workers 0``, and with ``--precision bf16``.

    python benchmarks/bench_sweep.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATA, run_measured, torch_home_with_weights
from PIL import Image, ImageFilter

OFFICIAL_LOOP = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import cv2, lpips, torch
def load_image(path):  # lpips.load_image's OpenCV branch
    return cv2.imread(path)[:, :, ::-1]
ref_dir, dist_dirs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
loss_fn = lpips.LPIPS(net="alex", version="0.1", verbose=False)
refs = {p.stem: p for p in sorted(ref_dir.iterdir())}
t1 = time.perf_counter()
n = 0
with torch.no_grad():
    for dist_dir in dist_dirs:
        for dist in sorted(dist_dir.iterdir()):
            img0 = lpips.im2tensor(load_image(str(refs[dist.stem])))
            img1 = lpips.im2tensor(load_image(str(dist)))
            loss_fn.forward(img0, img1).item()
            n += 1
print(json.dumps({"pairs": n, "setup_s": t1 - t0, "loop_s": time.perf_counter() - t1}))
"""

DISTORTIONS = ("jpeg_q10", "jpeg_q30", "jpeg_q70", "webp_q20", "webp_q50", "blur_1", "blur_2", "noise_4", "noise_8")


def make_sweep(data: Path, root: Path, n_crops: int = 60) -> tuple[Path, list[Path]]:
    """60 crops of 256x256 from the reference photos and nine distorted copies of each."""
    rng = np.random.default_rng(0)
    photos = [p for p in sorted((data / "ref").iterdir()) if p.suffix.lower() in (".png", ".jpg", ".webp")]
    images = []
    for p in photos:
        img = Image.open(p).convert("RGB")
        if min(img.size) >= 256:
            images.append(img)
    ref = root / "ref"
    ref.mkdir(parents=True)
    crops = []
    for k in range(n_crops):
        img = images[k % len(images)]
        x = int(rng.integers(0, img.width - 255))
        y = int(rng.integers(0, img.height - 255))
        crop = img.crop((x, y, x + 256, y + 256))
        crop.save(ref / f"c{k:03d}.png")
        crops.append(crop)
    dists = []
    for name in DISTORTIONS:
        folder = root / name
        folder.mkdir()
        kind, _, value = name.partition("_")
        for k, crop in enumerate(crops):
            if kind == "jpeg":
                crop.save(folder / f"c{k:03d}.jpg", quality=int(value[1:]))
            elif kind == "webp":
                crop.save(folder / f"c{k:03d}.webp", quality=int(value[1:]))
            elif kind == "blur":
                crop.filter(ImageFilter.GaussianBlur(int(value))).save(folder / f"c{k:03d}.png")
            else:
                arr = np.asarray(crop, dtype=np.float64) + rng.normal(0, int(value), (256, 256, 3))
                Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8)).save(folder / f"c{k:03d}.png")
        dists.append(folder)
    return ref, dists


def measure(cmd: list[str], env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, pss, out = run_measured(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "pss": pss, "out": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home, real = torch_home_with_weights(("alex",))
    env = {"TORCH_HOME": home, "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "0" if real else "1"}
    print(f"cores: {len(os.sched_getaffinity(0))}, weights: {'real' if real else 'seeded stand-ins (timing only)'}")
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref, dists = make_sweep(args.data, Path(tmp) / "sweep")
        out = Path(tmp) / "o.csv"
        ours = [sys.executable, "-m", "lpipscli", "compare", "-m", "lpips_alex", "-o", str(out), "-q"]
        configs = {
            "official, 1 folder": [sys.executable, "-c", OFFICIAL_LOOP, str(ref), str(dists[1])],
            "ours, 1 folder": [*ours, str(ref), str(dists[1])],
            "ours --workers 0, 1 folder": [*ours, "--workers", "0", str(ref), str(dists[1])],
            "official, 9 folders": [sys.executable, "-c", OFFICIAL_LOOP, str(ref), *map(str, dists)],
            "ours, 9 folders": [*ours, str(ref), *map(str, dists)],
            "ours --workers 0, 9 folders": [*ours, "--workers", "0", str(ref), *map(str, dists)],
            "ours bf16, 9 folders": [*ours, "--precision", "bf16", str(ref), *map(str, dists)],
        }
        for _ in range(args.repeats):  # alternate: every configuration once per round
            for name, cmd in configs.items():
                results.setdefault(name, []).append(measure(cmd, env))
    print(f"{'configuration':32s}{'pairs':>6s}{'wall s':>9s}{'pairs/s':>9s}{'CPU s/pair':>11s}{'PSS MiB':>9s}")
    summary = {}
    for name, runs in results.items():
        pairs = 60 if "1 folder" in name else 540
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs) / pairs
        pss = max(r["pss"] for r in runs)
        summary[name] = {"pairs": pairs, "wall_s": wall, "pairs_per_s": pairs / wall, "cpu_s_per_pair": cpu,
                         "peak_pss_mib": pss, "walls": [r["wall"] for r in runs]}
        print(f"{name:32s}{pairs:6d}{wall:9.2f}{pairs / wall:9.1f}{cpu:11.4f}{pss:9.0f}")
    for scope in ("1 folder", "9 folders"):
        base = summary[f"official, {scope}"]["wall_s"]
        for name, s in summary.items():
            if name.endswith(scope) and not name.startswith("official"):
                print(f"ratio official/ours ({name}): {base / s['wall_s']:.2f}x wall, "
                      f"{summary[f'official, {scope}']['cpu_s_per_pair'] / s['cpu_s_per_pair']:.2f}x CPU per pair")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
