"""Heatmaps: per-pixel "where do the two images differ" maps, written off the compute path.

The engine computes a map per pair and metric (LPIPS ``distance(..., out_hw=...)``, SSIM and PSNR/MSE
``return_map=True``) and hands it to :class:`HeatmapWriter`, which renders and writes it in writer
threads behind a bounded queue. This module is pure NumPy + Pillow: no torch, no matplotlib at run time.

Colour: every map is drawn with matplotlib's *magma* colormap (perceptually uniform, lightness rises
monotonically from black to pale yellow) on a **fixed scale per metric**, so maps of different runs are
comparable; **bright = worse for every metric** (for SSIM the map is drawn as the dissimilarity
``1 - SSIM``). ``scale="auto"`` instead stretches each map over its own min..max (same direction).
Pixels without a value (NaN, e.g. the SSIM border) are drawn neutral gray ``(128, 128, 128)``; no magma
entry comes within 60 levels of it in every channel.

Fixed scales (see :data:`MAP_SPECS`; ``map_scale(metric)`` returns ``(lo, hi, description)``):

* ``lpips_alex``, ``lpips_vgg``, ``lpips_squeeze``: the official spatial LPIPS map (per-layer maps
  upsampled bilinearly, ``align_corners=False``, summed) on ``[0, 1]``; black = 0, values >= 1 are
  clipped to the brightest colour. Its mean equals the row's score (to ~1e-6, as in the official code).
* ``ssim``, ``ssim_y``: the per-pixel SSIM map on ``[0, 1]`` drawn inverted (black = SSIM 1, identical;
  brightest = SSIM <= 0, which is clipped). The map only exists on the *valid* region, 5 px smaller than
  the image on every side; it is shown at full image size with that border set to NaN (gray in PNGs,
  the no-data value in 16-bit PNGs, NaN in ``.npy``), so map pixel ``(y, x)`` is image pixel ``(y, x)``
  and the mean of the finite values equals the score.
* ``psnr``, ``psnr_y``, ``mse``: the per-pixel squared error of ``[0, 1]`` values (mean over channels;
  luma for ``psnr_y``) on ``[0, 0.01]``: brightest = an error of 0.1 of the full range (25.5 of 255) or
  more, i.e. a per-pixel PSNR of 20 dB or worse. Measured on scikit-image's astronaut, JPEG quality 50
  (32 dB) has its 90th/99th percentile at 0.0015/0.0075, so typical artefacts span the scale instead of
  sitting in the darkest 15 % that ``[0, 0.05]`` would give. Map mean = MSE; PSNR = ``-10 log10(mean)``.

Formats (``fmt``): ``png`` (8-bit colour through the colormap; scale, metric, units, direction and the
pair's score in PNG text chunks; stored as a palette PNG of the 256 magma entries, or as RGB when the
map has NaN pixels or with a panel/legend: both decode to the same RGB colours), ``png16`` (16-bit
grayscale, the same bright = worse fraction ``t`` in ``[0, 1]`` quantised as ``round(t * 65534)``;
65535 is "no value"; ``value_at_0`` and ``value_at_65534`` in the metadata decode it linearly),
``npy`` (the float32 map exactly as submitted, padded with NaN to the image size when needed).
``panel=True`` (``png`` only) writes ``ref | dist | heatmap`` side by side with 4 px white gaps.

Paths mirror the input tree: ``maps_root/<dist root name>/<key>.<metric>.<png|npy>`` where the dist
root name is the last path component of the distorted input (``.`` and ``..`` resolved; characters
that Windows forbids replaced by ``_``; a video file without its extension); inputs with the same name
(case-insensitively) are named by as many trailing folder names as it takes to tell them apart, joined
by ``_`` (``v1/jpeg_q30``, ``v2/jpeg_q30`` -> ``v1_jpeg_q30``, ``v2_jpeg_q30``). A single image file given
as the distorted input gets no folder: ``maps_root/<its name without extension>.<metric>.<png|npy>``.
``maps_root/heatmaps.json`` records the settings, the scales, the folder of each distorted input and
(worst-K mode) the maps written.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import queue
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from lpipscli.config import MapSpec
from lpipscli.errors import OutputError, UsageError
from lpipscli.metrics import REGISTRY
from lpipscli.sinks import json_safe, write_json_atomic

FORMATS = ("png", "png16", "npy")
SCALES = ("fixed", "auto")
MANIFEST_NAME = "heatmaps.json"

#: Colour of pixels without a value (NaN): neutral gray, which magma never produces.
NODATA_RGB = (128, 128, 128)
#: 16-bit PNG: valid values are quantised to 0..65534; this value means "no value".
NODATA_U16 = 65535
_U16_STEPS = 65534
#: White gap between the columns of a panel, in pixels.
PANEL_GAP = 4
#: Height of the optional legend strip under the map (gradient bar + one text line), in pixels.
LEGEND_HEIGHT = 24
_PNG_COMPRESS_LEVEL = 1  # maps compress well; level 1 is several times faster than the default 6

# matplotlib's "magma" colormap (Nathaniel J. Smith, Stefan van der Walt, Eric Firing; CC0,
# https://github.com/BIDS/colormap), 256 RGB entries copied from matplotlib 3.11.2
# ``matplotlib/_cm_listed.py::_magma_data`` as ``round(255 * value)``; 3 bytes per entry, hex.
_MAGMA_HEX = (
    "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c08071e090720"
    "0a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b180f3d19103f1a10421c1044"
    "1d11471e114920114b21114e22115024125325125527125829115a2a115c2c115f2d11612f1163311165331067341069"
    "36106b38106c390f6e3b0f703d0f713f0f72400f74420f75440f764510774710784910784a10794c117a4e117b4f127b"
    "51127c52137c54137d56147d57157e59157e5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c81"
    "6a1c816b1d816d1d816e1e81701f81721f817320817521817621817822817922827b23827c23827e2482802582812581"
    "8326818426818627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f"
    "9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357bb3367ab5367a"
    "b73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73ca3e72cc3f71cd4071cf4070"
    "d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968df4a68e04c67e24d66e34e65e44f64e55064"
    "e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5eef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695c"
    "f56b5cf66c5cf66e5cf7705cf7725cf8745cf8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761"
    "fc8961fc8a62fc8c63fc8e64fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571"
    "fea772fea973feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287"
    "fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9efddea0fde0a1"
    "fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8fcf7b9fcf9bbfcfbbdfcfdbf"
)
MAGMA_LUT: np.ndarray = np.frombuffer(bytes.fromhex("".join(_MAGMA_HEX)), dtype=np.uint8).reshape(256, 3)
COLORMAP = "magma (matplotlib, CC0), 256 entries; index = floor(256 * t) clipped to 255"


# ----------------------------------------------------------------------------------------------------
# Scales: one registry entry per metric that has a natural map
# ----------------------------------------------------------------------------------------------------


# The scales live in the metric registry (``MetricSpec.map``); this view adds nothing of its own except
# maps registered for tests or plug-ins through :func:`register_map`.
MAP_SPECS: dict[str, MapSpec] = {k: s.map for k, s in REGISTRY.items() if s.map is not None}


def register_map(spec: MapSpec) -> MapSpec:
    """Add the map description of a metric (later metrics with a natural map plug in here)."""
    if spec.key in MAP_SPECS:
        raise ValueError(f"heatmap for metric {spec.key!r} registered twice")
    if not (math.isfinite(spec.lo) and math.isfinite(spec.hi) and spec.lo < spec.hi):
        raise ValueError(f"heatmap scale of {spec.key!r} must be finite with lo < hi, got [{spec.lo}, {spec.hi}]")
    MAP_SPECS[spec.key] = spec
    return spec


def has_map(metric: str) -> bool:
    """Whether ``metric`` has a registered heatmap."""
    return metric in MAP_SPECS


def map_spec(metric: str) -> MapSpec:
    """The :class:`MapSpec` of ``metric``.

    Raises:
        UsageError: the metric has no heatmap (the message lists those that have one).
    """
    try:
        return MAP_SPECS[metric]
    except KeyError:
        raise UsageError(
            f"--heatmaps: metric {metric} has no per-pixel map; metrics with maps: {', '.join(MAP_SPECS)}"
        ) from None


def map_scale(metric: str) -> tuple[float, float, str]:
    """The fixed scale of ``metric``'s map: ``(lo, hi, description)`` in map units (``lo < hi``)."""
    spec = map_spec(metric)
    return spec.lo, spec.hi, spec.description


