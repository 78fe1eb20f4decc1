"""Work planning and the torch Dataset that decodes pairs in DataLoader workers.

Planning (main process) probes every file's header, so that batches can group pairs of equal size
without decoding anything, and so that size mismatches and too-small images are reported before any
compute starts. Decoding (workers) turns each reference and its distorted versions into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lpipscli.errors import DecodeError, LpipsCliError
from lpipscli.io.decoding import DEFAULT_MAX_PIXELS, decode_image, probe_image, to_float
from lpipscli.io.pairing import Pair, RefGroup


@dataclass(frozen=True)
class Chunk:
    """A reference and some of its pairs, decoded and scored together (the reference once)."""

    ref_path: str
    pairs: tuple[Pair, ...]
    height: int
    width: int
    channels: int
    #: per pair: (width, height) of the distorted file when it must be resized to the reference, else None
    resize_from: tuple[tuple[int, int] | None, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass
class WorkPlan:
    """What to decode (chunks, in batches) and which pairs already failed during planning."""

    chunks: list[Chunk]
    batches: list[list[int]]
    failed: list[tuple[Pair, int, int, str]] = field(default_factory=list)  # pair, width, height, message

    @property
    def n_pairs(self) -> int:
        return sum(len(c.pairs) for c in self.chunks)


def size_problems(width: int, height: int, min_sides: dict[str, int]) -> str:
    """Which metrics an image of this size is too small for, as one line ('' when none)."""
    return "; ".join(
        f"{key} needs at least {side}x{side} px" for key, side in min_sides.items() if min(width, height) < side
    )


def plan_work(
    groups: list[RefGroup],
    *,
    resize: str,
    min_sides: dict[str, int],
    batch_size: int,
    max_batch_pixels: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> WorkPlan:
    """Probe headers, check sizes, and group pairs into batches of equal image shape.

    Args:
        groups: references with their distorted files, in output order.
        resize: ``"none"`` (size mismatch is an error) or ``"dist-to-ref"``.
        min_sides: metric key -> smallest side it accepts.
        batch_size: most pairs per batch.
        max_batch_pixels: most pixels (references plus distorted images) per batch; a single pair
            above it still runs, alone.
        max_pixels: decompression-bomb limit per image (None disables it).

    Returns:
        The plan; pairs that cannot be scored are in ``failed`` with a one-line message.
    """
    chunks: list[Chunk] = []
    failed: list[tuple[Pair, int, int, str]] = []
    for group in groups:
        try:
            ref_info = probe_image(group.ref_path, max_pixels=max_pixels)
        except LpipsCliError as exc:
            failed.extend((pair, 0, 0, str(exc)) for pair in group.pairs)
            continue
        width, height = ref_info.width, ref_info.height
        too_small = size_problems(width, height, min_sides)
        if too_small:
            msg = f"{group.ref_path}: image is {width}x{height}, too small: {too_small}"
            failed.extend((pair, width, height, msg) for pair in group.pairs)
            continue
        ok: list[tuple[Pair, tuple[int, int] | None]] = []
        channels = ref_info.channels
        for pair in group.pairs:
            try:
                info = probe_image(pair.dist_path, max_pixels=max_pixels)
            except LpipsCliError as exc:
                failed.append((pair, width, height, str(exc)))
                continue
            resize_from = None
            if (info.width, info.height) != (width, height):
                if resize != "dist-to-ref":
                    failed.append((pair, width, height, (
                        f"{pair.dist_path}: size {info.width}x{info.height} differs from the reference "
                        f"{pair.ref_path} ({width}x{height}); pass --resize dist-to-ref to resample it"
                    )))
                    continue
                resize_from = (info.width, info.height)
            channels = max(channels, info.channels)
            ok.append((pair, resize_from))
        if not ok:
            continue
        per_chunk = max(1, min(batch_size, max_batch_pixels // (width * height) - 1))
        for start in range(0, len(ok), per_chunk):
            part = ok[start:start + per_chunk]
            chunks.append(Chunk(
                ref_path=str(group.ref_path), pairs=tuple(p for p, _ in part), height=height, width=width,
                channels=channels, resize_from=tuple(r for _, r in part),
            ))
    return WorkPlan(chunks=chunks, batches=_batch(chunks, batch_size, max_batch_pixels), failed=failed)


def _batch(chunks: list[Chunk], batch_size: int, max_batch_pixels: int) -> list[list[int]]:
    """Group chunk indices by image shape, in input order; a batch is emitted when full."""
    open_batches: dict[tuple[int, int, int], list[int]] = {}
    counts: dict[tuple[int, int, int], tuple[int, int]] = {}
    batches: list[list[int]] = []
    for index, chunk in enumerate(chunks):
        shape = chunk.shape
        pixels = (len(chunk.pairs) + 1) * chunk.height * chunk.width
        n_pairs, n_pixels = counts.get(shape, (0, 0))
        if shape in open_batches and (n_pairs + len(chunk.pairs) > batch_size or n_pixels + pixels > max_batch_pixels):
            batches.append(open_batches.pop(shape))
            n_pairs, n_pixels = 0, 0
        open_batches.setdefault(shape, []).append(index)
        counts[shape] = (n_pairs + len(chunk.pairs), n_pixels + pixels)
    batches.extend(open_batches.values())
    return batches


#: integer pixel dtypes and their full scale; 16-bit samples travel as int32 (exact; torch's uint16 is limited)
_SCALE = {torch.uint8: 255.0, torch.int32: 65535.0}


def _to_tensor(array: np.ndarray, channels: int) -> torch.Tensor:
    """(H, W, C) array -> (C, H, W) tensor: uint8 stays uint8, uint16 becomes int32, float stays float32."""
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    elif array.dtype != np.uint8:
        array = to_float(array)
    tensor = torch.from_numpy(np.array(array.transpose(2, 0, 1), order="C", copy=True))
    if tensor.shape[0] != channels:
        tensor = tensor.expand(channels, -1, -1).contiguous()
    return tensor


def to_unit_float(tensor: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixels as float in [0, 1] by their bit depth (uint8 / 255, int32 16-bit samples / 65535)."""
    scale = _SCALE.get(tensor.dtype)
    if scale is None:
        return tensor.to(dtype)
    return tensor.to(dtype).div_(scale)


