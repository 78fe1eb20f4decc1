"""The engine: one loop that decodes work items in DataLoader workers, batches them and scores them.

``Engine.batches(plan)`` yields :class:`ScoredBatch` objects (rows plus optional maps and images) for any
source; it knows no sink. :func:`drive` consumes them for a run: it hands each batch to the sinks' write
callables, stops on the first failure with ``--on-error fail``, finishes the batch in flight on Ctrl-C,
and records what the summary needs. Per-image scores do not depend on batch composition.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import functools
import math
import multiprocessing
import os
import platform
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from lpipscli.config import RunConfig, Runner
from lpipscli.errors import DeviceError, LpipsCliError, UsageError
from lpipscli.io.dataset import NUMPY_FLOATS, SAMPLE_SCALE, Batcher, collate, prefetch_items, to_unit_float
from lpipscli.io.pairing import Pair
from lpipscli.metrics import REGISTRY, resolve_params
from lpipscli.metrics.masked import MASKED_FUNCTIONS
from lpipscli.sources import PlanContext, SourcePlan, open_source
from lpipscli.sources.base import row_key
from lpipscli.status import FAILED, PARTIAL, metric_errors, normalize, row_status

#: Pixel budget per batch (references + distorted images): bounds memory and keeps CPU batches in the
#: size range where batching helps (at 720p one pair at a time is as fast as any batch on a CPU).
DEFAULT_BATCH_PIXELS = {"cpu": 4 * 1024 * 1024, "cuda": 32 * 1024 * 1024}

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


def size_threads(device: torch.device, workers: int) -> int:
    """Intra-op threads for the compute, sized together with the decoding workers.

    On CPU, torch's OpenMP threads and worker processes share the cores, and an OpenMP region stalls
    when one of its cores is taken; so the compute gets the cores the workers leave (at least one).
    Returns the thread count set.
    """
    if device.type != "cpu":
        return torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    threads = max(1, cores - workers) if cores > 2 else cores
    if os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def worker_context() -> multiprocessing.context.BaseContext | None:
    """How decoding workers start: ``fork`` on Linux, the platform's default elsewhere (``None``).

    A forked worker inherits the imported modules (torch, lpipscli, the decoders) and starts in
    milliseconds. Python 3.14 made ``forkserver`` the default on Linux: every run would then start a
    server process that imports torch again before the first worker decodes anything (measured here:
    +1.9 s for a one-pair run; the scores are the same). So the loader asks for ``fork`` itself, the
    method torch's DataLoader has always used on Linux. macOS and Windows keep their ``spawn``: fork is
    unsafe with macOS system frameworks, and Windows has none.
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return None


