"""Small image builders shared by the tests (no files from outside the repository)."""

from __future__ import annotations

import numpy as np


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
