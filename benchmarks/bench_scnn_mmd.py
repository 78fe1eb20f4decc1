"""How the random S-CNN distance relates to the exact patch MMD as the width C grows (Amir & Weiss, Theorem 2.1).

For every image pair of ../shared/data (manifest.csv; pairs whose sizes differ are skipped), centre-cropped to
--crop px, compute the exact windowed patch MMD (the `mmd` metric, its pinned settings) and the S-CNN distance
(P=3, D=--depth, W=32, S=16, --members random networks from --seed) at each width in --widths; print the
Spearman and Kendall rank correlations over pairs between each S-CNN width and `mmd`. The theorem says the
S-CNN distance tends to an average patch MMD as C grows, with a robust kernel that is not exactly the Gaussian
RBF, so rank correlation (not equality) is the measure.

Cost: D * C^2 multiply-adds per pixel and network (C = 4096, D = 6 at 256x256 is ~6.6 TFLOP per image): run
it on a GPU (--device cuda) or with a small --crop on a CPU. Smoke run:

    python benchmarks/bench_scnn_mmd.py --max-pairs 2 --widths 8,16 --crop 64
    python benchmarks/bench_scnn_mmd.py --device cuda --json scnn_mmd.json      # the README measurement
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time

import numpy as np
import torch
from _common import DEFAULT_DATA, REPO

sys.path.insert(0, str(REPO))  # this checkout's lpipscli, not an installed one


def load_pairs(data, max_pairs: int | None, crop: int):
    from lpipscli.io.decoding import decode_image, to_float

    pairs = []
    with open(data / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ref_size"] != row["dist_size"]:
                continue
            ref, dist = (to_float(decode_image(data / row[k])) for k in ("ref", "dist"))
            if ref.ndim == 2:
                ref, dist = ref[..., None], dist[..., None]
            ref, dist = ref[..., :3], dist[..., :3]
            h, w = ref.shape[:2]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            ref, dist = (a[top:top + crop, left:left + crop] for a in (ref, dist))
            to = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()  # noqa: E731
            pairs.append((row["dist"], to(ref), to(dist)))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=lambda s: __import__("pathlib").Path(s), default=DEFAULT_DATA)
    parser.add_argument("--widths", default="64,256,1024,4096", help="S-CNN widths C, comma-separated")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--members", type=int, default=1, help="random networks averaged per width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in px")
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the per-pair values and correlations here")
    args = parser.parse_args()

    from scipy.stats import kendalltau, spearmanr

    from lpipscli.features.scnn import SCNNDistance
    from lpipscli.metrics import REGISTRY

    if not (args.data / "manifest.csv").is_file():
        sys.exit(f"no manifest.csv in {args.data}")
    device = torch.device(args.device)
    pairs = load_pairs(args.data, args.max_pairs, args.crop)
    print(f"{len(pairs)} pairs, crop {args.crop}, device {device}", file=sys.stderr)
    spec = REGISTRY["mmd"]
    names = [name for name, _, _ in pairs]
    values: dict[str, list[float]] = {"mmd": []}
    with torch.inference_mode():
        start = time.perf_counter()
        for _, ref, dist in pairs:
            values["mmd"].append(float(spec.fn(ref.to(device), dist.to(device), **spec.params)[0]))
        print(f"mmd: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for width in (int(w) for w in args.widths.split(",")):
            start = time.perf_counter()
            scnn = SCNNDistance(width=width, depth=args.depth, seed=args.seed, members=args.members).to(device)
            values[f"scnn_C{width}"] = [float(scnn(ref.to(device), dist.to(device))[0]) for _, ref, dist in pairs]
            print(f"scnn C={width}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
            del scnn
    rows = []
    print(f"{'width':>8} {'spearman':>9} {'kendall':>8}  (rank correlation with exact mmd over {len(pairs)} pairs)")
    for key, series in values.items():
        if key == "mmd":
            continue
        rho = spearmanr(series, values["mmd"]).statistic if len(pairs) > 2 else float("nan")
        tau = kendalltau(series, values["mmd"]).statistic if len(pairs) > 2 else float("nan")
        rows.append({"scnn": key, "spearman": rho, "kendall": tau})
        print(f"{key[6:]:>8} {rho:9.4f} {tau:8.4f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"settings": vars(args) | {"data": str(args.data)}, "pairs": names, "values": values,
                       "correlations": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