@contextlib.contextmanager
def _forking_workers():
    """Silence Python's (3.12+) warning that a multi-threaded process forks, while the workers start.

    The threads are torch's intra-op pool (and, for video, reader threads). A worker never uses them or
    their locks: it only decodes, torch runs it on one thread, and the interpreter resets its own locks
    after a fork. Only this one message is silenced, only around the fork.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is multi-threaded, use of fork\(\) may lead to deadlocks",
                                category=DeprecationWarning)
        yield


def set_numerics(device: torch.device, tf32: bool) -> None:
    """TF32 off unless asked (``--tf32``): float32 convolutions keep parity with the reference packages."""
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@dataclass
class ScoredBatch:
    """One scored batch, in row order.

    Attributes:
        rows: one dict per pair (the columns of the output table).
        pairs: the pair of each row.
        maps: metric -> per-row CPU map ``(1, h, w)`` (None where a row has none); only for asked metrics.
        images: per-row ``(ref, dist)`` CPU pixel tensors ``(C, H, W)`` when asked (panels), else None.
        waiting: cells still to be filled by a sequence metric (``vmaf`` scores a frame once the next one
            is in); :func:`drive` hands a batch on when this is 0, in order.
    """

    rows: list[dict]
    pairs: list[Pair]
    maps: dict[str, list] = field(default_factory=dict)
    images: list | None = None
    waiting: int = 0


@dataclass
class RunResult:
    """What a run produced besides its rows."""

    n_pairs: int = 0
    n_scored: int = 0
    n_failed: int = 0
    n_partial: int = 0
    interrupted: bool = False
    #: (dist_root, metric) -> scores in row order (NaN for failed pairs)
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failed_per_root: dict[str, int] = field(default_factory=dict)
    #: metric -> pairs it could not score (failed and partial rows)
    failed_per_metric: dict[str, int] = field(default_factory=dict)
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

    def record(self, rows: list[dict], metrics: tuple[str, ...]) -> None:
        for row in rows:
            root = row["dist_root"]
            for key in metrics:
                self.values.setdefault((root, key), []).append(row[key])
            name = row["dist"] if row.get("frame") in (None, "") else f"{row['dist']}#{row['frame']}"
            self.names.setdefault(root, []).append(name)
            status = normalize(row["status"])
            # JUnit: a pair that could not be (fully) scored is an <error>, not a gate <failure>
            self.statuses.append((name, "error" if status in (FAILED, PARTIAL) else status, row["error"]))
            if status == FAILED:
                self.n_failed += 1
            else:
                self.n_scored += 1
                self.n_partial += status == PARTIAL
            if status in (FAILED, PARTIAL):
                self.failed_per_root[root] = self.failed_per_root.get(root, 0) + 1
                self.first_error = self.first_error or row["error"]
                for key in metrics:
                    if isinstance(row[key], float) and math.isnan(row[key]):
                        self.failed_per_metric[key] = self.failed_per_metric.get(key, 0) + 1


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch_build": torch.__version__, "cuda": torch.version.cuda}
    for dist in ("lpipscli", "torch", "torchvision", "lpips", "numpy", "pillow", "opencv-python-headless", "pyarrow",
                 "av"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


class Engine:
    """Builds everything once per run (device, metric runners, weights), then scores a source's plan.

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
        self._waiting: dict[tuple[str, int], tuple[ScoredBatch, dict]] = {}  # late cells of sequence metrics
        self._buffers = _BufferPool()  # the float arrays each batch's pixels are converted into, reused
        self.weight_records: list[dict] = []
        self.max_batch_pixels = config.max_batch_pixels or DEFAULT_BATCH_PIXELS[self.device.type]
        self.source = open_source(config)
        self._settings = None
        planes = [k for k in config.metrics if REGISTRY[k].input in ("planes", "sequence")]
        if planes and self.source.kind != "video":
            raise UsageError(f"{', '.join(planes)} compare{'s' if len(planes) == 1 else ''} the YUV planes of video "
                             "streams; image inputs have none (use psnr / ssim)")
        set_numerics(self.device, config.tf32)

    @property
    def metric_dtypes(self) -> dict[str, str]:
        """The compute precision of each metric (what the settings record and provenance say)."""
        return {k: "bf16 autocast (backbone), float32 heads" if self.params[k].get("precision") == "bf16"
                else REGISTRY[k].input_dtype for k in self.config.metrics}

    def columns(self, plan: SourcePlan, maps: tuple[str, ...] = ()) -> tuple[str, ...]:
        extra = ("resized_from",) if self.config.resize != "none" else ()
        metrics = tuple(c for k in self.config.metrics for c in REGISTRY[k].output_columns)
        return plan.columns + metrics + tuple(f"{k}_map" for k in maps) + extra + TAIL_COLUMNS

    def map_metrics(self) -> tuple[str, ...]:
        """The selected metrics that have a per-pixel map."""
        return tuple(k for k in self.config.metrics if REGISTRY[k].has_map)

    def pair(self):
        """Pair the inputs of a folder source (nothing is decoded)."""
        return self.source.pair()

    def context(self) -> PlanContext:
        return PlanContext(
            min_sides={key: REGISTRY[key].min_side for key in self.config.metrics},
            batch_size=self.config.batch_size, max_batch_pixels=self.max_batch_pixels,
            max_pixels=self.config.max_pixels, alpha=self.config.alpha, resize=self.config.resize,
            alpha_color=tuple(self.config.alpha_color),
            shard=self.config.shard,
        )

    def plan(self, pairing=None, *, done: set | None = None) -> SourcePlan:
        """Probe headers and plan the work of the run's source (``pairing``: a folder pairing made earlier)."""
        if pairing is not None:
            from lpipscli.sources.folders import plan_groups

            inputs = {"ref": str(self.config.ref), "dists": [str(d) for d in self.config.dists]}
            return plan_groups(pairing, self.context(), inputs, done=done)
        return self.source.plan(self.context(), done=done)

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
            elif spec.input == "planes":
                runner = _plane_runner(spec.fn, params)
            elif spec.input == "sequence":
                runner = spec.fn(**params)
            else:
                runner = _pure_runner(spec.fn, params, spec.map_fn, self._buffers, spec.samples_fn)
            self.runners[key] = runner

    def settings(self):
        """The settings record of this run (after :meth:`build`, so that weight hashes are in it; kept from then on)."""
        from lpipscli.settings import build_settings

        if self._settings is not None:
            return self._settings
        settings = build_settings(self.config, params=self.params, weight_records=self.weight_records,
                                  device_type=self.device.type, metric_dtypes=self.metric_dtypes)
        if self.runners:
            self._settings = settings
        return settings

    def provenance(self, plan: SourcePlan | None = None) -> dict:
        """Everything that determines the scores, plus versions and the inputs; JSON-serialisable."""
        cfg = self.config
        settings = self.settings()
        record = settings.to_dict()
        prov = {
            "tool": "lpipscli",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            "versions": _versions(),
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor()
            ),
            "dtype": self.metric_dtypes,
            "tf32": record["tf32"],
            "metrics": record["metrics"],
            "settings": record,
            "options": {
                **record["decode"], "on_error": cfg.on_error, "batch_size": cfg.batch_size,
                "max_batch_pixels": self.max_batch_pixels, "allow_unmatched": cfg.allow_unmatched,
                "max_pixels": cfg.max_pixels,
            },
            "weights": self.weight_records,
            "inputs": plan.inputs if plan is not None else {"ref": str(cfg.ref), "dists": [str(d) for d in cfg.dists]},
            "settings_hash": settings.hash,
        }
        if plan is not None and plan.unmatched:
            prov["pairing"] = plan.unmatched
        if plan is not None and plan.video is not None:
            prov["video"] = plan.video
        if plan is not None and plan.shard is not None:
            prov["shard"] = plan.shard  # not in the settings record: the shards of a run share its hash
        return prov

    def loader(self, plan: SourcePlan) -> DataLoader:
        """The DataLoader that decodes the plan's work items (one item = one reference and its pairs)."""
        workers = self.config.workers
        if workers is None:
            workers = plan.default_workers if plan.default_workers is not None else default_workers()
        if plan.workers is not None:
            workers = min(workers, plan.workers)
        n_items = len(plan.dataset) if hasattr(plan.dataset, "__len__") else None
        if n_items is not None:
            workers = max(0, min(workers, n_items - 1))
        size_threads(self.device, workers)
        kwargs = {}
        if workers > 0:
            sizes = plan.dataset.item_sizes() if hasattr(plan.dataset, "item_sizes") else None
            if hasattr(plan.dataset, "prepare_workers"):
                plan.dataset.prepare_workers()
            kwargs = {"persistent_workers": False, "worker_init_fn": _ignore_sigint,
                      "multiprocessing_context": worker_context(),
                      "prefetch_factor": prefetch_items(self.config.batch_size, workers, self.max_batch_pixels, sizes)}
        return DataLoader(plan.dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
                          pin_memory=self.device.type == "cuda", **kwargs)

    def batches(self, plan: SourcePlan, *, maps: tuple[str, ...] = (), images: bool = False,
                warnings: list[str] | None = None):
        """The engine loop: decoded items -> the one batcher -> scored batches, in input order.

        Args:
            plan: from :meth:`plan`.
            maps: metrics whose per-pixel maps the batches should carry.
            images: whether batches carry the decoded pixels (for panels).
            warnings: a list that receives notes the source finds while decoding.

        Yields:
            :class:`ScoredBatch` objects.

        Raises:
            LpipsCliError: a problem that ends the run (an unreadable video stream).
        """
        if not self.runners:
            self.build()
        if plan.n_pairs == 0:
            return
        batcher = Batcher(self.config.batch_size, self.max_batch_pixels)
        with _forking_workers():
            items = iter(self.loader(plan))  # the workers start (fork) here
        for item in items:
            if "fatal" in item:
                error = LpipsCliError(item["fatal"])
                error.exit_code = item.get("exit_code", error.exit_code)
                raise error
            if "warnings" in item:
                if warnings is not None:
                    warnings.extend(w for w in item["warnings"] if w not in warnings)
                continue
            for batch in batcher.add(item):
                yield self._score(collate(batch), maps, images)
        for batch in batcher.flush():
            yield self._score(collate(batch), maps, images)

    def _row(self, pair: Pair, width: int, height: int, scores: dict[str, float], errors: dict[str, str],
             fatal: str | None = None, resized_from: tuple[int, int] | None = None, maps=()) -> dict:
        row = {"ref": str(pair.ref_path), "dist": str(pair.dist_path), "dist_root": pair.dist_root}
        row.update(pair.row_fields())
        row.update(width=width, height=height)
        for key in self.config.metrics:
            for column in REGISTRY[key].output_columns:
                row[column] = math.nan if key in errors or fatal else scores.get(column, math.nan)
        for key in maps:
            row[f"{key}_map"] = ""
        if self.config.resize != "none":
            row["resized_from"] = f"{resized_from[0]}x{resized_from[1]}" if resized_from else ""
        row["status"], row["error"] = row_status(self.config.metrics, errors, fatal)
        return row

    def _score(self, batch: dict, map_keys: tuple[str, ...], want_images: bool) -> ScoredBatch:
        chunks = batch["chunks"]
        entries: dict[tuple[int, int], tuple] = {}
        scored = batch["scored"]
        maps: dict[str, list] = {}
        if batch["dist"] is not None:
            inputs = _Inputs(batch["ref"], batch["dist"], self.device, batch.get("scale"), self._buffers)
            index = batch["ref_index"].to(self.device, non_blocking=True)
            runner_index = None if batch.get("identity") else index  # None: ref[i] pairs with dist[i]
            height, width = chunks[scored[0][0]].height, chunks[scored[0][0]].width
            scores: dict[str, list[float]] = {}
            errors: list[dict[str, str]] = [{} for _ in scored]
            waiting: dict[str, dict[int, int]] = {}
            with torch.inference_mode():
                for key, runner in self.runners.items():
                    spec = REGISTRY[key]
                    if min(height, width) < spec.min_side:
                        for e in errors:
                            e[key] = f"image is {width}x{height}, needs at least {spec.min_side}x{spec.min_side} px"
                        continue
                    if spec.input == "planes":
                        self._score_planes(key, runner, batch, errors, scores)
                        continue
                    if spec.input == "sequence":
                        waiting[key] = self._push_sequence(key, runner, batch, errors, scores)
                        continue
                    call, samples = runner, None
                    if getattr(runner, "takes_samples", False) and batch.get("masks") is None:
                        samples = inputs.samples()
                    if samples is not None:  # the runner reads the integer samples as they are (SSIM, PSNR)
                        ref, dist, scale = samples
                        call = functools.partial(runner, scale=scale)
                    else:
                        ref, dist = inputs.get(spec.input_dtype)
                    oom: dict[int, str] = {}
                    try:
                        values, pair_maps = _split_on_oom(key, call, ref, dist, runner_index, oom,
                                                          with_map=key in map_keys)
                    except LpipsCliError as exc:
                        for e in errors:
                            e[key] = str(exc).replace("\n", " ")
                        continue
                    if batch.get("masks") is not None and key in MASKED_FUNCTIONS:
                        values = _masked(MASKED_FUNCTIONS[key], values, ref, dist, index, batch["masks"])
                    scores[key] = values.double().cpu().tolist()
                    for p, message in oom.items():
                        errors[p][key] = message.removeprefix(f"{key}: ")
                    if pair_maps is not None:
                        maps[key] = [None if m is None or p in oom else m.detach().float().cpu()
                                     for p, m in enumerate(pair_maps)]
            raw = inputs.images() if want_images else None
            for p, (c, k) in enumerate(scored):
                chunk = chunks[c]
                row = self._row(chunk.pairs[k], chunk.width, chunk.height, {key: v[p] for key, v in scores.items()},
                                errors[p], None, chunk.resize_from[k], map_keys)
                image = (raw[0][int(batch["ref_index"][p])], raw[1][p]) if raw is not None else None
                entries[(c, k)] = (row, chunk.pairs[k], {key: maps[key][p] for key in maps}, image)
        for c, k, message in batch["failed"]:
            chunk = chunks[c]
            row = self._row(chunk.pairs[k], chunk.width, chunk.height, {}, {}, message, chunk.resize_from[k], map_keys)
            entries[(c, k)] = (row, chunk.pairs[k], {}, None)
        ordered = [entries[key] for key in sorted(entries)]
        out = ScoredBatch(rows=[e[0] for e in ordered], pairs=[e[1] for e in ordered],
                          images=[e[3] for e in ordered] if want_images else None)
        for key in maps:
            out.maps[key] = [e[2].get(key) for e in ordered]
        if batch["dist"] is not None:
            for key, tickets in waiting.items():
                for ticket, p in tickets.items():
                    self._waiting[(key, ticket)] = (out, entries[scored[p]][0])
                    out.waiting += 1
        return out

    def _push_sequence(self, key: str, runner, batch: dict, errors: list[dict[str, str]],
                       scores: dict[str, list[float]]) -> dict[int, int]:
        """A sequence metric (``vmaf``): push each pair's planes to its stream, in order; fill the scores that
        are ready (of this batch's rows, or of held rows of earlier batches). Returns ``{ticket: position}`` of
        this batch's pairs still waiting for their score."""
        planes, problem = _batch_planes(batch)
        column = REGISTRY[key].output_columns[0]
        values = scores.setdefault(column, [math.nan] * len(batch["scored"]))
        if problem is not None:
            for e in errors:
                e[key] = problem
            return {}
        mine: dict[int, int] = {}
        for p, (c, k) in enumerate(batch["scored"]):
            pair = batch["chunks"][c].pairs[k]
            r = int(batch["ref_index"][p])
            ticket = runner.push((str(pair.ref_path), str(pair.dist_path), pair.dist_root),
                                 planes["ref"][r], planes["dist"][p], planes["bits"])
            mine[ticket] = p
        for ticket, value in runner.collect():
            p = mine.pop(ticket, None)
            if p is None:
                self._fill(key, ticket, value)
            elif isinstance(value, str):
                errors[p][key] = value
            else:
                values[p] = value
        return mine

    def _fill(self, key: str, ticket: int, value: float | str) -> None:
        """Put a late score (or its error) into the held row waiting for it."""
        out, row = self._waiting.pop((key, ticket))
        out.waiting -= 1
        if not isinstance(value, str):
            row[REGISTRY[key].output_columns[0]] = value
            return
        metrics = self.config.metrics
        errors = metric_errors(row.get("error", ""), metrics) if row.get("status") != "ok" else {}
        errors[key] = value
        row["status"], row["error"] = row_status(metrics, errors, None)

    def finish_sequences(self) -> None:
        """End the streams of the sequence metrics: every held row gets its score (or its error)."""
        for key, runner in self.runners.items():
            if REGISTRY[key].input == "sequence":
                for ticket, value in runner.finish():
                    if (key, ticket) in self._waiting:
                        self._fill(key, ticket, value)

    @staticmethod
    def _score_planes(key: str, runner, batch: dict, errors: list[dict[str, str]],
                      scores: dict[str, list[float]]) -> None:
        """A metric on YUV planes: fills each of its columns in ``scores`` (or its error per pair)."""
        planes, problem = _batch_planes(batch)
        if problem is None:
            index = None if batch.get("identity") else batch["ref_index"]
            try:
                values = runner(planes["ref"], planes["dist"], index, planes["bits"])
            except LpipsCliError as exc:
                problem = str(exc).replace("\n", " ")
            else:
                for column, v in values.items():
                    scores[column] = torch.as_tensor(v, dtype=torch.float64).tolist()
                return
        for e in errors:
            e[key] = problem

    def failed_rows(self, plan: SourcePlan, maps: tuple[str, ...] = ()) -> list[dict]:
        """Rows of the pairs that failed during planning (decoded never)."""
        return [self._row(p, w, h, {}, {}, msg, None, maps) for p, w, h, msg in plan.failed]

    def execute(self, plan: SourcePlan, emit: Callable[[list[dict]], None], *,
                on_progress: Callable[[int], None] | None = None, previous_rows: list[dict] | None = None,
                maps: tuple[str, ...] = ()) -> RunResult:
        """Score a plan and hand each batch's rows to ``emit`` (see :func:`drive`)."""
        return drive(self, plan, [lambda batch: emit(batch.rows)], on_progress=on_progress,
                     previous_rows=previous_rows, maps=maps)


