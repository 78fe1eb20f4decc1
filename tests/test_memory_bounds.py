"""Memory that a run holds does not grow with the number of pairs (issue 14, goal 5), checked without timing.

Decoded items wait in shared memory between a decoding worker and the main process. The DataLoader bounds
them in items (``prefetch_factor`` per worker), while an item holds one reference and up to a whole batch of
its distorted versions; a count fixed in items let the pairs in flight grow 16x when references have many
distorted versions (measured: 11 -> 56 MiB of segments in flight, 156 -> 205 MiB in the worker, 100 ->
10,000 pairs; ``benchmarks/bench_memory.py``). These tests count the pairs and pixels that the loader of a
real run can hold in flight.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lpipscli.config import RunConfig
from lpipscli.engine import Engine
from lpipscli.io.dataset import prefetch_items
from lpipscli.metrics import REGISTRY

BATCH = 16


def _pair_list(folder: Path, refs: int, dists_per_ref: int, size: tuple[int, int] = (32, 32)) -> Path:
    """``refs`` PNG references, each listed with ``dists_per_ref`` distorted PNGs (a ``--pairs`` CSV)."""
    rng = np.random.default_rng(0)
    listing = folder / "pairs.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ref", "dist"])
        for r in range(refs):
            ref = folder / f"ref{r}.png"
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(ref)
            for d in range(dists_per_ref):
                dist = folder / f"dist{r}_{d}.png"
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(dist)
                writer.writerow([ref.name, dist.name])
    return listing


def _in_flight(tmp_path: Path, refs: int, dists_per_ref: int, workers: int, **options) -> tuple[int, int, int, int]:
    """``(pairs, pixels, batch pixel budget, prefetch)`` the loader of a `--pairs` run can hold in flight:
    ``prefetch_factor`` items per worker, each counted at the size of the run's largest item."""
    listing = _pair_list(tmp_path, refs, dists_per_ref)
    engine = Engine(RunConfig(ref=None, dists=(), metrics=("psnr",), pairs=listing, device="cpu", workers=workers,
                              batch_size=BATCH, **options))
    plan = engine.plan()
    loader = engine.loader(plan)
    assert loader.num_workers == workers
    sizes = [(len(c.pairs), (len(c.pairs) + 1) * c.height * c.width) for c in plan.dataset.chunks]
    slots = loader.prefetch_factor * loader.num_workers
    return (slots * max(p for p, _ in sizes), slots * max(px for _, px in sizes), engine.max_batch_pixels,
            loader.prefetch_factor)


@pytest.mark.parametrize("dists_per_ref", [1, 2, 16, 40])
def test_pairs_in_flight_stay_within_a_few_batches_whatever_the_items_hold(tmp_path, dists_per_ref):
    # one item = a reference and up to a batch of its distorted versions; before the fix 32 items were
    # prefetched whatever they held: 32 x 16 = 512 pairs (32 batches) with 16 or more versions per reference
    pairs, _, _, prefetch = _in_flight(tmp_path, refs=3, dists_per_ref=dists_per_ref, workers=1)
    assert pairs <= 4 * BATCH, (dists_per_ref, prefetch, pairs)
    # and still at least two batches' worth of pairs, so that decoding overlaps a whole batch of compute
    assert pairs >= min(2 * BATCH, 3 * dists_per_ref), (dists_per_ref, prefetch, pairs)


def test_pixels_in_flight_stay_within_four_batch_budgets(tmp_path):
    # a small pixel budget makes the budget, not the pair count, close batches: 16 versions of 32x32 with
    # a budget of 4 references' pixels give items of 3 pairs (4 images), and batches of one item
    budget = 4 * 32 * 32
    _, pixels, max_batch_pixels, _ = _in_flight(tmp_path, refs=2, dists_per_ref=16, workers=2,
                                                 max_batch_pixels=budget)
    assert max_batch_pixels == budget
    assert pixels <= 4 * budget + 2 * 4 * 32 * 32  # at least 2 items per worker, whatever the budget


def test_prefetch_counts_items_by_their_pairs_and_pixels():
    # the same 2 batches of 16 pairs in flight, whether items hold 1, 2 or 16 pairs (256x256, 4 Mpx budget)
    px = 256 * 256
    assert prefetch_items(16, 1, 4 * 2**20, [(1, 2 * px)] * 50) == 32
    assert prefetch_items(16, 1, 4 * 2**20, [(2, 3 * px)] * 50) == 16
    assert prefetch_items(16, 1, 4 * 2**20, [(16, 17 * px)] * 50) == 2
    # at 1080p a batch is one pair (the budget closes it), so two items are two batches
    assert prefetch_items(16, 1, 4 * 2**20, [(1, 2 * 1920 * 1080)] * 50) == 2
    # a source that does not know its items' sizes: one pair per item, as before
    assert prefetch_items(16, 2) == 16


