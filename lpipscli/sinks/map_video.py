"""`--heatmap-video`: one distorted input's maps (or ref | dist | map panels) written as a video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lpipscli.errors import OutputError
from lpipscli.sinks.heatmap import badness, colorize, make_panel, map_spec, pad_to_image, scale_range, to_display_rgb

_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}


def hwc_pixels(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) pixels as (H, W, C) numpy; 16-bit samples (int32 in transit) as uint16."""
    array = tensor.detach().cpu().permute(1, 2, 0).numpy()
    return array.astype(np.uint16) if tensor.dtype == torch.int32 else array


class MapVideo:
    """Writes the map of ``metric`` for ``dist_root``, frame by frame, with OpenCV's VideoWriter.

    Args:
        path: output file; its extension picks the codec (.mp4/.mov: MPEG-4 part 2, .avi: MJPEG,
            .mkv: FFV1, lossless).
        metric: the metric whose map is drawn (fixed scale unless ``scale="auto"``).
        dist_root: which distorted input (the first one by default, chosen by the caller).
        fps: frame rate (the reference's).
        panel: write ref | dist | map side by side.
    """

    def __init__(self, path: Path, *, metric: str, dist_root: str, fps: float, panel: bool = False,
                 scale: str = "fixed"):
        if path.suffix.lower() not in _FOURCC:
            raise OutputError(f"--heatmap-video {path}: use .mp4, .mov, .avi or .mkv")
        if not path.parent.is_dir():
            raise OutputError(f"--heatmap-video {path}: folder {path.parent} does not exist")
        self.path, self.metric, self.dist_root = path, metric, dist_root
        self.fps, self.panel, self.scale = fps or 25.0, panel, scale
        self.spec = map_spec(metric)
        self.writer = None
        self.frames = 0

    def add_map(self, pair, spatial, images=None) -> None:
        """One scored frame pair's map ``(1, h, w)`` (CPU); ``images``: its ``(ref, dist)`` pixels for panels."""
        if pair.dist_root != self.dist_root:
            return
        values = spatial[0].float().numpy()
        if images is None:
            raise ValueError("MapVideo needs the frame's pixels (the run asks the engine for them)")
        ref, dist = images
        height, width = ref.shape[-2:]
        if values.shape != (height, width):
            values = pad_to_image(values, (height, width))
        lo, hi = scale_range(values, self.metric, self.scale)
        frame = colorize(badness(values, lo, hi, self.spec.higher_is_worse))
        if self.panel:
            frame = make_panel(to_display_rgb(hwc_pixels(ref)), to_display_rgb(hwc_pixels(dist)), frame)
        import cv2

        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, float(self.fps), (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                raise OutputError(f"--heatmap-video {self.path}: OpenCV cannot write this format here")
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> int:
        """Finish the file; returns the number of frames written."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        return self.frames