def drive(engine: Engine, plan: SourcePlan, writers: list[Callable[[ScoredBatch], None]], *,
          on_progress: Callable[[int], None] | None = None, previous_rows: list[dict] | None = None,
          maps: tuple[str, ...] = (), images: bool = False) -> RunResult:
    """Run the engine loop over a plan, handing every scored batch to each writer in turn.

    With ``on_error="fail"`` the first failed or partial row stops the run after the rows of its batch
    that scored fully were handed on (``result.first_error`` says why); with ``"skip"`` failed pairs are
    rows with ``status`` ``failed`` or ``partial``. Ctrl-C (SIGINT) finishes the batch in flight, hands it
    on and returns with ``result.interrupted`` set. ``previous_rows`` (from ``--resume``) count in the
    result as if computed now; they are not handed on again.
    """
    metrics = engine.config.metrics
    skip = engine.config.on_error == "skip"
    result = RunResult(n_pairs=plan.n_pairs + len(plan.failed) + len(previous_rows or []))
    result.warnings = list(plan.warnings)
    if previous_rows:
        result.record(previous_rows, metrics)

    def deliver(batch: ScoredBatch) -> bool:
        bad = [r["status"] not in ("ok",) for r in batch.rows]
        if any(bad) and not skip:
            keep = [i for i, b in enumerate(bad) if not b]
            good = ScoredBatch(rows=[batch.rows[i] for i in keep], pairs=[batch.pairs[i] for i in keep],
                               maps={k: [v[i] for i in keep] for k, v in batch.maps.items()},
                               images=[batch.images[i] for i in keep] if batch.images is not None else None)
            for write in writers:
                write(good)
            result.record(good.rows + [r for r, b in zip(batch.rows, bad, strict=True) if b], metrics)
            return False
        for write in writers:
            write(batch)
        result.record(batch.rows, metrics)
        if on_progress:
            on_progress(len(batch.rows))
        return True

    if plan.failed:
        pairs = [p for p, *_ in plan.failed]
        if not deliver(ScoredBatch(rows=engine.failed_rows(plan, maps), pairs=pairs)):
            return result
    held: collections.deque[ScoredBatch] = collections.deque()  # batches with cells a sequence metric fills late

    def release(final: bool) -> bool:
        while held and (final or not held[0].waiting):
            if not deliver(held.popleft()):
                held.clear()
                return False
        return True

    with _sigint_flag() as stop:
        stream = engine.batches(plan, maps=maps, images=images, warnings=result.warnings)
        try:
            for batch in stream:
                held.append(batch)
                if not release(False):
                    return result
                if stop.is_set():
                    result.interrupted = True
                    break
        finally:
            stream.close()
            engine.finish_sequences()
            release(True)  # rows waiting for late scores are kept, whatever ended the run
    return result


