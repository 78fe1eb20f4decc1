"""Parquet sink (pyarrow): row groups written as the run goes, provenance in the file metadata.

The file is written under a temporary name beside the target and renamed on close, so a file with the
final name is always complete and readable. Every batch is also appended, flushed and fsync'ed to a
journal (``.NAME.journal.jsonl``), so a killed run loses at most the batch in flight: ``--resume`` reads
the journal and the finished file is rebuilt from it. The journal is removed once the file is complete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lpipscli.errors import OutputError
from lpipscli.sinks import json_safe
from lpipscli.sinks.text import JsonlSink, meta_path

METADATA_KEY = b"lpipscli"
#: footer key: b"true" when the run finished, b"false" when it was interrupted or stopped at an error
COMPLETE_KEY = b"lpipscli_complete"
#: footer key: JSON of the run's end record (planned pairs, scored, failed, interrupted, first error), when known
RUN_KEY = b"lpipscli_run"
#: the summary keys the end record keeps
RUN_FIELDS = ("pairs", "scored", "failed", "interrupted", "first_error")
_INT_COLUMNS = {"width", "height", "frame", "dist_frame"}
_STR_COLUMNS = {"ref", "dist", "dist_root", "status", "error", "resized_from", "key"}


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal.jsonl")


def schema_for(columns: tuple[str, ...], provenance: dict) -> pa.Schema:
    fields = []
    for c in columns:
        if c in _STR_COLUMNS or c.endswith("_map"):
            fields.append(pa.field(c, pa.string()))
        elif c in _INT_COLUMNS:
            fields.append(pa.field(c, pa.int32()))
        else:
            fields.append(pa.field(c, pa.float64()))
    meta = {METADATA_KEY: json.dumps(json_safe(provenance)).encode()}
    return pa.schema(fields, metadata=meta)


def read_provenance(path: str | Path) -> dict:
    """The provenance a Parquet file written by lpipscli carries."""
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise OutputError(f"{path}: no lpipscli provenance in its metadata")
    return json.loads(meta[METADATA_KEY])


class ParquetSink:
    """Buffers rows and writes a row group every ``rows_per_group`` rows or ``seconds`` seconds.

    Args:
        path: the final file.
        columns, provenance: schema and metadata.
        previous_rows: rows of an earlier, interrupted run (``--resume``), written first.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], provenance: dict, *,
                 previous_rows: list[dict] | None = None, rows_per_group: int = 4096, seconds: float = 5.0):
        self.path = path
        self.columns = columns
        self.schema = schema_for(columns, provenance)
        self.tmp = path.with_name(f".{path.name}.partial")
        try:
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        except OSError as exc:
            raise OutputError(f"-o {path}: cannot write: {exc}") from None
        self.journal = JsonlSink(str(journal_path(path)), columns, provenance, durable=True)
        self.buffer: list[dict] = []
        self.rows_per_group = rows_per_group
        self.seconds = seconds
        self.last_flush = time.monotonic()
        self.closed = False
        if previous_rows:
            self.write(previous_rows)

    def write(self, rows: list[dict]) -> None:
        self.journal.write(rows)
        self.buffer.extend(rows)
        if len(self.buffer) >= self.rows_per_group or time.monotonic() - self.last_flush >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = pa.Table.from_pylist([{c: r[c] for c in self.columns} for r in self.buffer], schema=self.schema)
            self.writer.write_table(table)
            self.buffer = []
        self.last_flush = time.monotonic()

    def close(self, summary: dict | None = None, *, complete: bool | None = None) -> None:
        """Finish the file (always readable), record whether the run completed, and drop the journal."""
        if self.closed:
            return
        self.closed = True
        self.flush()
        done = summary is not None if complete is None else complete
        footer = {COMPLETE_KEY: b"true" if done else b"false"}
        if summary is not None:
            record = {k: summary[k] for k in RUN_FIELDS if k in summary}
            footer[RUN_KEY] = json.dumps(json_safe(record)).encode()
        self.writer.add_key_value_metadata(footer)
        self.writer.close()
        os.replace(self.tmp, self.path)
        self.journal.close(summary)
        journal_path(self.path).unlink(missing_ok=True)
        meta_path(journal_path(self.path)).unlink(missing_ok=True)
