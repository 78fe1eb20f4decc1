"""The run: pair, plan, decode in workers, score on the device, hand rows to a sink.

Rows leave the engine batch by batch (so an interrupted run keeps everything it finished), in an order
fixed by the input and the options. Per-image scores do not depend on batch composition.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from lpipscli.config import RunConfig, Runner
from lpipscli.errors import DeviceError, UsageError
from lpipscli.io.dataset import PairDataset, WorkPlan, collate, plan_work, size_problems, to_unit_float
from lpipscli.io.pairing import FramePair, Pair, PairPlan, pair_inputs
from lpipscli.metrics import REGISTRY, resolve_params

#: Pixel budget per batch (references + distorted images): bounds memory and keeps CPU batches in the
#: size range where batching helps (at 720p one pair at a time is as fast as any batch on a CPU).
DEFAULT_BATCH_PIXELS = {"cpu": 4 * 1024 * 1024, "cuda": 32 * 1024 * 1024}

BASE_COLUMNS = ("ref", "dist", "dist_root", "width", "height")
VIDEO_COLUMNS = ("ref", "dist", "dist_root", "frame", "dist_frame", "time", "width", "height")
TAIL_COLUMNS = ("status", "error")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda``/``cuda:N`` must exist.

    Raises:
        DeviceError: the device does not exist here.
        UsageError: the name is not a device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def default_workers() -> int:
    """One decoding worker per spare core, at most 8 (0 decodes in the main process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


@dataclass
class RunResult:
    """What a run produced besides its rows."""

    n_pairs: int = 0
    n_scored: int = 0
    n_failed: int = 0
    interrupted: bool = False
    #: (dist_root, metric) -> scores in row order (NaN for failed pairs)
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failed_per_root: dict[str, int] = field(default_factory=dict)
    #: dist_root -> the distorted file of each row, aligned with ``values``
    names: dict[str, list[str]] = field(default_factory=dict)
    #: (pair name, status, message) per row, for JUnit per-pair reports
    statuses: list[tuple[str, str, str]] = field(default_factory=list)
    first_error: str | None = None
    #: notes that are not errors (frame-rate differences, containers that misreport frame counts)
    warnings: list[str] = field(default_factory=list)

    def groups(self, metrics: tuple[str, ...], roots: list[str]) -> dict[str, dict[str, list[float]]]:
        """``{dist_root: {metric: values}}`` in the shape the gates take."""
        return {root: {m: self.values.get((root, m), []) for m in metrics} for root in roots}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch_build": torch.__version__, "cuda": torch.version.cuda}
    for dist in ("lpipscli", "torch", "torchvision", "lpips", "numpy", "pillow", "opencv-python-headless", "pyarrow"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


class Engine:
    """Builds everything once per run (device, metric runners, weights), then scores plans.

    Args:
        config: the parsed run configuration.
    """

    def __init__(self, config: RunConfig):
        self.config = config
        unknown = [m for m in config.metrics if m not in REGISTRY]
        if unknown:
            raise UsageError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
        if not config.metrics:
            raise UsageError("no metric selected")
        self.device = resolve_device(config.device)
        self.params = {key: resolve_params(key, config.metric_params.get(key, {})) for key in config.metrics}
        self.runners: dict[str, Runner] = {}
        self.weight_records: list[dict] = []
        self.max_batch_pixels = config.max_batch_pixels or DEFAULT_BATCH_PIXELS[self.device.type]
        #: a :class:`lpipscli.sinks.heatmap.HeatmapWriter` when heatmaps are written (set by the caller)
        self.heatmaps = None
        #: a :class:`MapVideo` when --heatmap-video is given (set by the caller)
        self.map_video = None
        #: (first scored frame, step): --heatmap-every counts scored frames on this grid
        self._frame_grid = (0, 1)

    @property
    def columns(self) -> tuple[str, ...]:
        extra = ("resized_from",) if self.config.resize != "none" else ()
        maps = tuple(f"{key}_map" for key in self.map_metrics)
        base = VIDEO_COLUMNS if self.config.video is not None else BASE_COLUMNS
        return base + tuple(self.config.metrics) + maps + extra + TAIL_COLUMNS

    @property
    def map_metrics(self) -> tuple[str, ...]:
        """The selected metrics that get heatmaps (all that have one, when --heatmaps is given)."""
        if self.config.heatmaps is None:
            return ()
        from lpipscli.sinks.heatmap import has_map

        return tuple(k for k in self.config.metrics
                     if has_map(k) and (REGISTRY[k].map_fn is not None or REGISTRY[k].build is not None))

    def pair(self) -> PairPlan:
        """Pair the inputs (no file is decoded)."""
        return pair_inputs(self.config.ref, self.config.dists, allow_unmatched=self.config.allow_unmatched)

    def build(self) -> None:
        """Build every metric runner once (this loads and verifies weights)."""
        for key in self.config.metrics:
            spec = REGISTRY[key]
            params = self.params[key]
            if spec.build is not None:
                runner, records = spec.build(
                    self.device, allow_unverified=self.config.allow_unverified_weights, **params
                )
                self.weight_records.extend(r.as_dict() for r in records)
            else:
                runner = _pure_runner(spec.fn, params, spec.map_fn)
            self.runners[key] = runner

    def plan(self, pairing: PairPlan) -> WorkPlan:
        """Probe headers and group pairs into batches."""
        min_sides = {key: REGISTRY[key].min_side for key in self.config.metrics}
        return plan_work(
            pairing.groups, resize=self.config.resize, min_sides=min_sides,
            batch_size=self.config.batch_size, max_batch_pixels=self.max_batch_pixels,
            max_pixels=self.config.max_pixels,
        )

    def provenance(self, pairing: PairPlan | None = None) -> dict:
        """Everything that determines the scores, plus versions and the inputs; JSON-serialisable."""
        cfg = self.config
        scoring = {
            "metrics": {k: {**REGISTRY[k].conventions, **self.params[k]} for k in cfg.metrics},
            "weights_sha256": sorted({(r["role"], r["sha256"]) for r in self.weight_records}),
            "decode": {"alpha": cfg.alpha, "resize": cfg.resize, "resize_method": "bicubic, antialiased",
                       "range": "[0,1] by file bit depth", "gray_vs_rgb": "gray promoted to RGB"},
            "dtype": "float32",
        }
        digest = hashlib.sha256(json.dumps(scoring, sort_keys=True, default=str).encode()).hexdigest()
        prov = {
            "tool": "lpipscli",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            "versions": _versions(),
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor()
            ),
            "dtype": "float32",
            "metrics": scoring["metrics"],
            "options": {
                **scoring["decode"], "on_error": cfg.on_error, "batch_size": cfg.batch_size,
                "max_batch_pixels": self.max_batch_pixels, "allow_unmatched": cfg.allow_unmatched,
            },
            "weights": self.weight_records,
            "inputs": {"ref": str(cfg.ref), "dists": [str(d) for d in cfg.dists]},
            "settings_hash": digest,
        }
        if pairing is not None:
            prov["pairing"] = pairing.unmatched_summary()
        if self.heatmaps is not None:
            prov["heatmaps"] = self.heatmaps.provenance(list(self.map_metrics))
        return prov

    def _row(self, pair: Pair, width: int, height: int, scores: dict[str, float], error: str | None,
             resized_from: tuple[int, int] | None = None) -> dict:
        row = {"ref": str(pair.ref_path), "dist": str(pair.dist_path), "dist_root": pair.dist_root}
        if isinstance(pair, FramePair):
            row.update(frame=pair.frame, dist_frame=pair.dist_frame,
                       time=math.nan if pair.time is None else float(pair.time))
        row.update(width=width, height=height)
        for key in self.config.metrics:
            row[key] = scores.get(key, math.nan)
        for key in self.map_metrics:
            row[f"{key}_map"] = ""
        if self.config.resize != "none":
            row["resized_from"] = f"{resized_from[0]}x{resized_from[1]}" if resized_from else ""
        row["status"] = "error" if error else "ok"
        row["error"] = error or ""
        return row

    def _record(self, result: RunResult, rows: list[dict]) -> None:
        for row in rows:
            root = row["dist_root"]
            for key in self.config.metrics:
                result.values.setdefault((root, key), []).append(row[key])
            name = row["dist"] if "frame" not in row else f"{row['dist']}#{row['frame']}"
            result.names.setdefault(root, []).append(name)
            result.statuses.append((name, row["status"], row["error"]))
            if row["status"] == "error":
                result.n_failed += 1
                result.failed_per_root[root] = result.failed_per_root.get(root, 0) + 1
                result.first_error = result.first_error or row["error"]
            else:
                result.n_scored += 1

    def execute(
        self,
        work: WorkPlan,
        emit: Callable[[list[dict]], None],
        *,
        on_progress: Callable[[int], None] | None = None,
        previous_rows: list[dict] | None = None,
    ) -> RunResult:
        """Score every planned pair; ``emit`` receives the rows of each batch as soon as they exist.

        With ``on_error="fail"`` the first failed pair stops the run after the rows computed so far were
        emitted (``result.first_error`` says why); with ``"skip"`` failed pairs become rows with
        ``status="error"``. Ctrl-C (SIGINT) finishes the batch in flight, emits it and returns with
        ``result.interrupted`` set. ``previous_rows`` (from ``--resume``) count in the result as if
        computed now; they are not emitted again.
        """
        if not self.runners:
            self.build()
        result = RunResult(n_pairs=work.n_pairs + len(work.failed) + len(previous_rows or []))
        if previous_rows:
            self._record(result, previous_rows)
        skip = self.config.on_error == "skip"
        if work.failed:
            rows = [self._row(p, w, h, {}, msg) for p, w, h, msg in work.failed]
            self._record(result, rows)
            if not skip:
                return result
            emit(rows)
            if on_progress:
                on_progress(len(rows))
        if not work.chunks:
            return result

        with _sigint_flag() as stop:
            for batch in self._loader(work):
                if not self._deliver(self._score(work, batch), emit, result, on_progress):
                    return result
                if stop.is_set():
                    result.interrupted = True
                    break
        return result

    def _submit_maps(self, row: dict, pair: Pair, p: int, maps: dict[str, list], inputs: _Inputs,
                     index: torch.Tensor, image_hw: tuple[int, int]) -> None:
        """Hand this pair's maps to the heatmap writer (it encodes and writes them on its own threads)."""
        if isinstance(pair, FramePair):
            if self.map_video is not None:
                self.map_video.add(pair, p, maps, inputs, index)
            start, step = self._frame_grid
            if ((pair.frame - start) // step) % max(1, self.config.heatmap_every):
                return
        ref_img = dist_img = None
        if self.heatmaps.panel:
            from lpipscli.sinks.map_video import hwc_pixels

            ref_img = hwc_pixels(inputs.raw[0][int(index[p])])
            dist_img = hwc_pixels(inputs.raw[1][p])
        for key in self.map_metrics:
            spatial = maps[key][p] if maps.get(key) else None
            if spatial is None:
                continue
            path = self.heatmaps.submit(
                key, pair.dist_root, pair.key, spatial[0].float().cpu().numpy(), row[key],
                ref=ref_img, dist=dist_img, image_hw=image_hw,
            )
            row[f"{key}_map"] = path

    def plan_video(self):
        """Probe the video sources and align their frames (nothing decoded); errors before any compute."""
        from lpipscli.io.video import plan_video

        opts = self.config.video
        plan = plan_video(self.config.ref, list(self.config.dists), start=opts.start, max_frames=opts.max_frames,
                          step=opts.step, offset=opts.offset, frames=opts.frames, resize=self.config.resize)
        height, width = plan.ref.height, plan.ref.width
        too_small = size_problems(width, height, {k: REGISTRY[k].min_side for k in self.config.metrics})
        if too_small:
            raise UsageError(f"{plan.ref.path}: frames are {width}x{height}, too small: {too_small}")
        return plan

    def execute_video(
        self,
        plan,
        emit: Callable[[list[dict]], None],
        *,
        on_progress: Callable[[int], None] | None = None,
        previous_rows: list[dict] | None = None,
    ) -> RunResult:
        """Score aligned video frames; rows leave batch by batch, in frame order.

        Frames are decoded by the video readers' background threads (every source concurrently, bounded
        queues), batched under the same pair and pixel budgets as images, and each reference frame's
        features are computed once for all distorted inputs. Error handling, interruption and
        ``previous_rows`` work as in :meth:`execute`; ``previous_rows`` also say which frames to skip.
        """
        from types import SimpleNamespace

        from lpipscli.io.video import iter_frame_groups

        if not self.runners:
            self.build()
        self._frame_grid = (plan.ref_indices.start, plan.ref_indices.step)
        result = RunResult(n_pairs=plan.n_pairs)
        done = set()
        if previous_rows:
            self._record(result, previous_rows)
            done = {(r["dist_root"], int(r["frame"])) for r in previous_rows}
        labels = [str(d) for d in self.config.dists]
        height, width = plan.ref.height, plan.ref.width
        budget = self.max_batch_pixels
        items: list[dict] = []
        chunks: list = []
        n_pairs = 0

        def flush() -> bool:
            nonlocal items, chunks, n_pairs
            if not items:
                return True
            rows = self._score(SimpleNamespace(chunks=chunks), collate(items))
            items, chunks, n_pairs = [], [], 0
            return self._deliver(rows, emit, result, on_progress)

        with _sigint_flag() as stop, iter_frame_groups(plan, alpha=self.config.alpha) as stream:
            for group in stream:
                item, chunk = self._frame_item(plan, group, labels, done, len(chunks), height, width)
                if chunk is None:
                    continue
                items.append(item)
                chunks.append(chunk)
                n_pairs += len(chunk.pairs)
                if n_pairs >= self.config.batch_size or (n_pairs + len(items)) * height * width >= budget:
                    if not flush():
                        return result
                    if stop.is_set():
                        result.interrupted = True
                        return result
            if stop.is_set():
                result.interrupted = True
            flush()
            plan_warnings = list(plan.warnings)
        result.warnings = plan_warnings
        return result

    def _deliver(self, rows: list[dict], emit, result: RunResult, on_progress) -> bool:
        """Emit a scored batch; with ``on_error="fail"`` a failed pair stops the run (returns False) after
        the batch's good rows were emitted."""
        failed_rows = [r for r in rows if r["status"] == "error"]
        if failed_rows and self.config.on_error != "skip":
            ok_rows = [r for r in rows if r["status"] == "ok"]
            emit(ok_rows)
            self._record(result, ok_rows + failed_rows)
            return False
        emit(rows)
        self._record(result, rows)
        if on_progress:
            on_progress(len(rows))
        return True

    def _frame_item(self, plan, group, labels, done, chunk_index, height, width):
        """One frame group as a dataset item (same shape as :class:`PairDataset` items) and its chunk."""
        from lpipscli.io.dataset import Chunk, _resize, _to_tensor

        pairs, tensors, errors, resize_from = [], [], [], []
        arrays = [a for a in [group.ref, *group.dists] if a is not None]
        channels = 3 if any(a.ndim == 3 and a.shape[2] == 3 for a in arrays) else 1
        for j, dist_plan in enumerate(plan.dists):
            dist_index = group.dist_indices[j]
            if dist_index is None or (labels[j], group.index) in done:
                continue
            pairs.append(FramePair(key=f"frame_{group.index:06d}", ref_path=plan.ref.path,
                                   dist_path=dist_plan.source.path, dist_root=labels[j], frame=group.index,
                                   dist_frame=dist_index, time=group.time))
            array = group.dists[j]
            if array is None:
                tensors.append(None)
                errors.append(group.errors[j] or f"{dist_plan.source.path}: no frame {dist_index}")
                resize_from.append(None)
                continue
            tensor = _to_tensor(array if array.ndim == 3 else array[:, :, None], channels)
            size = (tensor.shape[-1], tensor.shape[-2])
            if size != (width, height):
                tensor = _resize(tensor, height, width)
                resize_from.append(size)
            else:
                resize_from.append(None)
            tensors.append(tensor)
            errors.append(None)
        if not pairs:
            return None, None
        ref = _to_tensor(group.ref if group.ref.ndim == 3 else group.ref[:, :, None], channels)
        chunk = Chunk(ref_path=str(plan.ref.path), pairs=tuple(pairs), height=height, width=width,
                      channels=channels, resize_from=tuple(resize_from))
        return {"chunk": chunk_index, "ref": ref, "dists": tensors, "errors": errors}, chunk

    def _loader(self, work: WorkPlan) -> DataLoader:
        workers = self.config.workers if self.config.workers is not None else default_workers()
        workers = max(0, min(workers, len(work.batches) - 1))
        dataset = PairDataset(work.chunks, alpha=self.config.alpha, max_pixels=self.config.max_pixels)
        kwargs = {}
        if workers > 0:
            kwargs = {"persistent_workers": True, "prefetch_factor": 2, "worker_init_fn": _ignore_sigint}
        return DataLoader(
            dataset, batch_sampler=work.batches, num_workers=workers, collate_fn=collate,
            pin_memory=self.device.type == "cuda", **kwargs,
        )

    def _score(self, work: WorkPlan, batch: dict) -> list[dict]:
        rows_by_pair: dict[tuple[int, int], dict] = {}
        if batch["dist"] is not None:
            inputs = _Inputs(batch["ref"], batch["dist"], self.device)
            index = batch["ref_index"].to(self.device, non_blocking=True)
            runner_index = None if batch.get("identity") else index  # None: ref[i] pairs with dist[i]
            scores: dict[str, list[float]] = {}
            maps: dict[str, list] = {}
            oom: dict[int, str] = {}
            with torch.inference_mode():
                for key, runner in self.runners.items():
                    ref, dist = inputs.get(REGISTRY[key].input_dtype)
                    with_map = self.heatmaps is not None and key in self.map_metrics
                    values, maps[key] = _split_on_oom(key, runner, ref, dist, runner_index, oom, with_map=with_map)
                    scores[key] = values.double().cpu().tolist()
            for p, (c, k) in enumerate(batch["scored"]):
                chunk = work.chunks[c]
                row = self._row(
                    chunk.pairs[k], chunk.width, chunk.height, {key: v[p] for key, v in scores.items()},
                    oom.get(p), chunk.resize_from[k],
                )
                if self.heatmaps is not None and p not in oom:
                    self._submit_maps(row, chunk.pairs[k], p, maps, inputs, index, (chunk.height, chunk.width))
                rows_by_pair[(c, k)] = row
        for c, k, message in batch["failed"]:
            chunk = work.chunks[c]
            rows_by_pair[(c, k)] = self._row(chunk.pairs[k], chunk.width, chunk.height, {}, message,
                                             chunk.resize_from[k])
        return [rows_by_pair[key] for key in sorted(rows_by_pair)]


class _Inputs:
    """A batch on the device, converted once per precision to float in [0, 1] by the files' bit depth.

    Pixels travel in their integer form (uint8, or int32 for 16-bit samples) and are scaled on the device,
    so float64 metrics get exact values and float32 metrics (LPIPS) get the usual float32 ones.
    """

    def __init__(self, ref: torch.Tensor, dist: torch.Tensor, device: torch.device):
        self.raw = (ref.to(device, non_blocking=True), dist.to(device, non_blocking=True))
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
        if dtype not in self.cache:
            torch_dtype = torch.float64 if dtype == "float64" else torch.float32
            self.cache[dtype] = tuple(to_unit_float(t, torch_dtype) for t in self.raw)
        return self.cache[dtype]


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _split_on_oom(key: str, runner: Runner, ref: torch.Tensor, dist: torch.Tensor, index: torch.Tensor,
                  errors: dict[int, str], offset: int = 0, *, with_map: bool = False):
    """Run a metric; on out-of-memory retry the batch in halves down to one pair.

    Returns ``(scores (P,), maps)`` where ``maps`` is a list of per-pair ``(1, h, w)`` maps (None for a
    pair without one) when ``with_map``, else None. A single pair that still does not fit gets NaN and an
    error message in ``errors`` (keyed by its position in the batch), so finished work is never lost to
    an out-of-memory error.
    """
    try:
        if not with_map:
            return runner(ref, dist, index), None
        scores, maps = runner(ref, dist, index, with_map=True)
        return scores, list(maps.unbind(0))
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
    if dist.device.type == "cuda":
        torch.cuda.empty_cache()
    n = dist.shape[0]
    if n == 1:
        errors[offset] = (
            f"{key}: out of memory for one {dist.shape[-1]}x{dist.shape[-2]} pair on {dist.device} "
            "(try --device cpu)"
        )
        return torch.full((1,), float("nan"), dtype=torch.float64, device=dist.device), ([None] if with_map else None)
    half = n // 2
    if index is None:  # identity pairing: split the references with the distorted images
        parts = [(ref[:half], dist[:half], None), (ref[half:], dist[half:], None)]
    else:
        parts = [(ref, dist[:half], index[:half]), (ref, dist[half:], index[half:])]
    s1, m1 = _split_on_oom(key, runner, *parts[0], errors, offset, with_map=with_map)
    s2, m2 = _split_on_oom(key, runner, *parts[1], errors, offset + half, with_map=with_map)
    return torch.cat([s1.double(), s2.double()]), (m1 + m2 if with_map else None)


def _pure_runner(fn, params, map_fn=None) -> Runner:
    def run(ref: torch.Tensor, dist: torch.Tensor, ref_index: torch.Tensor | None, *, with_map: bool = False):
        refs = ref if ref_index is None else ref.index_select(0, ref_index)
        return (map_fn if with_map else fn)(refs, dist, **params)

    return run


@contextlib.contextmanager
def _sigint_flag():
    """While active, Ctrl-C sets the yielded event instead of raising (main thread only)."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _ignore_sigint(_worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which finishes the batch in flight."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
