"""Output sinks: rows stream out batch by batch; provenance travels with every file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from lpipscli.errors import OutputError, UsageError

FORMATS = ("csv", "parquet", "jsonl")


class Sink(Protocol):
    def write(self, rows: list[dict]) -> None: ...

    def close(self, summary: dict | None = None, *, complete: bool | None = None) -> None: ...


def format_for(path: str, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the extension; ``-`` is CSV on stdout; a folder
    (``results/``) is a Parquet ``dataset`` (see :mod:`lpipscli.sinks.dataset`)."""
    from lpipscli.sinks.dataset import is_dataset_path

    if is_dataset_path(path) and fmt in (None, "parquet", "dataset"):
        return "dataset"
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
        return fmt
    if path == "-":
        return "csv"
    if Path(path).is_dir():
        raise OutputError(f"-o {path}: is a folder; give a file name in it, e.g. -o {Path(path) / 'results.csv'}")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix in ("pq", "parq"):
        return "parquet"
    raise UsageError(f"-o {path}: cannot tell the format from the extension; use .csv, .parquet or .jsonl or --format "
                     "(or end it with / for a Parquet dataset folder)")


def check_writable(path: str | os.PathLike, option: str = "-o") -> None:
    """Fail early (before any compute) when an output file (``option`` names it in messages) cannot be created."""
    if str(path) == "-":
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"{option} {path}: is a folder")
    if not parent.is_dir():
        raise OutputError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise OutputError(f"{option} {path}: not writable")


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file via a temporary file and rename (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


def _json_default(value):
    return str(value)


def json_safe(value):
    """Floats that JSON cannot hold (inf, nan) become the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def open_sink(path: str, fmt: str | None, columns: tuple[str, ...], provenance: dict, *,
              previous_rows: list[dict] | None = None) -> Sink:
    """Open the sink for ``path`` (``-`` = CSV on stdout).

    ``previous_rows`` (not None) means ``--resume``: CSV/JSONL files are appended to (they already hold
    those rows); a Parquet file is rebuilt with them first.
    """
    fmt = format_for(path, fmt)
    if fmt == "dataset":
        from lpipscli.sinks.dataset import DatasetSink

        return DatasetSink(Path(path), columns, provenance, previous_rows=previous_rows)
    check_writable(path)
    if fmt == "parquet":
        if path == "-":
            raise UsageError("Parquet cannot be written to stdout; give a file name")
        from lpipscli.sinks.parquet import ParquetSink

        return ParquetSink(Path(path), columns, provenance, previous_rows=previous_rows)
    from lpipscli.sinks.text import CsvSink, JsonlSink

    return (CsvSink if fmt == "csv" else JsonlSink)(path, columns, provenance, append=previous_rows is not None)
