"""CSV and JSON Lines sinks: one line per pair, flushed per batch, provenance in ``FILE.meta.json``."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path

from lpipscli.errors import OutputError
from lpipscli.sinks import json_safe, write_json_atomic


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def trim_partial_line(path: Path) -> None:
    """Drop a last line without its newline (left by a killed writer), so appending starts clean."""
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        keep = 0
        position = size
        while position > 0:
            step = min(1 << 16, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = position + cut + 1
                break
        handle.truncate(keep)


class _TextSink:
    """Common part of the CSV and JSONL sinks.

    Args:
        path: the output file, or ``-`` for stdout.
        columns: column order.
        provenance: written to the sidecar now and, with the summary, again on close.
        append: continue an existing file (``--resume``): its partial last line is dropped, nothing
            already there is rewritten.
        durable: ``fsync`` after every batch (the Parquet sink's journal uses this).
    """

    def __init__(self, path: str, columns: tuple[str, ...], provenance: dict, *, append: bool = False,
                 durable: bool = False):
        self.columns = columns
        self.provenance = provenance
        self.to_stdout = path == "-"
        self.path = None if self.to_stdout else Path(path)
        self.durable = durable
        appending = append and self.path is not None and self.path.is_file() and self.path.stat().st_size > 0
        try:
            if self.to_stdout:
                self.handle = sys.stdout
            else:
                if appending:
                    trim_partial_line(self.path)
                self.handle = open(self.path, "a" if appending else "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"-o {path}: cannot write: {exc.strerror}") from None
        if self.path is not None:
            write_json_atomic(meta_path(self.path), {"provenance": json_safe(provenance), "complete": False})
        self.broken = False
        self._start(write_header=not appending)

    def _start(self, write_header: bool) -> None:
        pass

    def _lines(self, rows: list[dict]) -> None:
        raise NotImplementedError

    def write(self, rows: list[dict]) -> None:
        if self.broken or not rows:
            return
        try:
            self._lines(rows)
            self.handle.flush()
            if self.durable:
                os.fsync(self.handle.fileno())
        except BrokenPipeError:  # `lpips compare ... -o - | head`
            self.broken = True

    def close(self, summary: dict | None = None, *, complete: bool | None = None) -> None:
        """Close the file and rewrite the sidecar; ``complete`` defaults to "a summary was given"."""
        if self.to_stdout:
            return
        if not self.handle.closed:
            self.handle.close()
        write_json_atomic(meta_path(self.path), {
            "provenance": json_safe(self.provenance),
            "complete": summary is not None if complete is None else complete,
            "summary": json_safe(summary) if summary is not None else None,
        })


def _csv_value(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)  # shortest round-trip text; 'inf' stays 'inf'
    return str(value)


class CsvSink(_TextSink):
    """CSV with a header; failed pairs leave metric cells empty; ``inf`` is written as ``inf``."""

    def _start(self, write_header: bool) -> None:
        self.writer = csv.writer(self.handle, lineterminator="\n")
        if write_header:
            try:
                self.writer.writerow(self.columns)
                self.handle.flush()
            except BrokenPipeError:
                self.broken = True

    def _lines(self, rows: list[dict]) -> None:
        self.writer.writerows([_csv_value(row[c]) for c in self.columns] for row in rows)


class JsonlSink(_TextSink):
    """One JSON object per line; non-finite scores are the strings 'inf' / '-inf', missing ones null."""

    def _lines(self, rows: list[dict]) -> None:
        for row in rows:
            out = {}
            for c in self.columns:
                value = row[c]
                if isinstance(value, float) and math.isnan(value):
                    value = None
                out[c] = json_safe(value)
            self.handle.write(json.dumps(out, ensure_ascii=False) + "\n")