def _chunks(n_refs: int, per_ref: int):
    from lpipscli.io.dataset import Chunk
    from lpipscli.io.pairing import Pair

    return [Chunk(f"/data/ref{r}.png", tuple(Pair(f"k{r}_{d}", Path(f"/data/ref{r}.png"), Path(f"/data/d/{r}_{d}.jpg"),
                                             f"group{d % 3}") for d in range(per_ref)),
                  32, 48, 3, tuple(None if d % 2 else (64, 96) for d in range(per_ref)))
            for r in range(n_refs)]


def _reachable(root) -> int:
    """Python objects reachable from ``root``'s attributes (``root`` included; classes and modules not followed)."""
    import gc
    import types

    seen, stack = {id(root)}, list(vars(root).values())
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_what_workers_decode_from_holds_no_python_object_per_pair():
    # a forked worker writes the reference count of every object it reads, which copies its page: the data
    # it decodes from must not hold an object per pair (the classic DataLoader copy-on-write growth)
    from lpipscli.io.dataset import PairDataset

    small, large = PairDataset(_chunks(2, 3)), PairDataset(_chunks(40, 50))
    small.prepare_workers()
    large.prepare_workers()
    assert small._packed is not None
    assert _reachable(small._packed) == _reachable(large._packed)


def test_a_worker_decodes_the_same_chunk_without_reading_the_planned_objects(tmp_path, monkeypatch):
    import gc

    import lpipscli.io.dataset as dataset_module

    listing = _pair_list(tmp_path, refs=2, dists_per_ref=3)
    engine = Engine(RunConfig(ref=None, dists=(), metrics=("psnr",), pairs=listing, device="cpu", workers=0))
    dataset = engine.plan().dataset
    in_main = [dataset[i] for i in range(len(dataset))]
    dataset.prepare_workers()  # what Engine.loader does before decoding workers fork
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(dataset_module, "get_worker_info", lambda: object())  # as in a DataLoader worker

    class Untouchable(list):
        def __getitem__(self, index):
            raise AssertionError("a worker read the planned Chunk objects")

    planned = dataset.chunks
    dataset.chunks = Untouchable(planned)
    in_worker = [dataset[i] for i in range(len(dataset))]
    assert frozen == [True]  # the parent's objects are frozen once, so the worker's collections skip them
    for a, b in zip(in_main, in_worker, strict=True):
        assert a["chunk"] == b["chunk"]
        assert a["errors"] == b["errors"]
        assert torch.equal(a["ref"], b["ref"])
        assert all(torch.equal(x, y) for x, y in zip(a["dists"], b["dists"], strict=True))
    assert [c.pairs for c in planned] == [item["chunk"].pairs for item in in_worker]


def test_video_frame_groups_in_flight_are_sized_by_their_frames(tmp_path):
    """With ``--workers 1`` a video run's decoded frame groups in flight are counted in frames and pixels too:
    a group is one reference frame and a frame of every encode."""
    from _helpers import write_ffv1_clip

    from lpipscli.io.dataset import VideoDataset
    from lpipscli.io.video import plan_video

    frames = [np.full((48, 64, 3), 10 * k, np.uint8) for k in range(3)]
    ref = write_ffv1_clip(tmp_path / "ref.mkv", frames)
    encodes = [write_ffv1_clip(tmp_path / f"e{k}.mkv", frames) for k in range(3)]
    dataset = VideoDataset(plan_video(ref, encodes), [str(e) for e in encodes])
    assert dataset.item_sizes() == [(3, 4 * 64 * 48)]
    # a 1080p group of 3 encodes is 4 frames of 2 Mpx: two of them fill the 4 Mpx pixel budget twice over
    assert prefetch_items(BATCH, 1, 4 * 2**20, [(3, 4 * 1920 * 1080)]) == 2


@pytest.mark.parametrize("workers", [0, 1])
def test_the_plan_is_packed_only_for_decoding_workers(tmp_path, workers):
    listing = _pair_list(tmp_path, refs=2, dists_per_ref=3)
    engine = Engine(RunConfig(ref=None, dists=(), metrics=("psnr",), pairs=listing, device="cpu", workers=workers))
    plan = engine.plan()
    engine.loader(plan)
    assert (plan.dataset._packed is not None) == (workers > 0)