def done_keys(rows: list[dict]) -> set:
    """The identities of rows a resumed run already has."""
    return {row_key(r) for r in rows}


def _identity(item):
    return item


class _BufferPool:
    """Float arrays reused from batch to batch for the CPU conversion of pixels (:class:`_Inputs`).

    Allocating a batch's float copies afresh (tens of MB in float64) and freeing them after the batch lets the
    main process's heap grow over a long run: glibc serves blocks of that size from its heap once its mmap
    threshold has adapted, and the small objects allocated between batches fragment it (measured: +30 % over
    10,000 pairs). One array per slot and dtype, reused, keeps it flat and saves the page faults of fresh
    memory. An array is reused only when nothing still holds it: a tensor made by ``torch.from_numpy`` (and
    every view of it) keeps a reference to the array it wraps, so a reference count above the pool's own
    means a tensor of an earlier batch is alive (kept by a caller), and that slot gets a new array instead.
    """

    def __init__(self):
        self._arrays: dict[tuple[int, str], np.ndarray] = {}

    def take(self, slot: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` for ``slot`` (0 references, 1 distorted images, 2 references
        gathered per distorted image), contents unset."""
        key = (slot, np.dtype(dtype).str)
        size = math.prod(shape)
        held = self._arrays.get(key)
        # references to an idle array: the dict's, `held` and getrefcount's argument
        if held is None or held.size < size or sys.getrefcount(held) > 3:
            held = self._arrays[key] = np.empty(size, dtype)
        return held[:size].reshape(shape)


class _Inputs:
    """A batch on the device, converted once per precision to float in [0, 1] by the files' bit depth.

    Pixels travel in their integer form (uint8, or int32 for 16-bit samples) and are scaled on the device,
    so float64 metrics get exact values and float32 metrics (LPIPS) get the usual float32 ones. With a
    ``pool``, the CPU conversion writes into its reused arrays.
    """

    def __init__(self, ref: torch.Tensor, dist: torch.Tensor, device: torch.device, scale: float | None = None,
                 pool: _BufferPool | None = None):
        self.raw = (ref.to(device, non_blocking=True), dist.to(device, non_blocking=True))
        self.scale = scale  # full scale of the integer samples when not the dtype's (1023 for 10-bit video)
        self.pool = pool
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, dtype: str) -> tuple[torch.Tensor, torch.Tensor]:
        if dtype not in self.cache:
            torch_dtype = torch.float64 if dtype == "float64" else torch.float32
            self.cache[dtype] = tuple(
                to_unit_float(t, torch_dtype, self.scale,
                              out=None if self.pool is None else functools.partial(self.pool.take, slot))
                for slot, t in enumerate(self.raw))
        return self.cache[dtype]

    def samples(self) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """``(ref, dist, full scale)``: the integer samples as decoded, for runners that take them
        (``takes_samples``); None when the batch holds floats."""
        scale = self.scale if self.scale is not None else SAMPLE_SCALE.get(self.raw[0].dtype)
        if scale is None or self.raw[0].is_floating_point() or self.raw[1].dtype != self.raw[0].dtype:
            return None
        return self.raw[0], self.raw[1], scale

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pixels on the CPU for panels (float [0, 1] when their scale is not their dtype's)."""
        if self.scale is None:
            return self.raw[0].cpu(), self.raw[1].cpu()
        return tuple(to_unit_float(t, torch.float32, self.scale).cpu() for t in self.raw)


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


def _masked(fn, values: torch.Tensor, ref: torch.Tensor, dist: torch.Tensor, index: torch.Tensor,
            masks: list) -> torch.Tensor:
    """``--alpha mask``: the pairs that have a mask get ``fn`` (the metric's masked form), in one call."""
    with_mask = [p for p, mask in enumerate(masks) if mask is not None]
    pick = torch.tensor(with_mask, device=dist.device)
    values = values.double().clone()
    values[pick] = fn(ref.index_select(0, index[pick]).double(), dist[pick].double(),
                      torch.stack([masks[p] for p in with_mask])).to(values.device)
    return values


def _gather_refs(ref: torch.Tensor, ref_index: torch.Tensor, pool: _BufferPool | None) -> torch.Tensor:
    """``ref[ref_index]`` for a pure metric: each distorted image's reference, without a fresh copy per batch.

    One reference (a batch of its distorted versions) is a stride-0 view; several are gathered into the
    pool's array on the CPU (slot 2), so that a long run does not churn the heap (see :class:`_BufferPool`).
    """
    if ref.shape[0] == 1:
        return ref.expand(ref_index.shape[0], *ref.shape[1:])
    np_dtype = NUMPY_FLOATS.get(ref.dtype)
    if pool is None or np_dtype is None or ref.device.type != "cpu" or ref.requires_grad:
        return ref.index_select(0, ref_index)
    out = torch.from_numpy(pool.take(2, (ref_index.shape[0], *ref.shape[1:]), np_dtype))
    return torch.index_select(ref, 0, ref_index, out=out)


def _pure_runner(fn, params, map_fn=None, pool: _BufferPool | None = None, samples_fn=None) -> Runner:
    """A pure metric as a runner. With ``samples_fn`` it takes integer samples too (``scale=``): scores
    from them as they are, maps from their float values."""
    def run(ref: torch.Tensor, dist: torch.Tensor, ref_index: torch.Tensor | None, *, with_map: bool = False,
            scale: float | None = None):
        if scale is not None:
            if not with_map and ref.device.type == "cpu":
                return samples_fn(ref, dist, ref_index, scale=scale, **params)
            ref, dist = (to_unit_float(t, torch.float64, scale) for t in (ref, dist))
        refs = ref if ref_index is None else _gather_refs(ref, ref_index, pool)
        return (map_fn if with_map else fn)(refs, dist, **params)

    run.takes_samples = samples_fn is not None
    return run


def _batch_planes(batch: dict) -> tuple[dict | None, str | None]:
    """A batch's YUV planes (for the plane and sequence metrics), and why there are none to compare."""
    planes = batch.get("planes")
    return planes, "no YUV planes in this batch" if planes is None else planes.get("error")


def _plane_runner(fn, params):
    """``run(ref_planes, dist_planes, ref_index, bits) -> {column: (P,)}`` on a batch's per-frame planes
    (:func:`lpipscli.io.dataset.collate`): one call of the metric for the whole batch, with each pair's reference
    and distorted planes where they lie (``fn(ref_frames, dist_frames, bit_depth=...)``, one plane tuple per
    pair), so no frame is copied into a stack."""
    def run(ref_planes, dist_planes, ref_index, bits):
        refs = ref_planes if ref_index is None else [ref_planes[int(r)] for r in ref_index.tolist()]
        return fn(refs, dist_planes, bit_depth=bits, **params)

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
