"""Small image builders shared by the tests (no files from outside the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import strategies as st


def smooth_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: smooth colour gradients plus texture, (H, W, C)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    planes = []
    for _ in range(channels):
        a, b, f = rng.uniform(0.2, 1.0, 3)
        wave = np.sin(6 * f * xx + a) * np.cos(5 * f * yy + b)
        planes.append(0.5 + 0.3 * wave + 0.08 * rng.standard_normal(xx.shape))
    return (np.clip(np.stack(planes, -1), 0, 1) * 255).round().astype(np.uint8)


def distort(image: np.ndarray, seed: int = 1, sigma: float = 12.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float64) + rng.normal(0, sigma, image.shape)
    return np.clip(noisy, 0, 255).round().astype(image.dtype)


#: A hypothesis strategy of byte-level corruptions: flip a byte, truncate, or insert bytes.
MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
)


def mutate(data: bytes, mutations) -> bytes:
    """Apply :data:`MUTATION` draws to ``data`` (positions are fractions of its current length)."""
    for kind, where, arg in mutations:
        pos = int(where * len(data))
        if kind == "flip" and data:
            pos = min(pos, len(data) - 1)
            data = data[:pos] + bytes([data[pos] ^ arg]) + data[pos + 1:]
        elif kind == "truncate":
            data = data[:pos]
        elif kind == "insert":
            data = data[:pos] + arg + data[pos:]
    return data


def read_video_rgb(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB, read with OpenCV directly (independent of the module under test)."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(frame[..., ::-1]))
    cap.release()
    return frames


def write_ffv1_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB frames as a lossless FFV1 clip with OpenCV (skips the test where OpenCV cannot)."""
    import cv2
    import pytest

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write FFV1 video")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))  # VideoWriter takes BGR
    writer.release()
    return path


def voc_ap_loop(rec, prec) -> float:
    """The LPIPS repository's ``voc_ap(use_07_metric=False)``, written out with its Python loop (the JND oracle)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