# --- the main process: batch buffers reused (a long run's heap stays flat) ---------------------------------
# Freeing each batch's float copies (tens of MB) and allocating the next batch's let the main process's heap
# grow by ~30 % over 10,000 `-m psnr` pairs (glibc served them from a heap that the small objects of each
# batch fragment; measured with benchmarks/bench_memory.py). The engine converts into reused arrays instead.


def test_a_pool_array_is_reused_when_idle_and_never_written_under_a_live_tensor():
    from lpipscli.engine import _BufferPool

    pool = _BufferPool()
    first = pool.take(0, (2, 3), np.float64)
    address = first.__array_interface__["data"][0]
    del first
    again = pool.take(0, (3, 2), np.float64)  # idle: the same memory, any shape that fits
    assert again.__array_interface__["data"][0] == address
    assert pool.take(0, (2, 3), np.float32).dtype == np.float32  # another dtype: its own array
    live = torch.from_numpy(again)
    live.fill_(1.0)
    view = live[1:]  # a caller keeps a view of an earlier batch's tensor
    del live, again
    fresh = pool.take(0, (3, 2), np.float64)
    fresh.fill(7.0)
    assert torch.equal(view, torch.ones(2, 2, dtype=torch.float64))  # never overwritten
    bigger = pool.take(0, (4, 4), np.float64)
    assert bigger.shape == (4, 4)


@pytest.mark.parametrize("refs", [1, 3])
def test_gathered_references_equal_index_select_and_do_not_alias_a_live_batch(refs):
    from lpipscli.engine import _BufferPool, _gather_refs

    pool = _BufferPool()
    ref = torch.rand(refs, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(refs))
    index = torch.tensor([r % refs for r in range(7)])
    first = _gather_refs(ref, index, pool)
    assert torch.equal(first, ref.index_select(0, index))
    kept = first.clone()
    second = _gather_refs(ref.flip(0).contiguous(), index, pool)  # the next batch, while `first` lives
    assert torch.equal(second, ref.flip(0).index_select(0, index))
    assert torch.equal(first, kept)


def test_a_run_converts_every_batch_into_the_same_few_arrays(tmp_path):
    """Nothing of a scored batch outlives it in the engine: a run of many batches allocates its float arrays
    once per slot (plus when a batch is bigger than all before), not once per batch."""
    from lpipscli.engine import _BufferPool

    listing = _pair_list(tmp_path, refs=24, dists_per_ref=2)  # 48 pairs: batches of 16 span 8 references
    engine = Engine(RunConfig(ref=None, dists=(), metrics=("psnr_y", "ssim"), pairs=listing, device="cpu",
                              workers=0, batch_size=BATCH))
    allocations = []

    class Counting(_BufferPool):
        def take(self, slot, shape, dtype):
            before = id(self._arrays.get((slot, np.dtype(dtype).str)))  # no reference: it would count as a holder
            array = super().take(slot, shape, dtype)
            if id(array.base) != before:
                allocations.append((slot, shape))
            return array

    engine._buffers = Counting()  # before build(): the pure runners gather into it
    engine.build()
    rows = []
    engine.execute(engine.plan(), rows.extend)
    assert len(rows) == 48 and all(r["status"] == "ok" for r in rows)
    batches = 48 // BATCH
    assert batches >= 3
    assert 0 < len(allocations) <= 3, allocations  # ref and dist conversions, and the gathered references


_PURE = [k for k, s in REGISTRY.items() if s.build is None and s.input not in ("planes", "sequence")]


@pytest.mark.parametrize("key", _PURE)
def test_every_pure_metric_scores_one_shared_reference_read_through_a_stride_0_view(key):
    """A batch of one reference's distorted versions hands pure metrics that reference as a stride-0 view (no
    copy per pair): each must give exactly the scores of the materialised copies (and may not write to it)."""
    from lpipscli.engine import _BufferPool, _pure_runner
    from lpipscli.metrics import resolve_params

    spec = REGISTRY[key]
    side = max(spec.min_side, 32)
    dtype = torch.float64 if spec.input_dtype == "float64" else torch.float32
    gen = torch.Generator().manual_seed(11)
    ref = torch.rand(1, 3, side, side, generator=gen, dtype=dtype)
    dist = torch.rand(3, 3, side, side, generator=gen, dtype=dtype)
    params = resolve_params(key, {})
    run = _pure_runner(spec.fn, params, spec.map_fn, _BufferPool())
    got = run(ref, dist, torch.zeros(3, dtype=torch.long))
    expected = spec.fn(ref.repeat(3, 1, 1, 1), dist, **params)
    assert torch.equal(got, expected)