# ----------------------------------------------------------------------------------------------------
# Pure rendering helpers
# ----------------------------------------------------------------------------------------------------


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor (moved to the CPU here: a device sync)
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def as_map(array: Any) -> np.ndarray:
    """A map as a C-contiguous float32 ``(H, W)`` copy; leading singleton axes (``(1, 1, H, W)``) are dropped.

    Raises:
        ValueError: not 2-D after dropping leading singleton axes, or empty.
    """
    arr = _to_numpy(array)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"a heatmap must be a non-empty (H, W) array, got shape {np.shape(array)}")
    return np.array(arr, dtype=np.float32, order="C", copy=True)


def pad_to_image(values: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Centre a map that is smaller than its image (SSIM's valid region) in a NaN frame of the image size.

    Args:
        values: ``(h, w)`` map.
        image_hw: ``(H, W)`` of the image, with ``H - h`` and ``W - w`` even and >= 0.

    Returns:
        ``values`` itself when the sizes agree, else a new ``(H, W)`` float32 array, NaN outside.

    Raises:
        ValueError: the map is larger than the image or cannot be centred.
    """
    height, width = (int(v) for v in image_hw)
    dh, dw = height - values.shape[0], width - values.shape[1]
    if dh == 0 and dw == 0:
        return values
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"a {values.shape[0]}x{values.shape[1]} map cannot be centred in a {height}x{width} "
                         "image (needs an equal border on both sides)")
    out = np.full((height, width), np.nan, dtype=np.float32)
    out[dh // 2: dh // 2 + values.shape[0], dw // 2: dw // 2 + values.shape[1]] = values
    return out


def scale_range(values: np.ndarray, metric: str, scale: str = "fixed") -> tuple[float, float]:
    """The ``(lo, hi)`` the map is drawn over: the metric's fixed scale, or the map's own finite min..max."""
    if scale == "fixed":
        spec = map_spec(metric)
        return spec.lo, spec.hi
    if scale != "auto":
        raise UsageError(f"--heatmap-scale {scale!r}: choose one of {', '.join(SCALES)}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def badness(values: np.ndarray, lo: float, hi: float, higher_is_worse: bool) -> np.ndarray:
    """The fraction ``t`` in ``[0, 1]`` drawn by the colormap: 0 = best end of the scale, 1 = worst end.

    ``t = (v - lo) / (hi - lo)`` (or ``(hi - v) / (hi - lo)`` when lower values are worse), clipped to
    ``[0, 1]``; NaN stays NaN (no value); a degenerate scale (``hi == lo``) gives 0 everywhere.
    """
    values = values.astype(np.float64, copy=False)
    if not hi > lo:
        t = np.zeros(values.shape)
    else:
        t = (values - lo) / (hi - lo) if higher_is_worse else (hi - values) / (hi - lo)
    with np.errstate(invalid="ignore"):
        t = np.clip(t, 0.0, 1.0)
    t[np.isnan(values)] = np.nan
    return t


def colour_index(t: np.ndarray) -> np.ndarray:
    """Colormap indices ``floor(256 t)`` clipped to ``0..255`` (matplotlib's convention), uint8; NaN gives 0."""
    return np.clip(np.floor(np.nan_to_num(t, nan=0.0) * 256.0), 0, 255).astype(np.uint8)


def colorize(t: np.ndarray) -> np.ndarray:
    """``(H, W)`` fractions in ``[0, 1]`` (NaN = no value) to ``(H, W, 3)`` uint8 magma colours."""
    rgb = np.take(MAGMA_LUT, colour_index(t), axis=0)
    rgb[np.isnan(t)] = NODATA_RGB
    return rgb


def quantise_u16(t: np.ndarray) -> np.ndarray:
    """Fractions in ``[0, 1]`` to uint16 ``round(t * 65534)``; NaN to :data:`NODATA_U16`."""
    nan = np.isnan(t)
    q = np.rint(np.where(nan, 0.0, t) * _U16_STEPS).astype(np.uint16)
    q[nan] = NODATA_U16
    return q


def to_display_rgb(image: Any) -> np.ndarray:
    """An image as 8-bit RGB for a panel.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array (C = 1, 2 gray+alpha, 3 RGB or 4 RGBA; alpha is dropped),
            uint8, uint16 (scaled by 255/65535) or float in ``[0, 1]`` (clipped; NaN shown black).

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        ValueError: another layout or dtype.
    """
    arr = _to_numpy(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"a panel image must be (H, W) or (H, W, C) with C in 1..4, got shape {np.shape(image)}")
    if arr.dtype == np.uint8:
        out = arr.copy()  # never a view of the caller's buffer
    elif arr.dtype == np.uint16:
        out = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        out = np.rint(np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise ValueError(f"a panel image must be uint8, uint16 or float in [0, 1], got {arr.dtype}")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def make_panel(ref_rgb: np.ndarray, dist_rgb: np.ndarray, map_rgb: np.ndarray) -> np.ndarray:
    """``ref | dist | heatmap`` side by side, :data:`PANEL_GAP` white pixels between columns.

    All three are ``(H, W, 3)`` uint8 of the same size; the result is ``(H, 3 W + 2 gap, 3)``.
    """
    height, width = map_rgb.shape[:2]
    for name, part in (("ref", ref_rgb), ("dist", dist_rgb)):
        if part.shape[:2] != (height, width):
            raise ValueError(f"panel: {name} is {part.shape[0]}x{part.shape[1]}, the map {height}x{width}")
    out = np.full((height, 3 * width + 2 * PANEL_GAP, 3), 255, dtype=np.uint8)
    for column, part in enumerate((ref_rgb, dist_rgb, map_rgb)):
        x = column * (width + PANEL_GAP)
        out[:, x: x + width] = part
    return out


def _fmt_value(value: float) -> str:
    return f"{value:.4g}"


def add_legend(image: np.ndarray, lo: float, hi: float, higher_is_worse: bool, label: str,
               *, x0: int = 0, width: int | None = None, clipped: bool = True) -> np.ndarray:
    """Append a :data:`LEGEND_HEIGHT` px white strip below ``image``: a gradient bar under columns
    ``x0 .. x0 + width`` (best value at the left) and a text line "best ... label ... worst"."""
    height, full_width = image.shape[:2]
    width = full_width - x0 if width is None else width
    out = np.full((height + LEGEND_HEIGHT, full_width, 3), 255, dtype=np.uint8)
    out[:height] = image
    bar = colorize(np.linspace(0.0, 1.0, max(width, 1)))
    out[height + 1: height + 9, x0: x0 + width] = bar[None, :width]
    best, worst = (lo, hi) if higher_is_worse else (hi, lo)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    y = height + 10
    left = _fmt_value(best)
    right = ("<= " if not higher_is_worse else ">= ") * clipped + _fmt_value(worst)
    draw.text((x0 + 1, y), left, fill=(0, 0, 0), font=font)
    right_w = draw.textlength(right, font=font)
    draw.text((x0 + width - right_w - 1, y), right, fill=(0, 0, 0), font=font)
    label_w = draw.textlength(label, font=font)
    if label_w + draw.textlength(left, font=font) + right_w + 12 < width:
        draw.text((x0 + (width - label_w) / 2, y), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


# ----------------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------------

_FORBIDDEN = set('<>:"/\\|?*')


def root_folder_name(dist_root: str | os.PathLike) -> str:
    """The folder name of a distorted input: its last path component, made safe.

    ``.``/``..``/trailing separators are resolved first (``out/`` -> ``out``, ``.`` -> the current folder's
    name); characters Windows forbids and control characters become ``_``; trailing dots and spaces are
    dropped; spaces and non-ASCII letters are kept. An empty result becomes ``dist``.
    """
    text = os.fspath(dist_root)
    name = Path(text).name
    if name in ("", ".", ".."):
        name = Path(os.path.abspath(text)).name
    name = "".join("_" if (c in _FORBIDDEN or ord(c) < 32) else c for c in name).rstrip(". ")
    return name or "dist"


def _is_image_file(dist_root: str) -> bool:
    """A distorted input that is one image file (a single-file run): its map is named after the file."""
    from lpipscli.io.decoding import SUPPORTED_EXTENSIONS

    return os.path.isfile(dist_root) and Path(dist_root).suffix.lower() in SUPPORTED_EXTENSIONS


def _components(dist_root: str) -> list[str]:
    """The path components of a distorted input, outermost first (absolute, ``.``/``..`` resolved; a file
    input ends with its name without extension), each made safe as :func:`root_folder_name` does."""
    path = Path(os.path.abspath(os.fspath(dist_root)))
    parts = [p for p in path.parts if p not in ("/", "\\") and not p.endswith((":\\", ":/"))]
    if parts and os.path.isfile(path):
        parts[-1] = Path(parts[-1]).stem or parts[-1]
    return [root_folder_name(p) for p in parts] or ["dist"]


class _RootNames:
    """Folder names of distorted inputs.

    Each input is named by its last path component (a file input: its name without extension). Inputs whose
    names collide (case-insensitively, or with the manifest's name) are named by as many trailing components
    as it takes to tell them apart, joined by ``_`` (``v1/jpeg_q30`` and ``v2/jpeg_q30`` become
    ``v1_jpeg_q30`` and ``v2_jpeg_q30``); ``-2``, ``-3`` ... are the last resort. Inputs given at
    construction are named together; an input seen later gets the shortest such name still free. An input
    that is one image file (a single-file run) gets no folder: its maps are ``<name>.<metric>.<ext>``.
    """

    def __init__(self, dist_roots: Sequence[str] = ()):
        self.names: dict[str, str] = {}
        self.flat: set[str] = set()
        self._taken = {MANIFEST_NAME.casefold()}
        labels = list(dict.fromkeys(os.fspath(r) for r in dist_roots))
        parts = {label: _components(label) for label in labels}
        depth = dict.fromkeys(labels, 1)
        while True:  # lengthen the names of colliding inputs until they differ
            names = {label: "_".join(parts[label][-depth[label]:]) for label in labels}
            groups: dict[str, list[str]] = {}
            for label, name in names.items():
                groups.setdefault(name.casefold(), []).append(label)
            grow = [label for key, members in groups.items() if len(members) > 1 or key in self._taken
                    for label in members if depth[label] < len(parts[label])]
            if not grow:
                break
            for label in grow:
                depth[label] += 1
        for label in labels:
            self._assign(label, names[label])

    def _assign(self, label: str, base: str) -> str:
        candidate, index = base, 1
        while candidate.casefold() in self._taken:  # case-insensitive file systems collide too
            index += 1
            candidate = f"{base}-{index}"
        self._taken.add(candidate.casefold())
        self.names[label] = candidate
        if _is_image_file(label):
            self.flat.add(label)
        return candidate

    def name(self, dist_root: str) -> str:
        label = os.fspath(dist_root)
        if label not in self.names:
            parts = _components(label)
            for k in range(1, len(parts) + 1):
                name = "_".join(parts[-k:])
                if name.casefold() not in self._taken:
                    return self._assign(label, name)
            return self._assign(label, parts[-1])
        return self.names[label]

    def path(self, maps_root: Path, dist_root: str, rel_key: str, metric: str, fmt: str) -> Path:
        """Where a map goes: ``maps_root/<name>/<rel_key>.<metric>.<ext>``, or ``maps_root/<name>.<metric>.<ext>``
        for a single image file."""
        name = self.name(dist_root)
        if os.fspath(dist_root) in self.flat:
            _check_key(rel_key)
            return maps_root / f"{name}.{metric}.{_suffix(fmt)}"
        return _path_for(maps_root, name, rel_key, metric, fmt)


def dist_root_names(dist_roots: Sequence[str]) -> dict[str, str]:
    """``{dist_root: folder name}`` for the distorted inputs of a run (see :class:`_RootNames`): the last
    folder name, or as many trailing folder names as it takes to tell inputs of the same name apart."""
    return dict(_RootNames(dist_roots).names)


def _check_key(rel_key: str) -> PurePosixPath:
    # "/" separates on every system; "\\" too on Windows (an ordinary character in POSIX file names)
    parts = rel_key.replace("\\", "/").split("/") if os.sep == "\\" else rel_key.split("/")
    if "\0" in rel_key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"heatmap key {rel_key!r} must be a relative POSIX path without '.', '..' or empty parts")
    return PurePosixPath(*parts)


def _suffix(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--heatmap-format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return "npy" if fmt == "npy" else "png"


def _path_for(maps_root: Path, folder: str, rel_key: str, metric: str, fmt: str) -> Path:
    key = _check_key(rel_key)
    return maps_root.joinpath(folder, *key.parts[:-1], f"{key.parts[-1]}.{metric}.{_suffix(fmt)}")


def heatmap_path(maps_root: str | os.PathLike, dist_root: str, rel_key: str, metric: str, fmt: str = "png",
                 *, dist_roots: Sequence[str] | None = None) -> Path:
    """Where the map of one pair and metric goes: ``maps_root/<dist root name>/<rel_key>.<metric>.<ext>``.

    Args:
        maps_root: the ``--heatmaps`` folder.
        dist_root: the distorted input as given on the command line (``Pair.dist_root``).
        rel_key: the pairing key, a relative POSIX path without extension (``sub/a``, ``frame_000123``).
        metric: the metric key.
        fmt: ``png`` or ``png16`` (``.png``) or ``npy`` (``.npy``).
        dist_roots: every distorted input of the run in command-line order, to disambiguate equal names
            (see :func:`dist_root_names`); ``None`` means ``[dist_root]``.

    Raises:
        ValueError: ``rel_key`` is absolute or contains ``.``/``..``; ``dist_root`` not in ``dist_roots``.
        UsageError: unknown ``fmt``.
    """
    roots = [dist_root] if dist_roots is None else list(dist_roots)
    if dist_root not in roots:
        raise ValueError(f"{dist_root!r} is not one of the distorted inputs {roots}")
    return _RootNames(roots).path(Path(maps_root), dist_root, rel_key, metric, fmt)


def check_maps_root(maps_root: str | os.PathLike) -> None:
    """Fail early (before any compute) when ``maps_root`` cannot be a folder of maps.

    Raises:
        OutputError: it is a file, or it (or its nearest existing parent) is not writable.
    """
    path = Path(maps_root)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--heatmaps {maps_root}: exists and is not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"--heatmaps {maps_root}: {probe} is not a writable folder")


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    metric: str
    dist_root: str
    key: str
    values: np.ndarray  # (H, W) float32
    score: float
    path: Path
    ref: np.ndarray | None = None
    dist: np.ndarray | None = None


def _replace_atomic(path: Path, write) -> None:
    """Create the parent folders, write through ``write(handle)`` to a temporary file and rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _png_info(fields: Mapping[str, Any]) -> PngInfo:
    info = PngInfo()
    for name, value in fields.items():
        info.add_text(name, value if isinstance(value, str) else repr(value))  # non-Latin-1 text goes to iTXt
    return info


def describe_scale(spec: MapSpec, scale: str, lo: float, hi: float) -> str:
    """The PNG's ``description``: the metric's fixed-scale text, or for ``auto`` what the map shows and the
    map's own range (nothing is clipped then, and colours are not comparable across maps)."""
    if scale != "auto":
        return spec.description
    what = spec.description.split(" on [")[0].split(";")[0]
    best, worst = (lo, hi) if spec.higher_is_worse else (hi, lo)
    return (f"{what}, stretched over this map's own finite range [{_fmt_value(lo)}, {_fmt_value(hi)}] "
            f"(--heatmap-scale auto): black = {spec.units} {_fmt_value(best)}, brightest = {spec.units} "
            f"{_fmt_value(worst)}; nothing is "
            f"clipped; colours are not comparable across maps")


def _score_text(score: float) -> str:
    return repr(float(score)) if score is not None else "nan"


def _write_item(item: _Item, fmt: str, scale: str, panel: bool, legend: bool) -> None:
    """Render and write one map (runs in a writer thread)."""
    if fmt == "npy":
        _replace_atomic(item.path, lambda handle: np.save(handle, item.values, allow_pickle=False))
        return
    spec = map_spec(item.metric)
    lo, hi = scale_range(item.values, item.metric, scale)
    t = badness(item.values, lo, hi, spec.higher_is_worse)
    fields: dict[str, Any] = {
        "Software": "lpipscli", "metric": item.metric, "dist_root": item.dist_root, "key": item.key,
        "score": _score_text(item.score), "scale": scale, "lo": repr(lo), "hi": repr(hi),
        "units": spec.units, "direction": spec.direction, "description": describe_scale(spec, scale, lo, hi),
        "relation": spec.relation,
    }
    if fmt == "png16":
        value_at_0, value_at_max = (lo, hi) if spec.higher_is_worse else (hi, lo)
        fields.update({
            "encoding": "v = value_at_0 + q / 65534 * (value_at_65534 - value_at_0); q = 65535: no value",
            "value_at_0": repr(value_at_0), "value_at_65534": repr(value_at_max), "nodata": str(NODATA_U16),
        })
        image = Image.fromarray(quantise_u16(t))  # mode I;16
    elif not (panel or legend or np.isnan(t).any()):
        # a palette PNG of the 256 magma entries: the same colours as RGB, ~3x faster to encode and smaller
        fields.update({"colormap": COLORMAP, "nodata": f"gray {NODATA_RGB}", "layout": "map"})
        image = Image.frombytes("P", (t.shape[1], t.shape[0]), colour_index(t).tobytes())
        image.putpalette(MAGMA_LUT.tobytes())
    else:
        fields.update({"colormap": COLORMAP, "nodata": f"gray {NODATA_RGB}"})
        rgb = colorize(t)
        x0 = 0
        if panel:
            rgb = make_panel(to_display_rgb(item.ref), to_display_rgb(item.dist), rgb)
            x0 = 2 * (item.values.shape[1] + PANEL_GAP)
            fields["layout"] = f"panel: ref | dist | map, {PANEL_GAP} px white gaps"
        else:
            fields["layout"] = "map"
        if legend:
            rgb = add_legend(rgb, lo, hi, spec.higher_is_worse, f"{item.metric}: {spec.units}", x0=x0,
                             width=item.values.shape[1], clipped=scale == "fixed")
            fields["legend"] = f"{LEGEND_HEIGHT} px strip below: colour bar, best value left, worst right"
        image = Image.fromarray(rgb)
    info = _png_info(fields)
    _replace_atomic(item.path, lambda handle: image.save(handle, format="PNG", pnginfo=info,
                                                          compress_level=_PNG_COMPRESS_LEVEL))


_STOP = object()


class HeatmapWriter:
    """Renders and writes heatmaps in writer threads behind a bounded queue.

    Streaming mode (``worst=None``): :meth:`submit` queues the map and returns its path at once; it only
    blocks while ``queue_size`` maps are already waiting, so at most ``queue_size + threads`` maps (plus
    their panel images) are held in memory whatever the number of pairs. The path is final as soon as
    :meth:`close` returns without error.

    Worst-K mode (``worst=K``): :meth:`submit` keeps only the ``K`` worst maps per metric (a heap by
    score in the metric's direction: highest LPIPS/MSE, lowest SSIM/PSNR; among equal scores the earlier
    arrival is kept; NaN/None scores are never kept) and returns ``""``, because whether a map survives is
    known only at the end. :meth:`close` writes the survivors and returns ``{(metric, dist_root, key):
    path}`` for them; they are also listed in ``maps_root/heatmaps.json``. So in worst-K mode the output
    table's ``<metric>_map`` column is empty for every row, and the written maps are found through the
    return value or the manifest.

    Args:
        maps_root: the ``--heatmaps`` folder (created when the first map is written).
        fmt: ``png``, ``png16`` or ``npy``.
        panel: write ``ref | dist | heatmap`` (``png`` only); :meth:`submit` then needs ``ref`` and ``dist``.
        scale: ``fixed`` (the metric's scale, see :func:`map_scale`) or ``auto`` (each map's min..max).
        worst: keep only the K worst maps per metric and write them at :meth:`close`.
        higher_is_better: ``{metric: bool}``, the score direction of every metric (required with ``worst``).
        queue_size: maps waiting for the writer threads before :meth:`submit` blocks (>= 1).
        threads: writer threads (>= 1); PNG encoding releases the GIL, so two or more keep up with a fast
            device (a 1-megapixel PNG map takes ~60-200 ms to encode on one core).
        legend: append a :data:`LEGEND_HEIGHT` px strip below each ``png`` map (or panel): a colour bar
            under the map with the scale's best value at the left and the worst at the right.
        dist_roots: the distorted inputs in command-line order; pins their folder names (see
            :func:`dist_root_names`); inputs not listed get names in order of first submission.

    Raises:
        UsageError: unknown ``fmt``/``scale``, ``panel`` with another format than ``png``, ``worst < 1``,
            ``queue_size < 1``, ``threads < 1``.
    """

    def __init__(self, maps_root: str | os.PathLike, *, fmt: str = "png", panel: bool = False,
                 scale: str = "fixed", worst: int | None = None,
                 higher_is_better: Mapping[str, bool] | None = None, queue_size: int = 32,
                 legend: bool = False, dist_roots: Sequence[str] = (), threads: int = 2):
        _suffix(fmt)
        if scale not in SCALES:
            raise UsageError(f"--heatmap-scale {scale!r}: choose one of {', '.join(SCALES)}")
        if panel and fmt != "png":
            raise UsageError(f"--heatmap-panel needs --heatmap-format png, not {fmt}")
        if worst is not None and worst < 1:
            raise UsageError(f"--heatmap-worst must be at least 1, got {worst}")
        if queue_size < 1:
            raise UsageError(f"heatmap queue size must be at least 1, got {queue_size}")
        if threads < 1:
            raise UsageError(f"heatmap writer threads must be at least 1, got {threads}")
        self.maps_root = Path(maps_root)
        self.fmt, self.panel, self.scale, self.worst, self.legend = fmt, panel, scale, worst, legend
        self.higher_is_better = dict(higher_is_better or {})
        self.queue_size = queue_size
        self._names = _RootNames(dist_roots)
        self._lock = threading.Lock()  # submit side
        self._status_lock = threading.Lock()  # writer side: first error, counts
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._heaps: dict[str, list] = {}
        self._seq = 0
        self._error: str | None = None
        self._error_raised = False
        self._closed = False
        self._abort = False
        self._result: dict[tuple[str, str, str], str] = {}
        self._written: dict[str, int] = {}
        self._metrics: set[str] = set()
        self._threads = [threading.Thread(target=self._run, name=f"lpipscli-heatmaps-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    # -- writer threads -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None or self._abort:
                continue  # drain without writing, so that submit never blocks forever
            try:
                _write_item(item, self.fmt, self.scale, self.panel, self.legend)
            except Exception as exc:  # noqa: BLE001 - every failure becomes the one-line OutputError
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                with self._status_lock:
                    if self._error is None:
                        self._error = " ".join(f"heatmaps: cannot write {item.path}: {reason}".split())
            else:
                with self._status_lock:
                    self._written[item.metric] = self._written.get(item.metric, 0) + 1

    def _raise_pending(self) -> None:
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise OutputError(self._error)

    # -- public API ----------------------------------------------------------------------------------

    def submit(self, metric: str, dist_root: str, key: str, map: Any, score: float | None,
               ref: Any = None, dist: Any = None, *, image_hw: tuple[int, int] | None = None) -> str:
        """Hand over the map of one pair (or frame) and metric.

        Args:
            metric: a metric key with a registered map (:func:`has_map`).
            dist_root: the distorted input as given (``Pair.dist_root``).
            key: the pairing key (relative POSIX path without extension, or ``frame_000123``).
            map: ``(H, W)`` map in the metric's units (float32/float64 NumPy; ``(1, 1, H, W)`` and CPU
                torch tensors are accepted); copied, so the caller may reuse its buffer.
            score: the row's score for this metric (stored in the PNG; ranks maps in worst-K mode).
            ref, dist: the two images for a panel, ``(H, W)`` or ``(H, W, C)`` uint8/uint16/float [0, 1].
            image_hw: the image size, when the map is smaller than the image (SSIM's valid region); taken
                from ``ref`` when given. The map is centred in a NaN frame of that size.

        Returns:
            The map's path as text (streaming mode), or ``""`` in worst-K mode.

        Raises:
            OutputError: an earlier write failed (raised once, here or by :meth:`close`).
            UsageError: the metric has no map.
            ValueError: bad shapes, missing panel images, missing direction in worst-K mode, a closed writer.
        """
        if self._closed:
            raise ValueError("HeatmapWriter.submit after close()")
        self._raise_pending()
        map_spec(metric)
        score = None if score is None else float(score)
        values = as_map(map)
        if ref is not None and image_hw is None:
            image_hw = _to_numpy(ref).shape[:2]
        if image_hw is not None:
            values = pad_to_image(values, image_hw)
        if self.panel:
            if ref is None or dist is None:
                raise ValueError("--heatmap-panel: submit needs the ref and dist images")
            ref_rgb, dist_rgb = to_display_rgb(ref), to_display_rgb(dist)
            for name, part in (("ref", ref_rgb), ("dist", dist_rgb)):
                if part.shape[:2] != values.shape:
                    raise ValueError(f"panel: {name} is {part.shape[0]}x{part.shape[1]}, the map "
                                     f"{values.shape[0]}x{values.shape[1]}")
        else:
            ref_rgb = dist_rgb = None
        with self._lock:  # names, heaps and counters may be shared by several submitting threads
            path = self._names.path(self.maps_root, dist_root, key, metric, self.fmt)
            self._metrics.add(metric)
            item = _Item(metric, dist_root, key, values, score, path, ref_rgb, dist_rgb)
            if self.worst is not None:
                self._keep_if_worst(item)
                return ""
        self._queue.put(item)  # blocks while the queue is full (bounded memory)
        return str(path)

    def _keep_if_worst(self, item: _Item) -> None:
        if item.metric not in self.higher_is_better:
            raise ValueError(f"worst-K heatmaps need the direction of {item.metric} in higher_is_better")
        if item.score is None or math.isnan(float(item.score)):
            return
        bad = -float(item.score) if self.higher_is_better[item.metric] else float(item.score)
        self._seq += 1
        entry = (bad, -self._seq, item)  # heap root: least bad, and the latest among equals
        heap = self._heaps.setdefault(item.metric, [])
        if len(heap) < self.worst:
            heapq.heappush(heap, entry)
        else:
            heapq.heappushpop(heap, entry)

    def close(self, *, abort: bool = False) -> dict[tuple[str, str, str], str]:
        """Write what is pending, stop the threads and write ``maps_root/heatmaps.json``.

        Args:
            abort: drop the maps not written yet (used when the run fails or is interrupted).

        Returns:
            Worst-K mode: ``{(metric, dist_root, key): path}`` of the maps written; streaming mode: ``{}``
            (every path was returned by :meth:`submit`). Later calls return the same without doing anything.

        Raises:
            OutputError: the first write error, one line (raised once: here, or earlier by :meth:`submit`).
        """
        if self._closed:
            return dict(self._result)
        self._closed = True
        self._abort = abort
        kept: list[_Item] = []
        if self.worst is not None and not abort:
            for metric in sorted(self._heaps):
                kept.extend(entry[2] for entry in sorted(self._heaps[metric], reverse=True))  # worst first
        self._heaps = {}
        try:
            for item in kept:
                self._queue.put(item)
        finally:
            for _ in self._threads:
                self._queue.put(_STOP)
            for thread in self._threads:
                thread.join()
        if self._error is None and not abort:
            self._result = {(i.metric, i.dist_root, i.key): str(i.path) for i in kept}
            try:
                self.maps_root.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.maps_root / MANIFEST_NAME, self._manifest(kept))
            except OSError as exc:
                self._error = f"heatmaps: cannot write {self.maps_root / MANIFEST_NAME}: {exc.strerror or exc}"
        self._raise_pending()
        return dict(self._result)

    def provenance(self, metrics: Sequence[str] | None = None) -> dict:
        """The heatmap settings for the run's provenance: format, scale mode, colormap, per-metric scales.

        Args:
            metrics: the metrics whose scales to list (e.g. the run's metrics that have a map, known
                before any submit); ``None``: the metrics submitted so far.
        """
        listed = set(self._metrics if metrics is None else metrics)
        return {
            "format": self.fmt, "scale": self.scale, "panel": self.panel, "legend": self.legend,
            "worst": self.worst, "colormap": COLORMAP if self.fmt == "png" else None,
            "root": str(self.maps_root),
            "paths": "<maps_root>/<dist root name>/<key>.<metric>.<png|npy>",
            "metrics": {m: {"lo": s.lo, "hi": s.hi, "units": s.units, "direction": s.direction,
                            "description": s.description, "relation": s.relation}
                        for m, s in MAP_SPECS.items() if m in listed},
        }

    def _manifest(self, kept: list[_Item]) -> dict:
        data = {"heatmaps": self.provenance(), "dist_roots": dict(self._names.names),
                "written": dict(sorted(self._written.items()))}
        if self.worst is not None:
            data["maps"] = [{"metric": i.metric, "dist_root": i.dist_root, "key": i.key,
                             "score": i.score, "path": str(i.path)} for i in kept]
        return json_safe(data)

    def __enter__(self) -> HeatmapWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the original exception behind a write error
            with contextlib.suppress(OutputError):
                self.close(abort=True)


__all__ = [
    "COLORMAP", "FORMATS", "LEGEND_HEIGHT", "MAGMA_LUT", "MAP_SPECS", "MANIFEST_NAME", "NODATA_RGB",
    "NODATA_U16", "PANEL_GAP", "SCALES", "HeatmapWriter", "MapSpec", "add_legend", "as_map", "badness",
    "check_maps_root", "colorize", "describe_scale", "dist_root_names", "has_map", "heatmap_path", "make_panel",
    "map_scale",
    "map_spec", "pad_to_image", "quantise_u16", "register_map", "root_folder_name", "scale_range",
    "to_display_rgb",
]
