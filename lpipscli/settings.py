"""The one settings record: everything that changes a score, built once per run.

It is serialised into every output's provenance (``provenance["settings"]``), hashed into
``settings_hash``, and compared by ``--resume`` and ``lpips diff`` through one function,
:func:`lpipscli.diff.settings_differences`. Nothing
that changes a score may live outside it; options that do not (workers, batch sizes, output paths,
progress) stay out, so that they can change between a run and its resumption.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: how pixels become numbers (recorded; part of the hash)
DECODE_CONVENTIONS = {
    "resize_method": "bicubic, antialiased",
    "range": "[0,1] by file bit depth",
    "gray_vs_rgb": "gray promoted to RGB",
}

#: how video frames become RGB (recorded for video runs only, so image runs keep their settings hash)
VIDEO_DECODE_CONVENTIONS = {
    "video_decoder": "PyAV (FFmpeg), full precision: 9-16 bit samples scaled by 2^bits - 1",
    "video_rgb": "NumPy ITU-R matrix by stream metadata, nearest-neighbour chroma, rounded",
}


@dataclass(frozen=True)
class Settings:
    """What changes a score. Built by :func:`build_settings`; compared by ``diff.settings_differences``.

    Attributes:
        metrics: metric key -> its parameters and fixed conventions, plus ``dtype`` (compute precision).
        weights: ``(role, sha256)`` of every weight file used, sorted.
        decode: alpha policy, resize policy and the decode conventions.
        alignment: video frame alignment (offset, frame-count policy, pairing), empty for images.
        device: device class (``cpu`` or ``cuda``): float32 networks differ by ~1e-6 between them.
        tf32: whether TF32 was allowed on CUDA.
    """

    metrics: Mapping[str, Mapping[str, Any]]
    weights: tuple[tuple[str, str], ...] = ()
    decode: Mapping[str, Any] = field(default_factory=dict)
    alignment: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    tf32: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the provenance records)."""
        data = asdict(self)
        data["metrics"] = {k: dict(v) for k, v in self.metrics.items()}
        data["weights"] = [list(w) for w in self.weights]
        data["decode"] = dict(self.decode)
        data["alignment"] = dict(self.alignment)
        return json.loads(json.dumps(data, sort_keys=True, default=str))

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON form."""
        return settings_hash(self.to_dict())


def settings_hash(settings: Mapping[str, Any]) -> str:
    """The hash of a settings record in its dict form."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def build_settings(config, *, params: Mapping[str, Mapping[str, Any]], weight_records, device_type: str,
                   metric_dtypes: Mapping[str, str]) -> Settings:
    """The record of a run: from its configuration, resolved metric parameters and loaded weights."""
    from lpipscli.metrics import REGISTRY

    metrics = {}
    for key in config.metrics:
        spec = REGISTRY[key]
        metrics[key] = {**dict(spec.conventions), **dict(params.get(key, {})), "dtype": metric_dtypes[key]}
    alignment: dict[str, Any] = {}
    decode: dict[str, Any] = {"alpha": config.alpha, "resize": config.resize, **DECODE_CONVENTIONS}
    if config.alpha in ("composite-both", "mask"):
        decode["alpha_color"] = [round(c, 6) for c in config.alpha_color]
    if config.video is not None:
        opts = config.video
        alignment = {"offset": opts.offset, "frames": opts.frames, "pair_by": getattr(opts, "pair_by", "index")}
        if getattr(opts, "align", "none") != "none":
            alignment["align"] = opts.align
        # video decoding choices that change a score; "auto" = the stream's metadata (the values used are
        # in the provenance's video section)
        decode.update(VIDEO_DECODE_CONVENTIONS, colorspace=getattr(opts, "colorspace", None) or "auto",
                      color_range=getattr(opts, "color_range", None) or "auto")
        if getattr(opts, "raw_size", None):
            decode["raw"] = {"size": opts.raw_size, "pix_fmt": opts.raw_format or "yuv420p",
                             "fps": opts.raw_fps or "25"}
    return Settings(
        metrics=metrics,
        weights=tuple(sorted({(r["role"], r["sha256"]) for r in weight_records})),
        decode=decode,
        alignment=alignment,
        device=device_type,
        tf32=bool(config.tf32) if device_type == "cuda" else False,
    )