def _resize(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic, antialiased resampling in float, clamped back to [0, 1]."""
    x = to_unit_float(tensor)
    x = F.interpolate(x[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x[0].clamp_(0, 1)


class PairDataset(Dataset):
    """Decodes one :class:`Chunk` per item: its reference once, then each distorted file.

    An item is a dict ``{"chunk": int, "ref": (C, H, W) tensor or None, "dists": [tensor or None],
    "errors": [str or None]}``; tensors are uint8 for 8-bit files, int32 for 16-bit files (values
    0..65535), float32 in [0, 1] after alpha compositing or resampling. Bad files
    become per-pair error messages, never exceptions, so one corrupt file cannot take the batch down.
    """

    def __init__(self, chunks: list[Chunk], *, alpha: str = "drop", max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.chunks = chunks
        self.alpha = alpha
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.chunks)

    def _decode(self, path, chunk: Chunk) -> torch.Tensor:
        array = decode_image(path, alpha=self.alpha, max_pixels=self.max_pixels)
        if array.ndim == 2:
            array = array[:, :, None]
        return _to_tensor(array, chunk.channels)

    def __getitem__(self, index: int) -> dict:
        chunk = self.chunks[index]
        item = {"chunk": index, "ref": None, "dists": [None] * len(chunk.pairs), "errors": [None] * len(chunk.pairs)}
        try:
            ref = self._decode(chunk.ref_path, chunk)
            if tuple(ref.shape) != chunk.shape:
                raise DecodeError(chunk.ref_path, f"decoded to {tuple(ref.shape)}, header said {chunk.shape}")
        except LpipsCliError as exc:
            item["errors"] = [str(exc)] * len(chunk.pairs)
            return item
        item["ref"] = ref
        for k, (pair, resize_from) in enumerate(zip(chunk.pairs, chunk.resize_from, strict=True)):
            try:
                dist = self._decode(pair.dist_path, chunk)
                if resize_from is not None:
                    dist = _resize(dist, chunk.height, chunk.width)
                if tuple(dist.shape) != chunk.shape:
                    raise DecodeError(pair.dist_path, f"decoded to {tuple(dist.shape)}, expected {chunk.shape}")
                item["dists"][k] = dist
            except LpipsCliError as exc:
                item["errors"][k] = str(exc)
        return item


def collate(items: list[dict]) -> dict:
    """Stack a batch: ``ref`` (R, C, H, W), ``dist`` (P, C, H, W), ``ref_index`` (P,) plus bookkeeping.

    Pairs whose files failed are listed in ``failed`` as ``(chunk, pair_index, message)``; ``scored``
    lists ``(chunk, pair_index)`` in the order of the ``dist`` rows.
    """
    refs, dists, ref_index, scored, failed = [], [], [], [], []
    for item in items:
        if item["ref"] is not None and any(d is not None for d in item["dists"]):
            refs.append(item["ref"])
        for k, (dist, error) in enumerate(zip(item["dists"], item["errors"], strict=True)):
            if dist is None:
                failed.append((item["chunk"], k, error))
            else:
                dists.append(dist)
                ref_index.append(len(refs) - 1)
                scored.append((item["chunk"], k))
    batch = {"scored": scored, "failed": failed, "ref": None, "dist": None, "ref_index": None, "identity": False}
    if dists:
        tensors = refs + dists
        if len({t.dtype for t in tensors}) > 1:  # mixed bit depths: exact float64 in [0, 1]
            tensors = [to_unit_float(t, torch.float64) for t in tensors]
        batch["ref"] = torch.stack(tensors[: len(refs)])
        batch["dist"] = torch.stack(tensors[len(refs):])
        batch["ref_index"] = torch.tensor(ref_index, dtype=torch.long)
        #: one distorted image per reference, in order: metrics can skip gathering references
        batch["identity"] = ref_index == list(range(len(refs)))
    return batch
