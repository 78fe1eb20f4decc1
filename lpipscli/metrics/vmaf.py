"""VMAF per frame through FFmpeg's ``libvmaf`` filter, when the installed PyAV's FFmpeg has it.

PyAV's wheels for Python >= 3.12 bundle libvmaf (3.2 in av 19); the Python 3.11 wheels do not, and then
asking for ``vmaf`` is a :class:`lpipscli.errors.UsageError` saying what to install. The default model
is libvmaf's built-in default (``vmaf_v0.6.1``); scores are read from libvmaf's JSON log (FFmpeg's
filter attaches no per-frame metadata), one value per compared frame, in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.metrics.lavfi import CompareFilter, filter_available

__all__ = [
    "VMAF_DEFAULTS", "VMAF_PIX_FMTS", "VmafScorer", "require_vmaf", "vmaf_available", "vmaf_frames", "vmaf_planes",
]

VMAF_DEFAULTS = {"reference": "FFmpeg libvmaf filter", "model": "libvmaf default (vmaf_v0.6.1)",
                 "pooling": "per frame (summaries: harmonic mean is the VMAF convention)"}

#: pixel formats libvmaf accepts
VMAF_PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                 "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le")


def vmaf_available() -> bool:
    """Whether the installed PyAV's FFmpeg has the ``libvmaf`` filter."""
    return filter_available("libvmaf")


def require_vmaf() -> None:
    """Raise a UsageError naming what to install when ``libvmaf`` is missing; return otherwise."""
    if vmaf_available():
        return
    try:
        import av

        have = f"av {av.__version__}"
    except ImportError:
        have = "no PyAV"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    raise UsageError(
        f"vmaf needs FFmpeg's libvmaf filter, which this installation lacks (Python {python}, {have}): "
        "PyAV's wheels bundle libvmaf for Python >= 3.12 from av 19 on; use Python 3.12 or newer and "
        "`pip install 'av>=19'`"
    )


class VmafScorer:
    """Streaming VMAF: push ``av.VideoFrame`` pairs, then :meth:`finish` for the per-frame scores.

    Args:
        model: libvmaf ``model`` option (``None``: libvmaf's default, ``version=vmaf_v0.6.1``).
        threads: libvmaf worker threads (``n_threads``; 0: libvmaf's default).

    Raises:
        UsageError: libvmaf is not available (see :func:`require_vmaf`).
    """

    def __init__(self, *, model: str | None = None, threads: int = 0):
        require_vmaf()
        handle, self._log = tempfile.mkstemp(prefix="lpipscli-vmaf-", suffix=".json")
        os.close(handle)
        args = [f"log_path={_escape(self._log)}", "log_fmt=json"]
        if model:
            args.append(f"model={_escape(model)}")
        if threads:
            args.append(f"n_threads={int(threads)}")
        self._filter = CompareFilter("libvmaf", ":".join(args), collect=True)
        self._count = 0

    def push(self, ref, dist) -> None:
        """Add one pair (``av.VideoFrame``, same size and a :data:`VMAF_PIX_FMTS` format)."""
        if ref.format.name not in VMAF_PIX_FMTS:
            raise UsageError(f"vmaf: pixel format {ref.format.name} is not one libvmaf reads "
                             f"({', '.join(VMAF_PIX_FMTS)})")
        self._filter.push(ref, dist)
        self._count += 1

    def finish(self) -> np.ndarray:
        """Flush libvmaf and return float64 ``(N,)`` VMAF scores, one per pushed pair, in order."""
        try:
            self._filter.close()
            if not self._count:
                return np.zeros(0, dtype=np.float64)
            with open(self._log, encoding="utf-8") as file:
                log = json.load(file)
            frames = sorted(log["frames"], key=lambda f: f["frameNum"])
            scores = np.array([f["metrics"]["vmaf"] for f in frames], dtype=np.float64)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._log)
        if scores.shape[0] != self._count:
            raise RuntimeError(f"libvmaf scored {scores.shape[0]} frames, {self._count} were pushed")
        return scores


def vmaf_frames(ref_frames: Iterable, dist_frames: Iterable, *, model: str | None = None,
                threads: int = 0) -> np.ndarray:
    """VMAF of each pair of ``av.VideoFrame`` (reference, distorted): float64 ``(N,)``.

    Raises:
        UsageError: libvmaf is not available (message says what to install) or a format it cannot read.
    """
    scorer = VmafScorer(model=model, threads=threads)
    for ref, dist in zip(ref_frames, dist_frames, strict=True):
        scorer.push(ref, dist)
    return scorer.finish()


def vmaf_planes(ref_planes: Iterable[Sequence[np.ndarray]], dist_planes: Iterable[Sequence[np.ndarray]],
                pix_fmt: str, **kwargs) -> np.ndarray:
    """VMAF of decoded planes (:attr:`lpipscli.io.av_video.Frame.planes`) in ``pix_fmt``: float64 ``(N,)``."""
    from lpipscli.io.av_video import planes_to_av_frame

    return vmaf_frames((planes_to_av_frame(p, pix_fmt) for p in ref_planes),
                       (planes_to_av_frame(p, pix_fmt) for p in dist_planes), **kwargs)


def _escape(value: str) -> str:
    """Quote a value for an FFmpeg filter option string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "'\\''") + "'"
