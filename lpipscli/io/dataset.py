"""Work items, the Datasets that decode them in DataLoader workers, and the one batcher.

Planning (main process) probes every file's header, so that size mismatches and too-small images are
reported before any compute starts. Decoding (workers) turns each work item, a :class:`Chunk` (one
reference and some of its distorted versions), into tensors. The :class:`Batcher` (main process)
groups decoded items of equal shape under a pixel budget, for every kind of source.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lpipscli.errors import DecodeError, LpipsCliError
from lpipscli.io.decoding import (
    DEFAULT_MAX_PIXELS,
    PAIR_ALPHA_POLICIES,
    alpha_mismatch_warning,
    decode_image,
    decode_with_alpha,
    pair_arrays,
    probe_image,
    reference_array,
    to_float,
)
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
    """What to decode (chunks, in input order) and which pairs already failed during planning.

    ``metric_problems``: metric -> (pairs it cannot score, first reason); those pairs are scored by the
    other metrics (the engine leaves that metric's cell empty with the reason).
    """

    chunks: list[Chunk]
    failed: list[tuple[Pair, int, int, str]] = field(default_factory=list)  # pair, width, height, message
    metric_problems: dict[str, tuple[int, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

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
    alpha: str = "drop",
    alpha_color: tuple[float, float, float] = (1.0, 1.0, 1.0),
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
        alpha, alpha_color: the alpha policy; pairs whose sides disagree on alpha get one warning per kind,
            naming the policy applied and how many pairs it concerns.

    Returns:
        The plan; pairs that no metric can score are in ``failed`` with a one-line message; pairs too
        small for some metrics only are planned, and counted per metric in ``metric_problems``.
    """
    chunks: list[Chunk] = []
    failed: list[tuple[Pair, int, int, str]] = []
    problems: dict[str, tuple[int, str]] = {}
    mismatches: dict[str, tuple[int, str]] = {}
    for group in groups:
        try:
            ref_info = probe_image(group.ref_path, max_pixels=max_pixels)
        except LpipsCliError as exc:
            failed.extend((pair, 0, 0, str(exc)) for pair in group.pairs)
            continue
        width, height = ref_info.width, ref_info.height
        too_small = size_problems(width, height, min_sides)
        if too_small and all(min(width, height) < side for side in min_sides.values()):
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
            note = alpha_mismatch_warning(ref_info.has_alpha, info.has_alpha, alpha, alpha_color)
            if note:
                count, first = mismatches.get(note, (0, f"{pair.ref_path} vs {pair.dist_path}"))
                mismatches[note] = (count + 1, first)
            ok.append((pair, resize_from))
        if not ok:
            continue
        for key, side in min_sides.items():
            if min(width, height) < side:
                count, first = problems.get(key, (0, f"{group.ref_path}: image is {width}x{height}, {key} needs "
                                                      f"at least {side}x{side} px"))
                problems[key] = (count + len(ok), first)
        per_chunk = max(1, min(batch_size, max_batch_pixels // (width * height) - 1))
        for start in range(0, len(ok), per_chunk):
            part = ok[start:start + per_chunk]
            chunks.append(Chunk(
                ref_path=str(group.ref_path), pairs=tuple(p for p, _ in part), height=height, width=width,
                channels=channels, resize_from=tuple(r for _, r in part),
            ))
    warnings = [f"{count} pair(s) with alpha on one side only (first: {first}): {note}"
                for note, (count, first) in mismatches.items()]
    return WorkPlan(chunks=chunks, failed=failed, metric_problems=problems, warnings=warnings)


class Batcher:
    """The one batcher: groups decoded work items of equal shape under a pair count and a pixel budget.

    Items arrive in input order (from any source's Dataset); a batch closes when the next item of its
    shape would exceed ``batch_size`` pairs or ``max_batch_pixels`` (references included). A single item
    above the budget still runs, alone. Items whose reference failed to decode pass through at once.
    At most ``max_open`` shapes are held open (the oldest closes first), which bounds memory when shapes
    alternate.
    """

    def __init__(self, batch_size: int, max_batch_pixels: int, *, max_open: int = 4):
        self.batch_size = batch_size
        self.max_batch_pixels = max_batch_pixels
        self.max_open = max_open
        self._open: dict[tuple, list[dict]] = {}
        self._counts: dict[tuple, tuple[int, int]] = {}

    def add(self, item: dict) -> list[list[dict]]:
        """Take one decoded item; returns the batches it closed (in order)."""
        chunk: Chunk = item["chunk"]
        if item["ref"] is None:
            return [[item]]
        shape = chunk.shape
        n_new = sum(d is not None for d in item["dists"])
        pixels = (n_new + 1) * chunk.height * chunk.width
        out: list[list[dict]] = []
        n_pairs, n_pixels = self._counts.get(shape, (0, 0))
        if shape in self._open and (n_pairs + n_new > self.batch_size or n_pixels + pixels > self.max_batch_pixels):
            out.append(self._close(shape))
            n_pairs, n_pixels = 0, 0
        if shape not in self._open and len(self._open) >= self.max_open:
            out.append(self._close(next(iter(self._open))))
        self._open.setdefault(shape, []).append(item)
        self._counts[shape] = (n_pairs + n_new, n_pixels + pixels)
        return out

    def flush(self) -> list[list[dict]]:
        """Close every open batch (at the end of the input)."""
        return [self._close(shape) for shape in list(self._open)]

    def _close(self, shape: tuple) -> list[dict]:
        self._counts.pop(shape, None)
        return self._open.pop(shape)


#: integer pixel dtypes and their full scale; 16-bit samples travel as int32 (exact; torch's uint16 is limited)
SAMPLE_SCALE = {torch.uint8: 255.0, torch.int32: 65535.0}

#: float dtypes the CPU conversions write with NumPy, and their NumPy twins
NUMPY_FLOATS = {torch.float64: np.float64, torch.float32: np.float32}


def _to_tensor(array: np.ndarray, channels: int) -> torch.Tensor:
    """(H, W, C) or (H, W) array -> (C, H, W) tensor: uint8 stays uint8, uint16 becomes int32, float stays
    float32; gray is replicated to ``channels``."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    elif array.dtype != np.uint8:
        array = to_float(array)
    planar = array.transpose(2, 0, 1)  # a decoded video frame is channel-planar already: no copy then
    tensor = torch.from_numpy(np.ascontiguousarray(planar) if planar.flags.writeable else np.array(planar, order="C"))
    if tensor.shape[0] != channels:
        tensor = tensor.expand(channels, -1, -1).contiguous()
    return tensor


def to_unit_float(tensor: torch.Tensor, dtype: torch.dtype = torch.float32, scale: float | None = None,
                  out: Callable[[tuple[int, ...], type], np.ndarray] | None = None) -> torch.Tensor:
    """Pixels as float in [0, 1] by their bit depth (uint8 / 255, int32 16-bit samples / 65535).

    ``scale`` overrides the full scale of integer samples: video streams of 9 to 15 bits travel as int32
    holding the stream's own values and are divided by ``2^bits - 1`` (1023 for 10-bit), so that their
    data range is the stream's full scale. ``out(shape, numpy_dtype)``, when given, supplies the array the
    CPU conversion writes into (the engine's reused batch buffers); the values are the same either way.
    """
    if scale is None:
        scale = SAMPLE_SCALE.get(tensor.dtype)
    if scale is None or tensor.is_floating_point():
        return tensor.to(dtype)
    if tensor.device.type == "cpu" and dtype in NUMPY_FLOATS and not tensor.requires_grad:
        # NumPy's conversion and correctly rounded division (the same values as torch's) run in this thread:
        # no OpenMP region to stall while a decoding worker or reader thread holds a core. The integers
        # (at most 16 bits) convert exactly, so dividing them in the target dtype is one rounding, as torch's.
        np_dtype = NUMPY_FLOATS[dtype]
        array = np.empty(tuple(tensor.shape), np_dtype) if out is None else out(tuple(tensor.shape), np_dtype)
        np.divide(tensor.numpy(), np_dtype(scale), out=array, dtype=np_dtype)
        return torch.from_numpy(array)
    return tensor.to(dtype).div_(scale)


def _resize(tensor: torch.Tensor, height: int, width: int, scale: float | None = None) -> torch.Tensor:
    """Bicubic, antialiased resampling in float, clamped back to [0, 1]."""
    x = to_unit_float(tensor, scale=scale)
    x = F.interpolate(x[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x[0].clamp_(0, 1)


class _PackedChunks:
    """The chunks of a :class:`PairDataset` without a Python object per pair, for the decoding workers.

    A worker is a fork of the main process and shares its memory until a page is written; reading a Python
    object writes its reference count. Decoding from the planned :class:`Chunk` and :class:`Pair` objects
    (and pickling them back with each item) made every worker copy the pages of all of them, a cost that
    grows with the number of pairs. Here each chunk's strings are one UTF-8 blob with NumPy offsets and its
    numbers NumPy arrays; a worker rebuilds the chunk it decodes as new objects.
    """

    def __init__(self, chunks: list[Chunk]):
        texts: list[str] = []
        numbers: list[tuple[int, int, int, int]] = []  # per chunk: first pair, height, width, channels
        sizes: list[tuple[int, int]] = []  # per pair: resize_from (-1, -1 for None)
        for chunk in chunks:
            numbers.append((len(sizes), chunk.height, chunk.width, chunk.channels))
            texts.append(chunk.ref_path)
            for pair, resize_from in zip(chunk.pairs, chunk.resize_from, strict=True):
                texts.extend((pair.key, str(pair.ref_path), str(pair.dist_path), pair.dist_root))
                sizes.append(resize_from or (-1, -1))
        encoded = [t.encode("utf-8", "surrogateescape") for t in texts]
        self._blob = b"".join(encoded)
        self._offsets = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
        self._numbers = np.array(numbers, dtype=np.int64).reshape(-1, 4)
        self._sizes = np.array(sizes, dtype=np.int64).reshape(-1, 2)
        self._n_pairs = len(sizes)
        self.frozen = False

    def _text(self, k: int) -> str:
        return self._blob[self._offsets[k]:self._offsets[k + 1]].decode("utf-8", "surrogateescape")

    def chunk(self, index: int) -> Chunk:
        first, height, width, channels = (int(v) for v in self._numbers[index])
        last = int(self._numbers[index + 1][0]) if index + 1 < len(self._numbers) else self._n_pairs
        base = first * 4 + index  # texts: one reference path per chunk, four strings per pair
        pairs, resize_from = [], []
        for j in range(last - first):
            t = base + 1 + 4 * j
            pairs.append(Pair(self._text(t), Path(self._text(t + 1)), Path(self._text(t + 2)), self._text(t + 3)))
            w, h = (int(v) for v in self._sizes[first + j])
            resize_from.append(None if w < 0 else (w, h))
        return Chunk(ref_path=self._text(base), pairs=tuple(pairs), height=height, width=width, channels=channels,
                     resize_from=tuple(resize_from))


class PairDataset(Dataset):
    """Decodes one :class:`Chunk` per item: its reference once, then each distorted file.

    An item is a dict ``{"chunk": Chunk, "ref": (C, H, W) tensor or None, "dists": [tensor or None],
    "errors": [str or None]}``; tensors are uint8 for 8-bit files, int32 for 16-bit files (values
    0..65535), float32 in [0, 1] after alpha compositing or resampling. Bad files
    become per-pair error messages, never exceptions, so one corrupt file cannot take the batch down.
    """

    def __init__(self, chunks: list[Chunk], *, alpha: str = "drop", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 alpha_color: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        self.chunks = chunks
        self.alpha = alpha
        self.alpha_color = alpha_color
        self.max_pixels = max_pixels
        self._packed: _PackedChunks | None = None  # made by prepare_workers() when decoding workers will run

    def __len__(self) -> int:
        return len(self.chunks)

    def item_sizes(self) -> list[tuple[int, int]]:
        """``(pairs, pixels)`` of each item, references included (what :func:`prefetch_items` sizes by)."""
        return [(len(c.pairs), (len(c.pairs) + 1) * c.height * c.width) for c in self.chunks]

    def prepare_workers(self) -> None:
        """Pack the chunks for the decoding workers (:class:`_PackedChunks`), before they fork; a run that
        decodes in the main process never pays for it."""
        if self._packed is None and all(type(p) is Pair for c in self.chunks for p in c.pairs):
            self._packed = _PackedChunks(self.chunks)

    def _dist_array(self, ref_img, chunk: Chunk, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """The distorted image's array and, for ``--alpha mask``, the mask of pixels opaque on both sides."""
        if ref_img is None:
            return decode_image(pair.dist_path, alpha=self.alpha, max_pixels=self.max_pixels), None
        dist_img = decode_with_alpha(pair.dist_path, max_pixels=self.max_pixels)
        try:
            _, array, mask = pair_arrays(ref_img, dist_img, self.alpha, self.alpha_color,
                                         ref_path=str(chunk.ref_path), dist_path=str(pair.dist_path))
        except ValueError as exc:  # a borrowed alpha or a mask across two sizes (--resize)
            raise DecodeError(pair.dist_path, f"--alpha {self.alpha}: {exc}; --alpha drop or same-size images "
                                              "score it") from None
        return array, (mask if self.alpha == "mask" else None)

    def __getitem__(self, index: int) -> dict:
        """Decode one chunk. ``--alpha composite-both|mask`` treat both sides of a pair alike (the reference's
        array never depends on a distorted image, so it is made once); ``mask`` adds per-pair masks."""
        if self._packed is not None and get_worker_info() is not None:  # in a decoding worker: see _PackedChunks
            if not self._packed.frozen:
                gc.freeze()  # the parent's objects: later collections here must not write to their pages
                self._packed.frozen = True
            chunk = self._packed.chunk(index)
        else:
            chunk = self.chunks[index]
        n = len(chunk.pairs)
        item = {"chunk": chunk, "ref": None, "dists": [None] * n, "errors": [None] * n, "masks": [None] * n}
        ref_img = None
        try:
            if self.alpha in PAIR_ALPHA_POLICIES:
                ref_img = decode_with_alpha(chunk.ref_path, max_pixels=self.max_pixels)
                array = reference_array(ref_img, self.alpha, self.alpha_color, ref_path=chunk.ref_path)
            else:
                array = decode_image(chunk.ref_path, alpha=self.alpha, max_pixels=self.max_pixels)
            ref = _to_tensor(array, chunk.channels)
            if tuple(ref.shape) != chunk.shape:
                raise DecodeError(chunk.ref_path, f"decoded to {tuple(ref.shape)}, header said {chunk.shape}")
        except LpipsCliError as exc:
            item["errors"] = [str(exc)] * n
            return item
        item["ref"] = ref
        for k, (pair, resize_from) in enumerate(zip(chunk.pairs, chunk.resize_from, strict=True)):
            try:
                array, mask = self._dist_array(ref_img, chunk, pair)
                dist = _to_tensor(array, chunk.channels)
                if resize_from is not None:
                    dist = _resize(dist, chunk.height, chunk.width)
                if tuple(dist.shape) != chunk.shape:
                    raise DecodeError(pair.dist_path, f"decoded to {tuple(dist.shape)}, expected {chunk.shape}")
                item["dists"][k] = dist
                if mask is not None:
                    item["masks"][k] = torch.from_numpy(np.ascontiguousarray(mask))
            except LpipsCliError as exc:
                item["errors"][k] = str(exc)
        return item


def collate(items: list[dict]) -> dict:
    """Stack a batch: ``ref`` (R, C, H, W), ``dist`` (P, C, H, W), ``ref_index`` (P,) plus bookkeeping.

    ``chunks`` lists the items' chunks; pairs whose files failed are listed in ``failed`` as
    ``(item, pair_index, message)``; ``scored`` lists ``(item, pair_index)`` in the order of the
    ``dist`` rows.
    """
    refs, dists, ref_index, scored, failed, masks = [], [], [], [], [], []
    # per tensor: full scale of its integer samples (None: by dtype), in the order of refs and of dists
    ref_scales: list[float | None] = []
    dist_scales: list[float | None] = []
    ref_planes, dist_planes, plane_bits, plane_errors = [], [], set(), []
    for i, item in enumerate(items):
        has_planes = "ref_planes" in item
        if item["ref"] is not None and any(d is not None for d in item["dists"]):
            refs.append(item["ref"])
            ref_scales.append(item.get("ref_scale"))
            if has_planes:
                ref_planes.append(item["ref_planes"])
                plane_bits.add(item["plane_bits"])
        for k, (dist, error) in enumerate(zip(item["dists"], item["errors"], strict=True)):
            if dist is None:
                failed.append((i, k, error))
            else:
                dists.append(dist)
                ref_index.append(len(refs) - 1)
                scored.append((i, k))
                masks.append((item.get("masks") or [None] * len(item["dists"]))[k])
        item_scales = item.get("dist_scales") or [None] * len(item["dists"])
        dist_scales.extend(s for d, s in zip(item["dists"], item_scales, strict=True) if d is not None)
        if has_planes:
            for dist, planes, problem in zip(item["dists"], item["dist_planes"], item["plane_errors"], strict=True):
                if dist is not None:
                    dist_planes.append(planes)
                    if problem:
                        plane_errors.append(problem)
    batch = {"chunks": [item["chunk"] for item in items], "scored": scored, "failed": failed, "ref": None,
             "dist": None, "ref_index": None, "identity": False, "scale": None,
             "masks": masks if any(m is not None for m in masks) else None}
    if dists:
        tensors = refs + dists
        scales = ref_scales + dist_scales
        full = [s if s is not None else SAMPLE_SCALE.get(t.dtype) for t, s in zip(tensors, scales, strict=True)]
        if len({t.dtype for t in tensors}) > 1 or len(set(full)) > 1:  # mixed bit depths: exact float64 [0, 1]
            tensors = [to_unit_float(t, torch.float64, s) for t, s in zip(tensors, full, strict=True)]
        elif full and full[0] != SAMPLE_SCALE.get(tensors[0].dtype):
            batch["scale"] = full[0]  # e.g. 1023 for 10-bit video: divided on the device
        batch["ref"] = stack(tensors[: len(refs)])
        batch["dist"] = stack(tensors[len(refs):])
        batch["ref_index"] = torch.tensor(ref_index, dtype=torch.long)
        #: one distorted image per reference, in order: metrics can skip gathering references
        batch["identity"] = ref_index == list(range(len(refs)))
        if ref_planes:
            batch["planes"] = _frame_planes(ref_planes, dist_planes, plane_bits, plane_errors)
    return batch


#: torch dtypes whose tensors :func:`stack` copies with NumPy
_NUMPY_STACKABLE = frozenset({torch.uint8, torch.uint16, torch.int16, torch.int32, torch.int64, torch.float16,
                              torch.float32, torch.float64, torch.bool})


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)`` of CPU tensors, copied by NumPy (one ``memcpy`` per tensor, no threads).

    torch's copy runs as an OpenMP region over its intra-op threads, and such a region stalls until every
    thread has run: while a decoding worker or a video reader thread holds a core, stacking eight
    256x256 RGB images took 8 to 60 ms with 2 threads on a busy 2-core machine, against 0.15 ms in NumPy
    (and 0.13 ms with 1 thread). The values are the same bytes either way.

    A single contiguous tensor is returned as a view with a batch axis (no copy): a 1080p batch holds one
    frame per side, and copying it into fresh memory cost page faults of 6 MB (8-bit) to 25 MB (10-bit,
    int32) per frame and side. Nothing writes into a batch's pixels, so sharing them with the item is safe.
    """
    if len(tensors) == 1 and tensors[0].is_contiguous():
        return tensors[0].unsqueeze(0)
    if tensors and tensors[0].dtype in _NUMPY_STACKABLE and all(
            t.device.type == "cpu" and t.dtype == tensors[0].dtype and not t.requires_grad for t in tensors):
        return torch.from_numpy(np.stack([t.numpy() for t in tensors]))
    return torch.stack(tensors)


def _frame_planes(ref_planes: list, dist_planes: list, bits: set, errors: list[str]) -> dict:
    """The planes of a batch, frame by frame, as NumPy views of the decoded planes (nothing is copied):
    ``{"ref": [(Y, U, V) per reference], "dist": [(Y, U, V) per pair], "bits"}``, or ``{"error": why}`` when
    they cannot be compared (bit depths or plane sizes differ). Plane metrics read each frame where it lies:
    stacking a 1080p batch would copy every sample once more (measured ~7 ms per frame)."""
    if errors:
        return {"error": errors[0]}
    if len(bits) != 1:
        return {"error": f"reference frames of different bit depths ({sorted(bits)}) in one batch"}
    shapes = {tuple(tuple(p.shape) for p in planes) for planes in (*ref_planes, *dist_planes)}
    if len(shapes) != 1:
        return {"error": "planes of different sizes cannot be compared (" + ", ".join(
            " ".join(f"{w}x{h}" for h, w in frame) for frame in sorted(shapes)) + ")"}
    return {"ref": [_numpy_planes(planes) for planes in ref_planes],
            "dist": [_numpy_planes(planes) for planes in dist_planes], "bits": bits.pop()}


def _numpy_planes(planes: tuple) -> tuple[np.ndarray, ...]:
    """A frame's planes as NumPy arrays (tensors from a decoding worker are unwrapped, arrays pass as they are)."""
    return tuple(p.numpy() if isinstance(p, torch.Tensor) else p for p in planes)


class VideoDataset(IterableDataset):
    """Decodes a video plan's frame groups (every source concurrently, in reading threads) as work items.

    Items have the shape of :class:`PairDataset` items (one reference frame and its distorted frames).
    Iterating happens in one DataLoader worker process (video streams are read sequentially; see the
    README) or in the main process with ``--workers 0``. Problems that end the run are yielded as
    ``{"fatal": message}``, and notes found while reading (a source shorter than its container says)
    as a last ``{"warnings": [...]}`` item, so they reach the main process from a worker.

    Args:
        plan: a :class:`lpipscli.io.video.VideoPlan`.
        labels: the distorted inputs as given (``dist_root`` of the rows), in plan order.
        done: ``(dist_root, frame)`` pairs a resumed run already has (not scored again).
        alpha: alpha policy for frame folders.
        max_pixels: decompression-bomb limit for frame-folder images.
    """

    def __init__(self, plan, labels: list[str], *, done: set | None = None, alpha: str = "drop",
                 max_pixels: int | None = None, planes: bool = False, rgb: bool = True):
        super().__init__()
        self.plan = plan
        self.labels = labels
        self.done = done or set()
        self.alpha = alpha
        self.max_pixels = max_pixels
        self.planes = planes or not rgb
        self.rgb = rgb

    def item_sizes(self) -> list[tuple[int, int]]:
        """``(pairs, pixels)`` of a frame group (:func:`prefetch_items` sizes the frames in flight by it)."""
        plan = self.plan
        return [(len(plan.dists), (len(plan.dists) + 1) * plan.ref.height * plan.ref.width)]

    def __iter__(self) -> Iterator[dict]:
        from lpipscli.io.video import iter_frame_groups

        plan = self.plan
        try:
            with iter_frame_groups(plan, alpha=self.alpha, max_pixels=self.max_pixels, planes=self.planes,
                                   rgb=self.rgb) as stream:
                for group in stream:
                    item = self._item(group)
                    if item is not None:
                        yield item
        except LpipsCliError as exc:
            yield {"fatal": str(exc), "exit_code": exc.exit_code}
            return
        yield {"warnings": list(plan.warnings)}

    def _item(self, group) -> dict | None:
        from lpipscli.io.pairing import FramePair

        plan = self.plan
        height, width = plan.ref.height, plan.ref.width
        pairs, tensors, errors, resize_from, scales, planes, plane_errors = [], [], [], [], [], [], []
        arrays = [a for a in [group.ref, *group.dists] if a is not None]
        channels = 3 if any(a.ndim == 3 and a.shape[2] == 3 for a in arrays) else 1
        for j, dist_plan in enumerate(plan.dists):
            dist_index = group.dist_indices[j]
            if dist_index is None or (self.labels[j], group.index) in self.done:
                continue
            pairs.append(FramePair(key=f"frame_{group.index:06d}", ref_path=plan.ref.path,
                                   dist_path=dist_plan.source.path, dist_root=self.labels[j], frame=group.index,
                                   dist_frame=dist_index, time=group.time))
            array = group.dists[j]
            planes.append(None)
            plane_errors.append(None)
            if array is None:
                tensors.append(None)
                errors.append(group.errors[j] or f"{dist_plan.source.path}: no frame {dist_index}")
                resize_from.append(None)
                scales.append(None)
                continue
            scale = _video_scale(dist_plan.source)
            if not self.rgb:  # plane metrics only: no pixels travel (array is the Y plane)
                tensor, size = _NO_PIXELS, (array.shape[1], array.shape[0])
            else:
                tensor = _to_tensor(array, channels)
                size = (tensor.shape[-1], tensor.shape[-2])
            if size != (width, height) and self.rgb:
                tensor = _resize(tensor, height, width, scale)
                resize_from.append(size)
                scale = None
            else:
                resize_from.append(None)
            tensors.append(tensor)
            scales.append(scale)
            errors.append(None)
            if self.planes:
                if size != (width, height):
                    plane_errors[-1] = f"{dist_plan.source.path} is resized ({size[0]}x{size[1]}): no planes to compare"
                elif dist_plan.source.bit_depth != plan.ref.bit_depth:
                    plane_errors[-1] = (f"bit depths differ: reference {plan.ref.bit_depth}-bit, "
                                        f"{dist_plan.source.path} {dist_plan.source.bit_depth}-bit")
                else:
                    planes[-1] = _plane_tensors(group.dist_planes[j])
        if not pairs:
            return None
        ref = _to_tensor(group.ref, channels) if self.rgb else _NO_PIXELS
        chunk = Chunk(ref_path=str(plan.ref.path), pairs=tuple(pairs), height=height, width=width,
                      channels=channels, resize_from=tuple(resize_from))
        item = {"chunk": chunk, "ref": ref, "dists": tensors, "errors": errors,
                "ref_scale": _video_scale(plan.ref), "dist_scales": scales}
        if self.planes:
            item.update(ref_planes=_plane_tensors(group.ref_planes), dist_planes=planes, plane_errors=plane_errors,
                        plane_bits=plan.ref.bit_depth)
        return item


def _video_scale(source) -> float | None:
    """Full scale of a video source's integer samples when it is not the dtype's (9- to 15-bit streams)."""
    if source.kind == "video" and 8 < source.bit_depth < 16:
        return float((1 << source.bit_depth) - 1)
    return None


#: the pixels of a video item when only plane metrics run (nothing is converted to RGB)
_NO_PIXELS = torch.zeros(0, dtype=torch.uint8)


def _plane_tensors(planes) -> tuple:
    """Decoded planes for an item, sample values as decoded (uint8 or uint16), without a copy: tensors in a
    decoding worker (they travel to the main process in shared memory), the NumPy arrays themselves in the main
    process (the plane metrics read NumPy; no per-plane tensor to make and unwrap, six per frame pair)."""
    if get_worker_info() is None:
        return tuple(np.ascontiguousarray(p) for p in planes)
    return tuple(torch.from_numpy(np.ascontiguousarray(p)) for p in planes)


def prefetch_items(batch_size: int, workers: int, max_batch_pixels: int | None = None,
                   sizes: list[tuple[int, int]] | None = None) -> int:
    """Items each worker keeps decoded ahead: about two batches in flight in all, counted in pairs and pixels.

    Decoded items wait in shared memory between a worker and the main process; the DataLoader bounds them in
    items (``prefetch_factor`` per worker), but an item holds a reference and up to a whole batch of its
    distorted versions. So the count comes from the items' sizes: as many items as make two batches on
    average (by ``batch_size`` pairs or ``max_batch_pixels``, whichever closes a batch first), and no more
    than four pixel budgets' worth of the largest item; at least 2 per worker, so that decoding overlaps
    compute. Without ``sizes`` (a source that does not know them), one pair per item is assumed.

    Args:
        batch_size: most pairs per batch.
        workers: decoding worker processes (at least 1).
        max_batch_pixels: most pixels per batch.
        sizes: ``(pairs, pixels)`` of every item (pixels: reference and distorted images together).
    """
    workers = max(1, workers)
    if not sizes or max_batch_pixels is None:
        return max(2, math.ceil(2 * batch_size / workers))
    mean_pairs = sum(p for p, _ in sizes) / len(sizes)
    mean_pixels = sum(px for _, px in sizes) / len(sizes)
    per_batch = max(1.0, min(batch_size / max(1.0, mean_pairs), max_batch_pixels / max(1.0, mean_pixels)))
    cap = 4 * max_batch_pixels // max(1, max(px for _, px in sizes))
    return max(2, math.ceil(round(min(2 * per_batch, cap)) / workers))
