"""Sinks of scored batches: each takes every :class:`~lpipscli.engine.ScoredBatch` of a run in turn.

``run.py`` builds the list (heatmaps first, since they fill the rows' ``<metric>_map`` columns; then the
map video; then the table) and hands each batch to each; the engine knows none of them.
"""

from __future__ import annotations

from lpipscli.sinks.map_video import hwc_pixels


class TableSink:
    """The results table (CSV/Parquet/JSONL, see :func:`lpipscli.sinks.open_sink`)."""

    def __init__(self, sink):
        self.sink = sink

    def write(self, batch) -> None:
        if batch.rows:
            self.sink.write(batch.rows)


class HeatmapSink:
    """Hands each row's maps to a :class:`~lpipscli.sinks.heatmap.HeatmapWriter` (it encodes off-thread).

    Args:
        writer: the heatmap writer.
        metrics: the metrics whose maps are written.
        every: for video frames, write maps of every N-th scored frame (``frame_grid`` says which are scored).
        frame_grid: ``(first frame, step)`` of a video plan, or None for images.
    """

    def __init__(self, writer, metrics: tuple[str, ...], *, every: int = 1, frame_grid: tuple[int, int] | None = None):
        self.writer = writer
        self.metrics = metrics
        self.every = max(1, every)
        self.frame_grid = frame_grid or (0, 1)

    def write(self, batch) -> None:
        for i, (row, pair) in enumerate(zip(batch.rows, batch.pairs, strict=True)):
            if row["status"] == "failed":
                continue
            frame = row.get("frame")
            if frame is not None:
                start, step = self.frame_grid
                if ((int(frame) - start) // step) % self.every:
                    continue
            ref_img = dist_img = None
            if self.writer.panel and batch.images is not None and batch.images[i] is not None:
                ref_img, dist_img = (hwc_pixels(t) for t in batch.images[i])
            for key in self.metrics:
                spatial = batch.maps.get(key, [None] * len(batch.rows))[i]
                if spatial is None:
                    continue
                row[f"{key}_map"] = self.writer.submit(
                    key, pair.dist_root, pair.key, spatial[0].numpy(), row[key], ref=ref_img, dist=dist_img,
                    image_hw=(row["height"], row["width"]),
                )

    def close(self):
        return self.writer.close()


class MapVideoSink:
    """Draws one distorted input's map of one metric into a video (``--heatmap-video``)."""

    def __init__(self, video):
        self.video = video

    def write(self, batch) -> None:
        maps = batch.maps.get(self.video.metric)
        if maps is None:
            return
        for i, pair in enumerate(batch.pairs):
            if maps[i] is None:
                continue
            images = batch.images[i] if batch.images is not None else None
            self.video.add_map(pair, maps[i], images)

    def close(self) -> int:
        return self.video.close()
