"""Run an FFmpeg two-input comparison filter (``psnr``, ``ssim``, ``libvmaf``) through a PyAV filter graph.

The graph is ``buffer(main = distorted) + buffer(reference) -> FILTER -> buffersink``. Frames are pushed
in pairs with equal timestamps (``pts = k``, time base ``1/25``: FFmpeg's framesync pairs by timestamp),
and each output frame's metadata (``lavfi.psnr.*``, ``lavfi.ssim.*``...) is read back as a dict. Used by
:mod:`lpipscli.metrics.vmaf`, by the tests as the reference for :mod:`lpipscli.metrics.yuv`, and by the
benchmarks.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from fractions import Fraction

__all__ = ["CompareFilter", "filter_available", "run_compare_filter"]

_TIME_BASE = Fraction(1, 25)


def filter_available(name: str) -> bool:
    """Whether PyAV is installed and its bundled FFmpeg has the filter ``name``."""
    try:
        import av
    except ImportError:
        return False
    return name in av.filter.filters_available


class CompareFilter:
    """One two-input filter graph, fed pair by pair.

    Args:
        name: the filter (``"psnr"``, ``"ssim"``, ``"libvmaf"``).
        args: its option string (e.g. ``"log_path=x.json:log_fmt=json"``).
        threads: filter-graph threads (0: FFmpeg's choice).
        collect: :meth:`close` forces a garbage collection so that the graph is freed at once (needed
            when the filter writes its results at ``uninit``, as libvmaf does; costs ~0.1-0.3 s).
    """

    def __init__(self, name: str, args: str = "", *, threads: int = 0, collect: bool = False):
        self.name = name
        self.collect = collect
        self.args = args
        self.threads = threads
        self._graph = None
        self._sources = None
        self._sink = None
        self._count = 0

    def push(self, ref, dist) -> list[dict[str, str]]:
        """Compare one pair of ``av.VideoFrame`` (same size and format); returns metadata of frames ready."""
        if self._graph is None:
            self._build(ref, dist)
        for frame, source in ((dist, self._sources[0]), (ref, self._sources[1])):
            frame.pts = self._count
            frame.time_base = _TIME_BASE
            source.push(frame)
        self._count += 1
        return self._drain()

    def close(self) -> list[dict[str, str]]:
        """Flush (end of stream), return the last frames' metadata, and free the graph.

        Freeing runs the filter's ``uninit`` (libvmaf writes its log there); with ``collect`` it is forced
        by a garbage collection, because PyAV's graph and filter contexts reference each other.
        """
        if self._graph is None:
            return []
        out = self._flush()  # in a helper, so that no local variable here still holds a filter context
        self._graph = self._sources = self._sink = None
        if self.collect:
            gc.collect()
        return out

    def _flush(self) -> list[dict[str, str]]:
        for source in self._sources:
            source.push(None)
        return self._drain()

    def _build(self, ref, dist) -> None:
        import av

        graph = av.filter.Graph()
        if self.threads:
            graph.threads = self.threads
        self._sources = [graph.add_buffer(width=f.width, height=f.height, format=f.format.name,
                                          time_base=_TIME_BASE, name=role)
                         for f, role in ((dist, "main"), (ref, "reference"))]
        comparer = graph.add(self.name, self.args) if self.args else graph.add(self.name)
        self._sink = graph.add("buffersink")
        self._sources[0].link_to(comparer, 0, 0)
        self._sources[1].link_to(comparer, 0, 1)
        comparer.link_to(self._sink)
        graph.configure()
        self._graph = graph

    def _drain(self) -> list[dict[str, str]]:
        import av

        out = []
        while True:
            try:
                frame = self._sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return out
            out.append(dict(frame.metadata))


def run_compare_filter(ref_frames: Iterable, dist_frames: Iterable, name: str, args: str = "", *,
                       threads: int = 0) -> Iterator[dict[str, str]]:
    """Yield the metadata FFmpeg's filter ``name`` attaches to each compared frame, in order.

    Args:
        ref_frames: ``av.VideoFrame`` objects of the reference.
        dist_frames: ``av.VideoFrame`` objects of the distorted video, same size and pixel format.
        name, args, threads: see :class:`CompareFilter`.

    Yields:
        One dict per frame pair: the output frame's metadata (values are FFmpeg's strings).
    """
    comparer = CompareFilter(name, args, threads=threads)
    finished = False
    try:
        for ref, dist in zip(ref_frames, dist_frames, strict=True):
            yield from comparer.push(ref, dist)
        finished = True
        yield from comparer.close()
    finally:
        if not finished:
            comparer.close()
