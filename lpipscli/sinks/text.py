"""CSV and JSON Lines sinks: one line per pair, flushed per batch, provenance in ``FILE.meta.json``."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from lpipscli.errors import OutputError
from lpipscli.sinks import json_safe, write_json_atomic


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


class _TextSink:
    def __init__(self, path: str, columns: tuple[str, ...], provenance: dict):
        self.columns = columns
        self.provenance = provenance
        self.to_stdout = path == "-"
        self.path = None if self.to_stdout else Path(path)
        try:
            self.handle = sys.stdout if self.to_stdout else open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"-o {path}: cannot write: {exc.strerror}") from None
        if self.path is not None:
            write_json_atomic(_meta_path(self.path), {"provenance": json_safe(provenance), "complete": False})
        self.broken = False
        self._start()

    def _start(self) -> None:
        pass

    def _lines(self, rows: list[dict]) -> None:
        raise NotImplementedError

    def write(self, rows: list[dict]) -> None:
        if self.broken or not rows:
            return
        try:
            self._lines(rows)
            self.handle.flush()
        except BrokenPipeError:  # `lpips compare ... -o - | head`
            self.broken = True

    def close(self, summary: dict | None = None) -> None:
        if not self.to_stdout:
            self.handle.close()
            write_json_atomic(_meta_path(self.path), {
                "provenance": json_safe(self.provenance), "complete": summary is not None,
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

    def _start(self) -> None:
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.write_header()

    def write_header(self) -> None:
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
