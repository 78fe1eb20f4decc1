"""Decode-only frames/s (PyAV reader) and FFmpeg-equal PSNR/SSIM beside FFmpeg's own filters, same clips.

Clips are made at the start of the run with PyAV in a temporary folder: a moving synthetic pattern with
noise, encoded with x264 (8-bit ``yuv420p`` and 10-bit ``yuv420p10le``, CRF 23 reference and CRF 35
distorted, ``ultrafast``), at each asked size. Per clip and per measurement, frames/s over all frames
(best of ``--repeat``):

- ``decode``: :class:`lpipscli.io.av_video.AVVideoReader` yielding planes at full precision, both clips
  (frames/s counts frame *pairs*);
- ``decode+rgb``: the same plus :attr:`Frame.rgb` (:func:`~lpipscli.io.av_video.yuv_to_rgb`) on both sides;
- ``psnr_yuv`` / ``ssim_ffmpeg``: our NumPy functions on already decoded planes (no decoding);
- ``ffmpeg psnr`` / ``ffmpeg ssim``: PyAV decoding of both clips fed into FFmpeg's filter through a
  filter graph (decoding included, as FFmpeg users run it), and ``ffmpeg decode`` (the same decoding,
  no filter) so that the filter's own share can be read off.

    python benchmarks/bench_decode.py                       # 360p and 1080p, 60 frames
    python benchmarks/bench_decode.py --sizes 360 --frames 30 --repeat 1
    python benchmarks/bench_decode.py --smoke               # 64x48, 5 frames: checks the script runs

Timings on a loaded machine mean little: run it on an idle one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lpipscli.io.av_video import open_video  # noqa: E402
from lpipscli.metrics.lavfi import run_compare_filter  # noqa: E402
from lpipscli.metrics.yuv import psnr_yuv, ssim_ffmpeg  # noqa: E402

SIZES = {"48": (64, 48), "360": (640, 360), "720": (1280, 720), "1080": (1920, 1080)}
FORMATS = {"8-bit": "yuv420p", "10-bit": "yuv420p10le"}


def make_clip(path: Path, width: int, height: int, frames: int, pix_fmt: str, crf: int) -> Path:
    """Encode a moving pattern with noise (same seed for every CRF, so the clips match)."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for k in range(frames):
            gray = 0.5 + 0.4 * np.sin((xx + 0.6 * yy + 4 * k) / 23.0) * np.cos((yy - 3 * k) / 31.0)
            gray = np.clip(gray + rng.normal(0, 0.02, size=gray.shape).astype(np.float32), 0, 1)
            rgb = (np.repeat(gray[:, :, None], 3, axis=2) * 255).astype(np.uint8)
            rgb[:, :, 0] = (rgb[:, :, 0] * 0.8).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def decode_pairs(ref: Path, dist: Path, rgb: bool) -> list:
    out = []
    with open_video(ref) as rr, open_video(dist) as dr:
        for a, b in zip(rr, dr, strict=True):
            if rgb:
                _ = a.rgb, b.rgb
            out.append((a.planes, b.planes))
    return out


def ffmpeg_filter(ref: Path, dist: Path, name: str | None) -> int:
    import av

    with av.open(str(ref)) as rc, av.open(str(dist)) as dc:
        if name is None:
            return sum(1 for _ in zip(rc.decode(video=0), dc.decode(video=0), strict=True))
        return len(list(run_compare_filter(rc.decode(video=0), dc.decode(video=0), name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="360,1080", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="64x48, 5 frames, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.frames, args.repeat = "48", 5, 1
    print(f"frames per clip: {args.frames}; best of {args.repeat}; frames/s of frame pairs")
    print(f"{'clip':<18}{'measure':<16}{'frames/s':>10}   check")
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        for size in args.sizes.split(","):
            width, height = SIZES[size.strip()]
            for label, pix_fmt in FORMATS.items():
                name = f"{height}p {label}"
                ref = make_clip(Path(tmp) / f"ref_{size}_{pix_fmt}.mp4", width, height, args.frames, pix_fmt, 23)
                dist = make_clip(Path(tmp) / f"dist_{size}_{pix_fmt}.mp4", width, height, args.frames, pix_fmt, 35)
                n = args.frames
                bits = 8 if pix_fmt == "yuv420p" else 10
                rows = [("decode", best(args.repeat, lambda r=ref, d=dist: decode_pairs(r, d, False)), "")]
                rows.append(("decode+rgb", best(args.repeat, lambda r=ref, d=dist: decode_pairs(r, d, True)), ""))
                pairs = decode_pairs(ref, dist, False)
                ref_planes = [np.stack([p[0][k] for p in pairs]) for k in range(3)]
                dist_planes = [np.stack([p[1][k] for p in pairs]) for k in range(3)]
                ours_p = psnr_yuv(ref_planes, dist_planes, bits)
                ours_s = ssim_ffmpeg(ref_planes, dist_planes, bits)
                rows.append(("psnr_yuv", best(args.repeat, lambda r=ref_planes, d=dist_planes, b=bits:
                                              psnr_yuv(r, d, b)), f"mean avg {np.mean(ours_p['avg']):.4f} dB"))
                rows.append(("ssim_ffmpeg", best(args.repeat, lambda r=ref_planes, d=dist_planes, b=bits:
                                                 ssim_ffmpeg(r, d, b)), f"mean All {np.mean(ours_s['all']):.6f}"))
                rows.append(("ffmpeg decode", best(args.repeat, lambda r=ref, d=dist: ffmpeg_filter(r, d, None)), ""))
                for filt in ("psnr", "ssim"):
                    with __import__("av").open(str(ref)) as rc, __import__("av").open(str(dist)) as dc:
                        meta = list(run_compare_filter(rc.decode(video=0), dc.decode(video=0), filt))
                    key = "lavfi.psnr.psnr_avg" if filt == "psnr" else "lavfi.ssim.All"
                    check = f"mean {np.mean([float(m[key]) for m in meta]):.6g}"
                    rows.append((f"ffmpeg {filt}", best(args.repeat, lambda r=ref, d=dist, f=filt:
                                                        ffmpeg_filter(r, d, f)), check))
                for measure, seconds, check in rows:
                    print(f"{name:<18}{measure:<16}{n / seconds:>10.1f}   {check}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
